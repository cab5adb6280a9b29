"""``POST /v1/models/from-hf-config``: a Hugging Face config.json in, a ModelSpec out (no network)."""

from __future__ import annotations

from fastapi import Request, Response

from service.api.json_body import json_body
from service.api.responses import answer, problem_responses
from service.api.routing import handler_router
from service.core.hf_config import SUPPORTED_TYPES_TEXT
from service.schemas import hf_config as s
from service.services import hf_config

router = handler_router(prefix="/v1/models", tags=["models"], responses=problem_responses(422))


DESCRIPTION = (
    "Map a Hugging Face `config.json` to a ModelSpec, with its exact parameter count and the defaults it assumed "
    f'({SUPPORTED_TYPES_TEXT}). Nothing is downloaded. The body is `{{"hf_config": {{...}}}}`, or the bare '
    'config.json itself (`curl -d @config.json`). The same config is accepted as `"model": {"hf_config": {...}}` by '
    "every calculator."
)


@router.post(
    "/from-hf-config",
    response_model=s.HfConfigResponse,
    summary="Model from a config.json",
    description=DESCRIPTION,
    openapi_extra=json_body(s.HfConfigRequest),
)
async def from_hf_config(request: Request) -> Response:
    return await answer(hf_config.from_hf_config, request, s.HfConfigRequest)
