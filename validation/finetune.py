"""Published fine-tuning runs against the step-time model: every row of
``validation/measurements/finetune_throughput.json`` priced by the planner with the row's layout
fixed, as ``POST /v1/plan`` prices a fine-tune (``finetune`` in the request).

The Megatron-Bridge rows compare tokens per second per GPU. The MLPerf Training rows compare the
steady step (the global batch over the log's ``tracked_stats`` samples/s) and the time from
``run_start`` to ``run_stop``: the steps and the evaluations between them
(:func:`service.core.time_to_train.time_to_train`, each evaluation a forward pass over the validation
set at the training layout). Nothing is fitted to these rows. No torch and no store.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.core.adapters import Projection
from service.core.finetune_spec import FinetuneMethod, FinetuneSpec
from service.core.memory import Precision
from service.core.plan import PlanResult, PlanSpec, plan
from service.core.time_to_train import EvaluationSchedule, time_to_train
from validation.throughput import ROW_TOLERANCE, architecture, hardware, layout_text

ROWS = Path(__file__).resolve().parent / "measurements" / "finetune_throughput.json"
TIME_TO_TRAIN_TOLERANCE = 0.25  # the calibration sheet's bar on MLPerf's time to train

TOKENS, STEP, TTT = "tok/s per GPU", "steady step (s)", "time to train (s)"

# Checks outside their bar, each with the reason; a check that comes inside must leave this list.
_SCALE_OUT = (
    "one micro-batch of 8,192 tokens a step on each of 128 data-parallel ranks (tp 4, cp 2), and 11 or 12 evaluations "
    "of two forward micro-batches: the regime where what the step-time model does not cost sets the pace. The same "
    "benchmark on 8 GPUs (four micro-batches a step, evaluations of 88) is within its bars (rows above). What the "
    "logs show: (1) the host: the same layout with each layer's kernels captured in CUDA graphs (v4.1, NeMo 24.09, "
    "LAYER_CUDA_GRAPH=1) steps in 0.547 s against v4.0's 0.651 s: about 0.10 s of v4.0's step (1.3 ms a layer) went "
    "with the graphs and the newer container together, host time the model does not cost for dense layers; (2) the "
    "evaluation loop: 1.15-1.27 s an evaluation in v4.0 and 1.22-1.37 s in v4.1 with graphs, against two forward "
    "micro-batches of 0.36 s: about 0.8-0.9 s each that is not the forward; (3) the first block: 18.7 s beyond its "
    "57 steps in v4.0 (8.5 s in v4.1); (4) tensor-parallel collectives the recipe leaves exposed "
    "(MC_TP_OVERLAP_RS_DGRAD=False: the data-gradient reduce-scatters of linear_qkv and linear_fc1, about 0.03 s a "
    "step) and the adapters' own collectives (about 0.02 s). Together (1)-(4) come to about 41 s of the 47 s between "
    "the model's 42 s and the published 89.2 s; none is a cost the model could take from a source, so none is fitted"
)
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {
    ("mlperf-v4.0-lora-1024gpu", STEP): _SCALE_OUT,
    ("mlperf-v4.0-lora-1024gpu", TTT): "as its step",
    ("mlperf-v4.1-lora-1024gpu", STEP): (
        "a cross-check, not a calibration row: v4.0's layout with CUDA graphs. The host's share (1) is gone; the exposed "
        "collectives (4) of the v4.0 row remain (with them the step is about 0.49 s, -10 %), and the evaluation loop and "
        "the first block (2)-(3) stay outside the step"
    ),
    ("mlperf-v4.1-lora-1024gpu", TTT): "as its step",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Check:
    """One published quantity of one row against the model's."""

    row: dict[str, Any]
    quantity: str
    published: float
    predicted: float
    bar: float
    layout: str

    @property
    def error(self) -> float:
        return self.predicted / self.published - 1

    @property
    def within(self) -> bool:
        return abs(self.error) <= self.bar


def rows() -> list[dict[str, Any]]:
    return json.loads(ROWS.read_text(encoding="utf-8"))["rows"]


def finetune_spec(fields: dict[str, Any] | None) -> FinetuneSpec | None:
    """A row's fine-tune (None: supervised fine-tuning, every weight trained: the planner's full training)."""
    if fields is None:
        return None
    extra: dict[str, Any] = {}
    if "targets" in fields:
        extra["targets"] = tuple(Projection(t) for t in fields["targets"])
    if "dropout" in fields:
        extra["dropout"] = fields["dropout"]
    return FinetuneSpec(method=FinetuneMethod(fields["method"]), rank=fields["rank"], **extra)


def row_spec(row: dict[str, Any]) -> PlanSpec:
    """The planner's request for a row: FP8 (tensorwise), tensor-parallel overlap on, its layout fixed."""
    return PlanSpec(n_gpus=row["n_gpus"], seq_len=row["seq_len"], global_batch_size=row["global_batch_size"],
                    finetune=finetune_spec(row["finetune"]), fixed=row["fixed"], precision=Precision.FP8,
                    tp_comm_overlap=True, top_k=1)  # fmt: skip


def _plan(row: dict[str, Any], spec: PlanSpec) -> PlanResult:
    result = plan(architecture({"preset": row["model"]}), hardware("h100-sxm"), spec)
    if not result.plans:
        raise ValueError(f"{row['id']}: {result.reason}")
    return result


def row_checks(row: dict[str, Any]) -> list[Check]:
    """A row's checks: tokens/s per GPU for a throughput row; the steady step and the time to train
    for an MLPerf row."""
    spec = row_spec(row)
    result = _plan(row, spec)
    best, layout, pub = result.plans[0], layout_text(result), row["published"]
    common = {"row": row, "layout": layout}
    if "tokens_per_second_per_gpu" in pub:
        predicted = best.tokens_per_second / row["n_gpus"]
        return [
            Check(quantity=TOKENS, published=pub["tokens_per_second_per_gpu"], predicted=predicted, bar=ROW_TOLERANCE, **common)
        ]
    # an evaluation's forward micro-batch: the recomputed forward of the same layout (Chen et al. 2016)
    forward = _plan(row, dataclasses.replace(spec, fixed=row["fixed"] | {"recompute": "full"})).plans[0]
    ttt = time_to_train(samples=pub["samples"], global_batch=row["global_batch_size"], step_seconds=best.step_seconds,
                        forward_seconds=forward.step["recompute_seconds"] / forward.gradient_accumulation_steps,
                        schedule=EvaluationSchedule(**row["evaluations"]), data_parallel=best.dp,
                        micro_batch=best.micro_batch_size)  # fmt: skip
    step = row["global_batch_size"] / pub["samples_per_second"]
    return [
        Check(quantity=STEP, published=step, predicted=best.step_seconds, bar=ROW_TOLERANCE, **common),
        Check(
            quantity=TTT,
            published=pub["time_to_train_seconds"],
            predicted=ttt.total_seconds,
            bar=TIME_TO_TRAIN_TOLERANCE,
            **common,
        ),
    ]


def checks() -> list[Check]:
    return [c for row in rows() for c in row_checks(row)]


def render_section(found: list[Check] | None = None) -> list[str]:
    """ACCURACY.md's fine-tuning section: every check, then those outside their bar with their reasons."""
    found = checks() if found is None else found
    inside = sum(c.within for c in found)
    lines = [
        "## Fine-tuning: the step-time model against published runs",
        "",
        "The calibration sheet's fine-tuning rows and NVIDIA's MLPerf Training Llama-2-70B LoRA submissions",
        "(`validation/measurements/finetune_throughput.json`, with their sources), priced by the planner as `POST /v1/plan`",
        "prices a fine-tune with the published layout fixed (`validation/finetune.py`; FP8, tensor-parallel overlap on).",
        "An MLPerf row compares its steady step (the global batch over the log's samples/s) and its time from `run_start`",
        "to `run_stop`: the steps and every evaluation between them, each a forward pass over the 173 validation",
        "samples at the training layout (`service/core/time_to_train.py`). Nothing is fitted to these rows.",
        "",
        f"**{inside} of {len(found)} checks within their bar** (15 % on throughput and steps; 25 % on MLPerf's time to train).",
        "",
        "| row | GPUs | layout | quantity | published | predicted | error | bar | verdict |",
        "|---|---:|---|---|---:|---:|---:|---:|---|",
    ]
    for c in found:
        key = (c.row["id"], c.quantity)
        verdict = "pass" if c.within else ("known exception" if key in KNOWN_EXCEPTIONS else "**FAIL**")
        digits = {TOKENS: 0, STEP: 3, TTT: 1}[c.quantity]
        lines.append(f"| {c.row['id']} | {c.row['n_gpus']:,} | {c.layout} | {c.quantity} | {c.published:,.{digits}f} | "
                     f"{c.predicted:,.{digits}f} | {c.error:+.1%} | {c.bar:.0%} | {verdict} |")  # fmt: skip
    lines += ["", "Checks outside their bar:", ""]
    outside = [c for c in found if not c.within]
    for c in outside:
        reason = KNOWN_EXCEPTIONS.get((c.row["id"], c.quantity), "no reason recorded: a regression.")
        lines.append(f"- **{c.row['id']}**, {c.quantity}: {reason}")
    if not outside:
        lines.append("None.")
    lines.append("")
    return lines


if __name__ == "__main__":
    for c in checks():
        print(f"{c.row['id']:28s} {c.quantity:20s} pub {c.published:10.3f} pred {c.predicted:10.3f} {c.error:+.1%}  {c.layout}")
