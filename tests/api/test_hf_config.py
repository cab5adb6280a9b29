"""``POST /v1/models/from-hf-config``, ``"hf_config"`` wherever a model is accepted, the newer
architectures through the calculators, context warnings and ZeRO-3's per-GPU parameters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.api.test_calculators import ok

MODELS = json.loads((Path(__file__).resolve().parents[2] / "validation" / "measurements" / "hf_models.json").read_text())[
    "models"
]
LLAMA_3_1_8B = MODELS["llama-3.1-8b"]["config"]
DEEPSEEK_V3 = MODELS["deepseek-v3"]["config"]
MISTRAL_7B = MODELS["mistral-7b-v0.1"]["config"]
GPT_OSS_20B = MODELS["gpt-oss-20b"]["config"]
MISTRAL_SMALL = MODELS["mistral-small-3.1-24b"]["config"]


def test_a_pasted_llama_3_config_counts_8_03b(client):
    """The issue's case: a pasted Llama-3-8B config.json (here 3.1's) gives the reference count, 8,030,261,248."""
    data = ok(client, "/v1/models/from-hf-config", {"hf_config": LLAMA_3_1_8B})
    assert data["total_params"] == MODELS["llama-3.1-8b"]["parameters"] == 8_030_261_248
    assert data["context_tokens"] == 131_072
    assert data["model"]["ffn"] == "swiglu" and data["model"]["norm"] == "rmsnorm"
    assert "context" in data["assumptions"]
    # the returned ModelSpec, sent back as `model`, gives the same count
    again = ok(client, "/v1/params", {"model": data["model"]})
    assert again["total"] == 8_030_261_248


def test_a_bare_config_json_is_accepted_as_the_body(client):
    """`curl -d @config.json`: the file itself, not wrapped in {"hf_config": ...}, gives the same answer."""
    wrapped = ok(client, "/v1/models/from-hf-config", {"hf_config": DEEPSEEK_V3})
    bare = ok(client, "/v1/models/from-hf-config", DEEPSEEK_V3)
    assert bare == wrapped and bare["total_params"] > 671e9
    r = client.post("/v1/models/from-hf-config", json={"model_type": "qwen2", "hidden_size": 896})
    assert r.status_code == 422 and "num_hidden_layers" in r.text
    r = client.post("/v1/models/from-hf-config", json={"hidden_size": 896})  # neither a config nor a wrapped one
    assert r.status_code == 422 and "hf_config" in r.text


def test_hf_config_is_accepted_as_a_model(client):
    data = ok(client, "/v1/params", {"model": {"hf_config": DEEPSEEK_V3}})
    assert (data["total"], data["active"]) == (671_026_419_200, 37_552_297_472)
    assert "model.num_nextn_predict_layers" in data["assumptions"]
    mem = ok(client, "/v1/memory/inference", {"model": {"hf_config": DEEPSEEK_V3}, "seq_len": 32_768, "dtype": "fp8"})
    # DeepSeek-V2 §2.1.2: (kv_lora_rank + qk_rope_head_dim) = 576 values per token and layer
    assert mem["kv_cache_bytes_per_token"] == 61 * 576 * 2
    assert mem["kv_cache_bytes"] == 61 * 576 * 2 * 32_768
    assert "multi-head latent attention" in mem["assumptions"]["attention"]


def test_explicit_fields_override_a_config(client):
    data = ok(client, "/v1/params", {"model": {"hf_config": LLAMA_3_1_8B, "vocab_size": 32000}})
    assert data["total"] == 8_030_261_248 - 2 * (128_256 - 32_000) * 4096
    assert data["assumptions"]["model.vocab_size_source"] == "request (overrides hf_config)"


def test_mistral_at_32k_caches_its_window(client):
    data = ok(client, "/v1/memory/inference", {"model": {"hf_config": MISTRAL_7B}, "seq_len": 32_768})
    assert data["kv_cache_bytes"] == 2 * 32 * 8 * 128 * 4096 * 2  # 4,096 tokens per layer, not 32,768
    assert data["assumptions"]["sliding_window"] == 4096


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"hf_config": {"model_type": "t5", "d_model": 512}}, "hf_config.model_type", "model_type 't5' is an encoder-decoder model"),
        ({"hf_config": {"model_type": "made_up"}}, "hf_config.model_type", "unsupported model_type 'made_up'"),
        ({"hf_config": {"model_type": "qwen2", "hidden_size": 896}}, "hf_config.num_hidden_layers", "missing"),
        ({"hf_config": {"model_type": "mixtral", "hidden_size": 64, "intermediate_size": 64, "num_hidden_layers": 2,
                        "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 10, "num_experts_per_tok": 9}},
         "hf_config.num_experts_per_tok", "exceeds"),
        ({"hf_config": []}, "hf_config", "should be an object"),
    ],
)  # fmt: skip
def test_bad_configs_are_422_naming_the_key(client, body, field, words):
    r = client.post("/v1/models/from-hf-config", json=body)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert any(field in ".".join(str(p) for p in e["loc"]) and words in e["msg"] for e in problem["errors"]), problem


def test_bad_config_inside_a_model_names_the_path(client):
    r = client.post("/v1/params", json={"model": {"hf_config": {"model_type": "llama", "hidden_size": 64}}})
    assert r.status_code == 422
    assert "model.hf_config.num_hidden_layers" in r.text


def test_hf_config_with_preset_or_n_params_is_rejected(client):
    r = client.post("/v1/params", json={"model": {"hf_config": LLAMA_3_1_8B, "preset": "llama-2-7b"}})
    assert r.status_code == 422 and "not both" in r.text


def test_seq_len_beyond_the_context_is_a_warning(client):
    """The issue's case: llama-3-70b (8K context) at 32,768 tokens answered 200 with no warning."""
    data = ok(client, "/v1/memory/training", {"model": {"preset": "llama-3-70b"}, "seq_len": 32_768, "flash_attention": True})
    assert "exceeds the model's context of 8192" in data["assumptions"]["seq_len_warning"]
    within = ok(client, "/v1/memory/training", {"model": {"preset": "llama-3-70b"}, "seq_len": 8192, "flash_attention": True})
    assert "seq_len_warning" not in within["assumptions"]
    compute = ok(
        client, "/v1/compute/inference", {"model": {"preset": "llama-3-70b"}, "prompt_tokens": 9000, "output_tokens": 10}
    )
    assert "seq_len_warning" in compute["assumptions"]


def test_seq_len_beyond_a_learned_position_table_is_422(client):
    r = client.post("/v1/memory/inference", json={"model": {"preset": "gpt2"}, "seq_len": 2048})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"][-1] == "seq_len"


def test_defaulted_ffn_and_norm_are_said(client):
    """The issue's case: a hand-mapped Llama leaving out ffn and norm silently got gelu/layernorm."""
    body = {"model": {"n_layers": 32, "d_model": 4096, "n_heads": 32, "n_kv_heads": 8, "d_ff": 14336, "vocab_size": 128256}}
    data = ok(client, "/v1/params", body)
    assert "gelu" in data["assumptions"]["model.ffn_default"]
    assert "layernorm" in data["assumptions"]["model.norm_default"]


def test_zero3_params_per_gpu_is_sharded(client):
    body = {"model": {"preset": "llama-2-7b"}, "parallelism": {"dp": 8, "zero_stage": 3}, "include_activations": False}
    zero3 = ok(client, "/v1/memory/training", body)
    zero2 = ok(client, "/v1/memory/training", body | {"parallelism": {"dp": 8, "zero_stage": 2}})
    assert zero2["params_per_gpu"] == zero2["params_per_gpu_before_zero"] == 6_738_415_616
    assert zero3["params_per_gpu"] == -(-6_738_415_616 // 8)
    assert zero3["per_gpu"]["weights_bytes"] == 2 * zero3["params_per_gpu"]


def test_moe_expert_parallelism_with_shared_experts_and_dense_layers(client):
    """DeepSeek-V3 with ep = 64 (the report's §3.2 deployment: 64-way EP): each GPU holds 4 of the 256
    routed experts of each of the 58 MoE layers, and every dense and shared part."""
    body = {"model": {"hf_config": DEEPSEEK_V3}, "parallelism": {"dp": 64, "ep": 64}, "include_activations": False}
    data = ok(client, "/v1/memory/training", body)
    expert = 3 * 7168 * 2048
    assert data["params_per_gpu"] == 671_026_419_200 - 58 * (256 - 4) * expert


def test_models_can_be_searched(client):
    r = client.get("/v1/models", params={"q": "deepseek"})
    assert r.status_code == 200
    assert [m["id"] for m in r.json()["items"]] == ["deepseek-v2", "deepseek-v2-lite", "deepseek-v3"]
    words = client.get("/v1/models", params={"q": "Gemma 2"}).json()["items"]  # every word, any case
    assert {m["id"] for m in words} >= {"gemma-2-2b", "gemma-2-9b", "gemma-2-27b"}
    assert all("gemma" in m["id"] and "2" in (m["id"] + m["name"]) for m in words)
    assert client.get("/v1/models", params={"q": "no-such-model"}).json() == {"items": [], "total": 0, "limit": 50, "offset": 0}


@pytest.mark.parametrize(
    "preset_id",
    [
        "deepseek-v3",
        "gemma-2-9b",
        "qwen3-8b",
        "llama-3.3-70b",
        "mixtral-8x22b",
        "gemma-3-27b",
        "qwen3-30b-a3b",
        "qwen3-235b-a22b",
    ],
)
def test_new_presets_answer_with_their_exact_count(client, preset_id):
    from service.catalog import loader

    row = loader.model_presets()[preset_id]
    data = ok(client, "/v1/params", {"model": {"preset": preset_id}})
    assert data["total"] == row["reference_params"]
    ok(client, "/v1/memory/inference", {"model": {"preset": preset_id}, "seq_len": 4096})
    ok(client, "/v1/memory/training", {"model": {"preset": preset_id}, "seq_len": 4096, "flash_attention": True,
                                       "parallelism": {"dp": 8, "zero_stage": 3}})  # fmt: skip


def test_planner_and_serving_take_the_new_architectures(client):
    """DeepSeek-V3 on 2,048 H800-class GPUs (the report's §3.1 cluster; H100 here): the planner finds
    a layout; a serving replica keeps the 576-value MLA latent on every tensor-parallel rank."""
    plan = ok(client, "/v1/plan", {"model": {"preset": "deepseek-v3"}, "gpu": "h100-sxm", "n_gpus": 2048, "seq_len": 4096,
                                   "global_batch_size": 4096, "top_k": 1})  # fmt: skip
    assert plan["plans"] and plan["plans"][0]["per_gpu_total_bytes"] <= 0.95 * 80 * 2**30  # the usable share of 80 GiB
    serving = ok(client, "/v1/plan/serving", {"model": {"preset": "gemma-2-9b"}, "gpu": "h100-sxm", "prompt_tokens": 8000,
                                              "output_tokens": 192, "concurrent_users": 64})  # fmt: skip
    option = serving["options"][0]
    per_token = 2 * 8 * 256 * 2  # K and V, 8 KV heads of 256, bf16
    # 21 global layers hold all 8,192 tokens, 21 local layers their 4,096-token window
    assert option["kv_cache_bytes_per_sequence"] == per_token * (21 * 8192 + 21 * 4096) * option["tp"] // min(option["tp"], 8)


def test_the_planner_warns_beyond_the_context(client):
    body = {
        "model": {"preset": "llama-3-70b"},
        "gpu": "h100-sxm",
        "n_gpus": 64,
        "seq_len": 32_768,
        "global_batch_size": 64,
        "top_k": 1,
    }
    assert "exceeds the model's context" in ok(client, "/v1/plan", body)["assumptions"]["seq_len_warning"]


def test_gpt_oss_through_the_api_round_trips_its_sinks(client):
    """gpt-oss-20b: 20,914,757,184 parameters as transformers builds it; the returned spec carries
    attention_sinks (and the biases, router bias, 12 sliding layers) and counts the same sent back."""
    data = ok(client, "/v1/models/from-hf-config", {"hf_config": GPT_OSS_20B})
    assert data["total_params"] == MODELS["gpt-oss-20b"]["parameters"] == 20_914_757_184
    spec = data["model"]
    assert (spec["attention_sinks"], spec["bias"], spec["router_bias"], spec["sliding_window_layers"]) == (True, True, True, 12)
    assert ok(client, "/v1/params", {"model": spec})["total"] == 20_914_757_184
    without = ok(client, "/v1/params", {"model": spec | {"attention_sinks": False}})["total"]
    assert 20_914_757_184 - without == 24 * 64  # one sink per head and layer
    mem = ok(client, "/v1/memory/training", {"model": {"hf_config": GPT_OSS_20B}, "seq_len": 4096, "flash_attention": True,
                                             "parallelism": {"dp": 8, "zero_stage": 3}})  # fmt: skip
    assert mem["params_per_gpu_before_zero"] == 20_914_757_184


def test_a_multimodal_config_through_the_api(client):
    """Mistral Small 3.1: its language model counted, the vision tower said to be left out; a bad key
    of its text_config is a 422 naming model.hf_config.text_config.<key>."""
    data = ok(client, "/v1/models/from-hf-config", {"hf_config": MISTRAL_SMALL})
    assert (data["model_type"], data["total_params"]) == ("mistral3", 23_572_403_200)
    assert "vision tower" in data["assumptions"]["text_config"]
    mem = ok(client, "/v1/memory/training", {"model": {"hf_config": MISTRAL_SMALL}, "seq_len": 4096, "flash_attention": True,
                                             "parallelism": {"dp": 8, "zero_stage": 3}})  # fmt: skip
    assert mem["params_per_gpu_before_zero"] == 23_572_403_200
    bad = MISTRAL_SMALL | {"text_config": MISTRAL_SMALL["text_config"] | {"num_attention_heads": 0}}
    r = client.post("/v1/memory/training", json={"model": {"hf_config": bad}, "seq_len": 4096})
    assert r.status_code == 422, r.text
    assert "model.hf_config.text_config.num_attention_heads" in r.text


def test_llama4_maverick_through_the_api(client):
    """Llama 4 Maverick's published config (a llama4 wrapper): its language model as transformers builds
    it, 400,711,848,960 parameters, 17.18 B active; the 24 dense layers sent back as first_k_dense (said
    to be interleaved), the chunks as a window on the 36 RoPE layers, which cap the cache at 8,192 tokens
    there; a bad text_config key is a 422 naming model.hf_config.text_config.<key>."""
    maverick = MODELS["llama-4-maverick-17b-128e"]["config"]
    data = ok(client, "/v1/models/from-hf-config", {"hf_config": maverick})
    assert (data["model_type"], data["total_params"]) == ("llama4", MODELS["llama-4-maverick-17b-128e"]["parameters"])
    assert data["total_params"] == 400_711_848_960 and data["active_params"] == 17_184_691_200
    spec = data["model"]
    assert (spec["n_experts"], spec["first_k_dense"], spec["d_ff_dense"], spec["n_shared_experts"]) == (128, 24, 16384, 1)
    assert (spec["sliding_window"], spec["sliding_window_layers"]) == (8192, 36)
    assert "interleaved" in data["assumptions"]["first_k_dense"]
    assert "sliding window" in data["assumptions"]["attention_chunk_size"]
    assert ok(client, "/v1/params", {"model": spec})["total"] == 400_711_848_960
    mem = ok(client, "/v1/memory/inference", {"model": {"hf_config": maverick}, "seq_len": 32_768})
    per_token_layer = 2 * 8 * 128 * 2  # K and V, 8 KV heads of 128, bf16
    assert mem["kv_cache_bytes"] == per_token_layer * (12 * 32_768 + 36 * 8192)
    bad = maverick | {"text_config": maverick["text_config"] | {"num_local_experts": 1}}
    r = client.post("/v1/params", json={"model": {"hf_config": bad}})
    assert r.status_code == 422, r.text
    assert "model.hf_config.text_config.num_local_experts" in r.text


def test_olmo2_full_width_qk_norm_round_trips(client):
    """OLMo 2: the returned spec carries qk_norm_full_width (a request field, no preset column) and
    counts the same sent back; with qk_norm as well it is a 422 naming the field."""
    m = MODELS["tiny-olmo2"]
    data = ok(client, "/v1/models/from-hf-config", {"hf_config": m["config"]})
    assert data["total_params"] == m["parameters"]
    spec = data["model"]
    assert spec["qk_norm_full_width"] is True and "qk_norm" not in spec
    assert ok(client, "/v1/params", {"model": spec})["total"] == m["parameters"]
    without = ok(client, "/v1/params", {"model": spec | {"qk_norm_full_width": False}})["total"]
    assert m["parameters"] - without == 2 * (4 * 16 + 2 * 16)  # two layers of q_norm (a*d_head) and k_norm (k*d_head)
    r = client.post("/v1/params", json={"model": spec | {"qk_norm": True}})
    assert r.status_code == 422 and "model.qk_norm_full_width" in r.text, r.text


def test_dbrx_nested_config_through_the_api(client):
    """DBRX's pasted config.json: the card's 132B from the nested attn_config / ffn_config, sent back as a
    ModelSpec it counts the same; a bad nested key is a 422 naming it with its path."""
    m = MODELS["dbrx-base"]
    data = ok(client, "/v1/models/from-hf-config", {"hf_config": m["config"]})
    assert data["total_params"] == m["parameters"] == 131_596_523_520
    assert ok(client, "/v1/params", {"model": data["model"]})["total"] == m["parameters"]
    bad = m["config"] | {"ffn_config": m["config"]["ffn_config"] | {"moe_top_k": 17}}
    r = client.post("/v1/params", json={"model": {"hf_config": bad}})
    assert r.status_code == 422, r.text
    assert "model.hf_config.ffn_config.moe_top_k" in r.text


def test_an_unmapped_hybrid_config_is_a_422_that_says_why(client):
    r = client.post("/v1/models/from-hf-config", json={"model_type": "recurrent_gemma", "hidden_size": 768})
    assert r.status_code == 422, r.text
    assert "hybrid" in r.text and "hf_config.model_type" in r.text


def test_a_zamba2_config_without_its_layer_list_names_the_key(client):
    """Zamba2Config's default layers_block_type has 54 entries: another layer count needs its own list."""
    r = client.post("/v1/models/from-hf-config", json={"model_type": "zamba2", "hidden_size": 768, "num_hidden_layers": 24,
                                                       "num_attention_heads": 12, "vocab_size": 32000})  # fmt: skip
    assert r.status_code == 422, r.text
    assert "hf_config.layers_block_type" in r.text and "54 layers" in r.text


def test_phi_request_fields_round_trip(client):
    """Phi-2 and Phi-3.5-MoE: the returned spec carries lm_head_bias and attention_bias (request fields,
    no preset column) and counts the same sent back; without them, V and the four attention biases less."""
    phi = MODELS["phi-2"]
    data = ok(client, "/v1/models/from-hf-config", {"hf_config": phi["config"]})
    assert data["total_params"] == phi["parameters"] == 2_779_683_840
    spec = data["model"]
    assert spec["lm_head_bias"] is True
    assert ok(client, "/v1/params", {"model": spec})["total"] == phi["parameters"]
    assert ok(client, "/v1/params", {"model": spec | {"lm_head_bias": False}})["total"] == phi["parameters"] - 51200
    moe = MODELS["phi-3.5-moe"]
    spec = ok(client, "/v1/models/from-hf-config", {"hf_config": moe["config"]})["model"]
    assert spec["attention_bias"] is True and ok(client, "/v1/params", {"model": spec})["total"] == moe["parameters"]
    without = ok(client, "/v1/params", {"model": spec | {"attention_bias": False}})["total"]
    assert moe["parameters"] - without == 32 * (4096 + 2 * 1024 + 4096)


def test_gpt_era_configs_round_trip(client):
    """OPT's 2,050-row position table and BLOOM's embedding LayerNorm come back in the ModelSpec and
    count the same sent back; StarCoder's one KV head likewise; a bad key is a 422 naming it as the
    config spells it (n_embd, attn_config.qk_ln)."""
    for name in ("opt-1.3b", "bloom-560m", "starcoder", "mpt-7b", "tiny-cohere2-window", "tiny-stablelm-qk-parallel"):
        m = MODELS[name]
        data = ok(client, "/v1/models/from-hf-config", {"hf_config": m["config"]})
        assert data["total_params"] == m["parameters"], name
        assert ok(client, "/v1/params", {"model": data["model"]})["total"] == m["parameters"], name
    opt = ok(client, "/v1/models/from-hf-config", {"hf_config": MODELS["opt-1.3b"]["config"]})["model"]
    assert (opt["position"], opt["position_embedding_rows"], opt["max_seq_len"]) == ("learned", 2050, 2048)
    assert (
        ok(client, "/v1/models/from-hf-config", {"hf_config": MODELS["bloom-560m"]["config"]})["model"]["embedding_norm"] is True
    )
    bad = MODELS["starcoder"]["config"] | {"n_embd": 0}
    r = client.post("/v1/params", json={"model": {"hf_config": bad}})
    assert r.status_code == 422 and "model.hf_config.n_embd" in r.text, r.text
    bad = MODELS["mpt-7b"]["config"] | {"attn_config": {"qk_ln": True}}
    r = client.post("/v1/memory/training", json={"model": {"hf_config": bad}, "seq_len": 2048})
    assert r.status_code == 422 and "model.hf_config.attn_config.qk_ln" in r.text, r.text
