"""``config.json`` in, ``ModelSpec`` out: map, validate and count."""

from __future__ import annotations

from service.core.dtypes import Dtype
from service.core.hf_config import architecture_from_mapping, map_hf_config
from service.core.memory import kv_cache_bytes
from service.core.params import count_params
from service.schemas.hf_config import HfConfigRequest, HfConfigResponse
from service.schemas.model import ModelSpec
from service.services.catalog_reader import CatalogReader


def from_hf_config(req: HfConfigRequest, catalog: CatalogReader) -> HfConfigResponse:
    """The mapped architecture (validated as any ``model`` is), its counts and what was assumed."""
    mapping = map_hf_config(req.hf_config, prefix="hf_config")
    arch = architecture_from_mapping(mapping, prefix="hf_config")
    fields = {name: (value.value if hasattr(value, "value") else value) for name, value in mapping.fields}
    b = count_params(arch)
    return HfConfigResponse(
        model_type=mapping.model_type,
        model=ModelSpec(**fields).model_dump(exclude_none=True),
        total_params=b.total,
        active_params=b.active,
        context_tokens=mapping.context_tokens,
        kv_cache_bytes_per_token=kv_cache_bytes(arch, seq_len=1, batch_size=1, kv_dtype=Dtype.BF16),
        formulas=[
            f"config.json read as transformers' {mapping.model_type} implementation builds its modules; "
            "P counted module by module (exact against transformers on the meta device)"
        ],
        assumptions=dict(mapping.assumptions),
    )
