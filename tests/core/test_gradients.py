"""The gradients' dtype in memory and in the data-parallel reduction (service.core.gradients)."""

from __future__ import annotations

import dataclasses

import pytest

from service.core.errors import InvalidSpecError
from service.core.finetune_layout import adapter_bytes
from service.core.finetune_spec import FinetuneMethod, FinetuneSpec
from service.core.gradients import GradReduceDtype, resolve_gradient_bytes
from service.core.memory import Optimizer, Parallelism, Precision, training_memory
from service.core.plan import PlanSpec, plan, workload_for
from tests.core.helpers import hardware, preset

LLAMA_3_8B_PARAMS = 8_030_261_248
FP32 = GradReduceDtype.FP32


def _states(**kwargs):
    m = training_memory(preset("llama-3-8b"), include_activations=False, **kwargs)
    return m.weights_bytes, m.gradients_bytes, m.optimizer_bytes, m.bytes_per_param["gradients"]


def test_fp32_gradients_on_request_zero_1():
    # Llama-3-8B, dp 8, ZeRO-1, mixed bf16 with fp32 gradients (Megatron-LM --bf16): 2P + 4P + 12P/8
    p = LLAMA_3_8B_PARAMS
    got = _states(parallelism=Parallelism(dp=8, zero_stage=1), grad_reduce_dtype=FP32)
    assert got == (2 * p, 4 * p, 12 * p // 8, 4) == (16_060_522_496, 32_121_044_992, 12_045_391_872, 4)
    # the default stays ZeRO §3's 16-bit gradients
    assert _states(parallelism=Parallelism(dp=8, zero_stage=1))[1] == 2 * p == 16_060_522_496


def test_zero_2_shards_the_fp32_gradients():
    p = LLAMA_3_8B_PARAMS
    _, grads, _, _ = _states(parallelism=Parallelism(dp=8, zero_stage=2), grad_reduce_dtype=FP32)
    assert grads == 4 * p // 8 == 4_015_130_624


def test_zero_3_under_a_pipeline_takes_the_named_dtype():
    # FSDP2 with reduce_dtype=bfloat16: the stage's whole gradients in 2 bytes, not the default fp32
    par = Parallelism(dp=4, pp=2, zero_stage=3)
    default = _states(parallelism=par)
    bf16 = _states(parallelism=par, grad_reduce_dtype=GradReduceDtype.BF16)
    assert default[1] == 2 * bf16[1] and default[3] == 4 and bf16[3] == 2


def test_fp16_mixed_keeps_fp16_and_rejects_bf16():
    assert resolve_gradient_bytes(Precision.MIXED_FP16, None) == (2, 4)
    assert resolve_gradient_bytes(Precision.FP8, FP32) == (4, 4)
    with pytest.raises(InvalidSpecError) as err:
        training_memory(preset("llama-3-8b"), precision=Precision.MIXED_FP16, include_activations=False,
                        grad_reduce_dtype=GradReduceDtype.BF16)  # fmt: skip
    assert err.value.field == "grad_reduce_dtype"


def test_lora_adapters_gradients_follow_it():
    spec = FinetuneSpec(method=FinetuneMethod.LORA, rank=16)
    assert adapter_bytes(spec, Precision.MIXED_BF16, Optimizer.ADAMW, 1000).gradients == 2000
    assert adapter_bytes(spec, Precision.MIXED_BF16, Optimizer.ADAMW, 1000, FP32).gradients == 4000


def test_the_planner_counts_and_reduces_them():
    spec = PlanSpec(n_gpus=8, seq_len=4096, global_batch_size=64, grad_reduce_dtype=FP32,
                    fixed={"tp": 1, "pp": 1, "dp": 8, "zero_stage": 1, "micro_batch_size": 1, "recompute": "full"})  # fmt: skip
    work = workload_for(spec)
    assert (work.gradient_bytes, work.gathered_gradient_bytes) == (4, 4)
    assert workload_for(PlanSpec(n_gpus=8, seq_len=4096, global_batch_size=64)).gradient_bytes == 2
    fp32 = plan(preset("llama-3-8b"), hardware("h100-sxm"), spec).plans[0]
    bf16 = plan(preset("llama-3-8b"), hardware("h100-sxm"), dataclasses.replace(spec, grad_reduce_dtype=None)).plans[0]
    assert fp32.memory.gradients_bytes == 4 * LLAMA_3_8B_PARAMS
    assert fp32.memory.gradients_bytes - bf16.memory.gradients_bytes == 2 * LLAMA_3_8B_PARAMS
    assert fp32.step_seconds > bf16.step_seconds


def test_a_gathered_stage_s_last_bucket_is_reduced_in_its_gradients_dtype():
    # ZeRO-3 under a pipeline reduce-scatters its whole gradients once a step in their dtype (FSDP2's fp32 reduce
    # dtype by default), the last bucket after the backward included. Llama-3-8B on 2 stages, FSDP over 4 GPUs of an
    # H100 node, nothing to hide behind: fp32 instead of bf16 gathered gradients add 2 bytes a parameter to the
    # stage's reduce-scatter (4,015,132,672 parameters) and to its last bucket (the embedding, 128,256 x 4,096 =
    # 525,336,576 parameters), each a ring of 3/4 of the bytes over NVLink
    import numpy as np

    from service.core.memory import params_per_gpu
    from service.core.steptime import LayerTimes, Layout, Workload, dp_comm_step_seconds, layout_sizes, link_bandwidths

    arch, h100 = preset("llama-3-8b"), hardware("h100-sxm")
    params = params_per_gpu(arch, Parallelism(pp=2, dp=4))
    assert params == 4_015_132_672
    lay = Layout(tp=1, pp=2, dp=4, cp=1, ep=1, zero_stage=3, offload_optimizer=False, micro_batch_size=1, recompute=0,
                 sequence_parallel=False, virtual_stages=1, params_per_gpu=params)  # fmt: skip
    idle = LayerTimes(*(np.float64(0.0),) * 6)

    def exposed(gathered_bytes: int) -> float:
        work = Workload(seq_len=8192, global_batch_size=16, gradient_bytes=2, gathered_gradient_bytes=gathered_bytes)
        return float(dp_comm_step_seconds(arch, h100, work, lay, layout_sizes(arch, work, lay), idle, 16, 4))

    nvlink = link_bandwidths(h100)[0]
    extra = 3 / 4 * 2 * (4_015_132_672 + 525_336_576) / nvlink
    assert exposed(4) - exposed(2) == pytest.approx(extra, rel=1e-12)
