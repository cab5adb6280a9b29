"""Prometheus request metrics with a registry per app (no globals); observed by the request
middleware (:class:`service.api.middleware.RequestMiddleware`)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests_total", "Requests by route and status.", ("method", "route", "status"), registry=self.registry
        )
        self.latency = Histogram(
            "http_request_duration_seconds", "Request latency by route.", ("method", "route"), registry=self.registry
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one request and its latency (label children are looked up once per key)."""
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (self.requests.labels(method, route, str(status)), self.latency.labels(method, route))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
