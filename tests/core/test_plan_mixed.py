"""Plans over pools (service.core.plan_mixed): the pieces agree with the single-type models they
reuse, and the search covers what it says."""

from __future__ import annotations

import dataclasses

import pytest

from service.core.compute import Recompute
from service.core.errors import InvalidSpecError
from service.core.fp8 import Fp8Recipe
from service.core.kernels import MEGATRON, CrossEntropy
from service.core.memory import Parallelism, Precision, training_memory
from service.core.mixed_stages import MemoryTables, layer_seconds, layout, pipeline_seconds
from service.core.plan import PlanSpec, plan, workload_for
from service.core.plan_mixed import Pool, plan_mixed
from service.core.steptime import RECOMPUTE_CODES
from tests.core.helpers import hardware, preset


def test_unequal_stages_take_the_sum_plus_the_slowest_for_the_rest() -> None:
    # Alpa (Zheng et al. 2022) §5.1 Eq. 2: T = sum_j t_j + (B - 1) max_j t_j; equal stages give
    # Narayanan et al. 2021 §2.2.1's (m + p - 1) t
    slowest, total = pipeline_seconds([1.0, 3.0, 2.0], 8)
    assert (slowest, total) == (3.0, 6.0 + 7 * 3.0)
    assert pipeline_seconds([2.0] * 4, 16)[1] == (16 + 4 - 1) * 2.0


@pytest.mark.parametrize(("precision", "recipe"), [(Precision.MIXED_BF16, Fp8Recipe.TENSORWISE),
                                                   (Precision.FP8, Fp8Recipe.TENSORWISE), (Precision.FP8, Fp8Recipe.BLOCKWISE)])  # fmt: skip
@pytest.mark.parametrize(("recompute", "zero", "loss"), [(Recompute.NONE, 1, CrossEntropy.FUSED), (Recompute.SELECTIVE, 0, CrossEntropy.FUSED),
                                                   (Recompute.FULL, 3, CrossEntropy.FUSED), (Recompute.FULL, 1, CrossEntropy.EAGER)])  # fmt: skip
def test_a_stage_holds_what_the_memory_calculator_says(
    recompute: Recompute, zero: int, loss: CrossEntropy, precision: Precision, recipe: Fp8Recipe
) -> None:
    """The busiest of an evenly split pipeline's stages, stage by stage, is training_memory's answer;
    under FP8 with the matmul weights' FP8 copies (none under ZeRO-3) and the linear layers'
    inputs kept in FP8, as the single-type memory counts them."""
    arch = preset("llama-3-70b")  # 80 layers on 4 stages: 20 each, no slack
    spec = PlanSpec(n_gpus=128, seq_len=4096, global_batch_size=256, precision=precision, fp8_recipe=recipe, cross_entropy=loss)
    tables = MemoryTables(arch, spec, [4])
    cfg = {"tp": 4, "dp": 8, "zero": zero, "b": 1, "rc": list(Recompute).index(recompute)}
    m = 256 // 8
    stages = [
        tables.memory(cfg, 20, in_flight=min(4 - r, m), first=r == 0, last=r == 3, optimizer_per_param=12.0) for r in range(4)
    ]
    expected = training_memory(arch, parallelism=Parallelism(tp=4, pp=4, dp=8, zero_stage=zero, sequence_parallel=True),
                               micro_batch_size=1, seq_len=4096, recompute=recompute, flash_attention=True, microbatches=m,
                               kernels=dataclasses.replace(MEGATRON, cross_entropy=loss), precision=precision, fp8_recipe=recipe)  # fmt: skip
    assert max(float(st.total) for st in stages) == pytest.approx(expected.total_bytes, rel=1e-6)
    assert float(stages[-1].params) == expected.params_per_gpu  # the last stage (LM head) holds the most
    assert float(stages[-1].weights) == pytest.approx(expected.weights_bytes, rel=1e-9)
    assert max(float(st.activations) for st in stages) == pytest.approx(expected.activations_bytes, rel=1e-9)


def test_two_pools_of_one_gpu_pipeline_as_one_pool_does() -> None:
    """The same layouts (1F1B, no interleaving, no context parallelism) priced over two pools of one
    GPU and by the single-type planner on their sum agree within 2 % (Alpa's fill and drain over
    unequal stages against the busiest stage's (p - 1) bubble)."""
    arch, h100 = preset("gpt-3-175b"), hardware("h100-sxm")
    spec = PlanSpec(n_gpus=256, seq_len=2048, global_batch_size=1536, top_k=1)
    split = plan_mixed(arch, [Pool(gpu="h100-sxm", hardware=h100, n_gpus=128)] * 2, spec).plans[0]
    same_space = {
        "pipeline_schedule": "1f1b",
        "virtual_stages": 1,
        "cp": 1,
        "offload_optimizer": False,
        "sequence_parallel": True,
    }
    whole = plan(arch, h100, dataclasses.replace(spec, fixed=same_space)).plans[0]
    assert split.step_seconds == pytest.approx(whole.step_seconds, rel=0.02)
    assert sum(st.layers for st in split.stages) == arch.n_layers
    assert split.n_gpus <= 256


def test_the_search_says_what_it_covered_and_rejects_what_it_cannot_plan() -> None:
    arch = preset("llama-3-70b")
    pools = [Pool(gpu="h100-sxm", hardware=hardware("h100-sxm"), n_gpus=64),
             Pool(gpu="a100-80gb-sxm", hardware=hardware("a100-80gb-sxm"), n_gpus=256)]  # fmt: skip
    found = plan_mixed(arch, pools, PlanSpec(n_gpus=320, seq_len=8192, global_batch_size=512, top_k=2))
    assert not found.search.cut and "all 2 orders" in found.search.searched
    assert 0 < found.search.feasible <= found.search.considered and len(found.plans) == 2
    assert found.plans[0].step_seconds <= found.plans[1].step_seconds
    with pytest.raises(InvalidSpecError) as err:
        plan_mixed(arch, pools, PlanSpec(n_gpus=320, seq_len=8192, global_batch_size=512, fixed={"cp": 2}))
    assert err.value.field == "fixed.cp"
    with pytest.raises(InvalidSpecError) as err:
        plan_mixed(
            arch, [dataclasses.replace(pools[0], n_gpus=12), pools[1]], PlanSpec(n_gpus=268, seq_len=8192, global_batch_size=512)
        )
    assert err.value.field == "pools.0.n_gpus"


def test_a_link_between_pools_faster_than_their_own_caps_nothing() -> None:
    """A send between pools leaves one GPU's scale-out link and enters the other's: a faster link
    between the pools (1 TB/s against the A100's 25 GB/s) leaves the pipeline as the slower pool's
    link prices it (0.108 s of sends a step, not 0.054), as the data-parallel groups cap it."""
    arch = preset("llama-3-70b")
    pools = [Pool(gpu="h100-sxm", hardware=hardware("h100-sxm"), n_gpus=64),
             Pool(gpu="a100-80gb-sxm", hardware=hardware("a100-80gb-sxm"), n_gpus=256)]  # fmt: skip
    spec = PlanSpec(n_gpus=320, seq_len=8192, global_batch_size=512, top_k=1)
    own = plan_mixed(arch, pools, spec).plans[0]
    fast = plan_mixed(arch, pools, spec, between_pools_bytes_per_s=1e12).plans[0]
    assert fast.step_seconds == own.step_seconds
    assert fast.step["pp_comm_seconds"] == own.step["pp_comm_seconds"] == pytest.approx(0.1080, rel=1e-3)
    slow = plan_mixed(arch, pools, spec, between_pools_bytes_per_s=1e9).plans[0]  # a slower link does slow it
    assert slow.step["pp_comm_seconds"] > 20 * own.step["pp_comm_seconds"]


def test_the_last_stage_holds_fewer_layers_for_its_output_layer() -> None:
    """Llama-3-8B (a 128K vocabulary: its output layer takes about two layers' time) on 8 H100 + 8
    L40S: the layers balance the stages' times with the last stage's output layer counted, so no
    layer moved off the slowest stage makes the slowest faster (Alpa §5.1: the pipeline runs at its
    slowest stage). Balancing the layers alone put 24 layers and the output layer on the H100s'
    last stage (0.311 s a micro-batch against the L40S's 0.257): 3.043 s a step, now 2.957."""
    arch = preset("llama-3-8b")
    pools = [Pool(gpu="h100-sxm", hardware=hardware("h100-sxm"), n_gpus=8), Pool(gpu="l40s", hardware=hardware("l40s"), n_gpus=8)]
    spec = PlanSpec(n_gpus=16, seq_len=4096, global_batch_size=64, top_k=1)
    best = plan_mixed(arch, pools, spec).plans[0]
    work = workload_for(spec)
    total = len(best.stages)
    per_layer, times = [], []
    for j, st in enumerate(best.stages):
        sec = layer_seconds(arch, pools[st.pool].hardware, work, layout(st.tp, total, st.dp, st.micro_batch_size,
                                                                         RECOMPUTE_CODES[st.recompute], st.zero_stage))  # fmt: skip
        per_layer.append(float(sec.per_layer))
        times.append(st.layers * float(sec.per_layer) + (float(sec.logits) if j == total - 1 else 0.0))
    assert sum(st.layers for st in best.stages) == 32
    assert max(times) == pytest.approx(pipeline_seconds(times, best.gradient_accumulation_steps)[0])
    slowest = times.index(max(times))
    for j in range(total):
        if j != slowest and best.stages[slowest].layers > 1:
            moved = list(times)
            moved[slowest] -= per_layer[slowest]
            moved[j] += per_layer[j]
            assert max(moved) >= max(times)
    assert best.step_seconds == pytest.approx(2.957, rel=1e-3)


def test_a_micro_batch_crosses_a_pool_boundary_as_one_message() -> None:
    """Llama-3-8B on 8 H100 + 8 L40S at tp 8 (a stage per pool) and micro-batches of 4: each of the
    16 micro-batches sends b*s*h/t bytes forward and back over the slower pool's scale-out link at
    the smaller NCCL share, one message with one hop's latency (as the single-type step sends it),
    not four."""
    arch = preset("llama-3-8b")
    h100, l40s = hardware("h100-sxm"), hardware("l40s")
    pools = [Pool(gpu="h100-sxm", hardware=h100, n_gpus=8), Pool(gpu="l40s", hardware=l40s, n_gpus=8)]
    spec = PlanSpec(n_gpus=16, seq_len=4096, global_batch_size=64, top_k=1, fixed={"tp": 8, "micro_batch_size": 4})
    best = plan_mixed(arch, pools, spec).plans[0]
    assert [st.tp for st in best.stages] == [8, 8] and best.gradient_accumulation_steps == 16
    rate = min(h100.inter_node_bandwidth_bytes_per_s, l40s.inter_node_bandwidth_bytes_per_s)
    share = min(h100.kernels.inter_node_collective, l40s.kernels.inter_node_collective)
    send = 4 * 2 * 4096 * 4096 / 8 / (rate * share) + 10e-6
    assert best.step["pp_comm_seconds"] == pytest.approx(2 * 16 * send, rel=1e-12)
