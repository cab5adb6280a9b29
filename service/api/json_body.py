"""Request bodies parsed by pydantic's own JSON parser, for the calculators' hot path.

FastAPI's generic body handling (``json.loads``, then validation of a Python dict through the
dependency machinery) costs about 60 µs a request here, more than the formulas themselves; the
calculators therefore read the raw body and validate it in one step with
``Model.model_validate_json`` — the pattern FastAPI documents under "Custom OpenAPI path
operation schema" (their routes are :class:`service.api.routing.HandlerRoute`). :func:`json_body`
declares the body in the OpenAPI document exactly as FastAPI would, and :func:`add_body_schemas`
adds the models to ``components.schemas``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect

from service.api.openapi_document import finish_document

M = TypeVar("M", bound=BaseModel)

# models the document references by name but FastAPI does not see: declared bodies and the
# problem document, filled as the routers are defined
BODY_MODELS: dict[str, type[BaseModel]] = {}


def component(model: type[BaseModel]) -> str:
    """Put ``model`` into ``components.schemas`` (see :func:`add_body_schemas`); its ``$ref``."""
    BODY_MODELS[model.__name__] = model
    return f"#/components/schemas/{model.__name__}"


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` declaring ``model`` as the required JSON request body."""
    schema = {"$ref": component(model)}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def add_body_schemas(openapi: dict[str, Any]) -> None:
    """Put every declared model (and the models it nests) into ``components.schemas``, then give
    the document its finishing touches for generated clients (:func:`finish_document`)."""
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    for name, model in BODY_MODELS.items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
    openapi["components"]["schemas"] = dict(sorted(schemas.items()))
    finish_document(openapi)


async def read_body(request: Request) -> bytes:
    """The whole request body, read from the ASGI channel in one loop (Starlette's
    ``Request.body()`` goes through an async generator, which costs a few µs a request)."""
    chunks = []
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def parse_body(request: Request, model: type[M]) -> M:
    """The validated body, or a 422 whose locations start with ``body`` as FastAPI's do."""
    try:
        return model.model_validate_json(await read_body(request))
    except ValidationError as exc:
        errors = [e | {"loc": ("body", *e["loc"])} for e in exc.errors()]  # ctx kept: see located_error
        raise RequestValidationError(errors) from None
