"""Budget inputs the answer would not read: the planner's when it does not run (no cluster, or a
stated MFU), a stated MFU's when the planner runs, a shape family beside an explicit model. Each is a
422 naming it and what it needs, never silently dropped."""

from __future__ import annotations

import pytest

from service.schemas import budget as s
from tests.api.test_calculators import problem
from tests.api.test_cost import ok

# each input only the planner reads, with a valid value (and what it needs beside it)
PLANNER_ONLY: dict[str, dict] = {
    "precision": {"precision": "fp8"},
    "fp8_recipe": {"precision": "fp8", "fp8_recipe": "blockwise"},
    "attention_kernel": {"attention_kernel": "flash2"},
    "tp_comm_overlap": {"tp_comm_overlap": True},
    "tp_comm_overlap_rs_dgrad": {"tp_comm_overlap": True, "tp_comm_overlap_rs_dgrad": True},
    "ep_comm_overlap": {"ep_comm_overlap": True},
    "moe_max_nodes_per_token": {"moe_max_nodes_per_token": 4},
    "moe_load_imbalance": {"moe_load_imbalance": 1.2},
    "moe_dispatcher": {"moe_dispatcher": "alltoall"},
    "expert_tensor_parallel": {"expert_tensor_parallel": 1},
    "fused_kernels": {"fused_kernels": False},
    "cross_entropy": {"cross_entropy": "eager"},
    "cuda_graphs": {"cuda_graphs": True},
    "grad_reduce_dtype": {"grad_reduce_dtype": "fp32"},
    "efficiency": {"efficiency": {"matmul": 0.7}},
    "shape_family": {"shape_family": "qwen2.5"},
    "seq_len": {"seq_len": 4096},
    "global_batch_tokens": {"global_batch_tokens": 2**22},
    "effective_time_fraction": {"effective_time_fraction": 0.8},
}
BASES = {
    "/v1/budget": {"compute_flops": 5.76e23},
    "/v1/budget/for-loss": {"target_loss": 2.0},
    "/v1/budget/lifetime": {"target_loss": 2.0, "inference_tokens": 1e13},
}
# how the planner does not run: no gpu, a gpu without a cluster, a cluster at a stated MFU
MODES = {
    "no-gpu": ({}, "used by the planner, which runs with gpu and n_gpus"),
    "no-cluster": ({"gpu": "h100-sxm"}, "used by the planner, which runs with gpu and n_gpus"),
    "stated-mfu": ({"gpu": "h100-sxm", "n_gpus": 64, "mfu": 0.4}, "not at a stated mfu or achieved_tflops_per_gpu"),
    "stated-tflops": ({"gpu": "h100-sxm", "n_gpus": 64, "achieved_tflops_per_gpu": 400}, "not at a stated mfu"),
}
CASES = [
    (path, mode, field)
    for path in BASES
    for mode in MODES
    for field in PLANNER_ONLY
    if not ("lifetime" in path and field == "shape_family")  # the lifetime optimum serves the family's shape with any gpu
]


def test_the_cases_cover_every_planner_input() -> None:
    assert set(PLANNER_ONLY) == set(s.PLANNER_INPUTS)


@pytest.mark.parametrize(("path", "mode", "field"), CASES, ids=[f"{p.rsplit('/', 1)[-1]}-{m}-{f}" for p, m, f in CASES])
def test_a_planner_input_is_a_422_where_the_planner_does_not_run(client, path: str, mode: str, field: str) -> None:
    extra, says = MODES[mode]
    data = problem(client, path, BASES[path] | extra | PLANNER_ONLY[field])
    reasons = {tuple(e["loc"]): e["msg"] for e in data["errors"]}
    assert ("body", field) in reasons, data
    assert reasons[("body", field)].startswith("used by the planner, which runs with gpu and n_gpus"), data
    assert says in reasons[("body", field)], data
    assert f"{field}: used by the planner" in data["detail"], data
    if "lifetime" in path:
        assert "deadline_days" not in reasons[("body", field)], data  # the lifetime optimum plans on n_gpus only


def test_precision_at_a_stated_mfu_points_to_dtype(client) -> None:
    data = problem(client, "/v1/budget", {"compute_flops": 5.76e23, "gpu": "h100-sxm", "precision": "fp8"})
    assert data["detail"] == (
        "precision: used by the planner, which runs with gpu and n_gpus or deadline_days; at a stated MFU, dtype picks the peak"
    )


def test_dtype_fp8_at_a_stated_mfu_is_the_fp8_peak(client) -> None:
    # 5.76e23 FLOPs at 40 % of an H100's 1,979 dense FP8 TFLOP/s: 202,124 GPU-hours (half the BF16 answer)
    body = {"compute_flops": 5.76e23, "gpu": "h100-sxm", "mfu": 0.4, "dtype": "fp8", "usd_per_gpu_hour": 2.0}
    r = ok(client, "/v1/budget", body)
    assert r["time_from"] == "mfu"
    assert r["gpu_hours"] == pytest.approx(5.76e23 / (0.4 * 1979e12) / 3600, rel=1e-9)
    assert r["gpu_hours"] == pytest.approx(202_122.3, rel=1e-6)


@pytest.mark.parametrize("field", ["n_gpus", "deadline_days"])
def test_a_planner_input_without_gpu_names_both_reasons(client, field: str) -> None:
    data = problem(client, "/v1/budget", {"compute_flops": 5.76e23, field: 64, "seq_len": 4096})
    assert [e["loc"] for e in data["errors"]] == [["body", field], ["body", "seq_len"]]
    assert data["detail"].startswith(f"{field}: needs gpu (") and data["detail"].endswith(
        "; seq_len: used by the planner, which runs with gpu and n_gpus or deadline_days"
    )


MFU_ONLY = {"dtype": "fp8", "scaling_efficiency": 0.9}
PLANNED = {"gpu": "h100-sxm", "n_gpus": 64}
MFU_CASES = [(path, field) for path in BASES for field in MFU_ONLY if not ("lifetime" in path and field == "dtype")]


@pytest.mark.parametrize(("path", "field"), MFU_CASES, ids=[f"{p.rsplit('/', 1)[-1]}-{f}" for p, f in MFU_CASES])
def test_a_stated_mfus_input_is_a_422_where_the_planner_runs(client, path: str, field: str) -> None:
    data = problem(client, path, BASES[path] | PLANNED | {field: MFU_ONLY[field]})
    assert [e["loc"] for e in data["errors"]] == [["body", field]]
    assert data["errors"][0]["msg"] == f"used at a stated MFU only: {s.MFU_INPUTS[field]}"
    assert data["detail"].startswith(f"{field}: used at a stated MFU only: ")


def test_a_deadline_runs_the_planner_too(client) -> None:
    data = problem(client, "/v1/budget", {"budget_usd": 1e6, "gpu": "h100-sxm", "deadline_days": 30, "dtype": "fp8"})
    assert data["detail"].startswith("dtype: used at a stated MFU only: the peak a stated MFU applies to; the planner")


def test_the_lifetime_optimum_reads_dtype_and_shape_family_with_a_gpu() -> None:
    # dtype prices the sizes no replica serves at the training rate; shape_family is what is served
    planned = s.LifetimeRequest(target_loss=2.0, inference_tokens=1e13, dtype="fp8", shape_family="qwen2.5", **PLANNED)
    at_mfu = s.LifetimeRequest(target_loss=2.0, inference_tokens=1e13, gpu="h100-sxm", shape_family="qwen2.5")
    assert s.unused_inputs(planned, planner=True) == {} and s.unused_inputs(at_mfu, planner=False) == {}


def test_the_lifetime_shape_family_needs_a_gpu(client) -> None:
    data = problem(client, "/v1/budget/lifetime", BASES["/v1/budget/lifetime"] | {"shape_family": "olmo2"})
    assert data["detail"] == "shape_family: needs gpu (the GPU type that trains and serves the family's shape at each size)"


def test_shape_family_beside_an_explicit_model_is_a_422(client) -> None:
    body = {"compute_flops": 5.76e23, "model": {"preset": "llama-2-7b"}, "shape_family": "qwen2.5"} | PLANNED
    data = problem(client, "/v1/budget", body)
    assert data["detail"] == "shape_family: the explicit model fixes the architecture: give one or the other"


def test_another_value_counts_and_a_default_or_null_does_not(client) -> None:
    base = {"compute_flops": 5.76e23, "gpu": "h100-sxm"}
    assert problem(client, "/v1/budget", base | {"effective_time_fraction": 0.8})["errors"][0]["loc"] == [
        "body",
        "effective_time_fraction",
    ]
    # a generated client sends every default: the default means what leaving it out does
    assert ok(client, "/v1/budget", base | {"effective_time_fraction": 0.9}) == ok(client, "/v1/budget", base)
    r = ok(client, "/v1/budget", base | {"seq_len": None, "global_batch_tokens": None, "mfu": 0.4, "usd_per_gpu_hour": 2.0})
    assert r["gpu_hours"] == pytest.approx(5.76e23 / (0.4 * 989.5e12) / 3600, rel=1e-9)
