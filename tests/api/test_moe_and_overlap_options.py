"""The step-time options for mixtures of experts, overlap and the kernel stack through POST /v1/plan and
/v1/cost/training: each is stated in `assumptions`, moves the answer the way its physics says, and is
refused with a 422 naming it when out of range."""

from __future__ import annotations

import pytest

from tests.api.test_calculators import problem
from tests.api.test_cost import ok

# Mixtral 8x7B on 16 H100 (two nodes), tp 2 x ep 8: an expert group spans both nodes, the all-to-alls cross InfiniBand
MOE_FIXED = {"tp": 2, "pp": 1, "cp": 1, "dp": 8, "ep": 8, "zero_stage": 1, "micro_batch_size": 1, "recompute": "full",
             "sequence_parallel": True, "virtual_stages": 1, "offload_optimizer": False, "pipeline_schedule": "1f1b"}  # fmt: skip
MOE = {"model": {"preset": "mixtral-8x7b"}, "gpu": "h100-sxm", "n_gpus": 16, "seq_len": 4096, "global_batch_size": 64,
       "fixed": MOE_FIXED, "top_k": 1}  # fmt: skip
DENSE_FIXED = {"tp": 2, "pp": 1, "cp": 1, "dp": 4, "zero_stage": 1, "micro_batch_size": 1, "recompute": "none",
               "sequence_parallel": True, "virtual_stages": 1, "offload_optimizer": False, "pipeline_schedule": "1f1b"}  # fmt: skip
DENSE = {"model": {"preset": "llama-3-8b"}, "gpu": "h100-sxm", "n_gpus": 8, "seq_len": 8192, "global_batch_size": 32,
         "fixed": DENSE_FIXED, "top_k": 1}  # fmt: skip


def plan(client, body: dict) -> tuple[dict, dict]:
    data = ok(client, "/v1/plan", body)
    return data["plans"][0], data["assumptions"]


def test_node_limited_routing_cuts_the_scale_out_traffic(client) -> None:
    # DeepSeek-V3 §3.2.2: a token sent to at most M nodes; Mixtral's 2 of 8 experts over 8 ranks on two
    # nodes reach the other node with probability 1 - (1/2)^2 = 3/4, capped at 1/2 with M = 1
    free, notes = plan(client, MOE)
    assert notes["moe_max_nodes_per_token"] == "unlimited (uniform routing)"
    limited, limited_notes = plan(client, MOE | {"moe_max_nodes_per_token": 1})
    assert limited_notes["moe_max_nodes_per_token"] == 1
    assert 0 < limited["step_time"]["ep_comm_seconds"] < free["step_time"]["ep_comm_seconds"]
    assert limited["step_time"]["compute_seconds"] == free["step_time"]["compute_seconds"]


def test_load_imbalance_slows_the_busiest_expert_rank(client) -> None:
    balanced, notes = plan(client, MOE)
    assert notes["moe_load_imbalance"] == 1.0
    skewed, _ = plan(client, MOE | {"moe_load_imbalance": 1.5})
    # its expert GEMMs and all-to-alls take 1.5x; attention and the dense parts do not
    assert skewed["step_time"]["ep_comm_seconds"] == pytest.approx(1.5 * balanced["step_time"]["ep_comm_seconds"], rel=1e-9)
    assert (
        balanced["step_time"]["compute_seconds"]
        < skewed["step_time"]["compute_seconds"]
        < 1.5 * balanced["step_time"]["compute_seconds"]
    )
    assert skewed["per_gpu_total_bytes"] == balanced["per_gpu_total_bytes"]


def test_expert_all_to_all_overlap_hides_most_of_it(client) -> None:
    exposed, _ = plan(client, MOE)
    hidden, notes = plan(client, MOE | {"ep_comm_overlap": True})
    assert notes["ep_comm_overlap"] is True
    # overlapped with another micro-batch's compute: what is left is the interference (and any excess)
    assert hidden["step_time"]["ep_comm_seconds"] < 0.5 * exposed["step_time"]["ep_comm_seconds"]
    assert hidden["step_time_seconds"] < exposed["step_time_seconds"]


def test_the_alltoall_dispatcher_sends_each_routed_copy_on_its_own(client) -> None:
    deepep, notes = plan(client, MOE)
    assert notes["moe_dispatcher"] == "deepep" and deepep["step_time"]["host_seconds"] >= 0
    alltoall, notes = plan(client, MOE | {"moe_dispatcher": "alltoall"})
    assert notes["moe_dispatcher"] == "alltoall"
    # Mixtral's 2 experts on two nodes: each remote copy crosses InfiniBand, 2 x 1/2 = 1 a token, against
    # 1 - (1/2)^2 = 3/4 sent once per node; one expert per rank leaves no chunks to sort, so no more permutations
    assert alltoall["step_time"]["ep_comm_seconds"] > deepep["step_time"]["ep_comm_seconds"]
    assert alltoall["step_time"]["compute_seconds"] == deepep["step_time"]["compute_seconds"]


def test_tensor_parallel_overlap_hides_the_all_reduces(client) -> None:
    exposed, _ = plan(client, DENSE)
    hidden, notes = plan(client, DENSE | {"tp_comm_overlap": True})
    assert notes["tp_comm_overlap"] is True
    assert 0 < hidden["step_time"]["tp_comm_seconds"] < 0.5 * exposed["step_time"]["tp_comm_seconds"]


def test_eager_kernels_cost_more_memory_traffic(client) -> None:
    fused, notes = plan(client, DENSE)
    assert notes["fused_kernels"] is True
    eager, _ = plan(client, DENSE | {"fused_kernels": False})
    # torchtitan's Llama 3 8B: torch.compile 6,667 against eager 5,762 tokens/s per GPU (1.16x);
    # the unfused norms, rotary and SwiGLU cost between a few and 25 per cent here
    assert 1.03 < eager["step_time"]["compute_seconds"] / fused["step_time"]["compute_seconds"] < 1.25


def test_cost_takes_the_options_and_the_effective_time_fraction(client) -> None:
    body = {"model": {"preset": "llama-3-8b"}, "tokens": 1e12, "gpu": "h100-sxm", "n_gpus": 8, "seq_len": 8192,
            "usd_per_gpu_hour": 2.0, "fixed": DENSE_FIXED}  # fmt: skip
    default = ok(client, "/v1/cost/training", body)
    assert default["assumptions"]["effective_time_fraction"] == 0.9
    full = ok(client, "/v1/cost/training", body | {"effective_time_fraction": 1.0})
    assert full["gpu_hours"] == pytest.approx(default["gpu_hours"] * 0.9, rel=1e-9)
    eager = ok(client, "/v1/cost/training", body | {"fused_kernels": False})
    assert eager["gpu_hours"] > default["gpu_hours"] and eager["assumptions"]["fused_kernels"] is False


@pytest.mark.parametrize(
    ("extra", "loc"),
    [
        ({"moe_load_imbalance": 0.5}, ["body", "moe_load_imbalance"]),
        ({"moe_load_imbalance": 1e9}, ["body", "moe_load_imbalance"]),
        ({"moe_max_nodes_per_token": 0}, ["body", "moe_max_nodes_per_token"]),
        ({"effective_time_fraction": 0}, ["body", "effective_time_fraction"]),
        ({"tp_comm_overlap": "sometimes"}, ["body", "tp_comm_overlap"]),
        ({"moe_dispatcher": "nccl"}, ["body", "moe_dispatcher"]),
    ],
)
def test_out_of_range_options_are_a_422_naming_the_field(client, extra: dict, loc: list) -> None:
    for path, body in (("/v1/plan", MOE), ("/v1/cost/training", {"model": {"preset": "mixtral-8x7b"}, "tokens": 1e12,
                                                                 "gpu": "h100-sxm", "n_gpus": 16, "usd_per_gpu_hour": 2.0})):  # fmt: skip
        if path == "/v1/plan" and "effective_time_fraction" in extra:
            continue  # the planner's own bound is tested with it
        data = problem(client, path, body | extra)
        assert any(error["loc"][: len(loc)] == loc for error in data["errors"]), (path, data)


def test_parallel_folding_lays_experts_over_tensor_and_data_ranks(client) -> None:
    # Qwen3-235B-A22B as Megatron-Bridge runs it: tp 2, pp 8, ep 32 on 256 GPUs (dp 16): ep divides
    # tp*dp only with whole experts on each rank (expert_tensor_parallel 1, Megatron-Core's folding)
    body = {"model": {"preset": "qwen3-235b-a22b"}, "gpu": "h100-sxm", "n_gpus": 256, "seq_len": 4096, "global_batch_size": 2048,
            "fixed": {"tp": 2, "pp": 8, "ep": 32, "cp": 1, "virtual_stages": 4, "micro_batch_size": 1}, "top_k": 1}  # fmt: skip
    refused = problem(client, "/v1/plan", body)
    assert any(error["loc"][:3] == ["body", "fixed", "ep"] for error in refused["errors"]), refused
    folded = ok(client, "/v1/plan", body | {"expert_tensor_parallel": 1})
    best = folded["plans"][0]
    assert best["ep"] == 32 and best["dp"] == 16 and folded["assumptions"]["expert_tensor_parallel"] == 1
    assert problem(client, "/v1/plan", body | {"expert_tensor_parallel": 2})["errors"][0]["loc"] == [
        "body",
        "expert_tensor_parallel",
    ]


def test_load_imbalance_is_refused_on_dense_models_and_leaves_unspread_experts_alone(client) -> None:
    # the busiest expert-parallel rank waits for its extra tokens; one rank running every expert does not
    assert (
        problem(client, "/v1/plan", DENSE | {"moe_load_imbalance": 4})["detail"] == "moe_load_imbalance: the model has no experts"
    )
    unspread = MOE | {"fixed": MOE_FIXED | {"ep": 1, "zero_stage": 3}}  # ZeRO-3: every expert on each rank still fits
    assert (
        plan(client, unspread | {"moe_load_imbalance": 4})[0]["step_time_seconds"]
        == plan(client, unspread)[0]["step_time_seconds"]
    )


@pytest.mark.parametrize("efficiency", [{"matmul": 5e-324}, {"memory_bandwidth": 1e-310}, {"attention_core": 1e-4}])
def test_vanishing_efficiencies_are_refused(client, efficiency: dict) -> None:
    for path, body in (("/v1/plan", DENSE), ("/v1/cost/training", {"model": {"preset": "llama-3-8b"}, "tokens": 1e12,
                                                                   "gpu": "h100-sxm", "n_gpus": 8, "usd_per_gpu_hour": 2.0})):  # fmt: skip
        data = problem(client, path, body | {"efficiency": efficiency})
        assert data["errors"][0]["loc"][:3] == ["body", "efficiency", next(iter(efficiency))], data


def test_a_fixed_schedule_on_one_gpu_names_the_field_and_the_deadline_search_walks_on(client) -> None:
    body = {"model": {"preset": "llama-3-8b"}, "gpu": "h100-sxm", "n_gpus": 1, "seq_len": 4096, "global_batch_size": 64,
            "fixed": {"pipeline_schedule": "zero_bubble"}}  # fmt: skip
    assert problem(client, "/v1/plan", body)["errors"][0]["loc"] == ["body", "fixed", "pipeline_schedule"]
    found = ok(client, "/v1/plan", {k: v for k, v in body.items() if k not in ("n_gpus", "global_batch_size")}
               | {"tokens": 1e12, "deadline_days": 30})  # fmt: skip
    assert found["plans"] and found["plans"][0]["pipeline_schedule"] == "zero_bubble" and found["plans"][0]["n_gpus"] > 1


def test_a_recipe_needs_fp8_and_the_mfu_path_refuses_the_planners_options(client) -> None:
    body = {"model": {"preset": "llama-3-8b"}, "tokens": 1e12, "gpu": "h100-sxm", "n_gpus": 8, "usd_per_gpu_hour": 2.0}
    assert problem(client, "/v1/cost/training", body | {"fp8_recipe": "blockwise"})["errors"][0]["loc"][:1] == ["body"]
    data = problem(client, "/v1/cost/training", body | {"mfu": 0.4, "tp_comm_overlap": True, "fixed": {"tp": 2}})
    assert [e["loc"] for e in data["errors"]] == [["body", "tp_comm_overlap"], ["body", "fixed"]]
