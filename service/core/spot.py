"""Training on interruptible (spot) capacity: checkpoint, lose the work since the last checkpoint
when interrupted, restart.

With interruptions a Poisson process of mean time between them ``M`` (the job's: any of its
nodes taken away stops it), checkpoints that take ``C`` seconds every ``tau`` seconds of work, and
``R`` seconds to restart, the expected wall time of ``T_s`` seconds of work is Daly's complete
model (Daly 2006, "A higher order estimate of the optimum checkpoint interval for restart dumps",
§3)

    T_w = M * exp(R / M) * (exp((tau + C) / M) - 1) * T_s / tau

and the interval that minimises it is Young's ``sqrt(2 C M)`` (Young 1974, "A first order
approximation to the optimum checkpoint interval") to first order, or Daly's higher-order
estimate (§5)

    tau = sqrt(2 C M) * (1 + sqrt(C / (2 M)) / 3 + (C / (2 M)) / 9) - C    for C < 2M, else M.

With no interruptions there is nothing to lose: no checkpoint is needed and ``T_w = T_s``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from service.core.errors import InvalidSpecError

# AWS Spot Instance Advisor's lowest interruption band, "<5 %" of instances a month (730 hours)
DEFAULT_INTERRUPTIONS_PER_NODE_HOUR = 0.05 / 730
# Llama 3's checkpoint storage sustains 2 TB/s for 16K GPUs (Dubey et al. 2024 §3.3.1): ~1 GB/s per 8-GPU node
DEFAULT_CHECKPOINT_WRITE_BYTES_PER_S_PER_NODE = 1e9
DEFAULT_RESTART_SECONDS = 600.0  # stated, not measured: reschedule the nodes and read the checkpoint back
CHECKPOINT_BYTES_PER_PARAM = 14  # 2 (bf16 weights) + 4 (fp32 master) + 8 (Adam moments), Transformers Math 101


def checkpoint_seconds(
    n_params: float, n_nodes: int, write_bytes_per_s_per_node: float = DEFAULT_CHECKPOINT_WRITE_BYTES_PER_S_PER_NODE
) -> float:
    """One checkpoint's write: the weights, fp32 master copy and Adam moments
    (:data:`CHECKPOINT_BYTES_PER_PARAM`) written by every node of the job at ``write_bytes_per_s_per_node``."""
    return CHECKPOINT_BYTES_PER_PARAM * n_params / (write_bytes_per_s_per_node * max(n_nodes, 1))


def young_interval_seconds(checkpoint_seconds: float, mtbf_seconds: float) -> float:
    """Young 1974: ``sqrt(2 C M)``."""
    return math.sqrt(2 * checkpoint_seconds * mtbf_seconds)


def daly_interval_seconds(checkpoint_seconds: float, mtbf_seconds: float) -> float:
    """Daly 2006 §5: Young's interval with the higher-order terms, ``M`` when ``C >= 2M``."""
    c, m = checkpoint_seconds, mtbf_seconds
    if c >= 2 * m:
        return m
    x = c / (2 * m)
    return math.sqrt(2 * c * m) * (1 + math.sqrt(x) / 3 + x / 9) - c


def expected_wall_seconds(
    work_seconds: float, *, mtbf_seconds: float, checkpoint_seconds: float, restart_seconds: float, interval_seconds: float
) -> float:
    """Daly 2006's complete model (module docstring); ``work_seconds`` with no interruptions."""
    if math.isinf(mtbf_seconds):
        return work_seconds
    m, c, r, tau = mtbf_seconds, checkpoint_seconds, restart_seconds, interval_seconds
    exponent = (tau + c) / m + r / m
    if exponent > 700:  # exp overflows: the job never finishes an interval between interruptions
        raise InvalidSpecError(
            "spot", "interruptions come faster than a checkpoint interval and a restart: the run cannot finish"
        )
    return m * math.exp(r / m) * math.expm1((tau + c) / m) * work_seconds / tau


@dataclass(frozen=True, kw_only=True, slots=True)
class SpotRun:
    job_interruptions_per_hour: float
    mtbf_hours: float | None  # None: no interruptions
    checkpoint_seconds: float
    restart_seconds: float
    checkpoint_interval_hours: float | None  # None: no checkpoint needed
    young_interval_hours: float | None
    expected_wall_clock_hours: float
    overhead_fraction: float  # expected wall clock over the work's


def spot_run(
    work_hours: float, *, n_nodes: int, interruptions_per_node_hour: float, checkpoint_seconds: float, restart_seconds: float,
    interval_hours: float | None = None,
) -> SpotRun:  # fmt: skip
    """``work_hours`` of a job on ``n_nodes`` interruptible nodes: the job is interrupted when any
    node is (rate ``n_nodes * interruptions_per_node_hour``); at Daly's optimal interval unless
    ``interval_hours`` is given."""
    rate = n_nodes * interruptions_per_node_hour
    if rate == 0:
        return SpotRun(job_interruptions_per_hour=0.0, mtbf_hours=None, checkpoint_seconds=checkpoint_seconds,
                       restart_seconds=restart_seconds, checkpoint_interval_hours=None, young_interval_hours=None,
                       expected_wall_clock_hours=work_hours, overhead_fraction=1.0)  # fmt: skip
    mtbf = 3600 / rate
    tau = interval_hours * 3600 if interval_hours is not None else daly_interval_seconds(checkpoint_seconds, mtbf)
    wall = expected_wall_seconds(work_hours * 3600, mtbf_seconds=mtbf, checkpoint_seconds=checkpoint_seconds,
                                 restart_seconds=restart_seconds, interval_seconds=tau) / 3600  # fmt: skip
    return SpotRun(
        job_interruptions_per_hour=rate, mtbf_hours=mtbf / 3600, checkpoint_seconds=checkpoint_seconds,
        restart_seconds=restart_seconds, checkpoint_interval_hours=tau / 3600,
        young_interval_hours=young_interval_seconds(checkpoint_seconds, mtbf) / 3600, expected_wall_clock_hours=wall,
        overhead_fraction=wall / work_hours if work_hours else 1.0,
    )  # fmt: skip
