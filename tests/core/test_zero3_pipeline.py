"""ZeRO-3 under a pipeline as FSDP2 runs under PyTorch's pipeline schedules (torchtitan's ``apply_fsdp``:
``reshard_after_forward=False`` when pipelining; the schedule syncs and reshards only after the last
micro-batch): the stage's weights stay gathered and its gradients accumulate whole in fp32, the optimizer
states sharded; one gather and one reduce-scatter a step (:class:`service.core.memory.ZeroSharding`)."""

from __future__ import annotations

import math

import pytest

from service.core.fp8 import Fp8Recipe
from service.core.memory import Parallelism, Precision, ZeroSharding, sharded_states, training_memory
from service.core.mixed_stages import MemoryTables
from service.core.params import count_params
from service.core.plan import PlanSpec, plan
from tests.core.helpers import preset
from tests.core.test_plan import hardware

ARCH = preset("llama-3-8b")


def states(pp: int, zero: int) -> tuple[int, int, int, int]:
    m = training_memory(ARCH, parallelism=Parallelism(dp=4, pp=pp, zero_stage=zero), seq_len=4096, include_activations=False)
    return m.params_per_gpu, m.weights_bytes, m.gradients_bytes, m.optimizer_bytes


def test_a_pipeline_keeps_zero_3_s_stage_whole_but_its_optimizer_states() -> None:
    p, weights, gradients, optimizer = states(pp=2, zero=3)
    assert (weights, gradients) == (2 * p, 4 * p)  # bf16 weights gathered, fp32 gradients accumulated
    assert optimizer == pytest.approx(12 * p / 4, abs=8)  # fp32 master and Adam's two moments over dp = 4
    # without a pipeline ZeRO-3 shards all three (Rajbhandari et al. 2020 §5.1)
    p1, w1, g1, o1 = states(pp=1, zero=3)
    assert (w1, g1) == (pytest.approx(2 * p1 / 4, abs=8), pytest.approx(2 * p1 / 4, abs=8))
    # under a pipeline it holds what ZeRO-1 holds, with its gradients in fp32
    _, w_one, g_one, o_one = states(pp=2, zero=1)
    assert (w_one, 2 * g_one, o_one) == (weights, gradients, optimizer)


def test_the_planner_prices_it_as_the_calculator_counts_it() -> None:
    fixed = {
        "tp": 1,
        "pp": 2,
        "dp": 4,
        "zero_stage": 3,
        "micro_batch_size": 1,
        "recompute": "full",
        "sequence_parallel": False,
        "pipeline_schedule": "1f1b",
    }
    best = plan(ARCH, hardware("h100-sxm"), PlanSpec(n_gpus=8, seq_len=4096, global_batch_size=32, fixed=fixed, top_k=1)).plans[0]
    counted = training_memory(ARCH, parallelism=Parallelism(dp=4, pp=2, zero_stage=3), seq_len=4096, include_activations=False)
    assert best.memory.weights_bytes == counted.weights_bytes and best.memory.gradients_bytes == counted.gradients_bytes
    assert best.memory.optimizer_bytes == counted.optimizer_bytes


def test_it_communicates_once_a_step_reducing_in_fp32() -> None:
    def step(zero: int) -> dict:
        fixed = {
            "tp": 1,
            "pp": 2,
            "dp": 4,
            "zero_stage": zero,
            "micro_batch_size": 1,
            "recompute": "full",
            "pipeline_schedule": "1f1b",
        }
        spec = PlanSpec(n_gpus=8, seq_len=4096, global_batch_size=32, fixed=fixed, top_k=1, precision=Precision.MIXED_BF16)
        return plan(ARCH, hardware("h100-sxm"), spec).plans[0].step

    # once a step as ZeRO-1, its reduce-scatter in fp32 (FSDP2's reduce dtype): more than ZeRO-1's bf16 one, less
    # than ZeRO-2's reduce-scatter of every micro-batch (8 here) or ZeRO-3's gathers and reductions of each
    assert step(1)["dp_comm_seconds"] < step(3)["dp_comm_seconds"] < step(2)["dp_comm_seconds"]


def test_its_bytes_per_parameter_are_the_gradients_it_counts() -> None:
    # the answer's gradient_bytes_per_param is the dtype the gradients are counted in: fp32 when gathered
    m = training_memory(ARCH, parallelism=Parallelism(dp=4, pp=2, zero_stage=3), seq_len=4096, include_activations=False)
    assert m.gradients_bytes == m.bytes_per_param["gradients"] * m.params_per_gpu
    alone = training_memory(ARCH, parallelism=Parallelism(dp=4, pp=1, zero_stage=3), seq_len=4096, include_activations=False)
    assert alone.bytes_per_param["gradients"] == 2


def fp8_weights(arch, *, zero: int, recipe: Fp8Recipe) -> tuple[int, int, tuple[str, ...]]:
    par = Parallelism(tp=8, pp=8, dp=8, zero_stage=zero)
    m = training_memory(
        arch, parallelism=par, seq_len=8192, include_activations=False, precision=Precision.FP8, fp8_recipe=recipe
    )
    return m.params_per_gpu, m.weights_bytes, m.notes


def test_under_fp8_a_gathered_stage_holds_its_matmul_weights_as_the_fp8_all_gather_output() -> None:
    # Llama 3.1 405B at torchtitan's Table 5 layout (FSDP 8 x TP 8 x PP 8, Float8 with enable_fsdp_float8_all_gather):
    # the busiest stage (a middle one of 16 layers, no embedding or LM head) holds 6,375,880,704 parameters a GPU,
    # the blocks' share of them matmul weights: 401,646,551,040 of the 405,853,388,800 - 2 x 128,256 x 16,384.
    # torchao's fsdp_pre_all_gather casts the shard to FP8 and FSDP2 keeps the gathered FP8 bytes as the unsharded
    # parameter through the step: 1 byte a matmul weight, 2 for the embedding and the norms, no BF16 weight, no copies
    arch = preset("llama-3.1-405b")
    p, weights, notes = fp8_weights(arch, zero=3, recipe=Fp8Recipe.TENSORWISE)
    matmul = p * 401_646_551_040 / (405_853_388_800 - 2 * 128_256 * 16_384)  # 6,375,814,903.1
    assert p == 6_375_880_704
    assert weights == math.ceil(2 * p - matmul) == 6_375_946_505  # 5.9 GiB, not 2 p + 2 x matmul = 23.8 GiB
    assert any("held gathered through the step at 1 bytes a parameter" in n for n in notes)
    # blockwise and MX: no FP8 all-gather in torchao's FSDP2 path: gathered in BF16, each matmul casting its weight
    for recipe in (Fp8Recipe.BLOCKWISE, Fp8Recipe.MXFP8):
        assert fp8_weights(arch, zero=3, recipe=recipe)[1] == 2 * p == 12_751_761_408
    # ZeRO-1 under the same pipeline keeps the BF16 weights and the FP8 row- and column-wise copies (service.core.fp8)
    assert fp8_weights(arch, zero=1, recipe=Fp8Recipe.TENSORWISE)[1] == 2 * p + math.ceil(2 * matmul) == 25_503_391_215


def test_the_stages_over_pools_hold_what_the_calculator_holds_under_fp8() -> None:
    # a stage of a pipeline over GPU types counts its states as sharded_states does: 16 layers of Llama 3 8B at tp 1
    # (a middle stage), ZeRO-3 under the pipeline, tensorwise FP8: 2 bytes a parameter less one a matmul weight
    spec = PlanSpec(n_gpus=16, seq_len=4096, global_batch_size=64, precision=Precision.FP8)
    tables = MemoryTables(ARCH, spec, [1])
    cfg = {"tp": 1, "dp": 4, "zero": 3, "b": 1, "rc": 0, "pp": 2}
    stage = tables.memory(cfg, 16, in_flight=1, first=False, last=False, optimizer_per_param=12.0)
    p = 16 * (41_943_040 + 176_160_768 + 2 * 4096)  # 16 layers: attention and MLP matmuls, two norms
    assert stage.params == p
    b = count_params(ARCH)  # the blocks' share of a stage without the embedding or the LM head
    matmul = p * (b.attention + b.mlp) / (b.total - b.embedding - b.lm_head)
    assert float(stage.weights) == pytest.approx(2 * p - matmul, rel=1e-12)
    zero = ZeroSharding(stage=3, offload=False, shards=4, gathered=True)
    states = sharded_states(ARCH, Precision.FP8, zero, dense_params=p, expert_params=0, end_params=0, optimizer_dense=0, optimizer_expert=0,
                            fp8_recipe=Fp8Recipe.TENSORWISE)  # fmt: skip
    assert states.weights == math.ceil(float(stage.weights))
