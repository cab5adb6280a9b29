"""The planner prices the loss the run calls (PlanSpec.cross_entropy): Megatron's fused
vocab-parallel cross entropy keeps 4 bytes a logit at its peak (Korthikanti et al. 2022 §4.3),
PyTorch's F.cross_entropy on fp32-upcast logits (torchtitan, transformers) 12 at its backward's
peak (service.core.kernels)."""

from __future__ import annotations

from service.core.kernels import EAGER_CROSS_ENTROPY_LOGIT_BYTES, FUSED_CROSS_ENTROPY_LOGIT_BYTES, CrossEntropy
from service.core.memory import usable_bytes
from service.core.plan import PlanSpec, plan
from tests.core.helpers import hardware, preset

SEQ, BATCH = 8192, 16


def _best(spec: PlanSpec):
    result = plan(preset("llama-3-8b"), hardware("h100-sxm"), spec)
    assert result.plans, result.reason
    return result.plans[0]


def test_eager_loss_adds_eight_bytes_a_logit_of_one_micro_batch() -> None:
    # Llama-3-8B (vocabulary 128,256) on 8 H100s, 8,192 tokens, micro-batch 2, one stage: the
    # busiest stage is the last, holding one micro-batch's s*b*V logits at the loss's peak
    fixed = {"tp": 1, "pp": 1, "cp": 1, "dp": 8, "zero_stage": 3, "micro_batch_size": 2, "recompute": "full"}
    fused, eager = (
        _best(PlanSpec(n_gpus=8, seq_len=SEQ, global_batch_size=BATCH, fixed=fixed, top_k=1, cross_entropy=loss))
        for loss in (CrossEntropy.FUSED, CrossEntropy.EAGER)
    )
    logits = SEQ * 2 * 128_256
    assert EAGER_CROSS_ENTROPY_LOGIT_BYTES - FUSED_CROSS_ENTROPY_LOGIT_BYTES == 8
    assert eager.memory.total_bytes - fused.memory.total_bytes == 8 * logits == 16_810_770_432
    assert eager.memory.activations_bytes - fused.memory.activations_bytes == 8 * logits
    assert eager.memory.weights_bytes + eager.memory.optimizer_bytes == fused.memory.weights_bytes + fused.memory.optimizer_bytes
    assert eager.step_seconds == fused.step_seconds  # the loss's memory, not its time


def test_a_layout_that_fits_the_fused_loss_is_refused_under_the_eager_one() -> None:
    # 90 % of an H100's 80 GiB usable, ZeRO-2 held: without recompute at micro-batch 1 the fused
    # loss fits, the eager one's 8 more bytes a logit (8,192 x 128,256 x 8 = 8.4 GB) do not, so the
    # planner turns to another layout that fits
    fixed = {"tp": 1, "pp": 1, "cp": 1, "zero_stage": 2}
    common = dict(n_gpus=8, seq_len=SEQ, global_batch_size=BATCH, fixed=fixed, top_k=1, usable_memory_fraction=0.9)
    fused = _best(PlanSpec(**common, cross_entropy=CrossEntropy.FUSED))
    eager = _best(PlanSpec(**common, cross_entropy=CrossEntropy.EAGER))
    usable = usable_bytes(hardware("h100-sxm").memory_bytes, 0.9)
    fused_layout = (fused.micro_batch_size, fused.recompute, fused.zero_stage, fused.dp, fused.cp)
    eager_layout = (eager.micro_batch_size, eager.recompute, eager.zero_stage, eager.dp, eager.cp)
    assert fused_layout != eager_layout
    # the fused plan's layout priced with the eager loss: one micro-batch's logits 8 bytes more each
    assert fused.memory.total_bytes <= usable < fused.memory.total_bytes + 8 * SEQ * fused.micro_batch_size * 128_256
    assert eager.memory.total_bytes <= usable
    assert eager.step_seconds > fused.step_seconds  # the fused plan was the fastest that fit
