"""``POST /v1/plan`` with ``pools``: plans over several GPU types in one job, the sanity ladder
(two pools of one GPU equal one pool of their sum; a pool of slow GPUs never makes the plan slower
than the best single pool; memory-bound stages on the larger memory) and the bad inputs."""

from __future__ import annotations

import time

import pytest

from tests.api.test_calculators import problem
from tests.api.test_cost import ok

SEVENTY_B = {"model": {"preset": "llama-3-70b"}, "seq_len": 8192, "global_batch_size": 512, "top_k": 3}


def test_a_mixed_cluster_pipelines_over_both_types_and_beats_either_alone(client) -> None:
    start = time.perf_counter()
    data = ok(client, "/v1/plan", SEVENTY_B | {"pools": [{"gpu": "h100-sxm", "n_gpus": 64}, {"gpu": "a100-80gb-sxm", "n_gpus": 256}],
                                              "tokens": 15e12})  # fmt: skip
    assert time.perf_counter() - start < 2.0  # the bound for this request
    best, alone = data["plans"][0], data["best_homogeneous"]
    assert {st["gpu"] for st in best["stages"]} == {"h100-sxm", "a100-80gb-sxm"}
    groups = {g: [st for st in best["stages"] if st["group"] == g] for g in {st["group"] for st in best["stages"]}}
    for stages in groups.values():  # one pipeline (or one per data-parallel group): every layer placed once in each
        assert sum(st["layers"] for st in stages) == 80
    # `pp`: each group's stages, or the largest group's where the groups' splits differ
    largest = max(groups.values(), key=lambda stages: stages[0]["n_gpus"] * len(stages))
    assert len(largest) == best["pp"]
    assert best["n_gpus"] == sum(st["n_gpus"] for st in best["stages"]) <= 320
    # each stage's parts add up to the plan's step (what it waits for is its bubble)
    for st in best["stages"]:
        assert sum(st["step_time"].values()) == pytest.approx(best["step_time_seconds"], rel=1e-9)
        assert st["per_gpu_total_bytes"] <= 0.95 * {"h100-sxm": 80, "a100-80gb-sxm": 80}[st["gpu"]] * 2**30 * 1.08
    assert sum(best["step_time"].values()) == pytest.approx(best["step_time_seconds"], rel=1e-9)
    # 64 H100 + 256 A100 together: faster than the 256 A100 alone, short of the two alone's sum of throughputs
    gpus = {g["gpu"]: g for g in data["gpus"]}
    assert alone["gpu"] == "a100-80gb-sxm" and best["step_time_seconds"] < 0.8 * alone["step_time_seconds"]
    assert best["tokens_per_second"] < gpus["h100-sxm"]["tokens_per_second"] + gpus["a100-80gb-sxm"]["tokens_per_second"]
    # sized to speed: an H100 stage holds more layers per GPU than an A100 stage (a pipeline across the
    # pools), or an H100 replica more sequences a step than an A100 replica (data-parallel groups)
    per_gpu = {st["gpu"]: st["layers"] * st["micro_batch_size"] * st["gradient_accumulation_steps"] / st["n_gpus"]
               for st in best["stages"]}  # fmt: skip
    assert per_gpu["h100-sxm"] > per_gpu["a100-80gb-sxm"]
    assert best["cost_usd"] > 0 and best["energy_kwh"] > 0 and best["mfu"] < 1
    assert "pipelines over h100-sxm x64 + a100-80gb-sxm x256" in data["search"]["searched"]
    assert "data-parallel groups over h100-sxm x64 + a100-80gb-sxm x256" in data["search"]["searched"]


@pytest.mark.parametrize("precision", ["mixed_bf16", "fp8"])
def test_two_pools_of_one_gpu_plan_as_one_pool_of_their_sum(client, precision: str) -> None:
    body = SEVENTY_B | {"precision": precision}
    split = ok(client, "/v1/plan", body | {"pools": [{"gpu": "h100-sxm", "n_gpus": 64}, {"gpu": "h100-sxm", "n_gpus": 64}]})
    whole = ok(client, "/v1/plan", body | {"gpu": "h100-sxm", "n_gpus": 128})
    assert split["plans"][0]["step_time_seconds"] == pytest.approx(whole["plans"][0]["step_time_seconds"], rel=1e-9)
    assert split["best_homogeneous"]["n_gpus"] == 128
    assert "pools_merged" in "".join(split["assumptions"])


def test_a_pool_of_slow_gpus_is_left_idle_or_given_few_layers(client) -> None:
    # 8 V100-class... here: 8 L4 (24 GB, ~121 dense BF16 TFLOP/s) beside 64 H100: never slower than the H100 alone
    data = ok(client, "/v1/plan", SEVENTY_B | {"pools": [{"gpu": "h100-sxm", "n_gpus": 64}, {"gpu": "l4", "n_gpus": 8}]})
    best, alone = data["plans"][0], data["best_homogeneous"]
    assert alone["gpu"] == "h100-sxm"
    assert best["step_time_seconds"] <= alone["step_time_seconds"]
    if best.get("stages"):
        slow = sum(st["layers"] for st in best["stages"] if st["gpu"] == "l4")
        assert slow <= 8
    else:
        assert best["gpu"] == "h100-sxm"  # left idle


def test_memory_bound_stages_go_to_the_larger_memory(client) -> None:
    # the same GPU with a 40 GB and an 80 GB memory: the larger holds more layers per stage
    data = ok(client, "/v1/plan", SEVENTY_B | {"pools": [{"gpu": "a100-40gb-sxm", "n_gpus": 64}, {"gpu": "a100-80gb-sxm", "n_gpus": 64}],
                                              "top_k": 10})  # fmt: skip
    mixed = [p for p in data["plans"] if p.get("stages")]
    assert mixed
    best = mixed[0]
    layers = {st["gpu"]: max(s["layers"] for s in best["stages"] if s["gpu"] == st["gpu"]) for st in best["stages"]}
    tps = {st["gpu"]: st["tp"] for st in best["stages"]}
    per_rank = {gpu: layers[gpu] / tps[gpu] for gpu in layers}  # layers per GPU of a stage's tensor group
    assert per_rank["a100-80gb-sxm"] > per_rank["a100-40gb-sxm"]
    for st in best["stages"]:
        usable = 0.95 * (40e9 if st["gpu"] == "a100-40gb-sxm" else 80e9) * 1.08
        assert st["per_gpu_total_bytes"] <= usable


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"pools": [{"gpu": "h100-sxm", "n_gpus": 0}, {"gpu": "a100-80gb-sxm", "n_gpus": 8}]}, "n_gpus"),
        ({"pools": [{"gpu": "h100-sxm", "n_gpus": 8}, {"gpu": "no-such-gpu", "n_gpus": 8}]}, "pools.1.gpu"),
        ({"pools": [{"gpu": "h100-sxm", "n_gpus": 12, "gpus_per_node": 8}]}, "gpus_per_node"),
        ({"pools": [{"gpu": "h100-sxm", "n_gpus": 12}, {"gpu": "a100-80gb-sxm", "n_gpus": 8}]}, "pools.0.n_gpus"),
        ({"pools": [{"gpu": "h100-sxm", "n_gpus": 8}], "gpu": "h100-sxm"}, "pools"),
        ({"pools": [{"gpu": "h100-sxm", "n_gpus": 8}], "n_gpus": 8}, "pools"),
        ({"pools": []}, "pools"),
        ({"pools": [{"gpu": "h100-sxm", "n_gpus": 8}, {"gpu": "a100-80gb-sxm", "n_gpus": 8}], "fixed": {"cp": 2}}, "fixed.cp"),
        # FP8 needs FP8 tensor cores in every pool (A100: none); MXFP8 needs Blackwell in every pool
        (
            {"pools": [{"gpu": "h100-sxm", "n_gpus": 8}, {"gpu": "a100-80gb-sxm", "n_gpus": 8}], "precision": "fp8"},
            "pools.1.gpu: a100-80gb-sxm has no FP8 tensor cores",
        ),
        (
            {
                "pools": [{"gpu": "h100-sxm", "n_gpus": 8}, {"gpu": "b200", "n_gpus": 8}],
                "precision": "fp8",
                "fp8_recipe": "mxfp8",
            },
            "pools.0.gpu: mxfp8 needs Blackwell tensor cores",
        ),
    ],
)
def test_bad_pools_are_a_422_naming_the_field(client, change: dict, field: str) -> None:
    body = {k: v for k, v in SEVENTY_B.items()} | change
    data = problem(client, "/v1/plan", body)
    assert field in data["detail"] or any(field in ".".join(map(str, e["loc"])) for e in data.get("errors", [])), data


def test_no_pool_fits_is_an_answer_with_the_reason(client) -> None:
    body = {"model": {"preset": "llama-3.1-405b"}, "seq_len": 8192, "global_batch_size": 16,
            "pools": [{"gpu": "l4", "n_gpus": 1}, {"gpu": "a100-40gb-sxm", "n_gpus": 1}]}  # fmt: skip
    data = ok(client, "/v1/plan", body)
    assert data["plans"] == [] and data["reason"] and data.get("best_homogeneous") is None


def test_h100_and_h200_plan_in_fp8_faster_than_in_bf16(client) -> None:
    """Llama-3-70B on 64 H100 + 64 H200 in FP8: every pool's matmuls at its FP8 peak (twice the BF16
    peak on both), so the best plan steps faster than in BF16 but less than twice as fast; the
    stages fit their GPUs with the FP8 weight copies, and the answer says what FP8 assumed."""
    pools = {"pools": [{"gpu": "h100-sxm", "n_gpus": 64}, {"gpu": "h200-sxm", "n_gpus": 64}]}
    fp8 = ok(client, "/v1/plan", SEVENTY_B | pools | {"precision": "fp8"})
    bf16 = ok(client, "/v1/plan", SEVENTY_B | pools)
    best, base = fp8["plans"][0], bf16["plans"][0]
    assert base["step_time_seconds"] / 2 < best["step_time_seconds"] < base["step_time_seconds"]
    assert fp8["best_homogeneous"]["step_time_seconds"] < bf16["best_homogeneous"]["step_time_seconds"]
    mixed = [p for p in fp8["plans"] if p["stages"]]
    assert mixed and {st["gpu"] for st in mixed[0]["stages"]} == {"h100-sxm", "h200-sxm"}
    memory = {"h100-sxm": 80e9, "h200-sxm": 141e9}
    for st in mixed[0]["stages"]:
        assert st["per_gpu_total_bytes"] <= 0.95 * memory[st["gpu"]] * 1.08
    assert fp8["assumptions"]["fp8_recipe"] == "tensorwise" and "fp8_peak_tflops" in "".join(fp8["assumptions"])
    # MXFP8 where every pool is Blackwell (B200 beside GB200): planned over both, in that recipe
    blackwell = {
        "pools": [{"gpu": "b200", "n_gpus": 64}, {"gpu": "gb200", "n_gpus": 64}],
        "precision": "fp8",
        "fp8_recipe": "mxfp8",
    }
    mx = ok(client, "/v1/plan", SEVENTY_B | blackwell)
    assert mx["plans"] and mx["assumptions"]["fp8_recipe"] == "mxfp8"
    assert "pipelines over b200 x64 + gb200 x64" in mx["search"]["searched"]


EIGHT_B = {"model": {"preset": "llama-3-8b"}, "seq_len": 4096, "global_batch_size": 512, "top_k": 3}


def test_data_parallel_groups_of_different_types_finish_together(client) -> None:
    """64 H100s and 64 A100 40 GB as two data-parallel groups: each group's replicas take their own
    micro-batch size and count, the shares sum to the batch, every stage fits its own GPU, and
    together they step faster than either pool alone (a pipeline across the pools, 2.868 s, a hair
    faster still)."""
    data = ok(
        client, "/v1/plan", EIGHT_B | {"pools": [{"gpu": "h100-sxm", "n_gpus": 64}, {"gpu": "a100-40gb-sxm", "n_gpus": 64}]}
    )
    best = next(p for p in data["plans"] if len({st["group"] for st in p["stages"]}) > 1)
    alone = data["best_homogeneous"]
    assert data["plans"][0]["step_time_seconds"] <= best["step_time_seconds"] < alone["step_time_seconds"]
    groups = {st["group"] for st in best["stages"]}
    assert groups == {0, 1} and len(best["stages"]) == 2 * best["pp"] and best["n_gpus"] == 128
    shares = {st["gpu"]: st["dp"] * st["micro_batch_size"] * st["gradient_accumulation_steps"] for st in best["stages"]}
    assert sum(shares.values()) == 512 and shares["h100-sxm"] > shares["a100-40gb-sxm"]
    assert best["dp"] == sum(st["dp"] for st in best["stages"][:: best["pp"]])
    assert best["cross_group_seconds"] is None and len({st["tp"] for st in best["stages"]}) == 1  # one shared split
    for st in best["stages"]:
        assert sum(st["step_time"].values()) == pytest.approx(best["step_time_seconds"], rel=1e-9)
        assert st["per_gpu_total_bytes"] <= 0.95 * {"h100-sxm": 80, "a100-40gb-sxm": 40}[st["gpu"]] * 1e9 * 1.08
    assert "one gradient ring over every replica at the slowest link" in data["search"]["searched"]


def test_a_much_slower_pool_never_makes_the_answer_slower(client) -> None:
    # 8 L4s beside 64 H100s: as a data-parallel group the L4s would take a few sequences, but the
    # shared split and their slow link cost more than they add: the H100s alone are the answer
    data = ok(client, "/v1/plan", EIGHT_B | {"pools": [{"gpu": "h100-sxm", "n_gpus": 64}, {"gpu": "l4", "n_gpus": 8}]})
    best, alone = data["plans"][0], data["best_homogeneous"]
    assert alone["gpu"] == "h100-sxm" and best["step_time_seconds"] <= alone["step_time_seconds"]
    for plan in data["plans"]:
        for st in plan["stages"] or []:
            if st["gpu"] == "l4" and st["group"]:
                fast = next(s for s in plan["stages"] if s["gpu"] == "h100-sxm")
                share = st["micro_batch_size"] * st["gradient_accumulation_steps"] * st["dp"] / st["n_gpus"]
                assert share < fast["micro_batch_size"] * fast["gradient_accumulation_steps"] * fast["dp"] / fast["n_gpus"]


def test_data_parallel_groups_of_their_own_splits_list_each_groups_tp_and_stages(client) -> None:
    """Llama-3-70B on 64 H100 (80 GB) and 256 A100 40 GB: among the answers, data-parallel groups
    whose splits differ (the H100 group's tp or stage count is not the A100 group's); each group's
    stages carry its own tp, ZeRO stage and micro-batches, every group's step parts include the
    all-reduce across the groups, and every field is present on every plan."""
    pools = [{"gpu": "h100-sxm", "n_gpus": 64}, {"gpu": "a100-40gb-sxm", "n_gpus": 256}]
    data = ok(client, "/v1/plan", SEVENTY_B | {"pools": pools, "top_k": 10})
    assert "each group its own tp x pp" in data["search"]["searched"]
    formulas = " ".join(data["formulas"])
    assert "hierarchical all-reduce" in formulas
    # the formula the answer states is the one it prices: each group's share over its own link, not the
    # largest share at the slowest link (which would give 0.088 s here, not 0.047 s)
    assert "P * gradient bytes / n_k over its own scale-out link" in formulas and "max_k(P" not in formulas
    assert all("cross_group_seconds" in p for p in data["plans"])
    own = [p for p in data["plans"] if p["cross_group_seconds"] is not None]
    assert own, [p["step_time_seconds"] for p in data["plans"]]
    plan = own[0]
    groups = {g: [st for st in plan["stages"] if st["group"] == g] for g in (0, 1)}
    assert {groups[0][0]["gpu"], groups[1][0]["gpu"]} == {"h100-sxm", "a100-40gb-sxm"}
    splits = {(stages[0]["tp"], len(stages)) for stages in groups.values()}
    assert len(splits) == 2  # the two groups' tensor x pipeline splits differ
    # each group's stages: one tp, its replicas x tp x stages its pool's GPUs, every layer once
    for stages in groups.values():
        gpus = {"h100-sxm": 64, "a100-40gb-sxm": 256}[stages[0]["gpu"]]
        assert len({(st["tp"], st["dp"], st["zero_stage"]) for st in stages}) == 1
        assert stages[0]["dp"] * stages[0]["tp"] * len(stages) == gpus and sum(st["layers"] for st in stages) == 80
        for st in stages:
            assert st["step_time"]["dp_comm_seconds"] >= plan["cross_group_seconds"] > 0
            assert sum(st["step_time"].values()) == pytest.approx(plan["step_time_seconds"], rel=1e-9)
    # 2 (G-1)/G * P * 2 bytes / 64 over an H100's 50 GB/s x NCCL's 0.93 (0.047 s) outlasts an A100's
    # P * 2 / 256 over 25 GB/s x 0.8 (0.028 s), G = 2
    assert plan["cross_group_seconds"] == pytest.approx(70_553_706_496 * 2 / 64 / (50e9 * 0.93) + 20e-6, rel=1e-9)
    assert plan["dp"] == groups[0][0]["dp"] + groups[1][0]["dp"] and plan["pp"] == len(groups[1])
    assert (
        sum(st["dp"] * st["micro_batch_size"] * st["gradient_accumulation_steps"] for st in (groups[0][0], groups[1][0])) == 512
    )


def test_pools_of_one_gpu_on_different_networks_count_each_gpus_energy_once(client) -> None:
    """Two pools of H100s on different scale-out links (not one pool: their hardware differs) in one
    plan: its energy is each GPU's at the H100's power for the run's hours, as the H100s alone count
    theirs, not once per pool of that GPU."""
    pools = [{"gpu": "h100-sxm", "n_gpus": 64}, {"gpu": "h100-sxm", "n_gpus": 64, "inter_node_bandwidth_bytes_per_s": 40e9}]
    data = ok(client, "/v1/plan", EIGHT_B | {"pools": pools, "tokens": 1e12})
    alone = data["gpus"][0]
    per_gpu_hour = alone["energy_kwh"] / alone["gpu_hours"]
    mixed = [p for p in data["plans"] if p["stages"]]
    assert mixed and all(p["n_gpus"] == 128 for p in mixed)
    for p in mixed:
        assert p["energy_kwh"] == pytest.approx(per_gpu_hour * p["gpu_hours"], rel=1e-9)


def test_pools_of_one_gpu_whose_sum_fills_no_whole_nodes_stay_apart(client) -> None:
    """8 H100s (a node) and 4 more (half a node): 12 fill no whole nodes of 8, so the two pools are
    planned as given, over both and each alone, not refused as one pool of 12; beside an A100 pool
    too. 8 + 8 + 4 merge the whole nodes (16) and keep the half node apart."""
    eight, four = {"gpu": "h100-sxm", "n_gpus": 8}, {"gpu": "h100-sxm", "n_gpus": 4}
    data = ok(client, "/v1/plan", EIGHT_B | {"pools": [eight, four]})
    assert data["plans"] and data["best_homogeneous"]["n_gpus"] == 8
    assert sorted(g["n_gpus"] for g in data["gpus"]) == [4, 8] and all(g["fits"] for g in data["gpus"])
    assert "pipelines over h100-sxm x8 + h100-sxm x4" in data["search"]["searched"]
    assert [p for p in data["plans"] if p["n_gpus"] == 12]
    three = ok(client, "/v1/plan", EIGHT_B | {"pools": [eight, four, {"gpu": "a100-80gb-sxm", "n_gpus": 8}]})
    assert three["plans"] and sorted(g["n_gpus"] for g in three["gpus"]) == [4, 8, 8]
    merged = ok(client, "/v1/plan", EIGHT_B | {"pools": [eight, eight, four]})
    assert sorted(g["n_gpus"] for g in merged["gpus"]) == [4, 16] and "h100-sxm.pools_merged" in merged["assumptions"]


def test_the_search_text_and_reason_say_what_was_held_fixed(client) -> None:
    body = {"model": {"preset": "llama-3-70b"}, "seq_len": 8192, "global_batch_size": 64, "top_k": 1,
            "pools": [{"gpu": "h100-sxm", "n_gpus": 16}, {"gpu": "a100-40gb-sxm", "n_gpus": 16}]}  # fmt: skip
    fixed = ok(client, "/v1/plan", body | {"fixed": {"zero_stage": 1}})
    assert "ZeRO 1 (fixed)" in fixed["search"]["searched"] and "ZeRO 0-3" not in fixed["search"]["searched"]
    # a whole 70B model on each GPU (tp 1, dp over all 32, ZeRO 0) fits no 40 GB or 80 GB GPU: the reason says so
    empty = ok(client, "/v1/plan", body | {"fixed": {"tp": 1, "dp": 32, "zero_stage": 0}})
    assert empty["plans"] == [] and "with tp=1, dp=32, zero_stage=0 fixed" in empty["reason"], empty["reason"]
