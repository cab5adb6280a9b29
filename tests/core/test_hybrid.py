"""The Mamba-2 hybrids (Bamba, Nemotron-H and its mixture-of-experts Nemotron 3 Nano, Falcon-H1, Granite 4.0-H): exact counts against transformers
(``validation/measurements/recurrent_models.json``, compared for every config by
``tests/core/test_recurrent.py``), the published sizes, how each family's layer list is read and
which layers carry attention, state and MLPs, and the bad configs, refused naming the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.core.architecture import LayerType
from service.core.errors import InvalidSpecError
from service.core.hf_config import architecture_from_hf_config
from service.core.memory import inference_memory
from service.core.params import active_matmul_weights, block_linear_shapes, count_params
from service.core.recurrent import mamba2_conv_width

MEASURED = json.loads(
    (Path(__file__).resolve().parents[2] / "validation" / "measurements" / "recurrent_models.json").read_text()
)["models"]

# transformers 5.25.0 on the meta device: (total, active)
EXACT = {
    "bamba-9b": (9_780_235_392, 9_780_235_392),
    "nemotron-h-8b": (8_100_852_736, 8_100_852_736),
    "nemotron-3-nano-30b-a3b": (31_577_940_288, 3_580_076_352),
    "falcon-h1-3b": (3_149_256_192, 3_149_256_192),
    "falcon-h1-7b": (7_585_513_568, 7_585_513_568),
    "granite-4.0-h-tiny": (6_939_037_248, 1_465_470_528),
    "granite-4.0-h-1b": (1_461_538_368, 1_461_538_368),
}
# published sizes: Bamba-9B (9B), Nemotron-H-8B (8B, Nemotron-H Table 1), Falcon-H1 3B and 7B (model names),
# Granite 4.0-H Tiny 7B total / 1B active, Granite 4.0-H 1B (IBM's Granite 4.0 model cards, rounded there),
# Nemotron 3 Nano 31.6B total (the NVIDIA-Nemotron-3-Nano-30B-A3B model card)
PUBLISHED_BILLIONS = {"bamba-9b": 9.78, "nemotron-h-8b": 8.1, "falcon-h1-3b": 3.15, "falcon-h1-7b": 7.59,
                      "granite-4.0-h-tiny": 6.9, "granite-4.0-h-1b": 1.46, "nemotron-3-nano-30b-a3b": 31.6}  # fmt: skip


def _arch(name: str, **changes):
    return architecture_from_hf_config(MEASURED[name]["config"] | changes)


@pytest.mark.parametrize("name", sorted(EXACT))
def test_published_hybrids_count_what_transformers_builds(name):
    b = count_params(_arch(name))
    assert (b.total, b.active) == EXACT[name]
    assert MEASURED[name]["parameters"] + MEASURED[name]["checkpoint_buffers"] == b.total
    assert b.total / 1e9 == pytest.approx(PUBLISHED_BILLIONS[name], rel=0.01)


def test_nemotron_h_pattern_gives_mixer_only_blocks_and_mlp_blocks():
    arch = _arch("nemotron-h-8b")
    assert (arch.layers_of(LayerType.MAMBA2), arch.attention_layers, arch.layers_of(LayerType.MLP)) == (24, 4, 24)
    assert arch.mlp_layers == 24 and arch.recurrent_layers == 24 and not arch.mixer_mlp
    assert arch.ssm_inner_size == 128 * 64 and arch.d_head == 128


def test_nemotron_3_nano_e_blocks_are_a_mixture_with_one_shared_mlp():
    """23 Mamba-2, 23 E and 6 attention blocks; each E block 128 squared-ReLU experts (up and down) of 1856, a router
    with its stored correction bias and one shared MLP of 3712; the model card's "approximately 3.2B active (3.6B
    including embeddings)": 3.58B with the untied embedding and LM head, 3.23B without the embedding."""
    arch = _arch("nemotron-3-nano-30b-a3b")
    assert (arch.layers_of(LayerType.MAMBA2), arch.attention_layers, arch.moe_layers, arch.dense_mlp_layers) == (23, 6, 23, 0)
    assert (arch.n_experts, arch.experts_per_token, arch.d_ff, arch.shared_expert_width) == (128, 6, 1856, 3712)
    assert MEASURED["nemotron-3-nano-30b-a3b"]["checkpoint_buffers"] == 23 * 128  # e_score_correction_bias
    b = count_params(arch)
    assert b.active / 1e9 == pytest.approx(3.6, rel=0.01) and (b.active - b.embedding) / 1e9 == pytest.approx(3.2, rel=0.01)
    listed = {"M": "linear_attention", "E": "moe", "*": "full_attention"}
    config = MEASURED["nemotron-3-nano-30b-a3b"]["config"]
    blocks = [listed[c] for c in config["hybrid_override_pattern"]]
    newer = {k: v for k, v in config.items() if k != "hybrid_override_pattern"} | {"layers_block_type": blocks}
    assert count_params(architecture_from_hf_config(newer)) == b


def test_falcon_h1_layers_each_hold_attention_and_a_mamba2_state():
    arch = _arch("falcon-h1-7b")
    assert arch.attention_layers == arch.recurrent_layers == arch.mlp_layers == 44
    assert arch.ssm_inner_size == 3072 and not arch.ssm_gated_norm
    short, long = (inference_memory(arch, seq_len=s, batch_size=1) for s in (8_192, 262_144))
    assert short.state_cache_bytes == long.state_cache_bytes > 0  # 44 Mamba-2 states, constant in the context
    # 44 attention layers x 2 KV heads x 128 x (K and V) x 2 bytes a token
    assert long.kv_cache_bytes - short.kv_cache_bytes == (262_144 - 8_192) * 44 * 2 * 2 * 128 * 2


def test_granite_h_is_a_mixture_with_a_shared_expert_on_every_layer():
    arch = _arch("granite-4.0-h-tiny")
    assert (arch.n_experts, arch.experts_per_token, arch.moe_layers, arch.shared_expert_width) == (64, 6, 40, 1024)
    assert arch.attention_layers == 4 and arch.layer_kinds[5] is LayerType.ATTENTION
    dense = _arch("granite-4.0-h-1b")
    assert not dense.is_moe and dense.d_ff == 4096


def test_bamba_attends_at_its_indices():
    kinds = _arch("bamba-9b").layer_kinds
    assert [i for i, k in enumerate(kinds) if k is LayerType.ATTENTION] == [9, 18, 27]


@pytest.mark.parametrize(
    ("name", "changes", "key", "words"),
    [
        ("nemotron-h-8b", {"hybrid_override_pattern": "M-*"}, "hybrid_override_pattern", "one block a layer"),
        ("nemotron-h-8b", {"hybrid_override_pattern": "MR*" + "-" * 49}, "hybrid_override_pattern", "letter 1 is 'R'"),
        ("nemotron-h-8b", {"hybrid_override_pattern": "ME*" + "-" * 49}, "hybrid_override_pattern", "beside mixture-of-experts"),
        ("nemotron-3-nano-30b-a3b", {"moe_latent_size": 1024}, "moe_latent_size", "latent projection"),
        ("nemotron-3-nano-30b-a3b", {"n_routed_experts": 0}, "n_routed_experts", "from 2"),
        ("tiny-nemotron-h-moe", {"layers_block_type": ["mamba", "moe", "full_attention", "moe", "moe"]}, "layers_block_type",
         "entry 0 is 'mamba'"),
        ("tiny-nemotron-h-moe", {"layers_block_type": ["moe", "full_attention"]}, "layers_block_type", "one block a layer"),
        ("nemotron-h-8b", {"ssm_state_size": 0}, "ssm_state_size", "from 1"),
        ("nemotron-h-8b", {"mamba_d_ssm": 4096}, "mamba_d_ssm", "mixes two families"),
        ("falcon-h1-7b", {"mamba_d_state": 0}, "mamba_d_state", "from 1"),
        ("falcon-h1-7b", {"hybrid_override_pattern": "M"}, "hybrid_override_pattern", "mixes two families"),
        ("falcon-h1-7b", {"projectors_bias": True}, "projectors_bias", "mamba_proj_bias"),
        ("bamba-9b", {"attn_layer_indices": [40]}, "attn_layer_indices", "below num_hidden_layers"),
        ("bamba-9b", {"attn_layer_period": 8}, "attn_layer_period", "mixes two families"),
        ("granite-4.0-h-tiny", {"layer_types": ["mamba"] * 39 + ["rwkv"]}, "layer_types", "mamba and attention"),
        ("granite-4.0-h-tiny", {"layer_types": ["mamba"] * 8}, "layer_types", "each of the 40"),
        ("granite-4.0-h-tiny", {"mamba_num_heads": 48}, "mamba_num_heads", "mixes two families"),
        ("granite-4.0-h-tiny", {"mamba_n_heads": 47}, "mamba_n_heads", "inner width"),
    ],
)  # fmt: skip
def test_bad_hybrid_configs_name_the_key(name, changes, key, words):
    with pytest.raises(InvalidSpecError) as err:
        _arch(name, **changes)
    assert err.value.field == f"hf_config.{key}" and words in err.value.reason, (err.value.field, err.value.reason)


@pytest.mark.parametrize("name", ["falcon-h1-7b", "nemotron-h-8b", "bamba-9b"])
def test_every_matmul_weight_of_the_parallel_and_single_operator_layers_is_computed_once(name):
    """What a token multiplies through: the linear layers of every block (Falcon-H1's attention and Mamba-2 both,
    Nemotron-H's MLP blocks once), the convolution taps and the logits; all that is left of the count is the embedding, the norms, the
    convolutions and the per-head dt_bias, A_log and D."""
    arch = _arch(name)
    b = count_params(arch)
    linear = sum(c * i * o for c, i, o in block_linear_shapes(arch))
    taps = arch.layers_of(LayerType.MAMBA2) * mamba2_conv_width(arch) * (arch.ssm_conv_kernel or 0)  # the convolutions
    assert active_matmul_weights(arch) == linear + taps + arch.vocab_size * arch.d_model
    conv = mamba2_conv_width(arch) * ((arch.ssm_conv_kernel or 0) + 1)  # taps and bias
    small = arch.layers_of(LayerType.MAMBA2) * (conv + 3 * (arch.ssm_n_heads or 0))
    gated = arch.layers_of(LayerType.MAMBA2) * (arch.ssm_inner_size or 2 * arch.d_model) if arch.ssm_gated_norm else 0
    assert b.total == linear + b.embedding + b.lm_head + b.norm + small + gated
