"""Time and dollars of training and serving.

``C = tau * T`` (Transformers Math 101): the run's FLOPs divided by the achieved throughput,
``tau = n_gpus * peak * MFU``. MFU counts model FLOPs only (Chowdhery et al. 2022, Appendix B).
A published MFU is measured at its run's scale and already holds the losses of communication and
bubbles: it is never multiplied by a second efficiency (``scaling_efficiency`` is 1 unless a
caller gives one). Where the layout is known the throughput comes from the step-time model
instead (:func:`planned_training_cost`). Serving follows the roofline of decoding: each generated token reads every
weight and the KV cache once, so small batches are bound by memory bandwidth, large ones by
compute (Pope et al. 2022, "Efficiently Scaling Transformer Inference", §2-3).
"""

from __future__ import annotations

from dataclasses import dataclass

from service.core.errors import InvalidSpecError
from service.core.limits import check_flops

SECONDS_PER_HOUR = 3600.0
# Long runs lose time to failures, restarts from checkpoints and evaluation: Llama 3 reports
# "higher than 90 % effective training time" over a 54-day period with 466 interruptions on
# 16K H100s (Dubey et al. 2024, §3.3.4); MegaScale reports the same figure (Jiang et al. 2024,
# §1). A step-time model predicts the steady state; wall clock divides by this fraction.
EFFECTIVE_TRAINING_TIME_FRACTION = 0.90


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainingCost:
    total_flops: float
    achieved_flops_per_s_per_gpu: float  # model FLOPs over GPU-seconds
    gpu_hours: float
    wall_clock_hours: float
    cost_usd: float | None
    n_gpus: int
    mfu: float | None
    scaling_efficiency: float


def achieved_flops_per_s(
    *, peak_tflops: float | None, mfu: float | None, achieved_tflops: float | None
) -> float:
    """FLOP/s one GPU delivers: ``peak * MFU``, or an explicit achieved figure."""
    if achieved_tflops is not None:
        return achieved_tflops * 1e12
    if peak_tflops is None or mfu is None:
        raise InvalidSpecError("mfu", "need the GPU's peak TFLOP/s and an MFU, or achieved_tflops_per_gpu")
    if not 0 < mfu <= 1:
        raise InvalidSpecError("mfu", f"must be in (0, 1], got {mfu}")
    return peak_tflops * 1e12 * mfu


def training_cost(
    total_flops: float,
    *,
    flops_per_s_per_gpu: float,
    n_gpus: int,
    scaling_efficiency: float,
    usd_per_gpu_hour: float | None,
    mfu: float | None = None,
) -> TrainingCost:
    """GPU-hours ``C / (flops_per_s_per_gpu * efficiency) / 3600``; wall clock = GPU-hours / n_gpus;
    dollars = GPU-hours * price (Transformers Math 101, "Compute Requirements")."""
    if not 0 < scaling_efficiency <= 1:
        raise InvalidSpecError("scaling_efficiency", f"must be in (0, 1], got {scaling_efficiency}")
    effective = flops_per_s_per_gpu * scaling_efficiency
    if not effective >= 1.0:  # also catches NaN and underflow to 0
        raise InvalidSpecError("achieved_tflops_per_gpu", "the achieved throughput is below 1 FLOP/s")
    gpu_hours = total_flops / effective / SECONDS_PER_HOUR
    check_flops("gpu_hours", gpu_hours)
    return TrainingCost(
        total_flops=total_flops,
        achieved_flops_per_s_per_gpu=effective,
        gpu_hours=gpu_hours,
        wall_clock_hours=gpu_hours / n_gpus,
        cost_usd=None if usd_per_gpu_hour is None else check_flops("cost_usd", gpu_hours * usd_per_gpu_hour),
        n_gpus=n_gpus,
        mfu=mfu,
        scaling_efficiency=scaling_efficiency,
    )


def flops_for_budget(budget_usd: float, *, usd_per_gpu_hour: float, flops_per_s_per_gpu: float, scaling_efficiency: float) -> float:
    """FLOPs a budget buys: ``budget / price * 3600 * achieved FLOP/s``."""
    if not usd_per_gpu_hour > 0:
        raise InvalidSpecError("usd_per_gpu_hour", "must be greater than 0 to turn dollars into compute")
    return check_flops("compute_flops", budget_usd / usd_per_gpu_hour * SECONDS_PER_HOUR * flops_per_s_per_gpu * scaling_efficiency)


def planned_training_cost(
    *,
    tokens: float,
    model_flops: float,
    tokens_per_second: float,
    n_gpus: int,
    effective_time_fraction: float,
    usd_per_gpu_hour: float | None,
) -> TrainingCost:
    """Time and dollars of a run from a plan's steady-state throughput: wall clock
    ``tokens / tokens_per_second / effective_time_fraction``, GPU-hours ``n_gpus x`` that
    (C = tau*T, Transformers Math 101; the fraction: :data:`EFFECTIVE_TRAINING_TIME_FRACTION`)."""
    if not 0 < effective_time_fraction <= 1:
        raise InvalidSpecError("effective_time_fraction", f"must be in (0, 1], got {effective_time_fraction}")
    wall_clock_hours = tokens / tokens_per_second / effective_time_fraction / SECONDS_PER_HOUR
    gpu_hours = check_flops("gpu_hours", wall_clock_hours * n_gpus)
    return TrainingCost(
        total_flops=model_flops,
        # FLOPs per GPU-second, written so that a vanishing run cannot divide by zero
        achieved_flops_per_s_per_gpu=model_flops / tokens * tokens_per_second * effective_time_fraction / n_gpus,
        gpu_hours=gpu_hours,
        wall_clock_hours=wall_clock_hours,
        cost_usd=None if usd_per_gpu_hour is None else check_flops("cost_usd", gpu_hours * usd_per_gpu_hour),
        n_gpus=n_gpus,
        mfu=None,
        scaling_efficiency=1.0,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class ServingCost:
    """Roofline of serving one model replica on ``n_gpus`` GPUs at a batch size."""

    decode_step_seconds: float
    decode_bound: str  # "memory" or "compute"
    output_tokens_per_second: float
    prefill_seconds: float
    usd_per_million_output_tokens: float | None
    usd_per_million_input_tokens: float | None
    fits: bool
    memory_needed_bytes: int
    memory_available_bytes: int


def serving_cost(
    *,
    weights_bytes: int,
    kv_cache_bytes_per_token: int,
    active_params: float,
    batch_size: int,
    context_tokens: int,
    prompt_tokens: int,
    memory_needed_bytes: int,
    n_gpus: int,
    gpu_memory_bytes: int,
    memory_bandwidth_bytes_per_s: float,
    peak_flops_per_s: float,
    bandwidth_utilisation: float,
    compute_utilisation: float,
    usd_per_gpu_hour: float | None,
) -> ServingCost:
    """Decode step time ``max(bytes_read / (n * bandwidth * u_mem), 2*P*batch / (n * peak * u_c))``
    where one step reads the weights once and each sequence's KV cache at the mean context
    (Pope et al. 2022 §2; the 'memory-bound decode' roofline); prefill is compute-bound:
    ``2*P*prompt*batch / (n * peak * u_c)``. Dollars per million tokens from the replica's
    hourly price and its tokens per second."""
    bytes_per_step = weights_bytes + kv_cache_bytes_per_token * context_tokens * batch_size
    memory_time = bytes_per_step / (n_gpus * memory_bandwidth_bytes_per_s * bandwidth_utilisation)
    compute_time = 2 * active_params * batch_size / (n_gpus * peak_flops_per_s * compute_utilisation)
    step = max(memory_time, compute_time)
    if not (0 < step < 1e9):  # utilisations or bandwidths so small the roofline is meaningless
        raise InvalidSpecError("bandwidth_utilisation", "the decode step would take longer than 30 years")
    tokens_per_second = batch_size / step
    prefill = 2 * active_params * prompt_tokens * batch_size / (n_gpus * peak_flops_per_s * compute_utilisation)
    hourly = None if usd_per_gpu_hour is None else usd_per_gpu_hour * n_gpus
    per_output = None if hourly is None else hourly / SECONDS_PER_HOUR / tokens_per_second * 1e6
    per_input = None
    if hourly is not None and prompt_tokens:
        per_input = hourly / SECONDS_PER_HOUR * prefill / (prompt_tokens * batch_size) * 1e6
    available = gpu_memory_bytes * n_gpus
    return ServingCost(
        decode_step_seconds=step,
        decode_bound="memory" if memory_time >= compute_time else "compute",
        output_tokens_per_second=tokens_per_second,
        prefill_seconds=prefill,
        usd_per_million_output_tokens=per_output,
        usd_per_million_input_tokens=per_input,
        fits=memory_needed_bytes <= available,
        memory_needed_bytes=memory_needed_bytes,
        memory_available_bytes=available,
    )
