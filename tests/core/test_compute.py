"""Training and inference FLOPs against published figures."""

from __future__ import annotations

import pytest

from service.core.compute import AttentionFormula, Recompute, inference_flops, training_flops
from service.core.errors import InvalidSpecError, MissingArchitectureError
from service.core.spec import make_params_only
from tests.core.helpers import gpt3_like, preset


def test_gpt3_175b_on_300b_tokens_is_3_14e23() -> None:
    # Brown et al. 2020, Table D.1: GPT-3 175B, 300B tokens, 3.14e23 training FLOPs (6ND with N=174.6B)
    r = training_flops(preset("gpt-3-175b"), 300e9)
    assert r.model_flops == pytest.approx(3.14e23, rel=0.005)
    assert r.model_flops_per_token == 6 * r.params_used
    assert r.forward_flops_per_token * 2 == r.backward_flops_per_token


def test_chinchilla_70b_on_1_4t_tokens() -> None:
    # Hoffmann et al. 2022, Table 3: 70B parameters, 1.4T tokens, 5.76e23 FLOPs (their count
    # includes smaller attention terms; 6ND with 70e9 gives 5.88e23, 2 % above).
    r = training_flops(make_params_only(70e9), 1.4e12)
    assert r.model_flops == pytest.approx(5.88e23, rel=1e-12)
    assert r.model_flops == pytest.approx(5.76e23, rel=0.025)


def test_full_recompute_adds_a_forward_pass_8pd() -> None:
    r = training_flops(make_params_only(7e9), 1e12, recompute=Recompute.FULL)
    assert r.model_flops == 6 * 7e9 * 1e12
    assert r.hardware_flops == 8 * 7e9 * 1e12


def test_megatron_formula_equals_narayanan_equation_with_full_recompute() -> None:
    # Narayanan et al. 2021 §5.1: F = 96*B*s*L*h^2*(1 + s/(6h) + V/(16*L*h)) per iteration with
    # full recomputation (hardware FLOPs); MHA and a 4h MLP, biases ignored.
    arch = gpt3_like(bias=False)
    s, L, h, V = 2048, 96, 12288, 51200
    batch = 1536
    r = training_flops(
        arch, batch * s, recompute=Recompute.FULL, include_attention=True,
        attention_formula=AttentionFormula.MEGATRON, seq_len=s,
    )  # fmt: skip
    expected = 96 * batch * s * L * h**2 * (1 + s / (6 * h) + V / (16 * L * h))
    assert r.hardware_flops == pytest.approx(expected, rel=1e-12)
    # model FLOPs are the same without the recompute: 72 instead of 96 on the layers
    assert r.model_flops == pytest.approx(72 * batch * s * L * h**2 * (1 + s / (6 * h)) + 6 * batch * s * V * h, rel=1e-12)


def test_palm_540b_mfu_46_2_percent() -> None:
    # Chowdhery et al. 2022, Appendix B: 6N + 12LHQT FLOPs per token; 238.3K tokens/s on 6144
    # TPU v4 chips (275 TFLOP/s bf16 peak) is 46.2 % MFU.
    r = training_flops(preset("palm-540b"), 1, include_attention=True, attention_formula=AttentionFormula.PALM, seq_len=2048)
    assert r.model_flops_per_token == pytest.approx(6 * r.params_used + 12 * 118 * 48 * 256 * 2048)
    mfu = r.model_flops_per_token * 238.3e3 / (6144 * 275e12)
    assert mfu == pytest.approx(0.462, abs=0.001)


def test_kaplan_formula_uses_non_embedding_params() -> None:
    arch = preset("gpt2")
    r = training_flops(arch, 1.0, include_attention=True, attention_formula=AttentionFormula.KAPLAN, seq_len=1024)
    n = 85_056_000  # GPT-2 small without its 50257x768 token and 1024x768 position tables
    assert r.model_flops_per_token == pytest.approx(6 * n + 6 * 12 * 1024 * 768)


def test_causal_masking_halves_the_attention_term() -> None:
    arch = preset("llama-2-7b")
    full = training_flops(arch, 1.0, include_attention=True, seq_len=4096)
    causal = training_flops(arch, 1.0, include_attention=True, seq_len=4096, causal=True)
    six_p = 6 * full.params_used
    assert causal.model_flops_per_token - six_p == pytest.approx((full.model_flops_per_token - six_p) / 2)


def test_selective_recompute_reruns_the_forward_attention_core() -> None:
    # Korthikanti et al. 2022 §5: selective recompute re-runs QK^T, softmax and AV only; their
    # forward costs 4*L*h*s per token (MHA), under 1 % of GPT-3's training FLOPs at s = 2048.
    # (The paper's 2.7 % equals the whole fwd+bwd attention term, 12*L*h*s per token.)
    r = training_flops(gpt3_like(), 1.0, recompute=Recompute.SELECTIVE, include_attention=True, seq_len=2048)
    assert r.hardware_flops - r.model_flops == pytest.approx(4 * 96 * 12288 * 2048)
    assert 0 < r.hardware_flops / r.model_flops - 1 < 0.027


def test_moe_uses_active_params() -> None:
    mixtral = preset("mixtral-8x7b")
    r = training_flops(mixtral, 1e12)
    assert r.params_used == 12_879_925_248
    assert r.model_flops == pytest.approx(6 * 12_879_925_248 * 1e12)


def test_attention_needs_the_architecture() -> None:
    with pytest.raises(MissingArchitectureError) as err:
        training_flops(make_params_only(7e9), 1e9, include_attention=True)
    assert "n_layers" in str(err.value)
    with pytest.raises(MissingArchitectureError):
        training_flops(make_params_only(7e9), 1e9, recompute=Recompute.SELECTIVE)


def test_inference_prefill_and_decode_closed_form_matches_a_sum() -> None:
    # the prefill runs the layers over n tokens and the logit projection once (the first new
    # token); m new tokens then need m - 1 decode passes, each through the layers and the logits
    arch = preset("llama-2-7b")
    n, m = 37, 11
    r = inference_flops(arch, prompt_tokens=n, output_tokens=m, batch_size=3)
    logits = 2 * 32000 * 4096
    layers = 2 * (6_738_415_616 - 2 * 32000 * 4096 - 65 * 4096)  # no embedding, head or norms
    assert r.flops_per_token_weights == layers + logits
    per_pos = 4 * 32 * 4096
    prefill = sum(layers + per_pos * t for t in range(1, n + 1)) + logits
    decode = sum(layers + logits + per_pos * t for t in range(n + 1, n + m))
    assert r.prefill_flops == pytest.approx(3 * prefill)
    assert r.decode_flops == pytest.approx(3 * decode)
    assert r.flops_per_token == pytest.approx(decode / (m - 1))


def test_inference_counts_no_embedding_lookup() -> None:
    # an untied model's input table is a lookup: one more vocabulary row of weights adds FLOPs
    # only through the logit projection, per generated token
    arch, wider = preset("llama-2-7b"), preset("llama-2-7b", vocab_size=32001)
    a = inference_flops(arch, prompt_tokens=10, output_tokens=5, include_attention=False)
    b = inference_flops(wider, prompt_tokens=10, output_tokens=5, include_attention=False)
    assert b.total_flops - a.total_flops == 5 * 2 * 4096


def test_inference_two_p_rule_without_attention() -> None:
    r = inference_flops(make_params_only(70e9), prompt_tokens=0, output_tokens=10, include_attention=False)
    assert r.flops_per_token == 2 * 70e9
    assert r.total_flops == 10 * 2 * 70e9


def test_inference_rejects_zero_tokens() -> None:
    with pytest.raises(InvalidSpecError):
        inference_flops(make_params_only(1e9), prompt_tokens=0, output_tokens=0, include_attention=False)
