"""The step-time options through the API (precision fp8, fp8_recipe, attention_kernel, efficiency,
fixed.pipeline_schedule, bandwidth overrides): bad input is a 422 naming the field, and each option
changes the answer the way it says."""

from __future__ import annotations

import pytest

from tests.api.test_calculators import problem
from tests.api.test_cost import ok

LLAMA_3_8B = {"preset": "llama-3-8b"}
# One layout of Llama 3 8B on 8 H100s, every dimension fixed (the search considers exactly it)
FIXED = {"tp": 2, "pp": 2, "dp": 2, "cp": 1, "zero_stage": 1, "micro_batch_size": 1, "recompute": "selective",
         "sequence_parallel": True, "virtual_stages": 1, "offload_optimizer": False, "pipeline_schedule": "1f1b"}  # fmt: skip
PLAN = {"model": LLAMA_3_8B, "gpu": "h100-sxm", "n_gpus": 8, "seq_len": 4096, "global_batch_size": 64, "fixed": FIXED}
COST = {"model": LLAMA_3_8B, "tokens": 1e12, "gpu": "h100-sxm", "n_gpus": 8, "seq_len": 4096, "usd_per_gpu_hour": 2.0}


def only_plan(client, body: dict) -> dict:
    """The one plan of a fully fixed layout, and the answer it came in."""
    data = ok(client, "/v1/plan", body)
    assert data["search"]["considered"] == 1 and len(data["plans"]) == 1, data["reason"]
    return data["plans"][0] | {"assumptions": data["assumptions"]}


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixed", "rule"),
    [
        # pp 8, v 2 on 8 GPUs: dp 1, and 4 sequences split into micro-batches of 1, 2 or 4, but 4 < 8 micro-batches
        (
            {"pp": 8, "virtual_stages": 2},
            "interleaving needs its micro-batches, global_batch_size / (dp * micro_batch_size), in multiples of pp",
        ),
        # DualPipe on pp 4: at most 4 micro-batches of the 4 sequences, fewer than 2*pp = 8
        ({"pp": 4, "pipeline_schedule": "dualpipe"}, "dualpipe needs at least 2*pp micro-batches"),
    ],
)
def test_a_batch_too_small_for_the_schedule_says_which_rule(client, fixed: dict, rule: str) -> None:
    body = {"model": LLAMA_3_8B, "gpu": "h100-sxm", "n_gpus": 8, "seq_len": 4096, "global_batch_size": 4, "fixed": fixed}
    data = problem(client, "/v1/plan", body)
    assert data["errors"][0]["loc"] == ["body", "global_batch_size"]
    assert rule in data["detail"] and "dp * micro_batch_size must divide it" in data["detail"]


@pytest.mark.parametrize(
    ("extra", "loc"),
    [
        ({"fp8_recipe": "fp4"}, ["body", "fp8_recipe"]),
        ({"fixed": {"pipeline_schedule": "gpipe"}}, ["body", "fixed", "pipeline_schedule"]),
        ({"n_gpus": 24, "fixed": {"pp": 3, "pipeline_schedule": "dualpipe"}}, ["body", "fixed", "pipeline_schedule"]),
        ({"fixed": {"pp": 4, "virtual_stages": 1, "pipeline_schedule": "interleaved"}}, ["body", "fixed", "pipeline_schedule"]),
        ({"fixed": {"pp": 1, "pipeline_schedule": "zero_bubble"}}, ["body", "fixed", "pipeline_schedule"]),
        ({"precision": "fp8", "gpu": "a100-80gb-sxm"}, ["body", "precision"]),  # Ampere: no FP8 tensor cores
        ({"precision": "fp8", "gpu": "v100-32gb-sxm"}, ["body", "precision"]),  # Volta: no BF16 or FP8 peak
        ({"precision": "fp8", "fp8_recipe": "mxfp8"}, ["body", "fp8_recipe"]),  # MX scaling needs Blackwell
        ({"efficiency": {"matmul": 0}}, ["body", "efficiency", "matmul"]),
        ({"efficiency": {"matmul": -0.1}}, ["body", "efficiency", "matmul"]),
        ({"efficiency": {"matmul": 1.5}}, ["body", "efficiency", "matmul"]),
        ({"efficiency": {"attention_core": 2}}, ["body", "efficiency", "attention_core"]),
        ({"efficiency": {"attention": 0.5}}, ["body", "efficiency", "attention"]),  # a typo fails loudly
        ({"attention_kernel": "flash3", "gpu": "a100-80gb-sxm"}, ["body", "attention_kernel"]),  # no measured curve
        ({"attention_kernel": "flash9"}, ["body", "attention_kernel"]),
        ({"intra_node_bandwidth_bytes_per_s": 10**14 + 1}, ["body", "intra_node_bandwidth_bytes_per_s"]),
        ({"inter_node_bandwidth_bytes_per_s": 1e300}, ["body", "inter_node_bandwidth_bytes_per_s"]),
    ],
)
def test_plan_bad_step_time_options_are_a_422_naming_the_field(client, extra: dict, loc: list) -> None:
    base = {"model": LLAMA_3_8B, "gpu": "h100-sxm", "n_gpus": 8}
    data = problem(client, "/v1/plan", base | extra)  # 422 problem+json, never a 500
    assert any(error["loc"][: len(loc)] == loc for error in data["errors"]), data
    assert data["detail"]


@pytest.mark.parametrize(
    ("extra", "loc"),
    [
        ({"fp8_recipe": "fp4"}, ["body", "fp8_recipe"]),
        ({"fixed": {"pipeline_schedule": "gpipe"}}, ["body", "fixed", "pipeline_schedule"]),
        ({"efficiency": {"matmul": 0}}, ["body", "efficiency", "matmul"]),
        ({"efficiency": {"matmul": 1.5}}, ["body", "efficiency", "matmul"]),
    ],
)
def test_cost_bad_step_time_options_are_a_422_naming_the_field(client, extra: dict, loc: list) -> None:
    data = problem(client, "/v1/cost/training", COST | extra)
    assert any(error["loc"][: len(loc)] == loc for error in data["errors"]), data


@pytest.mark.parametrize(
    ("extra", "loc"),
    [
        ({"precision": "fp8", "gpu": "a100-80gb-sxm"}, ["body", "precision"]),
        ({"precision": "fp8", "fp8_recipe": "mxfp8"}, ["body", "fp8_recipe"]),
        ({"attention_kernel": "flash3", "gpu": "a100-80gb-sxm"}, ["body", "attention_kernel"]),
        ({"n_gpus": 24, "fixed": {"pp": 3, "pipeline_schedule": "dualpipe"}}, ["body", "fixed", "pipeline_schedule"]),
    ],
    ids=["fp8-on-a100", "mxfp8-on-h100", "flash3-on-a100", "dualpipe-odd-pp"],
)
def test_cost_refuses_step_time_options_the_gpu_cannot_run(client, extra: dict, loc: list) -> None:
    data = problem(client, "/v1/cost/training", COST | extra)
    assert any(error["loc"][: len(loc)] == loc for error in data["errors"]), data


def test_the_bandwidth_cap_itself_is_accepted(client) -> None:
    # 1e14 B/s is the documented ceiling (service.core.efficiency.MAX_BANDWIDTH_BYTES_PER_S): allowed, and finite
    data = ok(client, "/v1/plan", PLAN | {"intra_node_bandwidth_bytes_per_s": 10**14, "inter_node_bandwidth_bytes_per_s": 10**14})
    assert data["assumptions"]["h100-sxm.intra_node_bandwidth_bytes_per_s"] == 1e14
    assert data["plans"][0]["step_time"]["tp_comm_seconds"] >= 0


# --- what the options do -------------------------------------------------------------------------


def test_fp8_is_faster_than_bf16_on_h100_and_says_what_it_assumed(client) -> None:
    bf16 = only_plan(client, PLAN)
    fp8 = only_plan(client, PLAN | {"precision": "fp8"})
    assert {k: fp8[k] for k in FIXED} == {k: bf16[k] for k in FIXED} == FIXED
    # the blocks' GEMMs at the 1,979 TFLOP/s FP8 peak (sustained 0.5) instead of 989 (0.6): faster, not 2x
    assert fp8["step_time_seconds"] < bf16["step_time_seconds"] * 0.95
    assert fp8["step_time_seconds"] > bf16["step_time_seconds"] / 2
    # MFU stays against the dense BF16 peak, so it rises with the speed
    assert fp8["mfu"] > bf16["mfu"]
    # the FP8 weight copies sit beside the BF16 weights
    assert fp8["per_gpu"]["weights_bytes"] > bf16["per_gpu"]["weights_bytes"]
    notes = fp8["assumptions"]
    assert notes["fp8_recipe"] == "tensorwise"
    assert "attention core" in notes["bf16_ops"] and "embedding" in notes["bf16_ops"]
    assert notes["h100-sxm.fp8_peak_tflops"] == 1979.0
    assert "fp8_recipe" not in bf16["assumptions"]
    blockwise = only_plan(client, PLAN | {"precision": "fp8", "fp8_recipe": "blockwise"})
    assert blockwise["assumptions"]["fp8_recipe"] == "blockwise"
    # DeepSeek-V3's per-block scales cost a little more memory and casting than one scale per tensor
    assert blockwise["per_gpu"]["weights_bytes"] > fp8["per_gpu"]["weights_bytes"]
    assert blockwise["step_time_seconds"] >= fp8["step_time_seconds"]


def test_an_efficiency_override_is_stated_and_slows_the_plan_in_proportion(client) -> None:
    catalog = only_plan(client, PLAN)
    assert catalog["assumptions"]["h100-sxm.efficiency.matmul"] == 0.54
    assert catalog["assumptions"]["h100-sxm.efficiency.matmul_source"].startswith("fitted")
    half = only_plan(client, PLAN | {"efficiency": {"matmul": 0.27}})
    assert half["assumptions"]["h100-sxm.efficiency.matmul"] == 0.27
    assert half["assumptions"]["h100-sxm.efficiency.matmul_source"] == "request"
    # the GEMMs take twice as long; attention, element-wise kernels and communication do not
    ratio = half["step_time"]["compute_seconds"] / catalog["step_time"]["compute_seconds"]
    assert 1.6 < ratio < 2.0
    assert half["per_gpu_total_bytes"] == catalog["per_gpu_total_bytes"]  # time only, not memory
    # with the attention core pinned too, halving both nearly doubles the step (element-wise kernels,
    # communication and the optimizer are what is left over)
    slow = only_plan(client, PLAN | {"efficiency": {"matmul": 0.27, "attention_core": 0.27}})
    slower = only_plan(client, PLAN | {"efficiency": {"matmul": 0.135, "attention_core": 0.135}})
    assert slower["assumptions"]["h100-sxm.efficiency.attention_core_source"] == "request"
    assert 1.9 < slower["step_time_seconds"] / slow["step_time_seconds"] <= 2.0


def test_a_measured_attention_kernel_can_be_chosen(client) -> None:
    default = only_plan(client, PLAN)
    assert default["assumptions"]["h100-sxm.attention_kernel"] == "cudnn"  # Hopper's default
    flash3 = only_plan(client, PLAN | {"attention_kernel": "flash3"})
    flash2 = only_plan(client, PLAN | {"attention_kernel": "flash2"})
    assert flash3["assumptions"]["h100-sxm.attention_kernel"] == "flash3"
    assert "Shah et al. 2024" in flash3["assumptions"]["h100-sxm.attention_kernel_source"]
    # Shah et al. 2024 Figure 5: FlashAttention-3 616 TFLOP/s at 16k, cuDNN 539, FlashAttention-2 335
    assert flash3["step_time_seconds"] < default["step_time_seconds"] < flash2["step_time_seconds"]


def test_fixed_dualpipe_holds_two_copies_of_the_weights(client) -> None:
    one_f_one_b = only_plan(client, PLAN)
    dual = only_plan(client, PLAN | {"fixed": FIXED | {"pipeline_schedule": "dualpipe"}})
    assert one_f_one_b["pipeline_schedule"] == "1f1b" and dual["pipeline_schedule"] == "dualpipe"
    assert {k: dual[k] for k in FIXED if k != "pipeline_schedule"} == {k: FIXED[k] for k in FIXED if k != "pipeline_schedule"}
    # deepseek-ai/DualPipe README: 2x parameters (and so 2x gradients and optimizer states)
    for part in ("weights_bytes", "gradients_bytes", "optimizer_bytes"):
        assert dual["per_gpu"][part] == pytest.approx(2 * one_f_one_b["per_gpu"][part], rel=1e-6), part
    # two stages: DualPipe's (PP/2 - 1) bubble vanishes where 1F1B's (PP - 1) does not
    assert dual["step_time"]["bubble_seconds"] == 0 < one_f_one_b["step_time"]["bubble_seconds"]


def test_fixed_zero_bubble_shrinks_the_bubble_at_1f1b_memory(client) -> None:
    one_f_one_b = only_plan(client, PLAN)
    zb = only_plan(client, PLAN | {"fixed": FIXED | {"pipeline_schedule": "zero_bubble"}})
    assert zb["pipeline_schedule"] == "zero_bubble"
    assert zb["per_gpu"] == one_f_one_b["per_gpu"]  # Qi et al. 2023 §3.1: ZB-H1 keeps 1F1B's memory
    assert 0 < zb["step_time"]["bubble_seconds"] < one_f_one_b["step_time"]["bubble_seconds"]


def test_the_memory_calculator_takes_the_schedule_and_the_recipe(client) -> None:
    base = {"model": LLAMA_3_8B, "seq_len": 4096, "flash_attention": True, "gradient_accumulation_steps": 16}
    plain = ok(client, "/v1/memory/training", base | {"parallelism": {"pp": 4}})
    dual = ok(client, "/v1/memory/training", base | {"parallelism": {"pp": 4, "pipeline_schedule": "dualpipe"}})
    assert dual["per_gpu"]["weights_bytes"] == 2 * plain["per_gpu"]["weights_bytes"]
    assert dual["activations"]["in_flight_microbatches"] == 5  # DualPipe README: PP + 1
    fp8 = ok(client, "/v1/memory/training", base | {"parallelism": {"pp": 4}, "precision": "fp8", "fp8_recipe": "blockwise"})
    assert fp8["per_gpu"]["weights_bytes"] > plain["per_gpu"]["weights_bytes"]
    odd = problem(client, "/v1/memory/training", base | {"parallelism": {"pp": 3, "pipeline_schedule": "dualpipe"}})
    assert any(e["loc"][:3] == ["body", "parallelism", "pipeline_schedule"] for e in odd["errors"]), odd


def test_cost_with_fp8_and_a_fixed_layout_answers_its_plan(client) -> None:
    bf16 = ok(client, "/v1/cost/training", COST | {"fixed": FIXED})
    fp8 = ok(client, "/v1/cost/training", COST | {"fixed": FIXED, "precision": "fp8"})
    assert fp8["fits"] is True and fp8["plan"] is not None
    assert {k: fp8["plan"][k] for k in FIXED} == FIXED
    assert fp8["assumptions"]["time_from"].startswith("the planner's best plan")
    assert fp8["assumptions"]["h100-sxm.fp8_peak_tflops"] == 1979.0
    # the same FLOPs in less time
    assert fp8["total_flops"] == bf16["total_flops"] and fp8["gpu_hours"] < bf16["gpu_hours"]


def test_cost_with_fp8_states_the_recipe(client) -> None:
    fp8 = ok(client, "/v1/cost/training", COST | {"fixed": FIXED, "precision": "fp8"})
    assert fp8["assumptions"]["fp8_recipe"] == "tensorwise" and fp8["assumptions"]["bf16_ops"]
