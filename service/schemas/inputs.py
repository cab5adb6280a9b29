"""Which inputs a request's answer reads, in one place for every endpoint that times a run either by
the planner (the step-time model) or at a stated MFU: an input the answer would not read is a 422
naming it and why, never silently dropped. Each endpoint says when its planner runs; these
functions say what that leaves unread."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from service.schemas.base import Schema, sent
from service.schemas.layout import StepTimeOptions

# The step-time model's options: read by the planner only.
STEP_TIME_INPUTS: tuple[str, ...] = tuple(StepTimeOptions.model_fields)
# Step-time options that time a mixture of experts' expert layers only (their all-to-alls, routing and
# split): a dense model has none of that work (service.core.steptime_moe).
MOE_OPTIONS: tuple[str, ...] = (
    "ep_comm_overlap", "moe_max_nodes_per_token", "moe_load_imbalance", "moe_dispatcher", "expert_tensor_parallel",
)  # fmt: skip
# Step-time options that time a LoRA/QLoRA fine-tune's adapted layers only: CUDA graphs lift their
# eager host floor (service.core.steptime_finetune); pre-training's layers, MoE ones included, have
# no such floor to lift.
ADAPTER_OPTIONS: dict[str, str] = {
    "cuda_graphs": "it lifts the host floor of a LoRA/QLoRA fine-tune's adapted layers only, and the run trains no "
    "adapters (give finetune with method lora or qlora)",
}
# Inputs only a stated MFU reads, and why: the planner times the run by its step-time model instead.
MFU_INPUTS: dict[str, str] = {
    "dtype": "the peak a stated MFU applies to; the planner times the run at `precision` (give precision, or mfu to time "
    "the run at an MFU)",
    "scaling_efficiency": "it scales a stated MFU's throughput; the planner's step-time model times the communication of "
    "scale itself (give mfu to time the run at an MFU)",
}
AT_AN_MFU = {"precision": "at a stated MFU, dtype picks the peak"}
NO_EXPERTS = "the model has no experts"
RATE_FIELDS = ("mfu", "achieved_tflops_per_gpu")
AT_A_RATE = ", not at a stated mfu or achieved_tflops_per_gpu"


def given(req: Schema, names: Iterable[str]) -> list[str]:
    """Those of ``names`` the request gives: not null, and a defaulted one only when sent at another value
    (:func:`service.schemas.base.sent`: a generated client sends every default, and means what leaving it out does)."""
    return [f for f in names if sent(req, f) and getattr(req, f, None) is not None]


def stated_rate(req: Schema) -> bool:
    """Whether the request states its own throughput (mfu or achieved_tflops_per_gpu)."""
    return any(getattr(req, f, None) is not None for f in RATE_FIELDS)


def planner_only(
    req: Schema, names: Iterable[str], runs: str, rate: bool, notes: Mapping[str, str] = AT_AN_MFU
) -> dict[str, str]:
    """Each of ``names`` the request gives, with why it is unread where the planner does not run:
    the planner reads it, and runs with ``runs`` (and, ``rate``, not at the request's stated
    throughput); ``notes`` adds what stands in for an input at a stated MFU (``dtype`` for
    ``precision``)."""
    why = f"used by the planner, which runs with {runs}" + (AT_A_RATE if rate else "")
    return {f: why + (f"; {notes[f]}" if f in notes else "") for f in given(req, names)}


def mfu_only(req: Schema, inputs: Mapping[str, str]) -> dict[str, str]:
    """Each of ``inputs`` (name: what it does) the request gives, unread where the planner runs."""
    return {f: f"used at a stated MFU only: {inputs[f]}" for f in given(req, inputs)}


def inapplicable_options(req: Schema, *, moe: bool, adapters: bool) -> dict[str, str]:
    """The step-time options the request gives that no step of its run would read: the expert
    layers' (:data:`MOE_OPTIONS`) on a model without experts (``moe`` false), the adapted layers'
    (:data:`ADAPTER_OPTIONS`) on a run without LoRA/QLoRA adapters (``adapters`` false)."""
    out = {} if moe else dict.fromkeys(given(req, MOE_OPTIONS), NO_EXPERTS)
    return out | ({} if adapters else {f: ADAPTER_OPTIONS[f] for f in given(req, ADAPTER_OPTIONS)})
