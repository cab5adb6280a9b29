"""One declaration of the architecture's fields (``service.core.architecture.Architecture`` with
``service.core.fields.declare``) and what follows from it: the spec builder's arguments, the request
and preset schemas, the preset columns, the config keys that name a rejected field."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from service.core.architecture import ARCHITECTURE_FIELDS, Architecture
from service.core.fields import REQUIRED, Stored, declare, declared_fields
from service.core.hf_config import HF_KEYS
from service.core.spec import make_architecture
from service.db.models import ModelPreset
from service.schemas.architecture import patch_fields, preset_fields, request_fields
from service.schemas.catalog import ModelPresetIn, ModelPresetPatch
from service.schemas.model import ModelSpec
from service.services.catalog_reader import PRESET_FIELD_NAMES

NAMES = [f.name for f in ARCHITECTURE_FIELDS]
STORED = [f.name for f in ARCHITECTURE_FIELDS if f.stored is not Stored.NO]
SMALL = {"n_layers": 2, "d_model": 64, "n_heads": 4, "d_ff": 256, "vocab_size": 1000}


def test_every_field_of_the_dataclass_is_declared_but_assumptions() -> None:
    # the compared fields are the shape; assumptions and the kept hash are not compared
    assert [f.name for f in dataclasses.fields(Architecture) if f.compare] == NAMES
    assert [f.name for f in dataclasses.fields(Architecture) if not f.compare] == ["assumptions", "_hash"]
    assert [f.name for f in ARCHITECTURE_FIELDS if f.required] == list(SMALL)
    assert {f.name for f in ARCHITECTURE_FIELDS if f.derived} == {"n_kv_heads", "d_head"}


def test_the_request_schema_lists_every_field_in_order() -> None:
    assert list(ModelSpec.model_fields) == ["preset", "n_params", *NAMES, "hf_config"]
    assert ModelSpec.model_fields["d_ff"].description == "MLP width (per expert)."


def test_the_preset_schemas_and_columns_list_the_stored_fields() -> None:
    assert [n for n in ModelPresetIn.model_fields if n in NAMES] == STORED
    assert [n for n in ModelPresetPatch.model_fields if n in NAMES] == STORED
    assert list(PRESET_FIELD_NAMES) == STORED
    columns = ModelPreset.__table__.columns
    assert [c.name for c in columns if c.name in NAMES] == STORED
    for f in ARCHITECTURE_FIELDS:
        if f.stored is not Stored.NO:
            assert columns[f.name].nullable == (f.optional or f.stored is Stored.NULLABLE), f.name


def test_the_config_keys_come_from_the_declaration() -> None:
    assert HF_KEYS == {
        "n_layers": "num_hidden_layers", "d_model": "hidden_size", "n_heads": "num_attention_heads",
        "n_kv_heads": "num_key_value_heads", "d_head": "head_dim", "d_ff": "intermediate_size",
        "max_seq_len": "max_position_embeddings", "n_experts": "num_experts", "experts_per_token": "num_experts_per_tok",
        "first_k_dense": "first_k_dense_replace", "d_ff_dense": "intermediate_size",
        "d_ff_shared": "shared_expert_intermediate_size", "ssm_state_size": "state_size", "ssm_conv_kernel": "conv_kernel",
        "ssm_expand": "expand", "ssm_n_heads": "num_heads", "ssm_n_groups": "n_groups", "ssm_dt_rank": "time_step_rank",
            "ssm_inner_size": "mamba_d_ssm", "linear_n_key_heads": "linear_num_key_heads",
        "linear_n_value_heads": "linear_num_value_heads", "linear_conv_kernel": "linear_conv_kernel_dim",
        "short_conv_kernel": "conv_L_cache", "short_conv_bias": "conv_bias", "shared_attention_blocks": "num_mem_blocks",
        "shared_adapter_rank": "adapter_rank", "shared_attention_adapters": "use_shared_attention_adapter",
    }  # fmt: skip


def test_make_architecture_takes_the_declared_fields_by_name() -> None:
    arch = make_architecture(**SMALL, qk_norm=None, n_shared_experts=None, prefix="")
    assert (arch.n_kv_heads, arch.d_head, arch.qk_norm, arch.n_shared_experts) == (4, 16, False, 0)
    with pytest.raises(TypeError, match="unexpected keyword arguments: colour"):
        make_architecture(**SMALL, colour="red")
    with pytest.raises(TypeError, match="missing required keyword arguments: vocab_size"):
        make_architecture(**{k: v for k, v in SMALL.items() if k != "vocab_size"})


@dataclass(frozen=True, kw_only=True)
class _Toy:
    width: int = field(metadata=declare("Width.", ge=1, le=8, stored=Stored.ALWAYS))
    gate_bias: bool = field(default=False, metadata=declare("A bias on the gate.", stored=Stored.NULLABLE))
    extra: bool = field(default=False, metadata=declare("Requests only."))
    note: str = ""


def test_a_new_declared_field_reaches_every_derived_schema() -> None:
    toy = declared_fields(_Toy)
    assert [(f.name, f.kind, f.default) for f in toy] == [
        ("width", int, REQUIRED),
        ("gate_bias", bool, False),
        ("extra", bool, False),
    ]
    assert list(request_fields(toy)) == ["width", "gate_bias", "extra"]
    assert request_fields(toy)["extra"][1].description == "Requests only."
    assert list(preset_fields(toy)) == list(patch_fields(toy)) == ["width", "gate_bias"]
    assert preset_fields(toy)["width"][1].is_required()
    assert preset_fields(toy)["gate_bias"][1].default is None
