"""Service errors and the one place that renders every error as problem+json (RFC 9457)."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from service.core.errors import InvalidSpecError
from service.logging_config import REQUEST_ID_HEADER, current_request_id

PROBLEM_JSON = "application/problem+json"
logger = logging.getLogger(__name__)


class ServiceError(Exception):
    """An error with an HTTP status; ``errors`` lists field-level problems for a 422."""

    status_code = 400
    title = "Bad request"
    retry_after_seconds: int | None = None  # sent as ``Retry-After`` when set

    def __init__(self, detail: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors


class NotFound(ServiceError):
    status_code = 404
    title = "Not found"


class Conflict(ServiceError):
    status_code = 409
    title = "Conflict"


class PreconditionFailed(ServiceError):
    status_code = 412
    title = "Precondition failed"


class Unauthorized(ServiceError):
    status_code = 401
    title = "Unauthorized"


class Forbidden(ServiceError):
    status_code = 403
    title = "Forbidden"


class Unavailable(ServiceError):
    status_code = 503
    title = "Service unavailable"
    retry_after_seconds = 5


class Busy(Unavailable):
    """The catalog's write lane is full, or its write lock was not free in time: try again soon."""

    retry_after_seconds = 1


NOT_MIGRATED = "run `python -m service migrate`"


class Unprocessable(ServiceError):
    """The request's content is invalid (a field names what and why)."""

    status_code = 422
    title = "Unprocessable request"

    @classmethod
    def for_field(cls, field: str, reason: str) -> Unprocessable:
        return cls(f"{field}: {reason}", errors=[field_error(field, reason)])

    @classmethod
    def for_fields(cls, reasons: dict[str, str]) -> Unprocessable:
        """One 422 naming each field with its reason, in order (``a: why; b: why``)."""
        return cls(
            "; ".join(f"{name}: {reason}" for name, reason in reasons.items()),
            errors=[field_error(name, reason) for name, reason in reasons.items()],
        )


def field_error(field: str, reason: str, kind: str = "value_error") -> dict[str, Any]:
    """One 422 entry: ``loc`` as FastAPI writes it (``["body", "model", "n_heads"]``)."""
    return {"loc": ["body", *field.split(".")], "msg": reason, "type": kind}


def problem(status: int, title: str, detail: str, errors: list[dict[str, Any]] | None = None) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def located_error(error: dict[str, Any]) -> dict[str, Any]:
    """A model validator's :class:`InvalidSpecError` names the field it faults: pydantic puts the
    entry at the model (``["body"]``) with ``Value error, `` before the text; put it at the field
    (``["body", "fp8_recipe"]``, ``["body", "speculative", "draft_model"]``) with the reason alone."""
    cause = (error.get("ctx") or {}).get("error")
    if error.get("type") != "value_error" or not isinstance(cause, InvalidSpecError):
        return error
    path = [int(part) if part.isdigit() else part for part in cause.field.split(".")]  # list indices as pydantic's
    return {"loc": [*error.get("loc", ()), *path], "msg": cause.reason, "type": "value_error"}


def _clean_validation_errors(errors: Any) -> list[dict[str, Any]]:
    """Keep ``loc``, ``msg`` and ``type`` only: pydantic's ``ctx`` may hold exceptions and its
    ``input`` may echo a huge or non-JSON value."""
    return [
        {
            "loc": [str(p) if not isinstance(p, int) else p for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in errors
    ]


def _located_json_error(error: dict[str, Any], doc: Any) -> dict[str, Any]:
    """FastAPI's entry for a body that is not JSON names the character offset as if it were a
    field (``["body", 17]``) and keeps json's reason in ``ctx``: give it the body's location and
    the reason with its line and column, as the calculators' parser words it."""
    loc, reason = error.get("loc", ()), (error.get("ctx") or {}).get("error")
    if error.get("type") != "json_invalid" or len(loc) != 2 or not isinstance(loc[1], int) or reason is None:
        return error
    text = doc if isinstance(doc, str) else ""
    line = text.count("\n", 0, loc[1]) + 1
    column = loc[1] - (text.rfind("\n", 0, loc[1]) + 1) + 1
    return {"loc": ["body"], "msg": f"Invalid JSON: {reason} at line {line} column {column}", "type": "json_invalid"}


def unparsable_body(cause: BaseException | None) -> list[dict[str, Any]] | None:
    """The 422 entry for a JSON body that ``json.loads`` could not even scan (FastAPI answers
    those with a bare 400): bytes that are not UTF-8, or nesting deeper than the parser's stack."""
    if isinstance(cause, UnicodeDecodeError):
        reason = f"the body is not UTF-8 (byte 0x{cause.object[cause.start]:02x} at offset {cause.start})"
    elif isinstance(cause, RecursionError):
        reason = "nested too deeply"
    elif isinstance(cause, ValueError):
        reason = str(cause)
    else:
        return None
    return [{"loc": ["body"], "msg": f"Invalid JSON: {reason}", "type": "json_invalid"}]


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path. Starlette's own ``Allow`` names only the
    first route that matched the path, but a 405 must list them all (RFC 9110 §15.5.6)."""
    allowed = []
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
        scope = dict(request.scope, method=method)
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


def service_problem(exc: ServiceError) -> JSONResponse:
    response = problem(exc.status_code, exc.title, exc.detail, exc.errors)
    if exc.status_code == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="catalog"'
    if exc.retry_after_seconds is not None:
        response.headers["Retry-After"] = str(exc.retry_after_seconds)
    return response


# SQLSTATEs (PostgreSQL Appendix A) and SQLite messages: a schema older than the code, or a lock
# that was not granted within the write's wait (lock_timeout, busy_timeout)
MISSING_SCHEMA_STATES = {"42P01", "42703"}  # undefined_table, undefined_column
LOCK_STATES = {"55P03", "40P01", "40001"}  # lock_not_available, deadlock_detected, serialization_failure
MISSING_SCHEMA_MESSAGES = ("no such table", "no such column")
LOCK_MESSAGES = ("database is locked", "database table is locked")


def database_unavailable(exc: Exception) -> Unavailable | None:
    """The 503 a database error answers, or None where it is not the store's state but a defect
    (a ProgrammingError other than a missing table or column)."""
    orig = getattr(exc, "orig", None)
    state = getattr(orig, "sqlstate", None)
    message = str(orig or exc).lower()
    if state in MISSING_SCHEMA_STATES or any(m in message for m in MISSING_SCHEMA_MESSAGES):
        return Unavailable(f"the catalog database is not migrated to this version of the service: {NOT_MIGRATED}")
    if state in LOCK_STATES or any(m in message for m in LOCK_MESSAGES):
        return Busy("the catalog is busy with other writes; retry after the Retry-After seconds")
    if isinstance(exc, sa_exc.ProgrammingError):
        return None
    return Unavailable("the catalog database is unavailable; calculators that need no catalog still answer")


def install_error_handlers(app: FastAPI) -> None:
    """Render every error as problem+json; nothing escapes as a bare 500 traceback."""

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _clean_validation_errors([located_error(_located_json_error(e, exc.body)) for e in exc.errors()])
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5])
        return problem(422, "Unprocessable request", detail, errors)

    @app.exception_handler(InvalidSpecError)
    async def _invalid_spec(_: Request, exc: InvalidSpecError) -> JSONResponse:
        return problem(422, "Unprocessable request", str(exc), [field_error(exc.field, exc.reason)])

    @app.exception_handler(ServiceError)
    async def _service(_: Request, exc: ServiceError) -> JSONResponse:
        return service_problem(exc)

    async def _database_error(request: Request, exc: Exception) -> JSONResponse:
        unavailable = database_unavailable(exc)
        if unavailable is None:  # a statement the schema cannot run for another reason: a defect
            return await _unexpected(request, exc)
        logger.warning("%s: %s", unavailable.detail, exc)
        return service_problem(unavailable)

    for error in (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError, sa_exc.ProgrammingError):
        app.add_exception_handler(error, _database_error)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and (errors := unparsable_body(exc.__cause__)) is not None:
            return problem(422, "Unprocessable request", f"body: {errors[0]['msg']}", errors)
        title = HTTPStatus(exc.status_code).phrase
        response = problem(exc.status_code, title, str(exc.detail))
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:
            response.headers["Allow"] = ", ".join(allowed_methods(request))
        return response

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)  # with the request id (service.logging_config)
        response = problem(500, "Internal Server Error", "an unexpected error occurred; it has been logged")
        if (request_id := current_request_id()) is not None:  # this handler answers outside the middleware
            response.headers[REQUEST_ID_HEADER] = request_id
        return response
