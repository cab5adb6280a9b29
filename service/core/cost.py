"""Time and dollars of training and serving.

``C = tau * T`` (Transformers Math 101): the run's FLOPs divided by the achieved throughput,
``tau = n_gpus * peak * MFU``. MFU counts model FLOPs only (Chowdhery et al. 2022, Appendix B).
A published MFU is measured at its run's scale and already holds the losses of communication and
bubbles: it is never multiplied by a second efficiency (``scaling_efficiency`` is 1 unless a
caller gives one). Where the layout is known the throughput comes from the step-time model
instead (:func:`planned_training_cost`). Serving is priced by :mod:`service.core.serving`.
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


def achieved_flops_per_s(*, peak_tflops: float | None, mfu: float | None, achieved_tflops: float | None) -> float:
    """FLOP/s one GPU delivers: ``peak * MFU``, or an explicit achieved figure."""
    if achieved_tflops is not None:
        return achieved_tflops * 1e12
    if peak_tflops is None or mfu is None:
        raise InvalidSpecError("mfu", "need the GPU's peak TFLOP/s and an MFU, or achieved_tflops_per_gpu")
    if not 0 < mfu <= 1:
        raise InvalidSpecError("mfu", f"must be in (0, 1], got {mfu}")
    return peak_tflops * 1e12 * mfu


def dollars(gpu_hours: float, usd_per_gpu_hour: float) -> float:
    """Dollars = GPU-hours * price per GPU-hour (Transformers Math 101, "Compute Requirements");
    a finite result or InvalidSpecError."""
    return check_flops("cost_usd", gpu_hours * usd_per_gpu_hour)


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
        cost_usd=None if usd_per_gpu_hour is None else dollars(gpu_hours, usd_per_gpu_hour),
        n_gpus=n_gpus,
        mfu=mfu,
        scaling_efficiency=scaling_efficiency,
    )


def flops_for_budget(
    budget_usd: float, *, usd_per_gpu_hour: float, flops_per_s_per_gpu: float, scaling_efficiency: float
) -> float:
    """FLOPs a budget buys: ``budget / price * 3600 * achieved FLOP/s``."""
    if not usd_per_gpu_hour > 0:
        raise InvalidSpecError("usd_per_gpu_hour", "must be greater than 0 to turn dollars into compute")
    return check_flops(
        "compute_flops", budget_usd / usd_per_gpu_hour * SECONDS_PER_HOUR * flops_per_s_per_gpu * scaling_efficiency
    )


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
        cost_usd=None if usd_per_gpu_hour is None else dollars(gpu_hours, usd_per_gpu_hour),
        n_gpus=n_gpus,
        mfu=None,
        scaling_efficiency=1.0,
    )
