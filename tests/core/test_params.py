"""Exact parameter counts of real architectures.

Expected integers are the counts of the reference implementations (HuggingFace ``transformers``
models instantiated on PyTorch's meta device from each model's published config, tied weights
once); the headline figures of the papers are rounded and only checked loosely.
"""

from __future__ import annotations

import pytest

from service.catalog import loader
from service.core.params import count_params
from service.core.spec import make_architecture
from tests.core.helpers import preset, preset_architecture

# id -> exact total parameters of the reference implementation
EXACT_TOTALS = {
    "gpt2": 124_439_808,  # GPT2LMHeadModel, openai-community/gpt2
    "gpt2-medium": 354_823_168,
    "gpt2-large": 774_030_080,
    "gpt2-xl": 1_557_611_200,
    "pythia-70m": 70_426_624,  # GPTNeoXForCausalLM, EleutherAI/pythia-*-deduped
    "pythia-160m": 162_322_944,
    "pythia-410m": 405_334_016,
    "pythia-1b": 1_011_781_632,
    "pythia-1.4b": 1_414_647_808,
    "pythia-2.8b": 2_775_208_960,
    "pythia-6.9b": 6_857_302_016,
    "pythia-12b": 11_846_072_320,
    "gpt-neox-20b": 20_554_567_680,
    "bloom-176b": 176_247_271_424,  # BloomForCausalLM (ALiBi, embedding LayerNorm)
    "opt-175b": 174_604_468_224,  # OPTForCausalLM (2050 learned position rows)
    "llama-2-7b": 6_738_415_616,  # LlamaForCausalLM; the formula sheet's check value
    "llama-2-13b": 13_015_864_320,
    "llama-2-70b": 68_976_648_192,
    "llama-3-8b": 8_030_261_248,
    "llama-3-70b": 70_553_706_496,
    "llama-3.1-405b": 405_853_388_800,
    "mistral-7b": 7_241_732_096,  # MistralForCausalLM v0.1
    "mixtral-8x7b": 46_702_792_704,  # MixtralForCausalLM
    "qwen2.5-7b": 7_615_616_512,  # Qwen2ForCausalLM (QKV biases)
    "falcon-7b": 6_921_720_704,  # FalconForCausalLM (MQA, one shared LayerNorm, tied)
}


@pytest.mark.parametrize(("model_id", "expected"), sorted(EXACT_TOTALS.items()))
def test_exact_total_matches_reference_implementation(model_id: str, expected: int) -> None:
    assert count_params(preset(model_id)).total == expected


def test_mixtral_active_params_two_of_eight_experts() -> None:
    # total minus 6 unused experts' SwiGLU MLPs in each of 32 layers: 3*4096*14336*6*32
    b = count_params(preset("mixtral-8x7b"))
    assert b.active == 12_879_925_248
    assert b.total - b.active == 3 * 4096 * 14336 * 6 * 32
    # Jiang et al. 2024 §2: "47B parameters, 13B active"
    assert b.total == pytest.approx(47e9, rel=0.01)
    assert b.active == pytest.approx(13e9, rel=0.01)


def test_every_preset_with_a_reference_count_matches_it() -> None:
    checked = 0
    for model_id, row in loader.model_presets().items():
        arch = preset(model_id)
        if row["reference_params"] is not None:
            assert count_params(arch).total == row["reference_params"], model_id
            checked += 1
        if row["reference_active_params"] is not None:
            assert count_params(arch).active == row["reference_active_params"], model_id
    assert checked >= 20


def test_llama_2_7b_from_explicit_fields_and_its_parts() -> None:
    arch = make_architecture(
        n_layers=32, d_model=4096, n_heads=32, d_ff=11008, vocab_size=32000,
        ffn="swiglu", norm="rmsnorm", tied_embeddings=False, position="rotary",
    )  # fmt: skip
    b = count_params(arch)
    assert b.total == 6_738_415_616
    assert b.embedding == b.lm_head == 32000 * 4096
    assert b.attention == 32 * 4 * 4096 * 4096
    assert b.mlp == 32 * 3 * 4096 * 11008
    assert b.norm == (2 * 32 + 1) * 4096
    assert b.embedding + b.attention + b.mlp + b.norm + b.lm_head == b.total


def test_gqa_shrinks_only_key_and_value_projections() -> None:
    mha = count_params(preset("llama-2-70b")).attention
    arch = make_architecture(**(preset_architecture(loader.model_presets()["llama-2-70b"]) | {"n_kv_heads": 64}))
    # 80 layers, K and V go from 8 to 64 heads of 128
    assert count_params(arch).attention - mha == 80 * 2 * 8192 * (64 - 8) * 128


def test_headline_sizes_within_rounding() -> None:
    # Brown et al. 2020 Table 2.1 (175.0B), Touvron et al. 2023 (Llama 2: 7/13/70B),
    # Chowdhery et al. 2022 Table 1 (540.35B)
    assert count_params(preset("gpt-3-175b")).total == pytest.approx(175e9, rel=0.01)
    assert count_params(preset("palm-540b")).total == pytest.approx(540.35e9, rel=0.001)
    for model_id, size in (("llama-2-13b", 13e9), ("llama-2-70b", 70e9), ("llama-3.1-405b", 405e9)):
        assert count_params(preset(model_id)).total == pytest.approx(size, rel=0.02)


def test_shared_experts_are_one_mlp_of_their_total_width() -> None:
    # DeepSeekMoE §3.2's shared experts see the same input and their outputs are summed: one MLP of
    # n_shared * d_ff_shared, as transformers builds them (DeepseekV3MoE.shared_experts is one
    # DeepseekV3MLP of moe_intermediate_size * n_shared_experts). Two shared experts of width f and
    # one of 2f are the same layer: parameters (biases once), quantised weights and their scales,
    # activations, Adafactor's factored states and prefill time all agree.
    from service.core.activations import ActivationOptions, layer_activation_bytes
    from service.core.compute import Recompute
    from service.core.dtypes import Dtype
    from service.core.memory import factored_elements
    from service.core.params import block_linear_shapes
    from service.core.serving import prefill_seconds, weight_bytes
    from tests.core.helpers import hardware

    common = dict(n_layers=4, d_model=512, n_heads=8, d_ff=256, vocab_size=1000, ffn="swiglu", norm="rmsnorm",
                  n_experts=8, experts_per_token=2, first_k_dense=1, d_ff_dense=1024, bias=True)  # fmt: skip
    two = make_architecture(**common, n_shared_experts=2, d_ff_shared=384)  # type: ignore[arg-type]
    one = make_architecture(**common, n_shared_experts=1, d_ff_shared=768)  # type: ignore[arg-type]
    assert two.shared_expert_width == one.shared_expert_width == 768
    assert count_params(two) == count_params(one)
    # a gate and an up projection of 512 -> 768 and one down of 768 -> 512 in each of the 3 MoE layers
    assert (6, 512, 768) in block_linear_shapes(two) and (3, 768, 512) in block_linear_shapes(two)
    assert block_linear_shapes(two) == block_linear_shapes(one)
    for fmt in (Dtype.INT8, Dtype.INT4):
        assert weight_bytes(two, fmt) == weight_bytes(one, fmt)
    opts = ActivationOptions(seq_len=128, micro_batch_size=2, recompute=Recompute.NONE, flash_attention=True)
    assert layer_activation_bytes(two, opts) == layer_activation_bytes(one, opts)
    assert factored_elements(two) == factored_elements(one)
    h100 = hardware("h100-sxm")
    assert prefill_seconds(two, h100, tp=1, prompt_tokens=512) == prefill_seconds(one, h100, tp=1, prompt_tokens=512)
