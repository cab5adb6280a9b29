"""The Mamba-2 hybrids through the endpoints: the Nemotron-H 8B, Falcon-H1 7B and Granite 4.0-H Tiny presets on
every calculator with their measured counts, serving a hybrid at 8K and 256K (its state constant, its
attention layers' KV cache growing), and the 422s of bad configs naming the key as the config spells it.

Exact counts come from ``validation/measurements/recurrent_models.json`` (transformers on the meta device,
``validation/measure_recurrent.py``); the config import of every measured config is compared in
``tests/api/test_recurrent_models.py``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.api.test_calculators import ok

MEASURED = json.loads(
    (Path(__file__).resolve().parents[2] / "validation" / "measurements" / "recurrent_models.json").read_text()
)["models"]
PRESETS = ("nemotron-h-8b", "falcon-h1-7b", "granite-4.0-h-tiny")
# Falcon-H1 7B: 44 layers, each a Mamba-2 state (conv (3072 + 2*256) x 4, scan 24 heads x 128 x 256) and the KV cache
# of its attention (2 KV heads of 128, K and V), bf16
FALCON_STATE_BYTES = 44 * ((3072 + 2 * 256) * 4 + 24 * 128 * 256) * 2
FALCON_KV_BYTES_PER_TOKEN = 44 * 2 * 2 * 128 * 2
# Nemotron-H 8B: 24 Mamba-2 blocks (conv (8192 + 2*8*128) x 4, scan 128 x 64 x 128); 4 attention blocks of 8 KV heads
NEMOTRON_STATE_BYTES = 24 * ((8192 + 2 * 8 * 128) * 4 + 128 * 64 * 128) * 2
NEMOTRON_KV_BYTES_PER_TOKEN = 4 * 2 * 8 * 128 * 2


@pytest.mark.parametrize("preset_id", PRESETS)
def test_hybrid_presets_answer_their_measured_count_on_every_calculator(client, preset_id):
    from service.catalog import loader

    row = loader.model_presets()[preset_id]
    data = ok(client, "/v1/params", {"model": {"preset": preset_id}})
    assert (data["total"], data["active"]) == (row["reference_params"], row["reference_active_params"])
    assert MEASURED[preset_id]["parameters"] == row["reference_params"]
    ok(client, "/v1/compute/training", {"model": {"preset": preset_id}, "tokens": 1e9, "include_attention": True})
    ok(client, "/v1/compute/inference", {"model": {"preset": preset_id}, "prompt_tokens": 1000, "output_tokens": 100})
    ok(client, "/v1/memory/inference", {"model": {"preset": preset_id}, "seq_len": 8192})
    ok(client, "/v1/memory/training", {"model": {"preset": preset_id}, "seq_len": 4096, "flash_attention": True})


@pytest.mark.parametrize(
    ("preset_id", "state", "kv_per_token"),
    [("falcon-h1-7b", FALCON_STATE_BYTES, FALCON_KV_BYTES_PER_TOKEN),
     ("nemotron-h-8b", NEMOTRON_STATE_BYTES, NEMOTRON_KV_BYTES_PER_TOKEN)],
)  # fmt: skip
def test_a_hybrid_state_is_constant_and_its_attention_cache_grows(client, preset_id, state, kv_per_token):
    for seq_len in (8192, 262144):
        data = ok(client, "/v1/memory/inference", {"model": {"preset": preset_id}, "seq_len": seq_len})
        assert data["state_cache_bytes_per_sequence"] == state
        assert data["kv_cache_bytes"] == kv_per_token * seq_len


@pytest.mark.parametrize(
    ("preset_id", "state", "kv_per_token"),
    [("nemotron-h-8b", NEMOTRON_STATE_BYTES, NEMOTRON_KV_BYTES_PER_TOKEN),
     ("falcon-h1-7b", FALCON_STATE_BYTES, FALCON_KV_BYTES_PER_TOKEN)],
)  # fmt: skip
def test_serving_a_hybrid_at_8k_and_256k(client, preset_id, state, kv_per_token):
    """The serving plan at 8K and at 256K context: each sequence's recurrent state the same, its attention layers' KV
    cache growing by kv_per_token a token, fewer sequences a replica, and the reason says what limits the batch."""
    body = {"model": {"preset": preset_id}, "gpu": "h100-sxm", "prompt_tokens": 8_000, "output_tokens": 192,
            "scenario": "offline", "n_gpus": 8}  # fmt: skip
    answers = [ok(client, "/v1/plan/serving", body | {"prompt_tokens": p})["options"][0] for p in (8_000, 262_000)]
    for o, tokens in zip(answers, (8_192, 262_192), strict=True):
        assert o["fits"] and o["tp"] * o["replicas"] == 8
        assert o["state_cache_bytes_per_sequence"] == state
        assert o["kv_cache_bytes_per_token"] == kv_per_token
        assert o["kv_cache_bytes_per_sequence"] == state + kv_per_token * tokens
        assert "of recurrent state, the same at any context" in o["reason"], o["reason"]
        assert "of attention KV cache, growing with the context" in o["reason"]
        assert f"holds {o['max_batch_per_replica']:,} a replica" in o["reason"]
    short, long = answers
    assert long["max_batch_per_replica"] < short["max_batch_per_replica"]


def test_a_hybrid_state_keeps_the_models_dtype_whatever_the_kv_caches(client):
    # vLLM holds a Mamba layer's state in the model's dtype (mamba_cache_dtype auto), not kv_cache_dtype: an FP8 KV
    # cache leaves Nemotron-H's state in bf16; fp32 weights keep it in fp32
    for dtype, state in (("bf16", NEMOTRON_STATE_BYTES), ("fp8", NEMOTRON_STATE_BYTES), ("fp32", 2 * NEMOTRON_STATE_BYTES)):
        memory = ok(client, "/v1/memory/inference", {"model": {"preset": "nemotron-h-8b"}, "seq_len": 8192, "dtype": dtype,
                                                       "kv_dtype": "fp8", "gpu": "h100-sxm"})  # fmt: skip
        assert (
            memory["state_cache_bytes_per_sequence"] == state
            and memory["kv_cache_bytes"] == 8192 * NEMOTRON_KV_BYTES_PER_TOKEN // 2
        )
        body = {"model": {"preset": "nemotron-h-8b"}, "gpu": "h100-sxm", "weights_dtype": dtype, "kv_dtype": "fp8",
                "prompt_tokens": 8_000, "output_tokens": 192}  # fmt: skip
        o = ok(client, "/v1/plan/serving", body)["options"][0]
        assert o["state_cache_bytes_per_sequence"] == state, dtype
        assert o["kv_cache_bytes_per_sequence"] == state + NEMOTRON_KV_BYTES_PER_TOKEN // 2 * 8_192


def test_serving_a_transformer_names_no_recurrent_state(client):
    body = {"model": {"preset": "llama-3-8b"}, "gpu": "h100-sxm", "prompt_tokens": 8_000, "output_tokens": 192}
    o = ok(client, "/v1/plan/serving", body)["options"][0]
    assert o["state_cache_bytes_per_sequence"] is None and "recurrent state" not in o["reason"]
    assert o["kv_cache_bytes_per_sequence"] == o["kv_cache_bytes_per_token"] * 8_192


NEMOTRON = MEASURED["nemotron-h-8b"]["config"]
FALCON = MEASURED["falcon-h1-7b"]["config"]
GRANITE = MEASURED["granite-4.0-h-tiny"]["config"]


@pytest.mark.parametrize(
    ("config", "loc"),
    [
        (NEMOTRON | {"hybrid_override_pattern": "M-*-"}, "model.hf_config.hybrid_override_pattern"),
        (NEMOTRON | {"ssm_state_size": 0}, "model.hf_config.ssm_state_size"),
        (NEMOTRON | {"mamba_d_ssm": 8192}, "model.hf_config.mamba_d_ssm"),
        (FALCON | {"mamba_d_state": 0}, "model.hf_config.mamba_d_state"),
        (FALCON | {"attn_layer_indices": [1]}, "model.hf_config.attn_layer_indices"),
        (GRANITE | {"layer_types": ["mamba"] * 39 + ["mlp"]}, "model.hf_config.layer_types"),
        (GRANITE | {"mamba_n_heads": 47}, "model.hf_config.mamba_n_heads"),
    ],
)  # fmt: skip
def test_bad_hybrid_configs_are_a_422_naming_the_key(client, config, loc):
    r = client.post("/v1/params", json={"model": {"hf_config": config}})
    assert r.status_code == 422, r.text
    assert loc in json.dumps(r.json()), r.text
