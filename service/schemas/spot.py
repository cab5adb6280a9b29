"""Interruptible (spot) capacity: what a request says about it and what an answer reports
(``POST /v1/cost/training``'s ``spot``, and a fleet search's spot pools in ``POST /v1/plan``)."""

from __future__ import annotations

from pydantic import Field

from service.core.spot import DEFAULT_CHECKPOINT_WRITE_BYTES_PER_S_PER_NODE as DEFAULT_CHECKPOINT_WRITE_BYTES_PER_S_PER_NODE
from service.core.spot import DEFAULT_INTERRUPTIONS_PER_NODE_HOUR, DEFAULT_RESTART_SECONDS, SpotRun
from service.schemas.base import Schema


class SpotOptions(Schema):
    """Interruptible capacity: the job stops when any of its nodes is taken back, and restarts from
    its last checkpoint (Young 1974; Daly 2006)."""

    interruptions_per_node_hour: float = Field(
        DEFAULT_INTERRUPTIONS_PER_NODE_HOUR, ge=0, le=10,
        description="Interruptions per node-hour; default AWS Spot Instance Advisor's lowest band (< 5 % of instances a "
        "month). The job's rate is the nodes' sum.",
    )  # fmt: skip
    checkpoint_seconds: float | None = Field(
        None, gt=0, le=86_400, description="One checkpoint's write; default the model's weights, fp32 master copy and Adam "
        "moments (14 bytes a parameter) at 1 GB/s per node (Llama 3's storage: 2 TB/s for 16K GPUs, §3.3.1).",
    )  # fmt: skip
    restart_seconds: float = Field(DEFAULT_RESTART_SECONDS, ge=0, le=86_400, description="Reschedule and reload; default 600.")
    checkpoint_interval_hours: float | None = Field(
        None, gt=0, le=10_000, description="Hours of work between checkpoints; default Daly's optimum (2006)."
    )


class SpotDetail(Schema):
    job_interruptions_per_hour: float
    mtbf_hours: float | None = Field(description="The job's mean time between interruptions; null with none.")
    checkpoint_seconds: float
    restart_seconds: float
    checkpoint_interval_hours: float | None = Field(description="Null: with no interruptions no checkpoint is needed.")
    young_interval_hours: float | None = Field(description="Young's sqrt(2 C M), for comparison.")
    work_hours: float = Field(description="The wall clock without interruptions.")
    expected_wall_clock_hours: float = Field(description="With interruptions, checkpoints and restarts (Daly 2006).")
    overhead_fraction: float = Field(description="expected_wall_clock_hours / work_hours.")


def spot_detail(run: SpotRun, work_hours: float) -> SpotDetail:
    """A run on spot capacity (:func:`service.core.spot.spot_run`) as answers report it."""
    return SpotDetail(job_interruptions_per_hour=run.job_interruptions_per_hour, mtbf_hours=run.mtbf_hours,
                      checkpoint_seconds=run.checkpoint_seconds, restart_seconds=run.restart_seconds,
                      checkpoint_interval_hours=run.checkpoint_interval_hours, young_interval_hours=run.young_interval_hours,
                      work_hours=work_hours, expected_wall_clock_hours=run.expected_wall_clock_hours,
                      overhead_fraction=run.overhead_fraction)  # fmt: skip
