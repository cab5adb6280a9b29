"""Prometheus request metrics with a registry per app (no globals); observed by the request
middleware (:class:`service.api.middleware.RequestMiddleware`)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

# the methods HTTP defines (RFC 9110 §9, RFC 5789); a client may send any token as a method, and
# each one as a label value would add series (and memory here) without bound
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"})
OTHER_METHOD = "OTHER"


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
        """Count one request and its latency (label children are looked up once per key); a
        method HTTP does not define is counted as :data:`OTHER_METHOD`."""
        if method not in KNOWN_METHODS:
            method = OTHER_METHOD
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (self.requests.labels(method, route, str(status)), self.latency.labels(method, route))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
