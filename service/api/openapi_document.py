"""Finishing touches on the OpenAPI document, for the clients generated from it.

Shapes are defined by the schemas (``service/schemas``) and the route declarations; what is done
here only undoes how they are rendered:

* FastAPI passes every schema through its own OpenAPI models, which type numeric bounds as
  floats: ``ge=1`` on an integer becomes ``minimum: 1.0``, and ``le=2**63 - 1`` becomes
  ``9.223372036854776e+18``, which is 2^63, past the int64 range. Integer bounds are written back
  as integers, clamped to int64.
* An integer that may exceed 2^31 (no upper bound, or one above it) gets ``format: int64``, so a
  generator does not pick a 32-bit type for byte and parameter counts.
* pydantic writes ``default: null`` on every optional field; openapi-typescript reads any
  ``default`` as "always present" and types the field as required. An omitted field has no
  default value worth stating, so ``default: null`` is dropped; real defaults stay.
* Every request body gets its schema's examples at the media-type level (Swagger UI and the
  generators read them there).
* What the middleware answers before any route runs is declared too (``service.api.middleware``):
  every operation with a request body may answer 413 (over ``MAX_BODY_BYTES``) and 415 (not
  JSON), as problem+json; every response carries ``X-Request-ID`` (a shared header component).
"""

from __future__ import annotations

from typing import Any

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
DATA_KEYS = frozenset({"example", "examples"})  # example values are data, not schemas


PROBLEM_JSON = "application/problem+json"
PROBLEM_SCHEMA = {"$ref": "#/components/schemas/Problem"}
MIDDLEWARE_ERRORS = {
    "413": "The request body is larger than the service's limit (`MAX_BODY_BYTES`); nothing past the limit is read.",
    "415": "The request body is not JSON: send it with `Content-Type: application/json`.",
}
REQUEST_ID = {
    "description": "The request's id: the `X-Request-ID` the client sent (when it is a sane token of at most 128 "
    "characters), else a new one; the same id is in the service's log line of the request.",
    "schema": {"type": "string", "maxLength": 128},
}


def finish_document(document: dict[str, Any]) -> None:
    """Apply the finishing touches to ``document`` in place."""
    _walk(document)
    _add_body_examples(document)
    _add_middleware_answers(document)


def _add_middleware_answers(document: dict[str, Any]) -> None:
    document.setdefault("components", {}).setdefault("headers", {})["X-Request-ID"] = REQUEST_ID
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            if "requestBody" in operation:
                for code, description in MIDDLEWARE_ERRORS.items():
                    responses.setdefault(code, {"description": description,
                                                "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}}})  # fmt: skip
            for response in responses.values():
                response.setdefault("headers", {})["X-Request-ID"] = {"$ref": "#/components/headers/X-Request-ID"}
            operation["responses"] = dict(sorted(responses.items()))


def _walk(node: Any) -> None:
    if isinstance(node, dict):
        if "default" in node and node["default"] is None:
            del node["default"]
        if node.get("type") == "integer":
            _integer(node)
        for key, value in node.items():
            if key not in DATA_KEYS:
                _walk(value)
    elif isinstance(node, list):
        for item in node:
            _walk(item)


def _integer(schema: dict[str, Any]) -> None:
    for key in BOUNDS:
        value = schema.get(key)
        if isinstance(value, float) and value.is_integer():
            schema[key] = min(max(int(value), INT64_MIN), INT64_MAX)
    low = schema.get("minimum", schema.get("exclusiveMinimum", INT64_MIN))
    high = schema.get("maximum", schema.get("exclusiveMaximum", INT64_MAX))
    if "format" not in schema and (low < INT32_MIN or high > INT32_MAX):
        schema["format"] = "int64"


def _add_body_examples(document: dict[str, Any]) -> None:
    schemas = document.get("components", {}).get("schemas", {})
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            content = operation.get("requestBody", {}).get("content", {}) if isinstance(operation, dict) else {}
            for media in content.values():
                ref = media.get("schema", {}).get("$ref", "")
                examples = schemas.get(ref.rpartition("/")[2], {}).get("examples")
                if examples and "example" not in media and "examples" not in media:
                    media["examples"] = {f"example_{i}": {"value": value} for i, value in enumerate(examples, 1)}
