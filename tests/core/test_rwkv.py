"""RWKV-6 (Finch) and RWKV-7 (Goose) in the core: exact counts against flash-linear-attention's models
(``validation/measurements/recurrent_models.json``), the reference code's default LoRA ranks, the state and
the saved activations against what fla's kernels keep on the CPU (``validation/measurements/rwkv_layers.json``,
``validation/measure_rwkv_layers.py``), the WKV FLOPs and the field rules. No torch here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.core.activations import ActivationOptions, layer_activation_bytes
from service.core.compute import training_flops
from service.core.dtypes import Dtype
from service.core.errors import InvalidSpecError
from service.core.hf_config import architecture_from_hf_config
from service.core.kernels import DeviceConvention, Kernels
from service.core.memory import state_cache_bytes_per_sequence
from service.core.params import block_linear_shapes, count_params
from service.core.recurrent import recurrence_flops_per_token, state_elements_per_sequence
from service.core.rwkv import rwkv7_default_ranks
from service.core.spec import make_architecture

MEASUREMENTS = Path(__file__).resolve().parents[2] / "validation" / "measurements"
MEASURED = json.loads((MEASUREMENTS / "recurrent_models.json").read_text())["models"]
LAYERS = json.loads((MEASUREMENTS / "rwkv_layers.json").read_text())["models"]
RWKV = sorted(n for n, m in MEASURED.items() if m["config"]["model_type"] in ("rwkv6", "rwkv7"))


def test_every_rwkv6_and_rwkv7_config_counts_what_fla_builds():
    assert len(RWKV) == 11 and all(MEASURED[n]["reference"] == "flash-linear-attention 0.6.0" for n in RWKV)
    for name in RWKV:
        assert count_params(architecture_from_hf_config(MEASURED[name]["config"])).total == MEASURED[name]["parameters"], name


@pytest.mark.parametrize(("name", "billions"), [("rwkv7-world-0.1b", 0.19), ("rwkv7-world-2.9b", 2.9),
                                                ("rwkv6-world-1.6b", 1.6)])  # fmt: skip
def test_the_world_models_have_their_published_sizes(name, billions):
    """RWKV-7 paper, abstract: models "ranging from 0.19 billion to 2.9 billion parameters"; Finch 1.6B."""
    assert MEASURED[name]["parameters"] / 1e9 == pytest.approx(billions, rel=0.02)


def _explicit(name: str, **fields):
    c = MEASURED[name]["config"]
    return make_architecture(n_layers=c["num_hidden_layers"], d_model=c["hidden_size"], n_heads=1, d_ff=c["intermediate_size"],
                             vocab_size=c["vocab_size"], norm="layernorm", embedding_norm=True, layer_types=["rwkv"],
                             **fields)  # fmt: skip


@pytest.mark.parametrize("name", ["rwkv7-world-0.1b", "rwkv7-world-1.5b", "rwkv7-world-2.9b"])
def test_rwkv7_default_ranks_are_the_released_models(name):
    """RWKV-LM's suggested ranks give the checkpoints' (the 0.4B, trained with a gate of 128, excepted)."""
    assert count_params(_explicit(name, rwkv_version=7)).total == MEASURED[name]["parameters"]
    assert rwkv7_default_ranks(1024)["rwkv_gate_lora_rank"] == 160 != MEASURED["rwkv7-world-0.4b"]["config"]["gate_low_rank_dim"]


@pytest.mark.parametrize("name", ["rwkv6-world-1.6b", "rwkv6-world-3b", "rwkv6-world-7b"])
def test_rwkv6_default_ranks_double_at_4096(name):
    assert count_params(_explicit(name, rwkv_version=6)).total == MEASURED[name]["parameters"]


def test_the_parts_add_up_and_the_quantiser_sees_every_linear_layer():
    arch = architecture_from_hf_config(MEASURED["rwkv7-world-2.9b"]["config"])
    b = count_params(arch)
    assert b.embedding == b.lm_head == 65536 * 2560 and b.norm == (32 * 2 + 2) * 2 * 2560
    assert b.mlp == 32 * (2 * 2560 * 10240 + 2560)  # channel mixing: key, value and x_k
    h, n = 2560, 32  # r, k, v, o; the decay, a and gate LoRAs; the value LoRA on 31 layers; channel mixing
    linear = n * (4 * h * h + 2 * h * (96 + 96 + 320) + 2 * h * 10240) + (n - 1) * 2 * h * 64
    assert sum(c * i * o for c, i, o in block_linear_shapes(arch)) == linear
    assert b.total - b.embedding - b.lm_head - b.norm - linear == n * 15 * h - h  # the vectors


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_the_state_is_what_fla_caches(name):
    """Each layer's 4 heads' 16 x 16 WKV state and two token-shift vectors of 64, the same after 8 and 24 tokens."""
    arch = architecture_from_hf_config(LAYERS[name]["config"])
    for row in LAYERS[name]["state"]:
        elements = sum(t["bytes"] for layer in row["layers"] for t in layer.values()) // 4
        assert state_elements_per_sequence(arch) == elements == 2 * (4 * 16 * 16 + 2 * 64)
        assert state_cache_bytes_per_sequence(arch, Dtype.FP32) == row["bytes"]
    # in bf16 the WKV matrices stay fp32 (fla's kernels return them so), the token-shift vectors are bf16
    assert state_cache_bytes_per_sequence(arch, Dtype.BF16) == 2 * (4 * 16 * 16 * 4 + 2 * 64 * 2)


@pytest.mark.parametrize("device", list(DeviceConvention))
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_saved_activations_are_what_fla_keeps_but_the_layer_norms_statistics(name, device):
    """The second block over 128 tokens in fp32 (fla's chunked kernels): the estimate is every saved tensor
    but the two LayerNorms' fp32 mean and reciprocal deviation per token, which no layer's count includes.
    fla's kernels run on either device (on the CPU in Triton's interpreter, where this was measured), so
    both conventions keep the same count."""
    arch = architecture_from_hf_config(LAYERS[name]["config"])
    saved = next(s for s in LAYERS[name]["saved"] if s["tokens"] == 128)
    opts = ActivationOptions(seq_len=128, micro_batch_size=1, element_bytes=4, kernels=Kernels(device=device))
    assert layer_activation_bytes(arch, opts).total_bytes + 2 * 2 * 4 * 128 == saved["bytes_per_layer"][1]


def test_wkv_flops_chunked_in_training_and_a_step_per_decoded_token():
    arch = architecture_from_hf_config(MEASURED["rwkv7-world-2.9b"]["config"])
    heads, n, c = 40, 64, 64
    assert recurrence_flops_per_token(arch, decode=True) == 32 * heads * 9 * n * n
    assert recurrence_flops_per_token(arch) == pytest.approx(32 * heads * (16 * c * n + 8 * n * n + 8 * c * c / 3))
    six = architecture_from_hf_config(MEASURED["rwkv6-world-7b"]["config"])
    assert recurrence_flops_per_token(six, decode=True) == 32 * 64 * 7 * n * n
    assert recurrence_flops_per_token(six) == 32 * 64 * (4 * c * n + 4 * n * n)
    full = training_flops(arch, 1e9, include_attention=True)
    assert full.attention_flops_per_token == recurrence_flops_per_token(arch)  # forward, per token
    assert "RWKV-7 WKV" in full.formula and "wkv7.cu" in full.formula


BASE = {"n_layers": 4, "d_model": 256, "n_heads": 4, "d_ff": 1024, "vocab_size": 1000, "layer_types": ["rwkv"]}


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"rwkv_version": 5}, "rwkv_version", "not modelled"),
        ({"rwkv_version": 6, "rwkv_gate_lora_rank": 64}, "rwkv_gate_lora_rank", "RWKV-6"),
        ({"rwkv_version": 7, "rwkv_mix_lora_rank": 32}, "rwkv_mix_lora_rank", "RWKV-7"),
        ({"rwkv_head_size": 64}, "rwkv_head_size", "RWKV-4"),
        ({"rwkv_version": 7, "rwkv_head_size": 96}, "rwkv_head_size", "divide d_model"),
        ({"rwkv_version": 7, "rwkv_a_lora_rank": 0}, "rwkv_a_lora_rank", ""),
        ({"layer_types": ["attention"], "rwkv_decay_lora_rank": 64}, "rwkv_decay_lora_rank", "only applies"),
        ({"rwkv_version": 7, "layer_types": ["rwkv", "mamba"], "ssm_state_size": 16}, "layer_types", "rwkv layers only"),
    ],
)  # fmt: skip
def test_rules_name_the_field(fields, field, reason):
    with pytest.raises(InvalidSpecError) as e:
        make_architecture(**(BASE | fields))
    assert e.value.field == f"model.{field}" and reason in e.value.reason
