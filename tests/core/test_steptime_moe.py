"""What a mixture-of-experts layer costs beyond a dense one (service.core.steptime_moe): the grouped
GEMMs' shape terms reproduce the published sweeps they come from, the alltoall dispatcher's traffic
and permutations are what its code sends and copies, a dense model is untouched, and the host floor
binds a small MoE's single-sequence micro-batches and fades with larger ones."""

from __future__ import annotations

import numpy as np
import pytest

from service.catalog import loader
from service.core.hardware import expert_all_to_all_seconds, link_bandwidths, memory_rate
from service.core.memory import Parallelism, Precision, params_per_gpu
from service.core.plan import PlanSpec, workload_for
from service.core.steptime import Layout, step_time
from service.core.steptime_moe import MoeDispatcher, expert_costs, grouped_gemm_factor, host_wait_seconds
from tests.core.helpers import hardware, preset

GEMM = loader.kernel_efficiency()["grouped_gemm"]


@pytest.mark.parametrize(
    ("k", "k_long", "tflops", "tflops_long"),
    [
        # DeepGEMM README (2025-02), H800 FP8: grouped contiguous, 4 experts x 8,192 rows, N 7,168 / 4,096
        (2048, 7168, 1099, 1297),
        # the same table's dense M = 4,096 GEMMs
        (2048, 7168, 1025, 1304),
        (1536, 7168, 990, 1304),
        (512, 7168, 590, 1304),
    ],
)
def test_the_fp8_shape_term_reproduces_deepgemm(k: int, k_long: int, tflops: float, tflops_long: float) -> None:
    ratio = grouped_gemm_factor(k, GEMM["fixed_k_fp8"]) / grouped_gemm_factor(k_long, GEMM["fixed_k_fp8"])
    assert float(ratio) == pytest.approx(tflops / tflops_long, rel=0.05)


@pytest.mark.parametrize(
    ("k", "tflops"),
    # XLA's H100 matmul table (matmul_interpolator_data.h, sm_90), BF16, M = N = 4,096, batch 2, against 808 at K = 4,096
    [(256, 464), (512, 608), (2048, 763)],
)
def test_the_bf16_shape_term_reproduces_xlas_h100_table(k: int, tflops: float) -> None:
    ratio = grouped_gemm_factor(k, GEMM["fixed_k_bf16"]) / grouped_gemm_factor(4096, GEMM["fixed_k_bf16"])
    assert float(ratio) == pytest.approx(tflops / 808, rel=0.05)


def test_the_shape_term_is_relative_to_the_fitted_dense_rate_and_never_above_it() -> None:
    assert grouped_gemm_factor(8192, 720) == 1.0 and grouped_gemm_factor(65536, 720) == 1.0
    assert grouped_gemm_factor(768, 0.0) == 1.0  # no sweep: no term
    assert float(grouped_gemm_factor(768, 720)) == pytest.approx(768 / 1488 * 8912 / 8192, rel=1e-12)


def test_the_alltoall_dispatcher_sends_every_remote_copy_over_the_network() -> None:
    # 8 of 128 experts over 32 ranks on 4 nodes: DeepEP sends a token once per other node holding one of
    # its experts, 3 (1 - (3/4)^8) = 2.70 copies; NCCL's all-to-all each remote copy, 8 x 3/4 = 6
    hw = hardware("h100-sxm")
    _, network = link_bandwidths(hw)
    tokens, k, h = 1e6, 8, 4096
    once = expert_all_to_all_seconds(tokens, k, h, 1, 32, hw)
    every = expert_all_to_all_seconds(tokens, k, h, 1, 32, hw, once_per_node=False)
    latency = 31 * 10e-6
    assert float(once) == pytest.approx(tokens * h * 3 * (1 - 0.75**8) / network + latency, rel=1e-12)
    assert float(every) == pytest.approx(tokens * h * 6 / network + latency, rel=1e-12)


def test_the_alltoall_dispatcher_sorts_the_chunks_twice_more() -> None:
    # Megatron-Core's alltoall dispatcher: permute, sort_chunks_by_idxs, its inverse, unpermute; the flex
    # dispatcher (DeepEP) permutes once after the dispatch and back before the combine
    arch, hw = preset("qwen3-235b-a22b"), hardware("h100-sxm")
    sizes = dict(tokens=4096.0, routed=2048.0, tp=2.0, ep=np.asarray(32.0), etp=1.0, imbalance=1.0, element_bytes=2, fp8=False)
    deepep = expert_costs(arch, hw, **sizes, dispatcher=MoeDispatcher.DEEPEP)
    alltoall = expert_costs(arch, hw, **sizes, dispatcher=MoeDispatcher.ALLTOALL)
    copies = 4096 * 8 / 2  # the routed rows this GPU's 4 experts multiply: its sequence-parallel half, 8 copies each
    assert float(alltoall.memory - deepep.memory) == pytest.approx(2 * 2 * copies * 4096 * 2 / memory_rate(hw), rel=1e-12)
    router = 2048 * 128 * 16 / memory_rate(hw)  # FP32 scores of the routed tokens
    assert float(deepep.memory) == pytest.approx(2 * 2 * copies * 4096 * 2 / memory_rate(hw) + router, rel=1e-12)
    assert alltoall.forward == deepep.forward and alltoall.backward == deepep.backward


def test_a_dense_model_keeps_its_mlp_at_the_fitted_rate() -> None:
    arch, hw = preset("llama-3-8b"), hardware("h100-sxm")
    costs = expert_costs(arch, hw, tokens=8192.0, routed=8192.0, tp=1.0, ep=1.0, etp=1.0, imbalance=1.0, element_bytes=2,
                         fp8=False, dispatcher=MoeDispatcher.DEEPEP)  # fmt: skip
    assert costs.memory == 0.0 and costs.backward == 2 * costs.forward
    assert host_wait_seconds(arch, hw, 0, 0.0) == 0.0


def _qwen3_30b_step(micro_batch_size: int):
    # Qwen3-30B-A3B on 16 H100 in FP8, EP 16 (Megatron-Bridge's recipe), 1,024 sequences of 4,096
    arch, hw = preset("qwen3-30b-a3b"), hardware("h100-sxm")
    lay = Layout(tp=1, pp=1, dp=16, cp=1, ep=16, zero_stage=1, offload_optimizer=False, micro_batch_size=micro_batch_size,
                 recompute=0, sequence_parallel=False, virtual_stages=1,
                 params_per_gpu=params_per_gpu(arch, Parallelism(dp=16, ep=16)))  # fmt: skip
    work = workload_for(PlanSpec(n_gpus=16, seq_len=4096, global_batch_size=1024, precision=Precision.FP8))
    return step_time(arch, hw, work, lay)


def test_the_host_floor_binds_single_sequence_micro_batches_of_a_small_moe() -> None:
    # the catalog's host seconds per MoE layer and micro-batch: at micro-batch 1 Qwen3-30B-A3B's 48 layers wait on
    # the host; four sequences a micro-batch carry four times the GPU work for the same host work (the published
    # signature: GB200 at micro-batch 4 takes 13.1 ms a layer for four times B200's 8.8 ms at micro-batch 1)
    host = loader.kernel_efficiency()["moe_host"]["layer_seconds"]
    one, four = _qwen3_30b_step(1), _qwen3_30b_step(4)
    assert float(one.host_seconds) > 0.1 * float(one.step_seconds)
    assert float(one.host_seconds) < float(one.microbatches) * 48 * host
    assert float(four.host_seconds) < 0.25 * float(one.host_seconds)
    assert float(four.step_seconds) < float(one.step_seconds)
    parts = [one.compute_seconds, one.recompute_seconds, one.tp_comm_seconds, one.cp_comm_seconds, one.ep_comm_seconds,
             one.pp_comm_seconds, one.bubble_seconds, one.dp_comm_seconds, one.optimizer_seconds, one.host_seconds]  # fmt: skip
    assert float(sum(parts)) == pytest.approx(float(one.step_seconds), rel=1e-9)
