"""grad_reduce_dtype on /v1/memory/training and /v1/plan: counted, stated in assumptions, a 422 when it does not fit."""

from __future__ import annotations

LLAMA_3_8B_PARAMS = 8_030_261_248
MEMORY = {"model": {"preset": "llama-3-8b"}, "include_activations": False, "parallelism": {"dp": 8, "zero_stage": 1}}


def test_memory_training_counts_fp32_gradients(client):
    fp32 = client.post("/v1/memory/training", json=MEMORY | {"grad_reduce_dtype": "fp32"})
    default = client.post("/v1/memory/training", json=MEMORY)
    assert fp32.status_code == default.status_code == 200, fp32.text
    a, b = fp32.json(), default.json()
    assert a["per_gpu"]["gradients_bytes"] == 4 * LLAMA_3_8B_PARAMS == 32_121_044_992
    assert b["per_gpu"]["gradients_bytes"] == 2 * LLAMA_3_8B_PARAMS
    assert a["per_gpu"]["optimizer_bytes"] == 12 * LLAMA_3_8B_PARAMS // 8
    assert a["assumptions"]["gradient_bytes_per_param"] == 4
    assert a["assumptions"]["grad_reduce_dtype"].startswith("fp32 (4 bytes")
    assert b["assumptions"]["grad_reduce_dtype"].startswith("bf16 by default (2 bytes")
    assert any("grad_reduce_dtype" in f for f in a["formulas"])


def test_a_16_bit_dtype_of_the_other_format_is_a_422(client):
    r = client.post("/v1/memory/training", json=MEMORY | {"precision": "mixed_fp16", "grad_reduce_dtype": "bf16"})
    assert r.status_code == 422 and "grad_reduce_dtype" in r.text


def test_plan_states_it(client):
    body = {"model": {"preset": "llama-3-8b"}, "gpu": "h100-sxm", "n_gpus": 8, "seq_len": 4096, "global_batch_size": 64,
            "fixed": {"tp": 1, "pp": 1, "dp": 8, "zero_stage": 1, "micro_batch_size": 1, "recompute": "full"}, "top_k": 1}  # fmt: skip
    fp32 = client.post("/v1/plan", json=body | {"grad_reduce_dtype": "fp32"})
    default = client.post("/v1/plan", json=body)
    assert fp32.status_code == default.status_code == 200, fp32.text
    assert fp32.json()["assumptions"]["grad_reduce_dtype"].startswith("fp32")
    assert default.json()["assumptions"]["grad_reduce_dtype"].startswith("bf16 by default")
    gap = fp32.json()["plans"][0]["per_gpu_total_bytes"] - default.json()["plans"][0]["per_gpu_total_bytes"]
    assert gap == 2 * LLAMA_3_8B_PARAMS
