"""``POST /v1/models/from-hf-config``: a Hugging Face config.json in, a ModelSpec out (no network)."""

from __future__ import annotations

from fastapi import Response

from service.api.deps import CatalogDep
from service.api.responses import json_response, problem_responses
from service.api.routing import api_router
from service.core.hf_config import SUPPORTED_TYPES_TEXT
from service.schemas import hf_config as s
from service.services import hf_config

router = api_router(prefix="/v1/models", tags=["models"], responses=problem_responses(422))


DESCRIPTION = (
    "Map a Hugging Face `config.json` to a ModelSpec, with its exact parameter count and the defaults it assumed "
    f'({SUPPORTED_TYPES_TEXT}). Nothing is downloaded. The body is `{{"hf_config": {{...}}}}`, or the bare '
    'config.json itself (`curl -d @config.json`). The same config is accepted as `"model": {"hf_config": {...}}` by '
    "every calculator."
)


@router.post("/from-hf-config", response_model=s.HfConfigResponse, summary="Model from a config.json", description=DESCRIPTION)
def from_hf_config(req: s.HfConfigRequest, catalog: CatalogDep) -> Response:
    return json_response(hf_config.from_hf_config(req, catalog))
