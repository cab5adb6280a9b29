"""Activation memory against Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large
Transformer Models"), Table 2 and §4.3, and the constants derived for other architectures."""

from __future__ import annotations

import pytest

from service.core.activations import ActivationOptions, layer_activation_bytes, stage_activation_bytes
from service.core.compute import Recompute
from service.core.kernels import MEGATRON
from service.core.spec import make_architecture
from tests.core.helpers import gpt3_like, preset

S, B, H, A, L, V = 2048, 1, 12288, 96, 96, 51200
SBH = S * B * H


def per_layer(t: int = 1, **kw: object) -> int:
    opts = ActivationOptions(seq_len=S, micro_batch_size=B, tp=t, dropout=True, kernels=MEGATRON, **kw)
    return layer_activation_bytes(gpt3_like(), opts).total_bytes


@pytest.mark.parametrize("t", [1, 2, 4, 8])
def test_table2_no_parallelism_and_tensor_parallel(t: int) -> None:
    # Table 2, "tensor parallel (baseline)": s*b*h*(10 + 24/t + 5*a*s/(h*t)); t = 1: 34 + 5as/h
    assert per_layer(t) == SBH * 10 + SBH * 24 // t + 5 * A * S * S * B // t


@pytest.mark.parametrize("t", [1, 2, 4, 8])
def test_table2_sequence_parallel(t: int) -> None:
    # Table 2, "tensor + sequence parallel": s*b*h*(34/t + 5*a*s/(h*t))
    assert per_layer(t, sequence_parallel=True) == SBH * 34 // t + 5 * A * S * S * B // t


@pytest.mark.parametrize("t", [1, 8])
def test_table2_selective_recompute(t: int) -> None:
    # Table 2, "tensor + sequence parallel + selective recompute": s*b*h*34/t;
    # "tensor parallel + selective": s*b*h*(10 + 24/t)
    assert per_layer(t, sequence_parallel=True, recompute=Recompute.SELECTIVE) == SBH * 34 // t
    assert per_layer(t, recompute=Recompute.SELECTIVE) == SBH * 10 + SBH * 24 // t


def test_table2_full_recompute_keeps_the_layer_input() -> None:
    # Table 2, "full activation recomputation": 2*s*b*h per layer
    assert per_layer(8, recompute=Recompute.FULL) == 2 * SBH
    assert per_layer(8, recompute=Recompute.FULL, sequence_parallel=True) == 2 * SBH // 8


def test_gpt3_attention_scores_dominate() -> None:
    # §4.1: for GPT-3, 5as/h = 80 against 34 for the rest of the layer
    assert 5 * A * S / H == 80
    scores = per_layer() - 34 * SBH
    assert scores == 80 * SBH


def test_section_4_3_first_stage_and_output_layer() -> None:
    # §4.2.3: under 1F1B the first stage holds p micro-batches of L/p layers = L layers' worth,
    # plus the embedding dropout mask s*b*h*p/t; §4.3: the output layer 4*s*b*h/t*(1 + V/h).
    t, p = 8, 8
    opts = ActivationOptions(seq_len=S, micro_batch_size=B, tp=t, sequence_parallel=True, dropout=True, kernels=MEGATRON)
    stage = stage_activation_bytes(gpt3_like(vocab_size=V), opts, pp=p)
    layer = SBH * 34 // t + 5 * A * S * S * B // t
    assert stage.first_stage_bytes == L * layer + SBH * p // t
    assert stage.peak_bytes == stage.first_stage_bytes
    single = stage_activation_bytes(gpt3_like(vocab_size=V), opts, pp=1)
    assert single.peak_bytes == L * layer + SBH // t + 4 * SBH // t + 4 * S * B * V // t


def test_derived_constant_for_swiglu_without_dropout() -> None:
    # Llama-2-7B: MHA, SwiGLU with f = 11008, no dropout. Per layer / (s*b*h):
    # norms 4 + QKV input 2 + MLP input 2 + Q,K,V,out 8 + SwiGLU 3*2*f/h = 32.125 (not 34)
    arch = preset("llama-2-7b")
    opts = ActivationOptions(seq_len=4096, micro_batch_size=1, recompute=Recompute.SELECTIVE, kernels=MEGATRON)
    sbh = 4096 * 4096
    assert layer_activation_bytes(arch, opts).total_bytes == sbh * 16 + 6 * 4096 * 11008


def test_derived_constant_for_gqa() -> None:
    # Llama-2-70B: 64 query heads, 8 KV heads of 128: K and V are 1/8 of Q.
    arch = preset("llama-2-70b")
    opts = ActivationOptions(seq_len=4096, micro_batch_size=1, recompute=Recompute.SELECTIVE, kernels=MEGATRON)
    s, h, f = 4096, 8192, 28672
    expected = 2 * s * h * 4 + 2 * s * (2 * h + 2 * 1024) + 6 * s * f
    assert layer_activation_bytes(arch, opts).total_bytes == expected


def test_flash_attention_keeps_only_the_log_sum_exp() -> None:
    arch = preset("llama-2-7b")
    base = ActivationOptions(seq_len=4096, micro_batch_size=2, kernels=MEGATRON)
    flash = ActivationOptions(seq_len=4096, micro_batch_size=2, flash_attention=True, kernels=MEGATRON)
    plain, fused = layer_activation_bytes(arch, base), layer_activation_bytes(arch, flash)
    assert plain.scores_bytes == 2 * 32 * 4096 * 4096 * 2  # softmax output, 2 bytes, no dropout
    assert fused.scores_bytes == 4 * 4096 * 2 * 32  # fp32 log-sum-exp per query and head
    assert plain.sharded_bytes == fused.sharded_bytes


def test_qk_norm_keeps_its_input_and_normalised_copy_of_q_and_k() -> None:
    # Qwen3's q_norm/k_norm (per head) and OLMo 2's (over the projection) keep what a norm keeps per
    # element of Q and K: with transformers' fp32 upcast 4 + 2 bytes (measured within 0.3 %: ACCURACY.md);
    # Q splits over the tensor-parallel ranks, K over at most n_kv_heads of them
    shape = dict(n_layers=2, d_model=1024, n_heads=16, n_kv_heads=2, d_ff=2816, vocab_size=1000, ffn="swiglu", norm="rmsnorm")
    plain, per_head, full_width = (
        make_architecture(**shape, **extra) for extra in ({}, {"qk_norm": True}, {"qk_norm_full_width": True})
    )  # type: ignore[arg-type]
    tokens = 512 * 2
    for tp in (1, 4):
        opts = ActivationOptions(seq_len=512, micro_batch_size=2, tp=tp, flash_attention=True)
        extra = layer_activation_bytes(per_head, opts).total_bytes - layer_activation_bytes(plain, opts).total_bytes
        assert extra == 6 * tokens * (1024 // tp + 128 // min(tp, 2))  # q: 16 x 64 split by tp, k: 2 x 64 over <= 2 ranks
        assert layer_activation_bytes(full_width, opts) == layer_activation_bytes(per_head, opts)
    full = ActivationOptions(seq_len=512, micro_batch_size=2, recompute=Recompute.FULL)
    assert layer_activation_bytes(per_head, full) == layer_activation_bytes(plain, full)  # only the layer input is kept


def test_olmo2_norms_keep_an_fp32_normalised_tensor() -> None:
    # OLMo 2's RMSNorm multiplies by its weight in fp32 (transformers' Olmo2RMSNorm): each of its
    # four norms (after attention, after the MLP, over the whole query and key projections) keeps
    # 8 bytes an element instead of 4 + 2; measured on the CPU: 3,907,584 bytes a layer with SDPA
    from service.core.kernels import AttentionKernel, Kernels

    arch = make_architecture(n_layers=1, d_model=256, n_heads=4, n_kv_heads=2, d_ff=688, vocab_size=1024, ffn="swiglu",
                             norm="rmsnorm", max_seq_len=512, qk_norm_full_width=True)  # fmt: skip
    llama_style = Kernels(attention=AttentionKernel.SDPA, residual_dropout=False)
    olmo2 = Kernels(attention=AttentionKernel.SDPA, residual_dropout=False, fp32_norm_weight=True)

    def kept(kernels: Kernels) -> int:
        opts = ActivationOptions(seq_len=128, micro_batch_size=2, element_bytes=2, kernels=kernels)
        return layer_activation_bytes(arch, opts).total_bytes

    elements = 128 * 2 * (256 + 256 + 256 + 128)  # the four norms' inputs: h, h, the query's 256, the key's 128
    assert kept(olmo2) - kept(llama_style) == 2 * elements
    assert kept(olmo2) == pytest.approx(3_907_584, rel=0.002)


@pytest.mark.parametrize("model", ["gpt2", "gpt2-xl"])
def test_gpt2_layer_with_dropout_on_the_gpu_and_the_cpu_convention(model: str) -> None:
    # Korthikanti et al. 2022, Table 2 (no parallelism, no recompute, 16-bit): 34*s*b*h + 5*a*s^2*b
    # bytes a layer with dropout, whose masks CUDA's native_dropout keeps as 1 byte an element (the
    # default). The CPU keeps each mask as a noise tensor of the dropped tensor's dtype (2 bytes): the
    # two residual masks add s*b*h, the score mask a*s^2*b
    from service.core.kernels import DeviceConvention, Kernels

    arch, s, b = preset(model), 1024, 2
    sbh, scores = s * b * arch.d_model, arch.n_heads * s * s * b

    def kept(**kw: object) -> int:
        kernels = Kernels(framework=MEGATRON.framework, **kw)  # type: ignore[arg-type]
        return layer_activation_bytes(
            arch, ActivationOptions(seq_len=s, micro_batch_size=b, dropout=True, kernels=kernels)
        ).total_bytes

    assert kept() == 34 * sbh + 5 * scores
    assert kept(device=DeviceConvention.CPU) == 36 * sbh + 6 * scores
    no_dropout = ActivationOptions(
        seq_len=s, micro_batch_size=b, kernels=Kernels(framework=MEGATRON.framework, device=DeviceConvention.CPU)
    )
    assert layer_activation_bytes(arch, no_dropout).total_bytes == 32 * sbh + 2 * scores  # nothing moves without dropout


def test_cpu_sdpa_with_dropout_runs_the_fp32_math_path() -> None:
    # PyTorch's CPU flash kernel takes no dropout (sdp_utils_cpp.cpp, check_for_dropout): SDPA runs
    # _scaled_dot_product_attention_math, which keeps fp32 Q, K, V and 12 bytes a score (fp32 softmax,
    # noise and dropped scores) instead of the log-sum-exp; on CUDA the fused kernels keep the LSE.
    # Measured on GPT-2 (transformers, bf16): 4,327,424 bytes a layer (ACCURACY.md)
    from service.core.kernels import AttentionKernel, DeviceConvention, Kernels

    arch = make_architecture(n_layers=1, d_model=256, n_heads=4, d_ff=1024, vocab_size=1024, ffn="gelu", norm="layernorm",
                             bias=True, tied_embeddings=True, position="learned", max_seq_len=512)  # fmt: skip
    s, b = 128, 2
    sbh, scores = s * b * 256, 4 * s * s * b

    def kept(device: DeviceConvention) -> int:
        kernels = Kernels(attention=AttentionKernel.SDPA, fp32_softmax=False, fused_activation=True, device=device)
        opts = ActivationOptions(seq_len=s, micro_batch_size=b, dropout=True, element_bytes=2, kernels=kernels)
        return layer_activation_bytes(arch, opts).total_bytes

    lse = 4 * s * b * 4
    # Q, K, V from 2 to 4 bytes; the LSE gives way to 12 bytes a score; residual masks from 1 to 2 bytes
    assert kept(DeviceConvention.CPU) - kept(DeviceConvention.CUDA) == 3 * 2 * sbh + 12 * scores - lse + 2 * sbh
    assert kept(DeviceConvention.CPU) == pytest.approx(4_327_424, rel=0.001)
