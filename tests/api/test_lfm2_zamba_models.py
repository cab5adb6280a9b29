"""LFM2 and Zamba through the endpoints: the LFM2 1.2B, 2.6B and 8B-A1B, Zamba 7B and Zamba2 1.2B and 7B presets on
every calculator with their measured counts (training memory, FLOPs, the planner and serving included), serving at
8K and 256K (the short convolutions' and Mamba layers' state constant, the attention layers' KV cache growing), and
the 422s of bad configs naming the key as the config spells it.

Exact counts come from ``validation/measurements/recurrent_models.json`` (transformers on the meta device,
``validation/measure_recurrent.py``); the config import of every measured config is compared in
``tests/api/test_recurrent_models.py``."""

from __future__ import annotations

import json

import pytest

from tests.api.test_calculators import ok
from tests.api.test_recurrent_models import MEASURED

PRESETS = ("lfm2-1.2b", "lfm2-2.6b", "lfm2-8b-a1b", "zamba-7b", "zamba2-1.2b", "zamba2-7b")
# LFM2 1.2B: 10 convolution layers of 2048 channels x 3 taps; 6 attention layers of 8 KV heads of 64 (K and V), bf16
LFM2_STATE_BYTES = 10 * 2048 * 3 * 2
LFM2_KV_BYTES_PER_TOKEN = 6 * 2 * 8 * 64 * 2
# Zamba2 7B: 81 Mamba-2 layers (conv (7168 + 2*2*64) x 4, scan 112 x 64 x 64); 13 uses of the shared blocks, each
# its own KV cache of 32 KV heads of 224
ZAMBA2_STATE_BYTES = 81 * ((7168 + 2 * 2 * 64) * 4 + 112 * 64 * 64) * 2
ZAMBA2_KV_BYTES_PER_TOKEN = 13 * 2 * 32 * 224 * 2


@pytest.mark.parametrize("preset_id", PRESETS)
def test_presets_answer_their_measured_count_on_every_calculator(client, preset_id):
    from service.catalog import loader

    row = loader.model_presets()[preset_id]
    data = ok(client, "/v1/params", {"model": {"preset": preset_id}})
    assert (data["total"], data["active"]) == (row["reference_params"], row["reference_active_params"])
    assert MEASURED[preset_id]["parameters"] == row["reference_params"]
    model = {"model": {"preset": preset_id}}
    ok(client, "/v1/compute/training", model | {"tokens": 1e9, "include_attention": True})
    ok(client, "/v1/compute/inference", model | {"prompt_tokens": 1000, "output_tokens": 100, "include_attention": True})
    ok(client, "/v1/memory/inference", model | {"seq_len": 8192, "dtype": "int4"})
    tp = 1 if preset_id == "zamba2-1.2b" else 2  # one Mamba-2 group is not split (tests/api/test_recurrent_models.py)
    for recompute in ("none", "selective", "full"):
        ok(client, "/v1/memory/training", model | {"seq_len": 4096, "flash_attention": True, "recompute": recompute,
                                                   "parallelism": {"tp": tp, "pp": 2, "sequence_parallel": True}})  # fmt: skip
    ok(client, "/v1/memory/training", model | {"seq_len": 2048, "qlora": {"r": 16}})
    ok(client, "/v1/memory/training", model | {"seq_len": 2048, "lora": {"r": 16}})


@pytest.mark.parametrize("preset_id", PRESETS)
def test_the_planner_and_serving_answer_every_preset(client, preset_id):
    plan = ok(client, "/v1/plan", {"model": {"preset": preset_id}, "gpu": "h100-sxm", "n_gpus": 16, "seq_len": 4096,
                                   "global_batch_size": 64, "top_k": 3})  # fmt: skip
    assert plan["plans"] and all(p["cp"] == 1 for p in plan["plans"])  # the scans are not split over the context
    serving = ok(client, "/v1/plan/serving", {"model": {"preset": preset_id}, "gpu": ["h100-sxm", "a100-80gb-sxm"],
                                              "prompt_tokens": 8000, "output_tokens": 200, "concurrent_users": 32})  # fmt: skip
    assert serving["options"]


@pytest.mark.parametrize(
    ("preset_id", "state", "kv_per_token"),
    [("lfm2-1.2b", LFM2_STATE_BYTES, LFM2_KV_BYTES_PER_TOKEN), ("zamba2-7b", ZAMBA2_STATE_BYTES, ZAMBA2_KV_BYTES_PER_TOKEN)],
)  # fmt: skip
def test_the_state_is_constant_and_the_attention_cache_grows(client, preset_id, state, kv_per_token):
    for seq_len in (8192, 262144):
        data = ok(client, "/v1/memory/inference", {"model": {"preset": preset_id}, "seq_len": seq_len})
        assert data["state_cache_bytes_per_sequence"] == state
        assert data["kv_cache_bytes"] == kv_per_token * seq_len


def test_serving_zamba2_at_8k_and_256k_keeps_its_state_per_sequence(client):
    body = {"model": {"preset": "zamba2-7b"}, "gpu": "h100-sxm", "prompt_tokens": 8000, "output_tokens": 200}
    short = ok(client, "/v1/plan/serving", body)
    long = ok(client, "/v1/plan/serving", body | {"prompt_tokens": 250000})
    fits = [o for o in short["options"] if o.get("fits", True)]
    assert fits and long["options"]
    assert fits[0]["kv_cache_bytes_per_sequence"] > 0


LFM2 = MEASURED["lfm2-1.2b"]["config"]
LFM2_MOE = MEASURED["lfm2-8b-a1b"]["config"]
ZAMBA = MEASURED["zamba-7b"]["config"]
ZAMBA2 = MEASURED["zamba2-7b"]["config"]


@pytest.mark.parametrize(
    ("config", "loc"),
    [
        (LFM2 | {"full_attn_idxs": [2, 40]}, "model.hf_config.full_attn_idxs"),
        (LFM2 | {"layer_types": ["conv", "mamba"] * 8}, "model.hf_config.layer_types"),
        (LFM2 | {"conv_L_cache": 0}, "model.hf_config.conv_L_cache"),
        (LFM2 | {"num_experts": 8}, "model.hf_config.num_experts"),
        (LFM2 | {"mamba_d_state": 16}, "model.hf_config.mamba_d_state"),
        (LFM2_MOE | {"num_dense_layers": 24}, "model.hf_config.num_dense_layers"),
        (ZAMBA | {"mamba_d_state": 0}, "model.hf_config.mamba_d_state"),
        (ZAMBA | {"n_mamba_heads": 3}, "model.hf_config.n_mamba_heads"),
        (ZAMBA | {"num_mem_blocks": 2}, "model.hf_config.num_mem_blocks"),
        (ZAMBA2 | {"layers_block_type": ZAMBA2["layers_block_type"][:80]}, "model.hf_config.layers_block_type"),
        (ZAMBA2 | {"layers_block_type": ["hybrid", "full_attention"] * 40 + ["mamba"]}, "model.hf_config.layers_block_type"),
        (ZAMBA2 | {"mamba_d_state": 0}, "model.hf_config.mamba_d_state"),
        (ZAMBA2 | {"num_key_value_heads": 8}, "model.hf_config.use_shared_attention_adapter"),
        (ZAMBA2 | {"attn_layer_period": 6}, "model.hf_config.attn_layer_period"),
        (ZAMBA2 | {"add_bias_linear": True}, "model.hf_config.add_bias_linear"),
    ],
)  # fmt: skip
def test_bad_configs_are_a_422_naming_the_key(client, config, loc):
    r = client.post("/v1/params", json={"model": {"hf_config": config}})
    assert r.status_code == 422, r.text
    assert loc in json.dumps(r.json()), r.text


def test_explicit_layer_types_of_the_new_kinds(client):
    """An explicit architecture with short_conv or shared_attention layers; fields of layers a model lacks are
    refused naming them."""
    base = {"n_layers": 4, "d_model": 256, "n_heads": 4, "d_ff": 512, "vocab_size": 1000, "ffn": "swiglu", "norm": "rmsnorm"}
    conv = ok(client, "/v1/params", {"model": base | {"layer_types": ["short_conv", "attention"], "short_conv_kernel": 3}})
    assert conv["total"] > 0
    zamba = base | {"layer_types": ["mamba2", "shared_attention_mamba2"], "mixer_mlp": False, "ssm_state_size": 16,
                    "d_head": 128, "shared_adapter_rank": 8, "shared_attention_adapters": True}  # fmt: skip
    assert ok(client, "/v1/params", {"model": zamba})["total"] > 0
    for body, loc in (
        (base | {"short_conv_kernel": 3}, "model.short_conv_kernel"),
        (base | {"shared_attention_blocks": 2}, "model.shared_attention_blocks"),
        (zamba | {"mixer_mlp": True}, "model.mixer_mlp"),
        (zamba | {"layer_types": ["mamba", "shared_attention_mamba2"]}, "model.layer_types"),
        (base | {"layer_types": ["short_conv", "mamba"], "ssm_state_size": 16}, "model.layer_types"),
    ):
        r = client.post("/v1/params", json={"model": body})
        assert r.status_code == 422, r.text
        assert loc in r.text, r.text
