"""Gated DeltaNet and Qwen3-Next's hybrid: exact counts against transformers
(``validation/measurements/recurrent_models.json``; every config is also compared by
``tests/core/test_recurrent.py``, its cache too), the published size, the chunked delta rule's FLOPs, the
state a sequence keeps, the training activations as fla's ``chunk_gated_delta_rule`` saves them, the scan
bytes, the tensor-parallel rule, and bad configs and fields refused naming the key."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from service.core.architecture import LayerType
from service.core.compute import inference_flops, training_flops
from service.core.dtypes import Dtype
from service.core.errors import InvalidSpecError
from service.core.hf_config import architecture_from_hf_config
from service.core.memory import inference_memory
from service.core.parallelism import context_parallel_problem, tensor_parallel_problem
from service.core.params import attention_params_per_layer, block_linear_shapes, count_params
from service.core.recurrent import deltanet_mixer_params, recurrence_flops_per_token, state_elements_per_sequence
from service.core.recurrent_activations import mixer_activation_bytes
from service.core.spec import make_architecture
from service.core.steptime_recurrent import scan_bytes_per_token

MEASURED = json.loads(
    (Path(__file__).resolve().parents[2] / "validation" / "measurements" / "recurrent_models.json").read_text()
)["models"]

# Qwen3-Next-80B-A3B: h 2048, 48 layers (36 Gated DeltaNet, 12 gated attention), 16 key and 32 value heads of 128,
# 512 experts of 512 (10 routed, one gated shared expert of 512), vocabulary 151,936, untied
H, HK, HV, DK, DV, K_CONV, C = 2048, 16, 32, 128, 128, 4, 64
CONV = 2 * HK * DK + HV * DV  # q, k, v: 8,192 channels


def _arch(name: str, **changes):
    return architecture_from_hf_config(MEASURED[name]["config"] | changes)


def test_qwen3_next_counts_what_transformers_builds():
    b = count_params(_arch("qwen3-next-80b-a3b"))
    assert (b.total, b.active) == (79_674_391_296, 3_874_929_408)  # transformers 5.25.0, meta device
    assert MEASURED["qwen3-next-80b-a3b"]["parameters"] == b.total
    assert b.total / 1e9 == pytest.approx(80, rel=0.01)  # the model card: "80B in total and 3B activated"
    assert (b.active - b.embedding - b.lm_head) / 1e9 == pytest.approx(3, rel=0.1)
    assert count_params(_arch("tiny-qwen3-next")).total == MEASURED["tiny-qwen3-next"]["parameters"] == 204_240


def test_qwen3_next_layers_and_their_parts():
    arch = _arch("qwen3-next-80b-a3b")
    assert arch.layer_kinds[:4] == (LayerType.GATED_DELTANET,) * 3 + (LayerType.ATTENTION,)
    assert (arch.attention_layers, arch.recurrent_layers, arch.moe_layers) == (12, 36, 48)
    # without layer_types the interval gives the same layers
    no_list = {k: v for k, v in MEASURED["qwen3-next-80b-a3b"]["config"].items() if k != "layer_types"}
    assert architecture_from_hf_config(no_list).layer_kinds == arch.layer_kinds
    # Qwen3NextGatedDeltaNet: in_proj_qkvz, in_proj_ba, conv1d (no bias), dt_bias and A_log, one head's norm, out_proj
    mixer = H * (2 * HK * DK + 2 * HV * DV) + H * 2 * HV + CONV * K_CONV + 2 * HV + DV + HV * DV * H
    assert deltanet_mixer_params(arch) == mixer == 33_718_464
    # Qwen3NextAttention: q_proj twice as wide for the output gate, k and v of 2 heads, o_proj, q and k norms per head
    q = 16 * 256
    assert attention_params_per_layer(arch) == H * 2 * q + 2 * H * 2 * 256 + q * H + 2 * 256


def test_every_linear_weight_is_in_the_block_shapes():
    """What a quantiser converts holds every projection: all parameters but the embedding, the head, the norms,
    the routers and shared-expert gates, the convolutions and the per-head dt_bias, A_log and gated norm."""
    arch = _arch("qwen3-next-80b-a3b")
    b = count_params(arch)
    linear = sum(c * i * o for c, i, o in block_linear_shapes(arch))
    small = 36 * (CONV * K_CONV + 2 * HV + DV) + 48 * (512 * H + H) + 12 * 2 * 256  # + routers, gates, q/k norms
    assert b.total == linear + b.embedding + b.lm_head + b.norm + small


def test_the_state_is_a_matrix_per_value_head_and_the_convolution_window():
    arch = _arch("qwen3-next-80b-a3b")
    assert state_elements_per_sequence(arch) == 36 * (CONV * K_CONV + HV * DK * DV)
    short, long = (inference_memory(arch, seq_len=s, batch_size=1) for s in (1_000, 100_000))
    assert short.state_cache_bytes == long.state_cache_bytes == 2 * 36 * (CONV * K_CONV + HV * DK * DV)  # bf16
    assert long.kv_cache_bytes == 100 * short.kv_cache_bytes  # only the 12 attention layers cache keys
    assert "Gated DeltaNet" in " ".join(short.formulas)


def test_chunked_delta_rule_flops_and_the_recurrent_step():
    """Per token and value head: the chunked form over chunks of 64 (Yang et al. 2024 §3.3; fla's
    chunk_gated_delta_rule_fwd), and decoding's decay, readout, rank-one update and output."""
    arch = _arch("qwen3-next-80b-a3b")
    per_head = 6 * C * DK + 4 * C * DV + 2 * C * C / 3 + 6 * DK * DV
    assert recurrence_flops_per_token(arch) == pytest.approx(36 * HV * per_head)
    assert recurrence_flops_per_token(arch, decode=True) == 36 * HV * 7 * DK * DV
    assert "Gated DeltaNet" in training_flops(arch, 1e9, include_attention=True).formula
    short = inference_flops(arch, prompt_tokens=100, output_tokens=11)
    assert "Gated DeltaNet" in short.formula


def test_training_activations_follow_the_chunk_kernel_saves():
    """ChunkGatedDeltaRuleFunction saves q, k (normalised, repeated to 32 heads), v, g, beta and the 64-wide WY
    block A; around it the convolution's input, the output, the gate, the norm's output and fp32 statistics."""
    arch = _arch("qwen3-next-80b-a3b")
    s, b, e = 4096, 1, 2
    kernel = e * (2 * HV * DK + HV * DV + HV + C * HV) + 4 * 3 * HV
    around = e * (CONV + 3 * HV * DV) + 4 * 3 * HV
    mixer = mixer_activation_bytes(arch, LayerType.GATED_DELTANET, seq_len=s, micro_batch_size=b, element_bytes=e)
    assert mixer.sharded_bytes == s * b * (kernel + around)
    assert mixer.replicated_bytes == s * b * e * H
    split = mixer_activation_bytes(arch, LayerType.GATED_DELTANET, seq_len=s, micro_batch_size=b, element_bytes=e, tp=4)
    assert split.sharded_bytes == mixer.sharded_bytes // 4


def test_scan_bytes_of_the_mean_layer():
    arch = _arch("qwen3-next-80b-a3b")
    per_layer = 2 * CONV + HV * (11 * DK + 9 * DV + 4 * C + 2 * DK * DV / C)
    assert scan_bytes_per_token(arch, 2) == pytest.approx(2 * 36 * per_layer / 48)


def test_tensor_parallel_splits_the_heads_whole():
    arch = _arch("qwen3-next-80b-a3b")
    assert tensor_parallel_problem(arch, 16) is None  # 16 key, 32 value, 16 query heads
    odd = dataclasses.replace(arch, linear_n_key_heads=6, linear_n_value_heads=12)
    assert "linear_n_key_heads=6" in (tensor_parallel_problem(odd, 4) or "")
    assert context_parallel_problem(arch, 2) and context_parallel_problem(arch, 1) is None


@pytest.mark.parametrize(
    ("name", "changes", "key", "words"),
    [
        ("qwen3-next-80b-a3b", {"layer_types": ["linear_attention"] * 47 + ["mamba"]}, "layer_types", "full_attention"),
        ("qwen3-next-80b-a3b", {"layer_types": ["full_attention"] * 4}, "layer_types", "each of the 48"),
        ("qwen3-next-80b-a3b", {"linear_key_head_dim": 0}, "linear_key_head_dim", "from 1"),
        ("qwen3-next-80b-a3b", {"linear_num_value_heads": 0}, "linear_num_value_heads", "from 1"),
        ("qwen3-next-80b-a3b", {"attn_layer_indices": [3]}, "attn_layer_indices", "mixes two families"),
        ("tiny-qwen3-next", {"hybrid_override_pattern": "M*M*"}, "hybrid_override_pattern", "mixes two families"),
        ("bamba-9b", {"linear_num_key_heads": 16}, "linear_num_key_heads", "mixes two families"),
    ],
)  # fmt: skip
def test_bad_qwen3_next_configs_name_the_key(name, changes, key, words):
    with pytest.raises(InvalidSpecError) as err:
        _arch(name, **changes)
    assert err.value.field == f"hf_config.{key}" and words in err.value.reason, (err.value.field, err.value.reason)


def test_a_value_head_count_that_is_no_multiple_names_its_key():
    with pytest.raises(InvalidSpecError) as err:
        _arch("tiny-qwen3-next", linear_num_value_heads=3)
    assert err.value.field == "hf_config.linear_num_value_heads"


_BASE = {"n_layers": 8, "d_model": 256, "n_heads": 4, "d_ff": 512, "vocab_size": 1000}
_DELTA = {"layer_types": ["gated_deltanet", "attention"], "linear_n_key_heads": 2, "linear_key_head_dim": 32}


def test_value_heads_width_and_convolution_take_their_defaults():
    arch = make_architecture(**_BASE, **_DELTA)
    assert (arch.linear_n_value_heads, arch.linear_value_head_dim, arch.linear_conv_kernel) == (2, 32, 4)
    assert (arch.attention_layers, arch.recurrent_layers) == (4, 4)


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"layer_types": ["gated_deltanet"]}, "model.linear_n_key_heads", "key heads"),
        (_DELTA | {"linear_key_head_dim": 0}, "model.linear_key_head_dim", ""),
        (_DELTA | {"linear_n_value_heads": 3}, "model.linear_n_value_heads", "multiple"),
        ({"linear_n_key_heads": 2}, "model.linear_n_key_heads", "only applies"),
        (_DELTA | {"layer_types": ["gated_deltanet", "mamba"], "ssm_state_size": 16}, "model.layer_types", "attention"),
        ({"attention_output_gate": True, "layer_types": ["mamba"], "ssm_state_size": 16}, "model.attention_output_gate",
         "attention"),
    ],
)  # fmt: skip
def test_bad_gated_deltanet_fields_name_the_field(fields, field, words):
    with pytest.raises(InvalidSpecError) as err:
        make_architecture(**(_BASE | fields))
    assert err.value.field == field and words in err.value.reason, (err.value.field, err.value.reason)


def test_the_output_gate_adds_a_query_width_of_weights_to_a_transformer():
    plain = make_architecture(**_BASE)
    gated = make_architecture(**_BASE, attention_output_gate=True)
    assert count_params(gated).total - count_params(plain).total == 8 * 256 * 256
    assert inference_memory(gated, seq_len=100, batch_size=1, kv_dtype=Dtype.BF16).kv_cache_bytes == (
        inference_memory(plain, seq_len=100, batch_size=1, kv_dtype=Dtype.BF16).kv_cache_bytes
    )
