"""Config keys a ``config.json`` leaves out, read as the ``transformers`` config class defaults them,
and keys that change the count only on some modules (DeepSeek's ``attention_bias``).

Every expected count is worked out by hand from the modules ``modeling_<type>.py`` builds.
"""

from __future__ import annotations

import pytest

from service.core.errors import InvalidSpecError
from service.core.hf_config import architecture_from_hf_config
from service.core.params import count_params

# Qwen3-0.6B's config.json (head_dim 128 while hidden_size / heads is 64; tied embeddings)
QWEN3_0_6B = {
    "model_type": "qwen3", "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
    "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936,
    "tie_word_embeddings": True,
}  # fmt: skip
QWEN3_0_6B_PARAMS = 596_049_920  # Qwen3 technical report Table 1 "0.6B"; the transformers count


def _total(config: dict) -> int:
    return count_params(architecture_from_hf_config(config)).total


def test_qwen3_without_head_dim_takes_the_config_class_default_of_128():
    """Qwen3Config declares ``head_dim: int = 128``, so a config without the key builds 128-wide heads
    (not ``hidden_size / heads`` = 64): the same 596,049,920 parameters as with the key."""
    assert _total(QWEN3_0_6B) == QWEN3_0_6B_PARAMS
    config = {k: v for k, v in QWEN3_0_6B.items() if k != "head_dim"}
    arch = architecture_from_hf_config(config)
    assert arch.d_head == 128
    assert _total(config) == QWEN3_0_6B_PARAMS
    assert "head_dim" in dict(arch.assumptions)


# Mistral-7B-v0.1 without num_key_value_heads: MistralConfig's default is 8, not the 32 query heads
MISTRAL_7B_NO_KV = {
    "model_type": "mistral", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
    "num_attention_heads": 32, "vocab_size": 32000,
}  # fmt: skip


def _attention_weights(h: int, a: int, k: int, d: int) -> int:
    return h * a * d + 2 * h * k * d + a * d * h


@pytest.mark.parametrize(
    ("model_type", "kv_default"),
    [("mistral", 8), ("mixtral", 8), ("qwen2", 32), ("qwen3", 32), ("gemma", 16), ("gemma2", 4), ("qwen3_moe", 4)],
)
def test_a_missing_num_key_value_heads_takes_the_config_class_default(model_type, kv_default):
    """``num_key_value_heads`` absent: the config class's default (MistralConfig 8, Qwen2Config 32,
    GemmaConfig 16, Gemma2Config 4, Qwen3MoeConfig 4, ...), which is what transformers builds; an
    explicit null is the head count (their ``__post_init__``)."""
    config = {**MISTRAL_7B_NO_KV, "model_type": model_type, "num_attention_heads": 64, "head_dim": 64}
    arch = architecture_from_hf_config(config)
    assert arch.n_kv_heads == kv_default
    assert "num_key_value_heads" in dict(arch.assumptions)
    null = architecture_from_hf_config({**config, "num_key_value_heads": None})
    assert null.n_kv_heads == 64
    # the difference is the K and V projections alone: 2 * h * (64 - k) * d_head a layer
    per_layer = _attention_weights(4096, 64, 64, 64) - _attention_weights(4096, 64, kv_default, 64)
    qkv_bias = 2 * (64 - kv_default) * 64 if model_type == "qwen2" else 0  # Qwen2's K and V biases
    assert count_params(null).attention - count_params(arch).attention == 32 * (per_layer + qkv_bias)


def test_mistral_7b_without_num_key_value_heads_counts_7_24b():
    """Mistral-7B-v0.1's published 7,241,732,096 parameters, from its config less the key."""
    assert _total(MISTRAL_7B_NO_KV) == 7_241_732_096


# DeepSeek-V2-Lite's config.json (no query compression: q_proj h x a*d_qk)
DEEPSEEK_V2_LITE = {
    "model_type": "deepseek_v2", "hidden_size": 2048, "intermediate_size": 10944, "num_hidden_layers": 27,
    "num_attention_heads": 16, "num_key_value_heads": 16, "vocab_size": 102400, "q_lora_rank": None,
    "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
    "n_routed_experts": 64, "n_shared_experts": 2, "num_experts_per_tok": 6, "moe_intermediate_size": 1408,
    "first_k_dense_replace": 1, "moe_layer_freq": 1,
}  # fmt: skip
DEEPSEEK_V2_LITE_PARAMS = 15_706_484_224  # the transformers count (15.7B, DeepSeek-V2-Lite's card)


def test_deepseek_attention_bias_adds_biases_to_the_attention_projections_only():
    """``DeepseekV2Attention`` puts ``attention_bias`` on ``q_a_proj``, ``kv_a_proj_with_mqa`` and
    ``o_proj`` only; the MLPs and the routed experts keep none. DeepSeek-V2-Lite has no ``q_a_proj``:
    ``kv_lora_rank + qk_rope_head_dim`` = 576 and ``hidden_size`` = 2048 biases a layer, 27 layers."""
    assert _total(DEEPSEEK_V2_LITE) == DEEPSEEK_V2_LITE_PARAMS
    biased = architecture_from_hf_config({**DEEPSEEK_V2_LITE, "attention_bias": True})
    assert count_params(biased).total == DEEPSEEK_V2_LITE_PARAMS + 27 * (576 + 2048)
    assert count_params(biased).mlp == count_params(architecture_from_hf_config(DEEPSEEK_V2_LITE)).mlp
    # with a query rank, q_a_proj's bias too: 1536 more a layer
    v3 = {**DEEPSEEK_V2_LITE, "model_type": "deepseek_v3", "q_lora_rank": 1536}
    assert _total({**v3, "attention_bias": True}) - _total(v3) == 27 * (1536 + 576 + 2048)


def test_deepseek_v2_mlp_bias_is_refused_naming_the_key():
    """``mlp_bias`` biases DeepSeek-V2's dense and shared-expert MLPs but not its routed experts: a
    layout not counted, so it is refused naming the key rather than dropped."""
    with pytest.raises(InvalidSpecError) as err:
        architecture_from_hf_config({**DEEPSEEK_V2_LITE, "mlp_bias": True})
    assert err.value.field == "hf_config.mlp_bias"
    assert _total({**DEEPSEEK_V2_LITE, "mlp_bias": False}) == DEEPSEEK_V2_LITE_PARAMS


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({**DEEPSEEK_V2_LITE, "n_routed_experts": "64"}, "n_routed_experts"),
        ({**DEEPSEEK_V2_LITE, "first_k_dense_replace": "1"}, "first_k_dense_replace"),
        ({**DEEPSEEK_V2_LITE, "n_shared_experts": "2"}, "n_shared_experts"),
        ({**DEEPSEEK_V2_LITE, "moe_intermediate_size": None}, "moe_intermediate_size"),
        ({**DEEPSEEK_V2_LITE, "kv_lora_rank": "512"}, "kv_lora_rank"),
        ({**MISTRAL_7B_NO_KV, "model_type": "qwen2_moe", "num_experts": "60"}, "num_experts"),
        ({**MISTRAL_7B_NO_KV, "model_type": "qwen2_moe", "num_experts": 4, "mlp_only_layers": 3}, "mlp_only_layers"),
        ({**MISTRAL_7B_NO_KV, "model_type": "qwen2_moe", "num_experts": 4, "mlp_only_layers": "x"}, "mlp_only_layers"),
        ({**MISTRAL_7B_NO_KV, "model_type": "qwen2", "use_sliding_window": True, "max_window_layers": "x"}, "max_window_layers"),
    ],
)
def test_a_mistyped_expert_or_window_key_is_named(config, key):
    """A string where an integer belongs (or a null where one is needed) is a 422 naming the key,
    not a bare ``hf_config`` error quoting a Python TypeError."""
    with pytest.raises(InvalidSpecError) as err:
        architecture_from_hf_config(config)
    assert err.value.field == f"hf_config.{key}"


@pytest.mark.parametrize("key", ["tie_word_embeddings", "attention_bias", "mlp_bias"])
def test_a_switch_given_as_a_string_is_refused_naming_it(key):
    """``"tie_word_embeddings": "false"`` read as ``bool("false")`` tied Llama-2-7B's LM head
    (6,607,343,616 instead of 6,738,415,616): a string where true/false belongs is a 422 naming the key."""
    llama_2_7b = {**MISTRAL_7B_NO_KV, "model_type": "llama", "intermediate_size": 11008}
    assert _total({**llama_2_7b, "tie_word_embeddings": False}) == 6_738_415_616
    with pytest.raises(InvalidSpecError) as err:
        architecture_from_hf_config({**llama_2_7b, key: "false"})
    assert err.value.field == f"hf_config.{key}"
