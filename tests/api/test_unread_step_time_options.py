"""Step-time options the answer would not read are a 422 naming them, on every endpoint that takes
them: the planner's on /v1/cost/training and /v1/cost/compare where the planner does not run (a stated
MFU or achieved TFLOP/s, a model without its architecture), a stated MFU's where it does, a mixture's
on a dense model and a fine-tune's without adapters (/v1/plan, /v1/cost/training, the budget
endpoints). An option sent as null is not given; a default sent is."""

from __future__ import annotations

import pytest

from service.schemas import inputs
from service.services.training_cost import COST_PLANNER_INPUTS
from tests.api.test_budget_unused_inputs import PLANNER_ONLY as BUDGET_PLANNER_ONLY
from tests.api.test_calculators import problem
from tests.api.test_cost import ok

H100_BF16_PEAK = 989.5e12  # dense BF16 FLOP/s of the catalog's H100 SXM

# each input only the cost answer's planner reads, with a valid value: the step-time options as the budget
# tests give them, the fixed layout, the batch, the downtime and the sequence
PLANNER_ONLY: dict[str, dict] = {f: v for f, v in BUDGET_PLANNER_ONLY.items() if f in inputs.STEP_TIME_INPUTS} | {
    "fixed": {"fixed": {"tp": 2}},
    "global_batch_tokens": {"global_batch_tokens": 2**22},
    "effective_time_fraction": {"effective_time_fraction": 0.8},
    "seq_len": {"seq_len": 4096},
}
RUN = {"tokens": 1e12, "gpu": "h100-sxm", "n_gpus": 8, "usd_per_gpu_hour": 2.0}
LLAMA = {"model": {"preset": "llama-3-8b"}} | RUN
MODES = {  # how the cost answer's planner does not run
    "stated-mfu": (LLAMA | {"mfu": 0.4}, ", not at a stated mfu or achieved_tflops_per_gpu"),
    "stated-tflops": (LLAMA | {"achieved_tflops_per_gpu": 400}, ", not at a stated mfu or achieved_tflops_per_gpu"),
    "no-architecture": ({"model": {"n_params": 8e9}} | RUN, ""),
}
CASES = [(mode, field) for mode in MODES for field in PLANNER_ONLY]


def test_the_cases_cover_every_planner_input() -> None:
    assert set(PLANNER_ONLY) == set(COST_PLANNER_INPUTS)


@pytest.mark.parametrize(("mode", "field"), CASES, ids=[f"{m}-{f}" for m, f in CASES])
def test_a_planner_option_of_the_cost_answer_is_a_422_where_the_planner_does_not_run(client, mode: str, field: str) -> None:
    base, suffix = MODES[mode]
    data = problem(client, "/v1/cost/training", base | PLANNER_ONLY[field])
    reasons = {tuple(e["loc"]): e["msg"] for e in data["errors"]}
    assert reasons[("body", field)].startswith(
        "used by the planner, which runs with the model's architecture (a preset or its fields)" + suffix
    ), data
    assert f"{field}: used by the planner" in data["detail"]


def test_precision_and_seq_len_say_what_stands_in_at_a_stated_mfu(client) -> None:
    data = problem(client, "/v1/cost/training", MODES["stated-mfu"][0] | {"precision": "fp8", "seq_len": 4096})
    assert data["detail"] == (
        "precision: used by the planner, which runs with the model's architecture (a preset or its fields), not at a "
        "stated mfu or achieved_tflops_per_gpu; at a stated MFU, dtype picks the peak; "
        "seq_len: used by the planner, which runs with the model's architecture (a preset or its fields), not at a stated "
        "mfu or achieved_tflops_per_gpu; at a stated MFU it counts the attention FLOPs (include_attention) and an adapter "
        "fine-tune's memory only"
    )


def test_at_a_stated_mfu_seq_len_counts_the_attention_and_a_null_option_is_not_given(client) -> None:
    base = MODES["stated-mfu"][0]
    nulls = {"attention_kernel": None, "moe_max_nodes_per_token": None, "fixed": None, "global_batch_tokens": None}
    plain = ok(client, "/v1/cost/training", base | nulls)
    assert plain["gpu_hours"] == pytest.approx(plain["total_flops"] / (0.4 * H100_BF16_PEAK) / 3600, rel=1e-12)
    assert "ignored" not in plain["assumptions"]
    short = ok(client, "/v1/cost/training", base | {"include_attention": True, "seq_len": 2048})
    long = ok(client, "/v1/cost/training", base | {"include_attention": True, "seq_len": 8192})
    # PaLM App. B: 12 L H Q T FLOPs a token of attention, L = 32, H Q = 4,096: 12 * 32 * 4096 * (8192 - 2048) more a token
    assert long["total_flops"] - short["total_flops"] == pytest.approx(12 * 32 * 4096 * 6144 * 1e12, rel=1e-9)


def test_a_stated_mfus_inputs_are_a_422_where_the_planner_runs(client) -> None:
    data = problem(client, "/v1/cost/training", LLAMA | {"scaling_efficiency": 0.8})
    assert data["detail"] == f"scaling_efficiency: used at a stated MFU only: {inputs.MFU_INPUTS['scaling_efficiency']}"
    data = problem(client, "/v1/cost/training", LLAMA | {"precision": "mixed_fp16", "dtype": "fp16"})
    assert data["detail"] == f"dtype: used at a stated MFU only: {inputs.MFU_INPUTS['dtype']}"
    # without precision, dtype picks the planner's precision: read
    planned = ok(client, "/v1/cost/training", LLAMA | {"dtype": "fp16"})
    assert planned["assumptions"]["precision"] == "mixed_fp16" and planned["plan"] is not None


def test_compare_refuses_a_batch_no_planner_reads(client) -> None:
    body = {"model": {"preset": "llama-3-8b"}, "tokens": 1e12, "n_gpus": 8, "gpus": ["h100-sxm"], "global_batch_tokens": 2**22}
    data = problem(client, "/v1/cost/compare", body | {"mfu": 0.4})
    assert data["detail"] == (
        "global_batch_tokens: used by the planner, which runs with the model's architecture (a preset or its fields), "
        "not at a stated mfu or achieved_tflops_per_gpu"
    )
    data = problem(client, "/v1/cost/compare", body | {"model": {"n_params": 8e9}})
    assert data["errors"][0]["loc"] == ["body", "global_batch_tokens"]
    rows = ok(client, "/v1/cost/compare", body)["rows"]
    assert rows and all(r["plan"] is not None for r in rows if r["fits"])


# --- options no step of the run reads: a mixture's on a dense model, a fine-tune's without adapters ---

MOE_ONLY = {f: v for f, v in PLANNER_ONLY.items() if f in inputs.MOE_OPTIONS}
PLAN = {"model": {"preset": "llama-3-8b"}, "gpu": "h100-sxm", "n_gpus": 8, "seq_len": 4096, "global_batch_size": 32, "top_k": 1}
BUDGET_PLANNED = {"gpu": "h100-sxm", "n_gpus": 64}
DENSE_BODIES = {
    "/v1/plan": PLAN,
    "/v1/cost/training": LLAMA,
    "/v1/budget": {"compute_flops": 5.76e23} | BUDGET_PLANNED,
    "/v1/budget/explicit": {"compute_flops": 5.76e23, "model": {"preset": "llama-2-7b"}} | BUDGET_PLANNED,
    "/v1/budget/for-loss": {"target_loss": 2.0} | BUDGET_PLANNED,
    "/v1/budget/lifetime": {"target_loss": 2.0, "inference_tokens": 1e13} | BUDGET_PLANNED,
}
MOE_CASES = [(path, field) for path in DENSE_BODIES for field in MOE_ONLY]


def test_the_moe_cases_cover_every_moe_option() -> None:
    assert set(MOE_ONLY) == set(inputs.MOE_OPTIONS) == {"ep_comm_overlap", "moe_max_nodes_per_token",
                                                        "moe_load_imbalance", "moe_dispatcher", "expert_tensor_parallel"}  # fmt: skip


def _path(key: str) -> str:
    return "/v1/budget" if key == "/v1/budget/explicit" else key


@pytest.mark.parametrize(("path", "field"), MOE_CASES, ids=[f"{p}-{f}" for p, f in MOE_CASES])
def test_a_mixtures_option_on_a_dense_model_is_a_422(client, path: str, field: str) -> None:
    data = problem(client, _path(path), DENSE_BODIES[path] | MOE_ONLY[field])
    assert [e["loc"] for e in data["errors"]] == [["body", field]], data
    assert data["detail"] == f"{field}: the model has no experts"


@pytest.mark.parametrize("path", list(DENSE_BODIES), ids=list(DENSE_BODIES))
def test_cuda_graphs_without_adapters_is_a_422(client, path: str) -> None:
    data = problem(client, _path(path), DENSE_BODIES[path] | {"cuda_graphs": True})
    assert data["detail"] == f"cuda_graphs: {inputs.ADAPTER_OPTIONS['cuda_graphs']}"


@pytest.mark.parametrize("path", ["/v1/plan", "/v1/cost/training"])
def test_cuda_graphs_on_a_full_fine_tune_or_a_mixtures_pre_training_is_a_422(client, path: str) -> None:
    # the MoE host floor (service.core.steptime_moe.host_wait_seconds) does not read cuda_graphs either
    full = DENSE_BODIES[path] | {"finetune": {"method": "full"}, "cuda_graphs": True}
    assert problem(client, path, full)["errors"][0]["loc"] == ["body", "cuda_graphs"]
    moe = DENSE_BODIES[path] | {"model": {"preset": "mixtral-8x7b"}, "n_gpus": 16, "cuda_graphs": True}
    assert problem(client, path, moe)["errors"][0]["loc"] == ["body", "cuda_graphs"]


def test_another_value_is_given_and_a_default_or_null_is_not(client) -> None:
    assert problem(client, "/v1/plan", PLAN | {"moe_load_imbalance": 1.2, "cuda_graphs": True})["errors"] == [
        {"loc": ["body", "moe_load_imbalance"], "msg": "the model has no experts", "type": "value_error"},
        {"loc": ["body", "cuda_graphs"], "msg": inputs.ADAPTER_OPTIONS["cuda_graphs"], "type": "value_error"},
    ]
    # a generated client sends every default: such a body means what one without them does
    step = ok(client, "/v1/plan", PLAN)["plans"][0]["step_time_seconds"]
    defaults = ok(client, "/v1/plan", PLAN | {"moe_load_imbalance": 1.0, "cuda_graphs": False})
    nulls = ok(client, "/v1/plan", PLAN | {"moe_max_nodes_per_token": None, "expert_tensor_parallel": None})
    assert defaults["plans"][0]["step_time_seconds"] == nulls["plans"][0]["step_time_seconds"] == step


def test_cuda_graphs_on_a_lora_cost_lifts_the_host_floor(client) -> None:
    # MLPerf's Llama-2-70B LoRA layout on 1,024 H100 (as tests/api/test_plan_finetune.py): the host issuing 80
    # adapted layers eagerly sets the step; captured in CUDA graphs, the GPU's work does
    body = {"model": {"preset": "llama-2-70b"}, "tokens": 1e9, "gpu": "h100-sxm", "n_gpus": 1024, "seq_len": 8192,
            "global_batch_tokens": 128 * 8192, "lora": {"r": 16}, "precision": "fp8", "tp_comm_overlap": True,
            "usd_per_gpu_hour": 2.0, "fixed": {"tp": 4, "pp": 1, "cp": 2, "micro_batch_size": 1, "recompute": "none"}}  # fmt: skip
    eager, graphs = ok(client, "/v1/cost/training", body), ok(client, "/v1/cost/training", body | {"cuda_graphs": True})
    assert eager["plan"]["step_time"]["host_seconds"] > 0 and graphs["plan"]["step_time"]["host_seconds"] == 0
    assert graphs["gpu_hours"] < eager["gpu_hours"]


def test_a_mixtures_option_on_an_explicit_mixture_in_a_budget_is_read(client) -> None:
    body = {"compute_flops": 1e22, "model": {"preset": "mixtral-8x7b"}, "gpu": "h100-sxm", "n_gpus": 64}
    deepep, alltoall = ok(client, "/v1/budget", body), ok(client, "/v1/budget", body | {"moe_dispatcher": "alltoall"})
    assert deepep["time_from"] == alltoall["time_from"] == "plan"
    assert alltoall["gpu_hours"] > deepep["gpu_hours"]  # every routed copy on its own, two more permutation passes
