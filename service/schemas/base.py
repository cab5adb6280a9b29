"""The project base model: unknown fields are rejected, NaN and infinities too."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class Schema(BaseModel):
    """Base of every request and response model.

    ``extra="forbid"`` turns a typo in a client's payload into a 422 naming the field;
    ``allow_inf_nan=False`` keeps NaN and Infinity out of requests and responses.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, use_enum_values=False)


Assumptions = dict[str, str | float | int | bool | None]
"""Defaults an estimate filled in (``mfu``, ``bytes_per_param``, ``seq_len``...)."""

Count = Annotated[float, Field(gt=0)]
