"""Pipeline schedules: how many layers each stage holds, how many micro-batches' activations it
keeps in flight, how many copies of its parameters, and the bubble.

Schedules (``p`` stages, ``m`` micro-batches per step, ``v`` interleaved chunks per GPU):

- ``1f1b``: one forward, one backward (Narayanan et al. 2021 §2.2.1, PipeDream-Flush). Stage ``r``
  holds ``min(p - r, m)`` micro-batches in flight; the bubble is ``(p - 1)`` micro-batch times.
- ``interleaved``: ``v`` chunks per GPU (Narayanan et al. 2021 §2.2.2): the bubble shrinks to
  ``(p - 1)/v``; Megatron-LM's warm-up keeps ``2(p - r - 1) + (v - 1)p + 1`` chunk micro-batches on
  stage ``r`` (``p(1 + (p - 1)/(p v))`` stage micro-batches on the first, Korthikanti et al. 2022
  §4.2.3); it needs ``m`` in multiples of ``p``.
- ``zero_bubble``: ZB-H1 (Qi et al. 2023, "Zero Bubble Pipeline Parallelism" §3.1): the weight
  gradients ``W`` are deferred into the bubble; same memory as 1F1B, bubble ``(p - 1)(F + B - 2W)``
  (with fewer micro-batches than stages, no less than the first stage's critical path: :func:`bubble_seconds`).
- ``dualpipe``: DeepSeek-V3's bidirectional schedule (DeepSeek-AI 2024, arXiv 2412.19437 §3.2.1;
  ``deepseek-ai/DualPipe`` README): bubble ``(p/2 - 1)(F&B + B - 3W)``, two copies of the
  parameters, ``p + 1`` micro-batches of activations; the forward and backward chunks it pairs
  hide each other's all-to-all and pipeline communication. ``p`` even; ``m >= 2p`` (DualPipeV too).
- ``dualpipev``: DualPipe "cut in half" (the V-shape variant in the same README, whose row is for
  PP stages on PP/2 devices): ``p`` GPUs run ``2p`` half-size stages, two per GPU, so one copy of
  the parameters, a bubble of ``(2p/2 - 1)`` half-stage ``(F&B + B - 3W)`` = ``(p - 1)/2`` of a GPU's,
  and ``2p + 1`` half-stage micro-batches of activations (``p + 1/2`` of a GPU's stage); any ``p``.

``F`` is a micro-batch's forward over a stage, ``B`` its whole backward, ``W`` the weight-gradient
part of ``B``, ``F&B`` a forward and a backward overlapped (their compute adds; their
communication hides). Times are per stage and micro-batch.

Layer placement (Llama 3, Dubey et al. 2024 §3.3.2; Megatron-Core's
``account_for_embedding_in_pipeline_split`` / ``account_for_loss_in_pipeline_split``): when the
stages have room to spare (``p * ceil(L/p) > L``), the first stage — which holds the most
micro-batches in flight and the embedding — and then the last — which holds the output layer
and the loss — take one layer fewer. Llama 3 405B's 126 layers on 16 stages: 7, 8 x 14, 7; with
8 interleaved chunks per stage the embedding and the output layer fill a chunk each
(:func:`max_chunks`).

Every function takes NumPy arrays (or scalars) for the layout, so the planner prices a whole
search space with the same code that prices one configuration.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import numpy as np


class PipelineSchedule(StrEnum):
    ONE_F_ONE_B = "1f1b"
    INTERLEAVED = "interleaved"
    ZERO_BUBBLE = "zero_bubble"
    DUALPIPE = "dualpipe"
    DUALPIPEV = "dualpipev"


SCHEDULES = tuple(PipelineSchedule)
SCHEDULE_CODES = {s.value: i for i, s in enumerate(SCHEDULES)}
ONE_F_ONE_B, INTERLEAVED, ZERO_BUBBLE, DUALPIPE, DUALPIPEV = range(len(SCHEDULES))


def default_schedule(virtual_stages: int) -> PipelineSchedule:
    """Megatron-LM's schedule for a layout: interleaved with ``v > 1`` chunks, else 1F1B."""
    return PipelineSchedule.INTERLEAVED if virtual_stages > 1 else PipelineSchedule.ONE_F_ONE_B


def schedule_problem(schedule: PipelineSchedule, pp: int, virtual_stages: int, microbatches: int | None) -> str | None:
    """Why ``schedule`` cannot run this layout (None when it can)."""
    if schedule is PipelineSchedule.INTERLEAVED:
        if virtual_stages < 2:
            return "the interleaved schedule needs virtual_stages > 1"
        return None
    if virtual_stages > 1:
        return f"{schedule.value} runs one chunk per stage (virtual_stages = 1); interleaving is the 'interleaved' schedule"
    if schedule in (PipelineSchedule.DUALPIPE, PipelineSchedule.DUALPIPEV):
        if schedule is PipelineSchedule.DUALPIPE and pp > 1 and pp % 2:
            return f"{schedule.value} needs an even pipeline size (pp={pp}): micro-batches enter from both ends"
        if pp > 1 and microbatches is not None and microbatches < 2 * pp:
            return f"{schedule.value} needs at least 2*pp = {2 * pp} micro-batches per step (has {microbatches})"
    return None


def max_chunks(n_layers: Any) -> Any:
    """The most pipeline chunks (``pp * virtual_stages``) ``n_layers`` layers fill: one layer each,
    and the embedding and the output layer may each fill one (Llama 3 §3.3.2: "the first model chunk
    on the first stage has only the embedding, and the last model chunk on the last stage has only
    output projection and loss calculation")."""
    return n_layers + 2


def stage_layers(n_layers: Any, pp: Any, virtual_stages: Any = 1) -> tuple[Any, Any, Any]:
    """Layers on the first, a middle and the last stage: ``S = v * ceil(L/(p v))`` on the middle
    stages; with room to spare, one fewer on the first stage, then on the last (module
    docstring); ``L`` on the one stage of ``p = 1``. Integer arithmetic, so NumPy arrays work too."""
    full = -(-n_layers // (pp * virtual_stages)) * virtual_stages
    slack = pp * full - n_layers
    first = full - (slack >= 1) * 1
    last = full - (slack >= 2) * 1
    if np.ndim(full) == 0:
        return (n_layers, n_layers, n_layers) if pp == 1 else (int(first), int(full), int(last))
    single = np.asarray(pp) == 1
    return np.where(single, n_layers, first), np.where(single, n_layers, full), np.where(single, n_layers, last)


def in_flight(schedule: Any, pp: Any, virtual_stages: Any, microbatches: Any, rank: int) -> Any:
    """Micro-batches' worth of a stage's activations that stage ``rank`` (0 = first) holds at its
    peak, in units of one micro-batch through the whole stage (module docstring). ``rank`` is
    clamped to the last stage."""
    p = np.asarray(pp, dtype=np.float64)
    v = np.asarray(virtual_stages, dtype=np.float64)
    m = np.asarray(microbatches, dtype=np.float64)
    r = np.minimum(rank, p - 1)
    held = np.minimum(p, m)
    one_f_one_b = np.maximum(np.minimum(p - r, m), 1.0)
    # Megatron-LM runs every chunk's forward first when the warm-up reaches the step's m*v chunks
    interleaved = np.minimum(np.maximum(held * (1 + (p - 1) / (p * v)) - 2 * r / v, 1.0), m)
    code = np.asarray(schedule)
    out = np.select(
        [code == INTERLEAVED, code == DUALPIPE, code == DUALPIPEV],
        [interleaved, p + 1, p + 0.5],  # DualPipeV: 2p + 1 half-stage micro-batches
        one_f_one_b,
    )
    return np.where(p == 1, 1.0, out)


def parameter_copies(schedule: Any) -> Any:
    """Copies of a stage's parameters each GPU holds: 2 under DualPipe, else 1."""
    return np.where(np.asarray(schedule) == DUALPIPE, 2, 1)


def bubble_seconds(
    schedule: Any, pp: Any, virtual_stages: Any, micro: Any, backward: Any, weight_grad: Any, microbatches: Any = np.inf
) -> Any:
    """The pipeline bubble of one step, from a micro-batch's time over the stage ``micro``
    (= F + B), its whole backward ``backward`` (B) and the weight-gradient part ``weight_grad``
    (W): module docstring, per schedule, with ``microbatches`` (m) per step.

    ZB-H1's ``(p - 1)(F + B - 2W)`` (Qi et al. 2023 §3.1) has W passes of other micro-batches to
    fill the first stage's wait; with fewer micro-batches than stages it cannot go below that
    stage's critical path: its first backward waits for a micro-batch's forward through all ``p``
    stages and its input gradient (``B - W``) back through ``p - 1``, then runs its ``m`` backwards,
    ``pF + (p - 1)(B - W) + mB``, a bubble of ``(p - m)F + (p - 1)(B - W)`` beyond ``m(F + B)``."""
    p = np.asarray(pp, dtype=np.float64)
    v = np.asarray(virtual_stages, dtype=np.float64)
    m = np.asarray(microbatches, dtype=np.float64)
    code = np.asarray(schedule)
    paired = np.maximum(micro + backward - 3 * weight_grad, 0.0)  # F&B + B - 3W
    first_stage = np.maximum(p - m, 0.0) * (micro - backward) + (p - 1) * (backward - weight_grad)
    zero_bubble = np.where(
        m < p, np.maximum((p - 1) * (micro - 2 * weight_grad), first_stage), (p - 1) * (micro - 2 * weight_grad)
    )
    return np.select(
        [code == INTERLEAVED, code == ZERO_BUBBLE, code == DUALPIPE, code == DUALPIPEV],
        [(p - 1) / v * micro, np.maximum(zero_bubble, 0.0), np.maximum(p / 2 - 1, 0.0) * paired, (p - 1) / 2 * paired],
        (p - 1) * micro,
    )  # fmt: skip


def hides_communication(schedule: Any) -> Any:
    """True where the schedule overlaps a chunk's forward with another's backward (DualPipe's
    F&B), hiding expert all-to-alls and pipeline sends under compute."""
    code = np.asarray(schedule)
    return (code == DUALPIPE) | (code == DUALPIPEV)
