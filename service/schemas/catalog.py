"""Catalog resources: GPUs, providers, prices and model presets (create, replace, patch, read)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Generic, TypeVar

from pydantic import Field, create_model, field_validator

from service.core.architecture import Ffn, Norm, Position
from service.core.limits import MAX_INT64
from service.schemas.architecture import patch_fields, preset_fields
from service.schemas.base import Pricing, Schema

Slug = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$", description="Lower-case slug, e.g. `h100-sxm`.")
]
Text = Annotated[str, Field(max_length=4000)]
PositiveBytes = Annotated[int, Field(gt=0, le=MAX_INT64)]
# at least 1 GFLOP/s: every accelerator clears it, and a peak near zero would turn times into overflows
Tflops = Annotated[float, Field(ge=1e-3, le=1e7)]
GpusPerNode = Annotated[
    int,
    Field(ge=1, le=1024, description="GPUs sharing the fast intra-node link in a typical server (HGX: 8; GB200 NVL72: 72)."),
]
IntraNodeBandwidth = Annotated[
    int,
    Field(
        gt=0, le=MAX_INT64,
        description="Bytes/s per GPU, ONE direction, nominal, to its node peers (NVLink 4: 450e9). Ring collectives use this; "
        "`interconnect_bytes_per_s` is the total of both directions.",
    ),
]  # fmt: skip
InterNodeBandwidth = Annotated[
    int,
    Field(
        gt=0, le=MAX_INT64,
        description="Bytes/s per GPU, ONE direction, nominal, of the scale-out network in common clusters "
        "(one 400 Gb/s NIC per GPU: 50e9).",
    ),
]  # fmt: skip
IntraNodeLink = Annotated[
    str, Field(min_length=1, max_length=64, description='The intra-node link, e.g. "NVLink 4", "PCIe Gen4 x16", "ICI".')
]
MatmulEfficiency = Annotated[
    float,
    Field(
        ge=1e-3, le=1,  # as a request's efficiency overrides: a fraction near zero overflows the times
        description="Fraction of the dense bf16 peak that large bf16 GEMMs reach (maximum achievable matmul FLOP/s "
        "/ `peak_tflops.bf16`); null where no measurement is published.",
    ),
]  # fmt: skip
DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8")


class StorableText(Schema):
    """Base of the write bodies: no text may hold a NUL character (U+0000), which Postgres text
    cannot store, so that it is a 422 naming the field on every backend. Only the bodies check it,
    not the answers, so rows an older version stored are still read."""

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain a NUL character (U+0000)")
        return value


T = TypeVar("T")


class Page(Schema, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class ListQuery(Schema):
    """Pagination; each resource adds its filters. A filter not given is None; its type has no
    ``| None`` because a query parameter is omitted, never null, so the contract shows it as an
    optional, non-nullable parameter."""

    limit: int = Field(50, ge=1, le=500, description="Page size (at most 500).")
    offset: int = Field(0, ge=0, le=10_000_000)

    def filters(self) -> dict[str, object]:
        return self.model_dump(exclude={"limit", "offset", "latest"})


class PeakTflops(Schema):
    """Dense peak TFLOP/s (TOPS for int8) by dtype, no sparsity; null where unsupported."""

    fp32: Tflops | None = None
    tf32: Tflops | None = None
    bf16: Tflops | None = None
    fp16: Tflops | None = None
    fp8: Tflops | None = None
    int8: Tflops | None = None


class PeakTflopsOut(PeakTflops):
    """Dense peak TFLOP/s (TOPS for int8) by dtype, no sparsity; every dtype is present, null where
    unsupported. (A model of its own: the request's ``PeakTflops`` lets a dtype be omitted.)"""


# --- GPU ----------------------------------------------------------------------------------------


class GpuFields(Schema):
    vendor: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    memory_bytes: PositiveBytes
    memory_bandwidth_bytes_per_s: PositiveBytes
    peak_tflops: PeakTflops
    interconnect_bytes_per_s: PositiveBytes | None = Field(
        None,
        description="Bytes/s per GPU, nominal, both directions added, of its GPU-to-GPU links (Gaudi: all on-chip RoCE ports).",
    )
    tdp_watts: int | None = Field(None, gt=0, le=100_000)
    form_factor: str | None = Field(None, max_length=64)
    default_mfu: float | None = Field(None, ge=1e-3, le=1, description="Typical training MFU on this device.")
    gpus_per_node: GpusPerNode | None = None
    intra_node_bandwidth_bytes_per_s: IntraNodeBandwidth | None = None
    inter_node_bandwidth_bytes_per_s: InterNodeBandwidth | None = None
    intra_node_link: IntraNodeLink | None = None
    matmul_efficiency: MatmulEfficiency | None = None
    source: Text = Field(min_length=1)
    notes: Text = ""


class GpuIn(GpuFields, StorableText):
    """A GPU to create (with ``id``) or replace (``PUT``, id from the path)."""

    model_config = Schema.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "id": "h100-sxm", "vendor": "NVIDIA", "name": "NVIDIA H100 SXM5 80GB",
                    "memory_bytes": 85899345920, "memory_bandwidth_bytes_per_s": 3350000000000,
                    "peak_tflops": {"fp32": 67, "tf32": 494.5, "bf16": 989.5, "fp16": 989.5, "fp8": 1979, "int8": 1979},
                    "interconnect_bytes_per_s": 900000000000, "tdp_watts": 700, "form_factor": "SXM5",
                    "default_mfu": 0.4, "gpus_per_node": 8, "intra_node_bandwidth_bytes_per_s": 450000000000,
                    "inter_node_bandwidth_bytes_per_s": 50000000000, "intra_node_link": "NVLink 4",
                    "matmul_efficiency": 0.8,
                    "source": "NVIDIA H100 datasheet; DGX H100 User Guide; Bekman, ML Engineering Open Book (MAMF)",
                }
            ]
        }
    }  # fmt: skip

    id: Slug | None = Field(None, description="Required on create; on PUT it must match the path if given.")


class GpuPatch(StorableText):
    """Any subset of a GPU's fields. A field that may be null on the GPU can be cleared with null;
    the others can be changed, not cleared (``notes``: send ``""``). ``peak_tflops`` changes the
    dtypes it names (null clears one) and keeps the others."""

    model_config = Schema.model_config | {
        "json_schema_extra": {"examples": [{"default_mfu": 0.42, "notes": "MFU from our own runs"}, {"matmul_efficiency": None}]}
    }

    vendor: str = Field(None, min_length=1, max_length=64)
    name: str = Field(None, min_length=1, max_length=200)
    memory_bytes: PositiveBytes = None
    memory_bandwidth_bytes_per_s: PositiveBytes = None
    peak_tflops: PeakTflops = None
    interconnect_bytes_per_s: PositiveBytes | None = None
    tdp_watts: int | None = Field(None, gt=0, le=100_000)
    form_factor: str | None = Field(None, max_length=64)
    default_mfu: float | None = Field(None, ge=1e-3, le=1)
    gpus_per_node: GpusPerNode | None = None
    intra_node_bandwidth_bytes_per_s: IntraNodeBandwidth | None = None
    inter_node_bandwidth_bytes_per_s: InterNodeBandwidth | None = None
    intra_node_link: IntraNodeLink | None = None
    matmul_efficiency: MatmulEfficiency | None = None
    source: Text = Field(None, min_length=1)
    notes: Text = None


class GpuOut(GpuFields):
    peak_tflops: PeakTflopsOut
    id: str
    version: int


class GpuFilters(ListQuery):
    vendor: str = None


# --- provider -----------------------------------------------------------------------------------


class ProviderFields(Schema):
    name: str = Field(min_length=1, max_length=200)
    url: str | None = Field(None, max_length=500)
    notes: Text = ""


class ProviderIn(ProviderFields, StorableText):
    model_config = Schema.model_config | {
        "json_schema_extra": {"examples": [{"id": "lambda", "name": "Lambda", "url": "https://lambda.ai/pricing"}]}
    }

    id: Slug | None = None


class ProviderPatch(StorableText):
    """Any subset of a provider's fields; ``url`` can be cleared with null."""

    model_config = Schema.model_config | {"json_schema_extra": {"examples": [{"url": "https://lambda.ai/service/gpu-cloud"}]}}

    name: str = Field(None, min_length=1, max_length=200)
    url: str | None = Field(None, max_length=500)
    notes: Text = None


class ProviderOut(ProviderFields):
    id: str
    version: int


class ProviderFilters(ListQuery):
    name: str = None


# --- price --------------------------------------------------------------------------------------


class PriceFields(Schema):
    """One observed price per GPU-hour. Prices are history: a new price is a new row."""

    gpu_id: Slug
    provider_id: Slug
    pricing: Pricing = Pricing.ON_DEMAND
    usd_per_gpu_hour: float = Field(ge=0, le=1e6)
    region: str | None = Field(None, max_length=64)
    as_of: dt.date
    source: Text = Field(min_length=1)
    notes: Text = ""


class PriceIn(PriceFields, StorableText):
    """A price to record; ``as_of`` may not lie in the future."""

    model_config = Schema.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "gpu_id": "h100-sxm", "provider_id": "lambda", "pricing": "on_demand",
                    "usd_per_gpu_hour": 2.99, "region": "us-east-1", "as_of": "2026-11-01",
                    "source": "https://lambda.ai/pricing",
                }
            ]
        }
    }  # fmt: skip

    @field_validator("as_of")
    @classmethod
    def _not_in_future(cls, value: dt.date) -> dt.date:
        if value > dt.date.today() + dt.timedelta(days=1):
            raise ValueError("as_of is in the future")
        if value.year < 2000:
            raise ValueError("as_of is before 2000")
        return value


class PriceOut(PriceFields):
    id: int


MAX_PRICE_BATCH = 1000


class PriceBatchIn(Schema):
    """Prices to record together (a price feed's update): all are stored, or none."""

    prices: list[PriceIn] = Field(
        min_length=1, max_length=MAX_PRICE_BATCH,
        description=f"1 to {MAX_PRICE_BATCH} prices; a row naming an unknown GPU or provider refuses the whole batch.",
    )  # fmt: skip

    model_config = Schema.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "prices": [
                        {
                            "gpu_id": "h100-sxm", "provider_id": "lambda", "pricing": "on_demand",
                            "usd_per_gpu_hour": 2.99, "as_of": "2026-11-01", "source": "https://lambda.ai/pricing",
                        },
                        {
                            "gpu_id": "a100-80gb-sxm", "provider_id": "lambda", "pricing": "on_demand",
                            "usd_per_gpu_hour": 1.79, "as_of": "2026-11-01", "source": "https://lambda.ai/pricing",
                        },
                    ]
                }
            ]
        }
    }  # fmt: skip


class PriceBatchOut(Schema):
    """The stored prices, in the order sent, with their ids."""

    items: list[PriceOut]
    count: int = Field(description="How many prices were stored (all that were sent).")


class PriceFilters(ListQuery):
    gpu_id: str = None
    provider_id: str = None
    pricing: Pricing = None
    region: str = None
    latest: bool = Field(False, description="Only the newest price per GPU, provider and pricing kind.")


# --- model preset -------------------------------------------------------------------------------


# the fields preset rows store (n_layers ... qk_norm), from their declaration
# (service.core.architecture.Architecture): required sizes, defaults, bounds and descriptions
ModelArchitecture = create_model("ModelArchitecture", __base__=Schema, **preset_fields())


class ModelPresetFields(ModelArchitecture):
    name: str = Field(min_length=1, max_length=200)
    family: str | None = Field(None, max_length=64)
    reported_params: int | None = Field(None, ge=1, le=MAX_INT64, description="The source's headline count.")
    source: Text = Field(min_length=1)
    notes: Text = ""


class ModelPresetIn(ModelPresetFields, StorableText):
    model_config = Schema.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "id": "llama-2-7b", "name": "Llama 2 7B", "family": "llama-2", "n_layers": 32,
                    "d_model": 4096, "n_heads": 32, "n_kv_heads": 32, "d_head": 128, "d_ff": 11008,
                    "vocab_size": 32000, "ffn": "swiglu", "norm": "rmsnorm", "position": "rotary",
                    "max_seq_len": 4096, "source": "Touvron et al. 2023",
                }
            ]
        }
    }  # fmt: skip

    id: Slug | None = None

    @field_validator("id")
    @classmethod
    def _not_an_action(cls, value: str | None) -> str | None:
        if value == "from-hf-config":
            raise ValueError("'from-hf-config' is the name of an action (POST /v1/models/from-hf-config), not a preset id")
        return value


class _PresetPatchHead(StorableText):
    name: str = Field(None, min_length=1, max_length=200)
    family: str | None = Field(None, max_length=64)
    reported_params: int | None = Field(None, ge=1, le=MAX_INT64)
    source: Text = Field(None, min_length=1)
    notes: Text = None


# then every stored architecture field, each optional (null only where the stored value may be null)
_PresetPatchFields = create_model("_PresetPatchFields", __base__=_PresetPatchHead, **patch_fields())


class ModelPresetPatch(_PresetPatchFields):
    """Any subset of a preset's fields. ``family``, ``reported_params``, ``n_kv_heads``, ``d_head``
    and ``position_embedding_rows`` can be cleared with null (the last three then follow the
    architecture again); the others can be changed, not cleared."""

    model_config = Schema.model_config | {"json_schema_extra": {"examples": [{"max_seq_len": 8192}, {"n_kv_heads": 8}]}}


class ModelPresetOut(ModelPresetFields):
    id: str
    n_kv_heads: int
    d_head: int
    version: int


class ModelPresetFilters(ListQuery):
    family: str = None
    q: str = Field(
        None, min_length=1, max_length=100, description="Words that must all appear in the id, name or family (any case)."
    )
    ffn: Ffn = None
    norm: Norm = None
    position: Position = None
