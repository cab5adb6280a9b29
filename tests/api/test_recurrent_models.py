"""Mamba, Mamba-2, RWKV-4 and Jamba through the endpoints: presets, ``config.json`` import, explicit
``layer_types``, serving memory with a fixed state beside the KV cache, and the 422s of bad input.

Exact counts come from ``validation/measurements/recurrent_models.json`` (transformers on the meta
device, ``validation/measure_recurrent.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.api.test_calculators import ok

MEASURED = json.loads(
    (Path(__file__).resolve().parents[2] / "validation" / "measurements" / "recurrent_models.json").read_text()
)["models"]
PRESETS = ("mamba-2.8b", "mamba2-2.7b", "falcon-mamba-7b", "jamba-1.5-mini")
# Mamba-2 2.7B: 64 layers of a conv state (5120 + 2*128) * 4 and a scan state 80 * 64 * 128, bf16
MAMBA2_STATE_BYTES = 64 * ((5120 + 2 * 128) * 4 + 80 * 64 * 128) * 2
# Jamba 1.5 Mini: 28 Mamba layers of 8192 * (4 + 16) values; 4 attention layers of 2 * 8 KV heads * 128 per token
JAMBA_STATE_BYTES = 28 * 8192 * (4 + 16) * 2
JAMBA_KV_BYTES_PER_TOKEN = 4 * 2 * 8 * 128 * 2


@pytest.mark.parametrize("preset_id", PRESETS)
def test_presets_answer_their_measured_count_on_every_calculator(client, preset_id):
    from service.catalog import loader

    row = loader.model_presets()[preset_id]
    data = ok(client, "/v1/params", {"model": {"preset": preset_id}})
    assert (data["total"], data["active"]) == (row["reference_params"], row["reference_active_params"])
    ok(client, "/v1/compute/training", {"model": {"preset": preset_id}, "tokens": 1e9, "include_attention": True})
    ok(client, "/v1/compute/inference", {"model": {"preset": preset_id}, "prompt_tokens": 1000, "output_tokens": 100})
    ok(client, "/v1/memory/inference", {"model": {"preset": preset_id}, "seq_len": 8192})
    ok(client, "/v1/memory/training", {"model": {"preset": preset_id}, "seq_len": 4096, "flash_attention": True})


@pytest.mark.parametrize("name", sorted(MEASURED))
def test_config_import_counts_what_transformers_builds(client, name):
    m = MEASURED[name]
    data = ok(client, "/v1/models/from-hf-config", {"hf_config": m["config"]})
    assert data["total_params"] == m["parameters"] + m["checkpoint_buffers"]
    # the returned fields count the same when sent back
    assert ok(client, "/v1/params", {"model": data["model"]})["total"] == m["parameters"] + m["checkpoint_buffers"]


def test_a_mamba2_state_is_constant_in_the_context_and_there_is_no_kv_cache(client):
    short = ok(client, "/v1/memory/inference", {"model": {"preset": "mamba2-2.7b"}, "seq_len": 1024})
    long = ok(client, "/v1/memory/inference", {"model": {"preset": "mamba2-2.7b"}, "seq_len": 262144, "batch_size": 4})
    assert short["kv_cache_bytes"] == long["kv_cache_bytes"] == long["kv_cache_bytes_per_token"] == 0
    assert short["state_cache_bytes_per_sequence"] == long["state_cache_bytes_per_sequence"] == MAMBA2_STATE_BYTES
    assert long["state_cache_bytes"] == 4 * MAMBA2_STATE_BYTES
    assert long["total_bytes"] == long["weights_bytes"] + long["overhead_bytes"] + 4 * MAMBA2_STATE_BYTES


def test_a_hybrid_keeps_a_state_and_caches_only_its_attention_layers(client):
    for seq_len in (8192, 262144):
        data = ok(client, "/v1/memory/inference", {"model": {"preset": "jamba-1.5-mini"}, "seq_len": seq_len})
        assert data["state_cache_bytes_per_sequence"] == JAMBA_STATE_BYTES
        assert data["kv_cache_bytes"] == JAMBA_KV_BYTES_PER_TOKEN * seq_len


def test_a_transformer_keeps_no_state(client):
    data = ok(client, "/v1/memory/inference", {"model": {"preset": "llama-2-7b"}, "seq_len": 4096})
    assert data["state_cache_bytes_per_sequence"] is None and data["state_cache_bytes"] is None
    assert data["total_bytes"] == data["weights_bytes"] + data["kv_cache_bytes"] + data["overhead_bytes"]


def test_serving_a_hybrid_at_a_long_context_fits_more_sequences_than_its_kv_alone_would_suggest(client):
    body = {"model": {"preset": "jamba-1.5-mini"}, "gpu": "h100-sxm", "prompt_tokens": 8000, "output_tokens": 200}
    short = ok(client, "/v1/plan/serving", body)
    long = ok(client, "/v1/plan/serving", body | {"prompt_tokens": 250000})
    assert short["options"] and long["options"]


JAMBA = MEASURED["jamba-1.5-mini"]["config"]
MAMBA = MEASURED["mamba-130m"]["config"]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        # a pattern whose length does not divide the layer count
        ({"n_layers": 10, "d_model": 256, "n_heads": 4, "d_ff": 512, "vocab_size": 1000,
          "layer_types": ["mamba", "mamba", "attention"], "ssm_state_size": 16}, "model.layer_types"),
        # a state size of 0
        ({"n_layers": 4, "d_model": 256, "n_heads": 4, "d_ff": 512, "vocab_size": 1000, "layer_types": ["mamba"],
          "ssm_state_size": 0}, "ssm_state_size"),
        # state-space fields without a state-space layer
        ({"n_layers": 4, "d_model": 256, "n_heads": 4, "d_ff": 512, "vocab_size": 1000, "ssm_state_size": 16},
         "model.ssm_state_size"),
        # an unknown layer type
        ({"n_layers": 4, "d_model": 256, "n_heads": 4, "d_ff": 512, "vocab_size": 1000, "layer_types": ["retention"]},
         "layer_types"),
        # Mamba-2 heads that do not tile the inner width
        ({"n_layers": 4, "d_model": 256, "n_heads": 4, "d_ff": 512, "vocab_size": 1000, "layer_types": ["mamba2"],
          "ssm_state_size": 64, "ssm_n_heads": 7, "ssm_head_dim": 64}, "model.ssm_n_heads"),
        # RWKV layers mixed with attention
        ({"n_layers": 4, "d_model": 256, "n_heads": 4, "d_ff": 512, "vocab_size": 1000, "layer_types": ["rwkv", "attention"]},
         "model.layer_types"),
        # a config mixing two families, a layer type the family cannot have, a state size of 0: named as the config spells it
        ({"hf_config": MAMBA | {"num_heads": 24}}, "model.hf_config.num_heads"),
        ({"hf_config": JAMBA | {"state_size": 16}}, "model.hf_config.state_size"),
        ({"hf_config": MAMBA | {"layer_types": ["full_attention"] * 24}}, "model.hf_config.layer_types"),
        ({"hf_config": JAMBA | {"mamba_d_state": 0}}, "model.hf_config.mamba_d_state"),
        ({"hf_config": MAMBA | {"state_size": 0}}, "model.hf_config.state_size"),
        ({"hf_config": MEASURED["mamba2-2.7b"]["config"] | {"num_heads": 7}}, "model.hf_config.num_heads"),
        ({"hf_config": JAMBA | {"attn_layer_offset": 8}}, "model.hf_config.attn_layer_offset"),
    ],
)  # fmt: skip
def test_bad_recurrent_input_is_a_422_naming_the_key(client, body, loc):
    r = client.post("/v1/params", json={"model": body})
    assert r.status_code == 422, r.text
    assert loc in r.text, r.text


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/v1/memory/training", {"micro_batch_size": 1, "seq_len": 8192, "flash_attention": True,
                                 "parallelism": {"cp": 2, "dp": 1}}, ["body", "parallelism", "cp"]),
        ("/v1/plan", {"gpu": "h100-sxm", "n_gpus": 8, "seq_len": 8192, "global_batch_size": 64, "fixed": {"cp": 2}},
         ["body", "fixed", "cp"]),
        ("/v1/plan", {"gpu": "h100-sxm", "n_gpus": 8, "seq_len": 8192, "global_batch_size": 64, "fixed": {"tp": 3}},
         ["body", "fixed", "tp"]),
    ],
)  # fmt: skip
def test_layouts_a_hybrid_cannot_run_are_422s(client, path, body, loc):
    r = client.post(path, json={"model": {"preset": "jamba-1.5-mini"}} | body)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"] == loc


def test_training_memory_of_a_mamba2_model_counts_its_kernels_tensors(client):
    # 64 Mamba-2 layers at 4,096 tokens: per token the RMSNorm (6 bytes an element), the in_proj input, zxbcdt,
    # out_x and one fp32 rstd (tests/core/test_recurrent_activations.py), no attention scores and no MLP
    r = ok(client, "/v1/memory/training", {"model": {"preset": "mamba2-2.7b"}, "micro_batch_size": 1, "seq_len": 4096})
    per_layer = 4096 * (6 * 2560 + 2 * 2560 + 2 * 10576 + 2 * 5120 + 4)
    assert r["per_gpu"]["activations_bytes"] >= 64 * per_layer
    # + the eager loss's peak (12 bytes a logit) and the output layer
    assert r["per_gpu"]["activations_bytes"] - 64 * per_layer < 4096 * 50288 * 12 + 4096 * 2560 * 16
