"""LFM2 (gated short convolutions between attention layers) and Zamba / Zamba2 (Mamba layers and shared attention
blocks) in the core: exact counts against what ``transformers`` builds (``validation/measurements/recurrent_models.json``;
every measured config is also compared by ``tests/core/test_recurrent.py``, its cache tensors too), the published
sizes, how each config's layers are read, what a shared block stores once and runs once a use, the short
convolution's state and kept activations against the CPU measurement, and the layout rules."""

from __future__ import annotations

import pytest

from service.core.activations import ActivationOptions, layer_activation_bytes
from service.core.architecture import LayerType
from service.core.errors import InvalidSpecError
from service.core.hf_config import architecture_from_hf_config
from service.core.memory import inference_memory
from service.core.parallelism import tensor_parallel_problem
from service.core.params import active_matmul_weights, block_linear_shapes, count_params
from service.core.recurrent import recurrence_flops_per_token, state_elements_per_sequence
from service.core.recurrent_activations import mixer_activation_bytes
from service.core.spec import make_architecture
from tests.core.test_recurrent import MEASURED

# transformers 5.25.0 on the meta device: (total, active)
EXACT = {
    "lfm2-350m": (354_483_968, 354_483_968),
    "lfm2-700m": (742_489_344, 742_489_344),
    "lfm2-1.2b": (1_170_340_608, 1_170_340_608),
    "lfm2-2.6b": (2_569_272_320, 2_569_272_320),
    "lfm2-8b-a1b": (8_339_929_856, 1_557_740_288),
    "zamba-7b": (7_232_490_496, 7_232_490_496),
    "zamba2-1.2b": (1_215_064_704, 1_215_064_704),
    "zamba2-2.7b": (2_662_214_560, 2_662_214_560),
    "zamba2-7b": (7_428_314_960, 7_428_314_960),
}
# published sizes (billions) and their tolerance: the LFM2 model cards (354M, 742M, 1.17B, 2.57B; 8B-A1B 8.3B total,
# 1.5B active); Zamba 7B (Glorioso et al. 2024, title: "a compact 7B"); the Zamba2 suite's 1.2B, 2.7B and 7.4B
PUBLISHED = {"lfm2-350m": (0.354, 0.01), "lfm2-700m": (0.742, 0.01), "lfm2-1.2b": (1.17, 0.01), "lfm2-2.6b": (2.57, 0.01),
             "lfm2-8b-a1b": (8.3, 0.01), "zamba-7b": (7.0, 0.04), "zamba2-1.2b": (1.2, 0.02), "zamba2-2.7b": (2.7, 0.02),
             "zamba2-7b": (7.4, 0.01)}  # fmt: skip


def _arch(name: str, **changes):
    return architecture_from_hf_config(MEASURED[name]["config"] | changes)


@pytest.mark.parametrize("name", sorted(EXACT))
def test_counts_equal_what_transformers_builds_and_the_published_sizes(name):
    b = count_params(_arch(name))
    assert (b.total, b.active) == EXACT[name] and MEASURED[name]["parameters"] == b.total
    billions, rel = PUBLISHED[name]
    assert b.total / 1e9 == pytest.approx(billions, rel=rel)


def test_lfm2_8b_a1b_activates_the_published_1_5b():
    assert count_params(_arch("lfm2-8b-a1b")).active / 1e9 == pytest.approx(1.5, rel=0.04)  # model card: 1.5B active


def test_lfm2_layers_and_mlp_width_as_the_config_reads():
    arch = _arch("lfm2-1.2b")
    assert [i for i, k in enumerate(arch.layer_kinds) if k is LayerType.ATTENTION] == [2, 5, 8, 10, 12, 14]
    assert (arch.layers_of(LayerType.SHORT_CONV), arch.recurrent_layers, arch.mlp_layers) == (10, 10, 16)
    assert arch.d_ff == 8192 and arch.qk_norm and arch.short_conv_kernel == 3  # 12288 * 2/3, to a multiple of 256
    assert _arch("lfm2-2.6b").d_ff == 10752  # block_auto_adjust_ff_dim false: as given
    moe = _arch("lfm2-8b-a1b")
    assert (moe.n_experts, moe.experts_per_token, moe.first_k_dense, moe.d_ff_dense, moe.moe_layers) == (32, 4, 2, 7168, 22)


def test_a_short_convolution_keeps_its_last_inputs_whatever_the_context():
    arch = _arch("lfm2-1.2b")
    assert state_elements_per_sequence(arch) == 10 * 2048 * 3
    short, long = (inference_memory(arch, seq_len=s, batch_size=1) for s in (8_192, 262_144))
    assert short.state_cache_bytes == long.state_cache_bytes == 10 * 2048 * 3 * 2
    assert long.kv_cache_bytes - short.kv_cache_bytes == (262_144 - 8_192) * 6 * 2 * 8 * 64 * 2  # 6 attention layers
    # per token: the gates B*x and C*y, 2h a layer (the taps and projections are matmul weights)
    assert recurrence_flops_per_token(arch) == 10 * 2 * 2048 == recurrence_flops_per_token(arch, decode=True)


def test_the_short_convolutions_kept_tensors_match_the_cpu_measurement():
    """``Lfm2ShortConv`` under autograd on the CPU (``mixer_saved``): the estimate, its input and six h-wide
    tensors a token, is within 2 % (the reference convolution also keeps K-1 padded columns a sequence)."""
    arch = _arch("tiny-lfm2")
    for row in MEASURED["tiny-lfm2"]["mixer_saved"]:
        kept = mixer_activation_bytes(arch, LayerType.SHORT_CONV, seq_len=row["tokens"], micro_batch_size=row["batch"],
                                      element_bytes=4)  # fmt: skip
        assert kept.replicated_bytes + kept.sharded_bytes == pytest.approx(row["bytes"], rel=0.02)
        assert kept.replicated_bytes + kept.sharded_bytes == 7 * 64 * 4 * row["tokens"] * row["batch"]


def test_zamba_shared_block_is_stored_once_and_run_once_a_use():
    arch = _arch("zamba-7b")
    uses = arch.shared_attention_layers
    assert uses == arch.attention_layers == arch.mlp_layers == 13 and arch.recurrent_layers == 76
    assert (arch.shared_blocks, arch.attention_weight_layers, arch.dense_mlp_weight_layers) == (1, 1, 1)
    assert arch.attention_input_width == 2 * 3712 and arch.d_head == 464
    b = count_params(arch)
    # every use multiplies through the block: the matmul weights a token meets exceed the stored parameters
    h, q = 3712, 16 * 464
    block = 2 * h * q * 3 + q * h + 3 * h * 14848
    assert active_matmul_weights(arch) - b.total == pytest.approx((uses - 1) * block, rel=0.01)
    # what a quantiser converts: the block once, each use's 3712 x 3712 projection
    quantised = sum(n * i * o for n, i, o in block_linear_shapes(arch))
    assert quantised < b.total and b.total - quantised < 0.02 * b.total
    # ZambaConfig's rule: layer 2, then i + 3 for i % attn_layer_period == attn_layer_offset (7, 13, ..., 73)
    hybrid = [i for i, k in enumerate(arch.layer_kinds) if k is LayerType.SHARED_ATTENTION_MAMBA]
    assert hybrid == [2, *range(7, 76, 6)]


def test_zamba2_blocks_alternate_and_every_use_has_its_adapters():
    arch = _arch("zamba2-7b")
    assert (arch.shared_blocks, arch.shared_attention_layers, arch.shared_adapter_rank, arch.shared_attention_adapters) == (
        2, 13, 128, True)  # fmt: skip
    h, f, r = 3584, 14336, 128
    no_adapters = count_params(_arch("zamba2-7b", use_shared_attention_adapter=False)).total
    assert count_params(arch).total - no_adapters == 13 * 3 * (2 * h * r + r * 2 * h)  # q, k and v adapters a use
    one_block = count_params(_arch("zamba2-7b", num_mem_blocks=1)).total
    attention = 2 * h * (32 * 224) * 3 + 32 * 224 * h
    assert count_params(arch).total - one_block == attention + 3 * h * f + 2 * h + h  # the second block and its norms
    assert count_params(_arch("zamba2-7b", adapter_rank=64)).total < count_params(arch).total
    del f, r


def test_training_activations_count_each_use_of_the_shared_block():
    """The mean layer of Zamba2 7B: more kept bytes with its 13 uses of the shared block than with none (a plain
    Mamba-2 model of the same layers), and the short convolutions' six h-wide tensors in LFM2's."""
    opts = ActivationOptions(seq_len=2048, micro_batch_size=1, element_bytes=2, flash_attention=True)
    zamba2 = layer_activation_bytes(_arch("zamba2-7b"), opts).total_bytes
    plain = layer_activation_bytes(_arch("zamba2-7b", layers_block_type=["mamba"] * 81), opts).total_bytes
    assert zamba2 > plain
    # LFM2 1.2B less six of its attention layers made short convolutions: the mean layer changes by the
    # convolution's 7h a token (its input and six tensors) against an attention layer's kept bytes
    lfm2 = layer_activation_bytes(_arch("lfm2-1.2b"), opts)
    conv = mixer_activation_bytes(_arch("lfm2-1.2b"), LayerType.SHORT_CONV, seq_len=2048, micro_batch_size=1, element_bytes=2)
    assert conv.replicated_bytes + conv.sharded_bytes == 7 * 2048 * 2048 * 2
    assert lfm2.total_bytes > conv.replicated_bytes + conv.sharded_bytes


def test_tensor_parallelism_splits_the_short_convolutions_channels_and_the_shared_heads():
    assert tensor_parallel_problem(_arch("lfm2-1.2b"), 8) is None
    odd = make_architecture(n_layers=2, d_model=90, n_heads=4, d_head=16, d_ff=256, vocab_size=100,
                            layer_types=["short_conv", "attention"])  # fmt: skip
    assert "d_model=90" in (tensor_parallel_problem(odd, 4) or "")
    assert tensor_parallel_problem(_arch("zamba2-7b"), 2) is None  # 32 heads, 112 Mamba-2 heads, 2 groups
    assert "ssm_n_groups" in (tensor_parallel_problem(_arch("zamba2-7b"), 4) or "")


@pytest.mark.parametrize(
    ("name", "changes", "key", "words"),
    [
        ("lfm2-1.2b", {"full_attn_idxs": [16]}, "full_attn_idxs", "below num_hidden_layers"),
        ("lfm2-1.2b", {"layer_types": ["conv"] * 15 + ["sliding_attention"]}, "layer_types", "conv and full_attention"),
        ("lfm2-1.2b", {"conv_L_cache": 0}, "conv_L_cache", "from 1"),
        ("lfm2-1.2b", {"moe_intermediate_size": 512}, "moe_intermediate_size", "mixes two families"),
        ("lfm2-1.2b", {"hybrid_override_pattern": "M*"}, "hybrid_override_pattern", "mixes two families"),
        ("lfm2-8b-a1b", {"num_experts": 1}, "num_experts", "from 2"),
        ("zamba-7b", {"layers_block_type": ["mamba"] * 75}, "layers_block_type", "each of the 76"),
        ("zamba-7b", {"layers_block_type": ["mamba"] * 75 + ["rwkv"]}, "layers_block_type", "mamba"),
        ("zamba-7b", {"mamba_d_state": 0}, "mamba_d_state", "from 1"),
        ("zamba-7b", {"attention_hidden_size": 3712}, "attention_hidden_size", "2 * hidden_size"),
        ("zamba-7b", {"adapter_rank": 8}, "adapter_rank", "mixes two families"),
        ("zamba2-7b", {"n_mamba_heads": 100}, "n_mamba_heads", "divide"),
        ("zamba2-7b", {"mamba_ngroups": 3}, "mamba_ngroups", "does not divide"),
        ("zamba2-7b", {"mamba_dt_rank": 64}, "mamba_dt_rank", "mixes two families"),
        ("zamba2-7b", {"num_key_value_heads": 8}, "use_shared_attention_adapter", "n_kv_heads"),
    ],
)  # fmt: skip
def test_bad_configs_name_the_key(name, changes, key, words):
    with pytest.raises(InvalidSpecError) as err:
        _arch(name, **changes)
    assert err.value.field == f"hf_config.{key}", (err.value.field, err.value.reason)
    assert words in err.value.reason, err.value.reason


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"layer_types": ["short_conv", "mamba"], "ssm_state_size": 16}, "layer_types"),
        ({"short_conv_bias": True}, "short_conv_bias"),
        ({"layer_types": ["short_conv"], "short_conv_kernel": 0}, "short_conv_kernel"),
        ({"shared_adapter_rank": 8}, "shared_adapter_rank"),
        ({"layer_types": ["mamba2", "shared_attention_mamba2"], "ssm_state_size": 16, "mixer_mlp": False, "d_head": 128,
          "shared_attention_adapters": True}, "shared_attention_adapters"),
        ({"layer_types": ["mamba2", "shared_attention_mamba2"], "ssm_state_size": 16}, "mixer_mlp"),
        ({"layer_types": ["mamba2", "shared_attention_mamba2"], "ssm_state_size": 16, "mixer_mlp": False, "n_experts": 4,
          "experts_per_token": 2}, "n_experts"),
        ({"layer_types": ["attention", "shared_attention_mamba"], "ssm_state_size": 16, "mixer_mlp": False}, "layer_types"),
    ],
)  # fmt: skip
def test_explicit_fields_of_the_new_layers_are_checked(fields, name):
    base = {"n_layers": 4, "d_model": 256, "n_heads": 4, "d_ff": 512, "vocab_size": 1000}
    with pytest.raises(InvalidSpecError) as err:
        make_architecture(**base | fields)
    assert err.value.field == f"model.{name}", (err.value.field, err.value.reason)


def test_the_step_time_moves_the_short_convolutions_gates():
    """The gates and the depthwise convolution move 8h elements a token and layer (module docstring of
    ``service.core.steptime_recurrent``), at LFM2 1.2B's 10 of 16 layers."""
    from service.core.steptime_recurrent import scan_bytes_per_token

    assert scan_bytes_per_token(_arch("lfm2-1.2b"), 2) == 2 * 10 * 8 * 2048 / 16


def test_a_decode_step_reads_a_shared_block_once_a_use():
    """Zamba2 7B stores two blocks and runs them 13 times: a decode step streams the 11 later uses' weights
    again, so its weight reads approach the matmul weights a token meets; a model without shared blocks reads
    its weights once."""
    from service.core.params import weight_reads_per_token

    arch = _arch("zamba2-7b")
    total = count_params(arch).total
    assert weight_reads_per_token(arch) * total == pytest.approx(active_matmul_weights(arch), rel=0.02)
    assert weight_reads_per_token(_arch("lfm2-1.2b")) == 1.0
