"""One parallel layout with its memory and step-time breakdown: what the planner returns and
what cost answers cite when the planner priced them."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from service.core.compute import Recompute
from service.core.limits import MAX_INT64
from service.schemas.base import Schema
from service.schemas.energy import Co2eTonnes, EnergyKwh

Bytes = Annotated[int, Field(ge=0, le=MAX_INT64)]


class PlanMemory(Schema):
    weights_bytes: Bytes
    gradients_bytes: Bytes
    optimizer_bytes: Bytes
    activations_bytes: Bytes


class StepTimeParts(Schema):
    """Seconds of one optimizer step by part; they sum to ``step_time_seconds``. Communication
    parts are what is exposed (not hidden under compute)."""

    compute_seconds: float = Field(description="Forward and backward: matmuls, attention, element-wise kernels, output layer.")
    recompute_seconds: float = Field(description="The forward work recomputation repeats.")
    tp_comm_seconds: float = Field(description="Tensor-parallel all-reduces (or reduce-scatter + all-gather).")
    cp_comm_seconds: float = Field(description="Context-parallel K/V ring exchange beyond the attention it hides under.")
    ep_comm_seconds: float = Field(description="Expert-parallel all-to-alls.")
    pp_comm_seconds: float = Field(description="Pipeline point-to-point sends.")
    bubble_seconds: float = Field(description="Pipeline fill and drain, (p-1)/(v*m) of the ideal time.")
    dp_comm_seconds: float = Field(description="Gradient reduction and ZeRO gathers beyond the compute they overlap.")
    optimizer_seconds: float = Field(description="The optimizer update (on the host with offload).")


class PlanItem(Schema):
    gpu: str
    n_gpus: int
    tp: int
    pp: int
    dp: int
    cp: int
    ep: int
    zero_stage: int
    micro_batch_size: int
    gradient_accumulation_steps: int = Field(description="Micro-batches per optimizer step on each pipeline.")
    recompute: Recompute
    sequence_parallel: bool
    virtual_stages: int
    offload_optimizer: bool
    per_gpu_total_bytes: Bytes = Field(description="Busiest pipeline stage, as /v1/memory/training answers.")
    per_gpu: PlanMemory
    cpu_offload_bytes: Bytes
    step_time_seconds: float
    step_time: StepTimeParts
    tokens_per_second: float = Field(description="Whole cluster, steady state.")
    tflops_per_gpu: float = Field(description="Achieved model FLOP/s per GPU, 10^12.")
    mfu: float
    hfu: float
    training_hours: float | None = Field(description="With tokens: wall clock, after the effective-time fraction.")
    gpu_hours: float | None
    energy_kwh: EnergyKwh = None
    co2e_tonnes: Co2eTonnes = None
    cost_usd: float | None


