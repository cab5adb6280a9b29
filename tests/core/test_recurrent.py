"""Mamba, Mamba-2, RWKV-4 and Jamba in the core: exact parameter counts and per-sequence state against
what ``transformers`` builds (``validation/measurements/recurrent_models.json``, measured by
``validation/measure_recurrent.py``; torch is not imported here), the layer-pattern rules, and the
scans' FLOPs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from service.core.architecture import LayerType
from service.core.compute import inference_flops, training_flops
from service.core.dtypes import Dtype
from service.core.errors import InvalidSpecError
from service.core.hf_config import architecture_from_hf_config
from service.core.memory import inference_memory, kv_cache_bytes, state_cache_bytes_per_sequence
from service.core.params import block_linear_shapes, count_params
from service.core.recurrent import recurrence_flops_per_token, state_elements_per_sequence
from service.core.spec import make_architecture

MEASURED = json.loads(
    (Path(__file__).resolve().parents[2] / "validation" / "measurements" / "recurrent_models.json").read_text()
)["models"]


@pytest.mark.parametrize("name", sorted(MEASURED))
def test_parameter_count_equals_the_reference_implementation(name):
    m = MEASURED[name]
    assert count_params(architecture_from_hf_config(m["config"])).total == m["parameters"] + m["checkpoint_buffers"]


# published sizes: Mamba paper Table 3 (130M, 2.8B), Mamba-2 2.7B, Falcon Mamba 7.27B (Zuo et al. 2024 §2),
# Mamba-Codestral 7.3B (model card), RWKV-4 169M (model name), Jamba 1.5 Mini 52B total / 12B active (Table 1)
PUBLISHED_BILLIONS = {"mamba-130m": 0.13, "mamba-2.8b": 2.8, "mamba2-2.7b": 2.7, "falcon-mamba-7b": 7.27,
                      "mamba-codestral-7b": 7.3, "rwkv-4-169m": 0.169, "jamba-1.5-mini": 52}  # fmt: skip


@pytest.mark.parametrize(("name", "billions"), sorted(PUBLISHED_BILLIONS.items()))
def test_hand_written_configs_match_the_published_sizes(name, billions):
    total = count_params(architecture_from_hf_config(MEASURED[name]["config"])).total
    assert total / 1e9 == pytest.approx(billions, rel=0.02)


def test_jamba_1_5_mini_active_parameters_are_the_published_12b():
    b = count_params(architecture_from_hf_config(MEASURED["jamba-1.5-mini"]["config"]))
    assert b.active == 12_110_311_296
    assert b.active / 1e9 == pytest.approx(12, rel=0.01)  # Jamba-1.5 Table 1: 12B active


@pytest.mark.parametrize("name", [n for n in sorted(MEASURED) if "state" in MEASURED[n]])
def test_state_and_kv_cache_equal_what_transformers_keeps(name):
    """The tensors of the cache after a prompt: the recurrent state (the same after 8 and 24 tokens)
    plus, for Jamba, the attention layers' keys and values (growing with the prompt)."""
    arch = architecture_from_hf_config(MEASURED[name]["config"])
    for row in MEASURED[name]["state"]:
        kv_elements = kv_cache_bytes(arch, seq_len=row["prompt_tokens"], batch_size=1, kv_dtype=Dtype.FP32) // 4
        assert state_elements_per_sequence(arch) + kv_elements == row["elements"]
        assert state_cache_bytes_per_sequence(arch, Dtype.FP32) + 4 * kv_elements == row["bytes"]


def test_a_state_space_model_has_no_kv_cache_and_a_state_constant_in_the_context():
    arch = architecture_from_hf_config(MEASURED["mamba2-2.7b"]["config"])
    assert arch.attention_layers == 0 and arch.recurrent_layers == 64
    short, long = (inference_memory(arch, seq_len=s, batch_size=2) for s in (1_000, 1_000_000))
    assert short.kv_cache_bytes == long.kv_cache_bytes == 0
    # 64 layers x (conv (5120 + 2*128) x 4 + scan 80 heads x 64 x 128) in bf16
    assert short.state_cache_bytes == long.state_cache_bytes == 2 * 64 * (5376 * 4 + 80 * 64 * 128) * 2


def test_block_linear_shapes_hold_every_matmul_weight_of_the_recurrent_layers():
    """What a quantiser converts: the projections (convolutions, A, D and norms stay 16-bit)."""
    arch = architecture_from_hf_config(MEASURED["falcon-mamba-7b"]["config"])
    inner, n, r, h = 8192, 16, 256, 4096
    per_layer = h * 2 * inner + inner * (r + 2 * n) + r * inner + inner * h
    assert sum(c * i * o for c, i, o in block_linear_shapes(arch)) == 64 * per_layer


def test_selective_scan_flops_follow_the_reference_counter():
    """Mamba-130m: 24 layers of 9*I*N + 2I per token (Gu & Dao 2023 §3.3.2; VMamba's counter), the same
    per decoded token."""
    arch = architecture_from_hf_config(MEASURED["mamba-130m"]["config"])
    expected = 24 * (9 * 1536 * 16 + 2 * 1536)
    assert recurrence_flops_per_token(arch) == recurrence_flops_per_token(arch, decode=True) == expected


def test_chunked_ssd_flops_and_the_recurrent_step():
    """Mamba-2 2.7B per token and layer: chunks of 256, 80 heads of 64, one group, N = 128 (Dao & Gu 2024 §6)."""
    arch = architecture_from_hf_config(MEASURED["mamba2-2.7b"]["config"])
    q, heads, p, n = 256, 80, 64, 128
    assert recurrence_flops_per_token(arch) == 64 * (2 * q * n + 2 * heads * q * p + 4 * heads * n * p)
    assert recurrence_flops_per_token(arch, decode=True) == 64 * 5 * heads * p * n


@pytest.mark.parametrize("name", ["falcon-mamba-7b", "rwkv6-world-1.6b", "rwkv7-world-2.9b"])
def test_decoding_a_state_space_model_costs_the_same_at_any_context(name):
    arch = architecture_from_hf_config(MEASURED[name]["config"])
    short = inference_flops(arch, prompt_tokens=100, output_tokens=11)
    long = inference_flops(arch, prompt_tokens=100_000, output_tokens=11)
    assert short.decode_flops == long.decode_flops
    assert long.prefill_flops == pytest.approx(1000 * short.prefill_flops, rel=0.01)


def test_training_flops_add_the_scans_to_the_matmuls():
    arch = architecture_from_hf_config(MEASURED["rwkv-4-169m"]["config"])
    plain = training_flops(arch, 1e9, include_attention=False)
    full = training_flops(arch, 1e9, include_attention=True)
    assert plain.model_flops == 6 * 169_342_464 * 1e9  # 6PD (Kaplan et al. 2020)
    assert full.attention_flops_per_token == 12 * 23 * 768  # the WKV step per channel, no attention
    assert "WKV" in full.formula


def _arch(**fields):
    base = {"n_layers": 8, "d_model": 256, "n_heads": 4, "d_ff": 512, "vocab_size": 1000}
    return make_architecture(**(base | fields))


def test_a_pattern_repeats_over_the_layers():
    arch = _arch(layer_types=["mamba", "mamba", "mamba", "attention"], ssm_state_size=16)
    assert arch.layer_kinds == (LayerType.MAMBA,) * 3 + (LayerType.ATTENTION,) + (LayerType.MAMBA,) * 3 + (LayerType.ATTENTION,)
    assert (arch.attention_layers, arch.recurrent_layers) == (2, 6)
    assert (arch.ssm_conv_kernel, arch.ssm_expand, arch.ssm_dt_rank) == (4, 2, math.ceil(256 / 16))


def test_an_all_attention_list_is_a_transformer():
    assert _arch(layer_types=["attention"] * 8) == _arch()


def test_sliding_attention_layers_take_their_window():
    arch = _arch(layer_types=["sliding_attention", "attention"], sliding_window=64)
    assert (arch.local_layers, arch.global_layers) == (4, 4)


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"layer_types": ["mamba", "attention", "mamba"], "ssm_state_size": 16}, "model.layer_types", "divide"),
        ({"layer_types": ["mamba"], "ssm_state_size": 0}, "model.ssm_state_size", ""),
        ({"layer_types": ["mamba"]}, "model.ssm_state_size", "state size"),
        ({"ssm_state_size": 16}, "model.ssm_state_size", "only applies"),
        ({"layer_types": ["mamba"], "ssm_state_size": 16, "ssm_n_heads": 8}, "model.ssm_n_heads", "mamba2"),
        ({"layer_types": ["mamba2"], "ssm_state_size": 16, "ssm_dt_rank": 8}, "model.ssm_dt_rank", "mamba"),
        ({"layer_types": ["mamba2"], "ssm_state_size": 16, "ssm_n_groups": 3}, "model.ssm_n_groups", "divide"),
        ({"layer_types": ["rwkv", "mamba"], "ssm_state_size": 16}, "model.layer_types", "rwkv layers only"),
        ({"layer_types": ["sliding_attention", "attention"]}, "model.layer_types", "sliding_window"),
        ({"rwkv_version": 4}, "model.rwkv_version", "only applies"),
        ({"layer_types": "mamba"}, "model.layer_types", "list"),
        ({"layer_types": ["mamba"], "ssm_state_size": 16, "n_experts": 4, "mixer_mlp": False}, "model.mixer_mlp", ""),
    ],
)  # fmt: skip
def test_bad_layers_name_the_field(fields, field, words):
    with pytest.raises(InvalidSpecError) as err:
        _arch(**fields)
    assert err.value.field == field and words in err.value.reason, (err.value.field, err.value.reason)
