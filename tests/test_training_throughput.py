"""The step-time model against published training runs (the calibration sheet's training sections,
``validation/measurements/training_throughput.json``): every row within its bar or a known, explained
exception; the mean error of the rest within 7 %; and the whole runs the issue names, through the API."""

from __future__ import annotations

import pytest

from tests.api.test_cost import ok
from validation import cross_checks
from validation.throughput import (
    KNOWN_EXCEPTIONS,
    MEAN_TOLERANCE,
    ROW_TOLERANCE,
    mean_absolute_error,
    predictions,
    rows,
    tolerance,
    within,
)
from validation.throughput_exceptions import CONTROL_ROW, checks

PREDICTIONS = predictions()


@pytest.mark.parametrize("prediction", PREDICTIONS, ids=lambda p: p.row["id"])
def test_row_within_its_bar(prediction) -> None:
    row = prediction.row
    if row["id"] in KNOWN_EXCEPTIONS:
        # a known exception must still be outside: once inside, its reason goes
        assert not within(prediction), f"{row['id']} is now within {tolerance(row):.0%}: remove it from KNOWN_EXCEPTIONS"
        return
    assert within(prediction), (
        f"{row['id']}: predicted {prediction.predicted_tokens_per_second_per_gpu} tok/s/GPU against "
        f"{prediction.published_tokens_per_second_per_gpu:,.0f} published ({prediction.error})"
    )


def test_the_mean_error_and_the_bars_are_the_published_ones() -> None:
    assert (ROW_TOLERANCE, MEAN_TOLERANCE) == (0.15, 0.07)  # never widened to make a row pass
    assert mean_absolute_error(PREDICTIONS, excepted=False) <= MEAN_TOLERANCE
    assert set(KNOWN_EXCEPTIONS) <= {r["id"] for r in rows()}
    # every section of the calibration sheet's training data is here
    groups = {r["group"].split(",")[0] for r in rows()}
    assert groups >= {"Megatron-LM weak scaling", "Megatron-Core Llama 3", "Megatron-Bridge", "torchtitan", "Llama 3 405B"}


def test_the_exceptions_code_paths_do_not_explain_them() -> None:
    # validation/throughput_exceptions.py: what PyTorch's ring attention (fp32 merges and accumulations, exchanges
    # none hidden, non-causal halves) and torchao's Float8 (max-abs passes, transposed copies, weight casts) add
    # beyond the model, each at its upper bound, leaves every exception outside its bar (else the cost belongs in
    # the model) and keeps the cp 2 row, which runs the same ring code, inside its bar
    results = {check.row_id: check for check in checks(PREDICTIONS)}
    assert set(results) == set(KNOWN_EXCEPTIONS) | {CONTROL_ROW}
    for row_id, check in results.items():
        assert (abs(check.error_with_all) <= check.bar) == (row_id == CONTROL_ROW), (row_id, check.error_with_all)
    ring = {c.name: c.seconds for c in results["torchtitan-8b-256k-cp8"].candidates}
    assert all(v > 0 for k, v in ring.items() if "non-causal" not in k)
    assert [v for k, v in ring.items() if "non-causal" in k][0] < 0  # the model times every chunk causal


def test_the_moe_host_floor_binds_only_the_row_it_was_fitted_on() -> None:
    # kernel_efficiency.json moe_host: fitted on bridge-qwen3-30b-a3b-fp8; DeepSeek-V3 and Qwen3-235B-A22B take
    # longer per layer on the GPU than on the host, so they check the rest of the MoE costing, not the fit
    host = {p.row["id"]: p.result.plans[0].step["host_seconds"] for p in PREDICTIONS if p.row["id"].startswith("bridge-")}
    assert host["bridge-qwen3-30b-a3b-fp8"] > 0
    assert host["bridge-deepseek-v3"] == host["bridge-qwen3-235b-a22b"] == 0
    assert all(v == 0 for k, v in host.items() if "llama" in k)  # dense rows: no floor


def test_llama_3_405b_fits_as_it_ran_through_the_api(client) -> None:
    # Llama 3 (Dubey et al. 2024) §3.3.2 and Table 4: 405B on 16,384 H100 at tp 8, pp 16, cp 1, 8K
    # sequences, 16M-token batches, 400 TFLOP/s per GPU, without activation checkpointing
    body = {"model": {"preset": "llama-3.1-405b"}, "gpu": "h100-sxm", "n_gpus": 16384, "seq_len": 8192,
            "global_batch_size": 2048, "fixed": {"tp": 8, "pp": 16, "cp": 1, "micro_batch_size": 1},
            "usable_memory_fraction": 0.97, "top_k": 1}  # fmt: skip
    best = ok(client, "/v1/plan", body)["plans"][0]
    assert best["recompute"] != "full" and best["per_gpu_total_bytes"] <= 0.97 * 80 * 2**30
    assert best["tflops_per_gpu"] == pytest.approx(400, rel=0.15)
    # the schedule that fits is interleaved with the embedding and the output layer in chunks of their own
    assert best["pipeline_schedule"] == "interleaved" and best["virtual_stages"] == 8


def test_deepseek_v3_pre_training_gpu_hours(client) -> None:
    # DeepSeek-V3 technical report (arXiv 2412.19437): 14.8T tokens, 2.664M H800 GPU-hours (180K per
    # trillion tokens, a throughput figure: no downtime); 2,048 H800, PP 16 with DualPipe, EP 64 over 8
    # nodes, ZeRO-1, no TP (§3.2); FP8 with 1x128 / 128x128 scaling (§3.3); each token to at most 4
    # nodes (§3.2.2); 4K sequences, batches of 15,360 (§4.2)
    body = {"model": {"preset": "deepseek-v3"}, "tokens": 14.8e12, "gpu": "h800-sxm", "n_gpus": 2048, "seq_len": 4096,
            "global_batch_tokens": 15360 * 4096, "precision": "fp8", "fp8_recipe": "blockwise", "moe_max_nodes_per_token": 4,
            "fixed": {"tp": 1, "pp": 16, "ep": 64, "cp": 1, "zero_stage": 1, "pipeline_schedule": "dualpipe",
                      "micro_batch_size": 1},
            "effective_time_fraction": 1.0, "usd_per_gpu_hour": 2.0}  # fmt: skip
    data = ok(client, "/v1/cost/training", body)
    assert data["plan"]["pipeline_schedule"] == "dualpipe" and data["plan"]["ep"] == 64
    assert data["gpu_hours"] == pytest.approx(2.664e6, rel=0.20)
    assert data["assumptions"]["fp8_recipe"] == "blockwise" and data["assumptions"]["precision"] == "fp8"


def test_llama_3_1_405b_gpu_hours_and_carbon(client) -> None:
    # Llama 3.1 model card: 405B, 15.6T tokens, 30.84M H100-80GB GPU-hours, 8,930 t CO2eq location-based
    body = {"model": {"preset": "llama-3.1-405b"}, "tokens": 15.6e12, "gpu": "h100-sxm", "n_gpus": 16384, "seq_len": 8192,
            "usd_per_gpu_hour": 2.0}  # fmt: skip
    data = ok(client, "/v1/cost/training", body)
    assert data["gpu_hours"] == pytest.approx(30.84e6, rel=0.15)
    assert data["co2e_tonnes"] == pytest.approx(8_930, rel=0.15)


def test_an_api_plan_is_the_calibration_prediction(client) -> None:
    # what ACCURACY.md reports is what POST /v1/plan answers for the same row
    prediction = next(p for p in PREDICTIONS if p.row["id"] == "megatron-weak-70b")
    row = prediction.row
    body = {"model": row["model"], "gpu": row["gpu"], "n_gpus": row["n_gpus"], "seq_len": row["seq_len"],
            "global_batch_size": row["global_batch_size"], "fixed": row["fixed"], "top_k": 1} | row["options"]  # fmt: skip
    best = ok(client, "/v1/plan", body)["plans"][0]
    assert best["tokens_per_second"] / row["n_gpus"] == pytest.approx(prediction.predicted_tokens_per_second_per_gpu, rel=1e-9)


def test_the_405b_sweep_of_the_same_benchmark_grows_as_the_8b_exceptions_do() -> None:
    # validation/throughput_exceptions.py: torchtitan's own 405B context-parallel sweep (not a calibration row) is
    # within the long-context bar without context parallelism and outside it from cp 2 on, growing with cp, as the
    # 8B exceptions are: the cost the model misses belongs to that benchmark's context-parallel stack
    from validation.throughput_exceptions import cp_sweep_405b

    errors = {
        cp: p.predicted_tokens_per_second_per_gpu / p.published_tokens_per_second_per_gpu - 1 for cp, p in cp_sweep_405b().items()
    }
    assert 0 < errors[1] <= 0.20 and all(errors[cp] > 0.30 for cp in (2, 4, 8))
    assert errors[8] > errors[2] and errors[8] > errors[4]


def test_cross_checks_are_priced_and_reported_without_a_fit() -> None:
    # public runs outside the calibration sheet (validation/measurements/cross_checks.json): each priced with its
    # published layout, nothing fitted; the NVL72 row's 256 GPUs at 64 an NVLink domain
    preds = cross_checks.predictions()
    assert all(p.predicted_tokens_per_second_per_gpu for p in preds), [p.result.reason for p in preds if not p.result.plans]
    by_id = {p.row["id"]: p for p in preds}
    assert by_id["bridge25.11-gb200-llama3.1-405b"].row["hardware"] == {"gpus_per_node": 64}
    h100 = [p for p in preds if p.row["gpu"] == "h100-sxm"]
    assert cross_checks.mean_absolute_error(h100, ("h100-sxm",)) <= MEAN_TOLERANCE  # the sheet's mean bar holds on them
    assert all(p.row["id"] in "\n".join(cross_checks.render_section(preds)) for p in preds)
