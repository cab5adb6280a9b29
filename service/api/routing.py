"""How routes are declared and put on the app: flat, with every computation on one lean path.

What ``make bench`` measures (``benchmarks/bench_calculators.py``) shaped three choices:

* :class:`HandlerRoute`, for every computation route (calculators, cost, budget, plans, serving
  plans, ``config.json`` import): the endpoint *is* the request handler
  (``async def f(request: Request) -> Response``), and it answers through
  :func:`service.api.responses.answer`, which parses the body (:mod:`service.api.json_body`),
  keeps answers and serialises the response once; no dependency solving, no
  response-model validation and none of FastAPI's per-request AsyncExitStacks. The route's
  declaration (``response_model``, ``openapi_extra``, ``responses``) still writes the OpenAPI
  document, so the contract is what FastAPI would produce. FastAPI documents overriding
  :meth:`APIRoute.get_route_handler` ("Custom Request and APIRoute class"); this class also
  sets the route's ASGI app to the bare handler call. Exceptions propagate to the app's
  ExceptionMiddleware, which holds the same handlers a route's own wrapper would use.
* :func:`attach` instead of ``include_router``: in this FastAPI line an included router is a
  lazy branch, matched once to find it and again inside it; every router here is put on the
  app's own route table instead (about 15 µs less per calculator request).
* :func:`move_docs_last`: routes are matched in order, and the OpenAPI document, the docs pages
  and their assets' mount are registered first, so every request would test those paths first.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.routing import APIRoute, request_response, wrap_app_with_body_limit
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from service.api.docs import ASSETS_URL, DOCS_URL, REDOC_URL


def operation_id(route: APIRoute) -> str:
    """Stable operation ids for generated clients: ``<tag>-<function name>``."""
    return f"{route.tags[0]}-{route.name}"


class HandlerRoute(APIRoute):
    """An API route whose endpoint is called as the raw request handler."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if list(inspect.signature(endpoint).parameters) != ["request"]:
            raise TypeError(f"{endpoint.__name__}: a HandlerRoute endpoint takes exactly one parameter, `request`")
        if not inspect.iscoroutinefunction(endpoint):
            raise TypeError(f"{endpoint.__name__}: a HandlerRoute endpoint must be `async def`")
        super().__init__(path, endpoint, **kwargs)
        if self.dependencies:  # the route's and its router's: a HandlerRoute would never run them
            raise TypeError(f"{endpoint.__name__}: a HandlerRoute runs no dependencies (an auth check would be skipped)")
        handler = self.endpoint

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            response = await handler(Request(scope, receive, send))
            await response(scope, receive, send)

        self.app = app

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return self.endpoint


def api_router(**kwargs: Any) -> APIRouter:
    """A router whose routes get the app's operation ids, ready for :func:`attach`."""
    return APIRouter(generate_unique_id_function=operation_id, **kwargs)


def handler_router(**kwargs: Any) -> APIRouter:
    """A router for :class:`HandlerRoute` endpoints, with the app's operation ids."""
    return api_router(route_class=HandlerRoute, **kwargs)


def attach(app: FastAPI, router: APIRouter) -> None:
    """Add ``router``'s routes to ``app``'s route table (see the module docstring).
    The routes keep the prefix, tags and responses the router gave them; the router must use
    :func:`operation_id` itself, since the app's default does not reach routes built elsewhere."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.generate_unique_id_function is not operation_id:
            raise ValueError(f"{route.path}: attach() needs a router built with generate_unique_id_function=operation_id")
        app.router.routes.append(_bound_to(route, app))


def _bound_to(route: BaseRoute, app: FastAPI) -> BaseRoute:
    """A copy of ``route`` whose dependencies honour ``app.dependency_overrides``, as an
    included route's would. Router modules build their routes once, at import, with no app
    to point at, and several apps can share them (tests build more than one); so each app gets
    its own copy, with its request handler rebuilt as :class:`APIRoute` builds it. A
    :class:`HandlerRoute` has no dependencies and is shared as it is."""
    if not isinstance(route, APIRoute) or isinstance(route, HandlerRoute):
        return route
    bound = copy.copy(route)
    bound.dependency_overrides_provider = app
    bound.app = wrap_app_with_body_limit(request_response(bound.get_route_handler()), bound.max_body_size)
    return bound


def move_docs_last(app: FastAPI) -> None:
    """Move the OpenAPI document, the docs pages and their assets' mount (FastAPI registers the
    first, :func:`service.api.docs.add_docs_pages` the others, before the API) to the end of the
    route table, in the order they were added: routes are matched in order, and every API request
    would otherwise test these paths before its own."""
    docs_paths = {
        app.openapi_url, app.docs_url, app.swagger_ui_oauth2_redirect_url, app.redoc_url, DOCS_URL, REDOC_URL, ASSETS_URL,
    } - {None}  # fmt: skip
    routes = app.router.routes
    docs = [route for route in routes if getattr(route, "path", None) in docs_paths and not isinstance(route, APIRoute)]
    routes[:] = [route for route in routes if route not in docs] + docs
