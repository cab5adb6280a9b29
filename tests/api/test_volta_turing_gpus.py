"""The two GPUs without bf16 tensor cores that revision 0014 adds, through the API: the 16 GB Tesla V100 SXM2
and the T4 are served from the catalog; a mixed A100-40GB + V100-16GB cluster (Sailor, SOSP'25, plans such
pools on GCP) plans in mixed fp16 and refuses mixed bf16 with the reason; a 7B model serves on T4s, its
16-bit matmuls at the fp16 peak."""

from __future__ import annotations

import pytest

from service.catalog import loader
from tests.api.test_calculators import assert_finite, locs, problem
from tests.api.test_cost import ok

SEED = loader.gpus()
GIB = 2**30


@pytest.mark.parametrize("gpu_id", ["v100-16gb-sxm", "t4"])
def test_the_gpu_is_served_as_seeded(client, gpu_id: str) -> None:
    r = client.get(f"/v1/gpus/{gpu_id}")
    assert r.status_code == 200 and r.headers["ETag"] == '"1"'
    gpu = r.json()
    assert {k: gpu[k] for k in SEED[gpu_id] if k in gpu} == SEED[gpu_id]
    assert gpu["peak_tflops"].keys() == {"fp32", "tf32", "bf16", "fp16", "fp8", "int8"}
    assert gpu["peak_tflops"]["bf16"] is None and gpu["peak_tflops"]["tf32"] is None and gpu["peak_tflops"]["fp8"] is None
    assert gpu["memory_bytes"] == 16 * GIB
    assert gpu_id in {g["id"] for g in client.get("/v1/gpus?vendor=NVIDIA&limit=500").json()["items"]}


def test_the_datasheet_figures() -> None:
    v100, t4 = SEED["v100-16gb-sxm"], SEED["t4"]
    # V100 datasheet, SXM2 column: 900 GB/s, 125 TFLOPS tensor (640 tensor cores x 64 FMA x 2 x 1.53 GHz), 15.7 FP32, 300 W
    assert v100["memory_bandwidth_bytes_per_s"] == 900e9
    assert (v100["peak_tflops"]["fp16"], v100["peak_tflops"]["fp32"]) == (125.0, 15.7)
    tensor_tflops = 640 * 64 * 2 * 1.53e9 / 1e12
    assert v100["tdp_watts"] == 300 and tensor_tflops == pytest.approx(125.0, rel=0.005)
    assert "nvidia.com/en-us/data-center/v100" in v100["source"]
    # T4 datasheet: 320 GB/s (256-bit GDDR6 at 10 Gbps), FP16 65 (320 x 64 x 2 x 1.59 GHz), INT8 130, FP32 8.1, 70 W
    assert t4["memory_bandwidth_bytes_per_s"] == 256 / 8 * 10e9
    assert (t4["peak_tflops"]["fp16"], t4["peak_tflops"]["int8"]) == (65.0, 130.0)
    tensor_tflops, cuda_tflops = 320 * 64 * 2 * 1.59e9 / 1e12, 2560 * 2 * 1.59e9 / 1e12
    assert tensor_tflops == pytest.approx(t4["peak_tflops"]["fp16"], rel=0.005)
    assert cuda_tflops == pytest.approx(t4["peak_tflops"]["fp32"], rel=0.01)
    assert (t4["tdp_watts"], t4["interconnect_bytes_per_s"]) == (70, 32e9)  # PCIe Gen3 x16 both ways, no NVLink
    assert "nvidia.com/en-us/data-center/tesla-t4" in t4["source"]


MIXED = {"model": {"preset": "llama-3.2-1b"}, "pools": [{"gpu": "a100-40gb-sxm", "n_gpus": 8}, {"gpu": "v100-16gb-sxm", "n_gpus": 16}],
         "seq_len": 2048, "global_batch_size": 256, "top_k": 3}  # fmt: skip


def test_a_mixed_a100_v100_cluster_plans_in_fp16(client) -> None:
    data = ok(client, "/v1/plan", MIXED | {"precision": "mixed_fp16"})
    assert_finite(data)
    assert data["plans"], data.get("reason")
    memory = {"a100-40gb-sxm": 40 * GIB, "v100-16gb-sxm": 16 * GIB}
    for plan in data["plans"]:
        for stage in plan["stages"]:
            assert stage["per_gpu_total_bytes"] <= memory[stage["gpu"]]
    assert any(st["gpu"] == "v100-16gb-sxm" for plan in data["plans"] for st in plan["stages"])
    # the V100 computes at its dense fp16 tensor peak (datasheet 125 TFLOPS); the A100 at its fp16 one (312)
    notes = data["assumptions"]
    assert (notes["v100-16gb-sxm.peak_dtype"], notes["v100-16gb-sxm.peak_tflops"]) == ("fp16", 125.0)
    assert (notes["a100-40gb-sxm.peak_dtype"], notes["a100-40gb-sxm.peak_tflops"]) == ("fp16", 312.0)
    # adding the V100 pool never makes the job slower than the best single pool
    alone = data["best_homogeneous"]
    assert alone is not None and data["plans"][0]["step_time_seconds"] <= alone["step_time_seconds"]


def test_a_mixed_a100_v100_cluster_refuses_mixed_bf16_with_the_reason(client) -> None:
    # Volta has no bf16 tensor cores: the precision is the request's error, named (as for v100-32gb-sxm)
    data = problem(client, "/v1/plan", MIXED | {"precision": "mixed_bf16"})
    assert locs(data) == [["body", "precision"]]
    assert "no dense bf16 peak for v100-16gb-sxm: train in mixed_fp16 there" in data["detail"]


# the catalog prices no T4: the request states a price (any; the fit does not depend on it)
SERVE_7B = {"model": {"preset": "llama-2-7b"}, "gpu": "t4", "kv_dtype": "fp16", "prompt_tokens": 512, "output_tokens": 128,
            "concurrent_users": 4, "usd_per_gpu_hour": 0.5}  # fmt: skip


def test_a_7b_model_in_int4_serves_on_one_t4(client) -> None:
    data = ok(client, "/v1/plan/serving", SERVE_7B | {"weights_dtype": "int4"})
    assert_finite(data)
    (option,) = data["options"]
    assert option["fits"] is True and option["reason"] and option["tp"] == 1
    assert option["usable_memory_bytes"] < 16 * GIB
    assert (
        option["weights_bytes"] + option["batch_per_replica"] * option["kv_cache_bytes_per_sequence"]
        <= option["usable_memory_bytes"]
    )
    # every decode step reads the weights once: never faster than 320 GB/s allows
    assert option["time_per_output_token_seconds"] >= option["weights_bytes"] / 320e9
    assert data["assumptions"]["t4.peak_dtype"] == "fp16"
    assert "no bf16 tensor cores" in data["assumptions"]["t4.weights"]


def test_a_7b_model_in_fp16_needs_two_t4s(client) -> None:
    one = ok(client, "/v1/plan/serving", SERVE_7B | {"weights_dtype": "fp16", "tp": 1})
    (option,) = one["options"]
    # 6.7B parameters x 2 bytes = 12.6 GiB of weights against 16 GiB less the engine's reserve
    assert option["fits"] is False and "exceed" in option["reason"] and "tp=1" in option["reason"]
    two = ok(client, "/v1/plan/serving", SERVE_7B | {"weights_dtype": "fp16"})
    (option,) = two["options"]
    assert option["fits"] is True and option["tp"] == 2 and option["reason"]


def test_serving_compares_the_t4_with_the_v100(client) -> None:
    body = SERVE_7B | {"gpu": ["t4", "v100-16gb-sxm"], "weights_dtype": "int4"}
    options = {o["gpu"]: o for o in ok(client, "/v1/plan/serving", body)["options"]}
    t4, v100 = options["t4"], options["v100-16gb-sxm"]
    assert t4["fits"] and v100["fits"] and t4["tp"] == v100["tp"]
    # at one degree, the V100's 900 GB/s decodes faster than the T4's 320 GB/s
    assert v100["time_per_output_token_seconds"] < t4["time_per_output_token_seconds"]


def test_serving_one_t4_without_a_price_names_the_missing_price(client) -> None:
    body = {k: v for k, v in SERVE_7B.items() if k != "usd_per_gpu_hour"} | {"weights_dtype": "int4"}
    data = problem(client, "/v1/plan/serving", body)
    assert locs(data) == [["body", "usd_per_gpu_hour"]] and "no on_demand price for t4" in data["detail"]


def test_fp8_weights_have_no_kernel_before_ampere(client) -> None:
    # vLLM's weight-only FP8 (Marlin) needs compute capability 8.0+: a V100 or T4 option is unfit with the reason,
    # the A100 beside them serves FP8 weight-only at its bf16 peak
    body = SERVE_7B | {"gpu": ["t4", "v100-16gb-sxm", "a100-80gb-sxm"], "weights_dtype": "fp8"}
    options = {o["gpu"]: o for o in ok(client, "/v1/plan/serving", body)["options"]}
    for old in ("t4", "v100-16gb-sxm"):
        assert options[old]["fits"] is False and "Marlin" in options[old]["reason"] and "8.0" in options[old]["reason"]
    assert options["a100-80gb-sxm"]["fits"] is True
    cost = {"model": {"preset": "llama-2-7b"}, "gpu": "v100-16gb-sxm", "dtype": "fp8", "usd_per_gpu_hour": 1.0,
            "prompt_tokens": 512, "output_tokens": 128, "batch_size": 8}  # fmt: skip
    assert locs(problem(client, "/v1/cost/inference", cost)) == [["body", "dtype"]]


def test_a_disaggregated_pool_before_ampere_has_no_fp8_kernel_either(client) -> None:
    body = {"model": {"preset": "llama-2-7b"}, "gpu": "h100-sxm", "prefill_gpu": "v100-16gb-sxm", "weights_dtype": "fp8",
            "prompt_tokens": 512, "output_tokens": 128, "requests_per_second": 2, "disaggregated": True,
            "usd_per_gpu_hour": 1.0}  # fmt: skip
    (option,) = ok(client, "/v1/plan/serving", body)["options"]
    assert option["fits"] is False and "v100-16gb-sxm" in option["reason"] and "Marlin" in option["reason"]
    assert ok(client, "/v1/plan/serving", body | {"prefill_gpu": "a100-80gb-sxm"})["options"][0]["fits"] is True
