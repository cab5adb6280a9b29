"""Cost and serving answers say what they took from the model, as the calculators do: where the
architecture came from, its defaults (``model.*``), MLA and sliding-window attention, and a
``seq_len_warning`` beyond the context (a 422 beyond a learned position table)."""

from __future__ import annotations

from tests.api.test_calculators import ok

LLAMA_LIKE = {"n_layers": 32, "d_model": 4096, "n_heads": 32, "n_kv_heads": 8, "d_ff": 14336, "vocab_size": 128256}
PRICE = {"usd_per_gpu_hour": 2.0}


def test_training_cost_warns_beyond_the_context(client):
    """llama-3-70b has an 8,192-token context (Llama 3 §3.4 before long-context training). At a stated MFU
    the sequence counts the attention FLOPs (include_attention); without them nothing reads it (a 422)."""
    body = {"model": {"preset": "llama-3-70b"}, "tokens": 1e12, "gpu": "h100-sxm", "n_gpus": 64, "mfu": 0.4,
            "include_attention": True} | PRICE  # fmt: skip
    beyond = ok(client, "/v1/cost/training", body | {"seq_len": 32_768})["assumptions"]
    assert "exceeds the model's context of 8192" in beyond["seq_len_warning"]
    assert beyond["architecture"] == "preset llama-3-70b" and beyond["max_seq_len"] == 8192
    within = ok(client, "/v1/cost/training", body | {"seq_len": 8192})["assumptions"]
    assert "seq_len_warning" not in within
    # the rest of the answer's assumptions are still there
    assert within["scaling_efficiency_source"] and within["price_chosen"]


def test_training_cost_says_the_defaults_of_an_explicit_architecture(client):
    body = {"model": LLAMA_LIKE, "tokens": 1e11, "gpu": "h100-sxm", "n_gpus": 8, "mfu": 0.4} | PRICE
    notes = ok(client, "/v1/cost/training", body)["assumptions"]
    assert notes["architecture"] == "explicit"
    assert "gelu" in notes["model.ffn_default"] and "layernorm" in notes["model.norm_default"]


def test_compare_warns_beyond_the_context_and_names_the_window(client):
    body = {"model": {"preset": "mistral-7b"}, "tokens": 1e11, "n_gpus": 8, "gpus": ["h100-sxm"], "mfu": 0.4, "seq_len": 16_384}
    notes = ok(client, "/v1/cost/compare", body)["assumptions"]
    assert "exceeds the model's context of 8192" in notes["seq_len_warning"]
    assert (notes["sliding_window"], notes["sliding_window_layers"]) == (4096, 32)


def test_inference_cost_says_mla_and_warns_past_prompt_plus_output(client):
    deepseek = ok(client, "/v1/cost/inference", {"model": {"preset": "deepseek-v2-lite"}, "gpu": "h100-sxm", "n_gpus": 1,
                                                 "batch_size": 8} | PRICE)["assumptions"]  # fmt: skip
    # DeepSeek-V2 §2.1.2: kv_lora_rank 512 + qk_rope_head_dim 64 values per token and layer
    assert "576 values per token and layer" in deepseek["attention"]
    body = {"model": {"preset": "llama-3-8b"}, "gpu": "h100-sxm", "n_gpus": 1, "batch_size": 1} | PRICE
    beyond = ok(client, "/v1/cost/inference", body | {"prompt_tokens": 8000, "output_tokens": 500})["assumptions"]
    assert "seq_len=8500 exceeds the model's context of 8192" in beyond["seq_len_warning"]
    assert (
        "seq_len_warning"
        not in ok(client, "/v1/cost/inference", body | {"prompt_tokens": 7000, "output_tokens": 500})["assumptions"]
    )


def test_serving_beyond_a_learned_position_table_is_422_naming_output_tokens(client):
    """GPT-2 has 1,024 learned positions (Radford et al. 2019 §2.3): no token 1,025 can be generated."""
    body = {"model": {"preset": "gpt2"}, "gpu": "h100-sxm", "prompt_tokens": 1000, "output_tokens": 100}
    for path, extra in (("/v1/plan/serving", {}), ("/v1/cost/inference", {"n_gpus": 1, "batch_size": 1} | PRICE)):
        r = client.post(path, json=body | extra)
        assert r.status_code == 422, (path, r.text)
        assert r.json()["errors"][0]["loc"][-1] == "output_tokens"
        assert "1024 learned positions" in r.text
        ok(client, path, body | extra | {"prompt_tokens": 900})  # 1,000 tokens fit


def test_serving_plan_says_the_model_it_served(client):
    body = {"model": {"preset": "gemma-2-9b"}, "gpu": "h100-sxm", "prompt_tokens": 9000, "output_tokens": 200}
    data = ok(client, "/v1/plan/serving", body)
    notes = data["assumptions"]
    assert notes["architecture"] == "preset gemma-2-9b"
    # Gemma 2 alternates local (4,096-token window) and global layers: 21 of its 42 are local
    assert (notes["sliding_window"], notes["sliding_window_layers"]) == (4096, 21)
    assert "exceeds the model's context of 8192" in notes["seq_len_warning"]
    assert data["warnings"]  # the existing top-level warning stays
