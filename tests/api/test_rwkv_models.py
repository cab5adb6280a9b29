"""RWKV-6 (Finch) and RWKV-7 (Goose) through the endpoints: the presets on every calculator and planner,
flash-linear-attention ``config.json`` import, a fixed state that does not grow with the context, and the
422s of bad input, each naming the key as the config or request spells it.

Exact counts come from ``validation/measurements/recurrent_models.json`` (fla 0.6.0 on the meta device,
``validation/measure_recurrent.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.api.test_calculators import ok

MEASURED = json.loads(
    (Path(__file__).resolve().parents[2] / "validation" / "measurements" / "recurrent_models.json").read_text()
)["models"]
PRESETS = ("rwkv7-world-0.1b", "rwkv7-world-0.4b", "rwkv7-world-1.5b", "rwkv7-world-2.9b", "rwkv6-world-1.6b",
           "rwkv6-world-3b", "rwkv6-world-7b")  # fmt: skip
# RWKV-7 World 2.9B: 32 layers of 40 heads' 64 x 64 fp32 WKV states and two bf16 token-shift vectors of 2560
RWKV7_29B_STATE_BYTES = 32 * (40 * 64 * 64 * 4 + 2 * 2560 * 2)


@pytest.mark.parametrize("preset_id", PRESETS)
def test_presets_answer_their_measured_count_on_every_calculator(client, preset_id):
    from service.catalog import loader

    row = loader.model_presets()[preset_id]
    data = ok(client, "/v1/params", {"model": {"preset": preset_id}})
    assert data["total"] == data["active"] == row["reference_params"] == MEASURED[preset_id]["parameters"]
    ok(client, "/v1/compute/training", {"model": {"preset": preset_id}, "tokens": 1e9, "include_attention": True})
    ok(client, "/v1/compute/inference", {"model": {"preset": preset_id}, "prompt_tokens": 1000, "output_tokens": 100})
    ok(client, "/v1/memory/inference", {"model": {"preset": preset_id}, "seq_len": 8192})
    ok(client, "/v1/memory/training", {"model": {"preset": preset_id}, "seq_len": 4096, "micro_batch_size": 2})


def test_an_rwkv7_state_is_constant_in_the_context_and_there_is_no_kv_cache(client):
    short = ok(client, "/v1/memory/inference", {"model": {"preset": "rwkv7-world-2.9b"}, "seq_len": 8192})
    long = ok(client, "/v1/memory/inference", {"model": {"preset": "rwkv7-world-2.9b"}, "seq_len": 262144, "batch_size": 4})
    assert short["kv_cache_bytes"] == long["kv_cache_bytes"] == 0
    assert short["state_cache_bytes_per_sequence"] == long["state_cache_bytes_per_sequence"] == RWKV7_29B_STATE_BYTES
    assert long["state_cache_bytes"] == 4 * RWKV7_29B_STATE_BYTES
    assert any("RWKV-7" in f and "fp32" in f for f in long["formulas"])


def test_serving_rwkv7_at_8k_and_256k_keeps_the_same_state_and_batch(client):
    body = {"model": {"preset": "rwkv7-world-2.9b"}, "gpu": "h100-sxm", "prompt_tokens": 8000, "output_tokens": 200}
    short = ok(client, "/v1/plan/serving", body)["options"][0]
    long = ok(client, "/v1/plan/serving", body | {"prompt_tokens": 250000})["options"][0]
    assert short["fits"] and long["fits"]
    assert short["kv_cache_bytes_per_sequence"] == long["kv_cache_bytes_per_sequence"]
    assert short["max_batch_per_replica"] == long["max_batch_per_replica"]  # nothing grows with the context
    # prefill scans the prompt: 31x the tokens take longer, but not quadratically so
    assert 20 < long["time_to_first_token_seconds"] / short["time_to_first_token_seconds"] < 40


@pytest.mark.parametrize("preset_id", ["rwkv7-world-1.5b", "rwkv6-world-1.6b"])
def test_the_planner_trains_rwkv_on_one_tensor_parallel_rank(client, preset_id):
    body = {"model": {"preset": preset_id}, "gpu": "h100-sxm", "n_gpus": 8, "seq_len": 4096, "global_batch_size": 64,
            "top_k": 3}  # fmt: skip
    plans = ok(client, "/v1/plan", body)["plans"]
    assert plans and all(p["tp"] == 1 and p["cp"] == 1 for p in plans)
    assert all(0 < p["mfu"] < 1 and p["step_time_seconds"] > 0 for p in plans)
    r = client.post("/v1/plan", json=body | {"fixed": {"tp": 2}})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "fixed", "tp"], r.text


RWKV7 = MEASURED["rwkv7-world-1.5b"]["config"]
RWKV6 = MEASURED["rwkv6-world-1.6b"]["config"]
EXPLICIT = {"n_layers": 4, "d_model": 256, "n_heads": 4, "d_ff": 1024, "vocab_size": 1000, "layer_types": ["rwkv"]}


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (EXPLICIT | {"rwkv_version": 5}, "model.rwkv_version"),
        (EXPLICIT | {"rwkv_version": 6, "rwkv_a_lora_rank": 32}, "model.rwkv_a_lora_rank"),
        (EXPLICIT | {"rwkv_version": 7, "rwkv_head_size": 48}, "model.rwkv_head_size"),
        (EXPLICIT | {"rwkv_version": 4, "rwkv_head_size": 64}, "model.rwkv_head_size"),
        (EXPLICIT | {"layer_types": ["attention"], "rwkv_gate_lora_rank": 64}, "model.rwkv_gate_lora_rank"),
        (EXPLICIT | {"rwkv_version": 7, "rwkv_decay_lora_rank": 0}, "rwkv_decay_lora_rank"),
        # fla configs: another family's key, what the core does not model, a rank of 0, heads that do not divide
        ({"hf_config": RWKV7 | {"proj_low_rank_dim": 32}}, "model.hf_config.proj_low_rank_dim"),
        ({"hf_config": RWKV7 | {"attention_hidden_size": 2048}}, "model.hf_config.attention_hidden_size"),
        ({"hf_config": RWKV7 | {"value_dim": 4096}}, "model.hf_config.value_dim"),
        ({"hf_config": RWKV7 | {"attn": {"layers": [1], "num_heads": 16}}}, "model.hf_config.attn"),
        ({"hf_config": RWKV7 | {"decay_low_rank_dim": 0}}, "model.hf_config.decay_low_rank_dim"),
        ({"hf_config": RWKV7 | {"head_dim": 48}}, "model.hf_config.head_dim"),
        ({"hf_config": RWKV7 | {"state_size": 16}}, "model.hf_config.state_size"),
        ({"hf_config": {k: v for k, v in RWKV6.items() if k != "expand_k"}}, "model.hf_config.expand_k"),
        ({"hf_config": RWKV6 | {"num_heads": 30}}, "model.hf_config.num_heads"),
        ({"hf_config": RWKV6 | {"a_low_rank_dim": 64}}, "model.hf_config.a_low_rank_dim"),
        ({"hf_config": RWKV6 | {"norm_bias": False}}, "model.hf_config.norm_bias"),
        ({"hf_config": RWKV6 | {"gate_low_rank_dim": 0}}, "model.hf_config.gate_low_rank_dim"),
    ],
)  # fmt: skip
def test_bad_rwkv_input_is_a_422_naming_the_key(client, body, loc):
    r = client.post("/v1/params", json={"model": body})
    assert r.status_code == 422, r.text
    assert loc in r.text, r.text
