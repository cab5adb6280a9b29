"""The project base model: unknown fields are rejected, NaN and infinities too. Also the small
vocabularies (enums) several schemas share, so each is one named schema in the contract."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class Schema(BaseModel):
    """Base of every request and response model.

    ``extra="forbid"`` turns a typo in a client's payload into a 422 naming the field;
    ``allow_inf_nan=False`` keeps NaN and Infinity out of requests and responses.
    ``json_schema_serialization_defaults_required``: a response always carries every field (null
    where there is no value), so the response schemas mark them all required; request schemas keep
    the defaults optional.
    """

    model_config = ConfigDict(
        extra="forbid", allow_inf_nan=False, use_enum_values=False, json_schema_serialization_defaults_required=True
    )


def sent(model: BaseModel, name: str) -> bool:
    """Whether the request gives ``name`` at a value of its own: sent, and not its schema default (a
    generated client sends every default explicitly, and such a body means what one without them does)."""
    field = type(model).model_fields.get(name)
    if field is None or name not in model.model_fields_set:
        return False
    return getattr(model, name) != field.get_default(call_default_factory=True)


class Pricing(StrEnum):
    """How a GPU-hour is bought: on demand, spot (preemptible) or reserved (committed)."""

    ON_DEMAND = "on_demand"
    SPOT = "spot"
    RESERVED = "reserved"


class PeakDtype(StrEnum):
    """A dtype of a GPU's dense peak table (``peak_tflops``; TOPS for int8)."""

    FP32 = "fp32"
    TF32 = "tf32"
    BF16 = "bf16"
    FP16 = "fp16"
    FP8 = "fp8"
    INT8 = "int8"


Assumptions = dict[str, str | float | int | bool | None]
"""Defaults an estimate filled in (``mfu``, ``bytes_per_param``, ``seq_len``...)."""

Count = Annotated[float, Field(gt=0)]
