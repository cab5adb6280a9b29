"""Time-to-train of a benchmark run: the optimizer steps and the evaluation passes inside its timed
region, outside the step-time model (:mod:`service.core.steptime`), which times one optimizer step.

MLPerf Training times a run "from run start to run stop" (``run_start`` and ``run_stop`` in the
MLPerf log): the training steps, and every evaluation of the quality target between them, until an
evaluation reaches the target. An evaluation is a forward pass over the whole validation set at the
evaluation's batch (no backward, no optimizer step), so it costs forward micro-batches at the training
layout, and the evaluation loop's own fixed cost around them (switching the model to evaluation and
back, the validation loader's first batch, reducing and logging the loss across ranks):
:data:`NEMO_EVALUATION_OVERHEAD_SECONDS` for NeMo's loop. What the timed region also holds and no
term here models is stated by the caller (the first steps' warm-up, host synchronisation between
blocks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# NeMo's evaluation loop, per evaluation, beyond its forward passes: fitted on MLPerf Training v4.0's
# Llama-2-70B LoRA on 1,024 H100 (NVIDIA, NeMo 24.04; results/eos_n128_ngc24.04_nemo/llama2_70b_lora/
# result_0.txt): its 11 evaluations (eval_start to eval_stop) take 1.135-1.272 s, 1.172 s on average,
# for two forward micro-batches a rank of 0.216 s each (the host's pace: the adapted layers' floor,
# service.core.steptime_finetune); 1.172 - 2 x 0.216 = 0.74 s. The v4.1 submission (NeMo 24.09, the same
# layout with CUDA graphs) takes 1.22-1.37 s an evaluation: a check, not a fit (ACCURACY.md, fine-tuning).
NEMO_EVALUATION_OVERHEAD_SECONDS = 0.74


@dataclass(frozen=True, kw_only=True, slots=True)
class EvaluationSchedule:
    """When a run evaluates and over what: the first evaluation after ``first_samples`` training
    samples, then one every ``interval_samples``; each over ``eval_samples`` validation samples in
    global batches of ``eval_global_batch`` (the last one partial)."""

    first_samples: int
    interval_samples: int
    eval_samples: int
    eval_global_batch: int

    def evaluations(self, samples: int) -> int:
        """Evaluations a run that stops after ``samples`` training samples has made, the last one
        at ``samples`` when the run stops on an evaluation."""
        if samples < self.first_samples:
            return 0
        return 1 + (samples - self.first_samples) // self.interval_samples

    def forward_microbatches(self, data_parallel: int, micro_batch: int) -> int:
        """Forward micro-batches one data-parallel rank runs in one evaluation: ``ceil(eval_samples /
        eval_global_batch)`` global batches, each of ``eval_global_batch / (dp * micro_batch)``."""
        batches = math.ceil(self.eval_samples / self.eval_global_batch)
        return batches * math.ceil(self.eval_global_batch / (data_parallel * micro_batch))


@dataclass(frozen=True, kw_only=True, slots=True)
class TimeToTrain:
    """The parts of a timed run: ``steps`` optimizer steps of ``step_seconds`` and ``evaluations``
    passes of ``evaluation_seconds``; ``total_seconds`` is their sum."""

    steps: int
    step_seconds: float
    evaluations: int
    evaluation_seconds: float
    total_seconds: float


def time_to_train(
    *,
    samples: int,
    global_batch: int,
    step_seconds: float,
    forward_seconds: float,
    schedule: EvaluationSchedule,
    data_parallel: int,
    micro_batch: int,
    evaluation_overhead_seconds: float = 0.0,
) -> TimeToTrain:
    """Seconds from run start to run stop of a run that trains ``samples`` samples at
    ``global_batch`` (``samples / global_batch`` steps of ``step_seconds``, the step-time model's) and
    evaluates as ``schedule`` says, each evaluation :meth:`EvaluationSchedule.forward_microbatches`
    forward passes of one micro-batch at ``forward_seconds`` (the step-time model's forward: a
    recomputed forward, Chen et al. 2016) and ``evaluation_overhead_seconds`` of the loop's own
    (:data:`NEMO_EVALUATION_OVERHEAD_SECONDS` for NeMo's). MLPerf Training's rules time this region
    (``run_start`` to ``run_stop``, evaluations included)."""
    steps = math.ceil(samples / global_batch)
    evaluations = schedule.evaluations(samples)
    evaluation_seconds = schedule.forward_microbatches(data_parallel, micro_batch) * forward_seconds + evaluation_overhead_seconds
    return TimeToTrain(
        steps=steps,
        step_seconds=step_seconds,
        evaluations=evaluations,
        evaluation_seconds=evaluation_seconds,
        total_seconds=steps * step_seconds + evaluations * evaluation_seconds,
    )
