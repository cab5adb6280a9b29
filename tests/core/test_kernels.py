"""The implementation's kernels (service.core.kernels): what each choice keeps, and that the
defaults resolve per framework and architecture. Measured against transformers in
tests/test_accuracy.py (ACCURACY.md)."""

from __future__ import annotations

from service.core.activations import ActivationOptions, layer_activation_bytes
from service.core.kernels import (
    MEGATRON,
    AttentionKernel,
    Framework,
    Kernels,
    bytes_per_score,
    mlp_intermediates,
    resolve_kernels,
)
from tests.core.helpers import gpt3_like, preset


def test_defaults_follow_the_framework_and_the_architecture() -> None:
    llama, gpt3 = preset("llama-2-7b"), gpt3_like()
    hf_llama, hf_gpt3 = resolve_kernels(Kernels(), llama), resolve_kernels(Kernels(), gpt3)
    assert hf_llama.attention is AttentionKernel.SDPA and hf_llama.fp32_norms and not hf_llama.fused_activation
    assert not hf_gpt3.fp32_norms and hf_gpt3.fused_activation  # nn.LayerNorm, torch's GELU kernel
    mega = resolve_kernels(MEGATRON, llama)
    assert (mega.attention, mega.fp32_softmax, mega.fp32_norms, mega.fused_activation, mega.repeat_kv) == (
        AttentionKernel.EAGER,
        False,
        False,
        True,
        False,
    )
    assert resolve_kernels(MEGATRON, llama, flash_attention=True).attention is AttentionKernel.FLASH
    assert (
        resolve_kernels(Kernels(attention=AttentionKernel.EAGER), llama, flash_attention=True).attention is AttentionKernel.EAGER
    )


def test_bytes_per_score() -> None:
    mega, hf = resolve_kernels(MEGATRON, gpt3_like()), resolve_kernels(Kernels(), gpt3_like())
    # Korthikanti §4.1: softmax output 2, with dropout + mask 1 + output 2 = 5
    assert (bytes_per_score(mega, 2, dropout=False), bytes_per_score(mega, 2, dropout=True)) == (2, 5)
    # fp32 probabilities 4 and their 16-bit copy 2; with dropout the copy is the dropped-out tensor
    assert (bytes_per_score(hf, 2, dropout=False), bytes_per_score(hf, 2, dropout=True)) == (6, 7)
    assert bytes_per_score(hf, 4, dropout=False) == 4  # fp32 training: no cast, no copy


def test_mlp_intermediates() -> None:
    k = resolve_kernels(Kernels(fused_activation=True), gpt3_like())
    u = resolve_kernels(Kernels(fused_activation=False), gpt3_like())
    llama = preset("llama-2-7b")
    assert (mlp_intermediates(k, gpt3_like().ffn), mlp_intermediates(u, gpt3_like().ffn)) == (2, 5)
    assert (mlp_intermediates(k, llama.ffn), mlp_intermediates(u, llama.ffn)) == (3, 4)


def test_transformers_llama_layer_term_by_term() -> None:
    # Llama-2-7B, s = 4096, b = 1, transformers with eager attention: per layer
    arch, s, h, f, a = preset("llama-2-7b"), 4096, 4096, 11008, 32
    opts = ActivationOptions(seq_len=s, micro_batch_size=1, kernels=Kernels(attention=AttentionKernel.EAGER))
    expected = (
        2 * (4 + 2) * s * h  # two RMSNorms: fp32 copy and 16-bit normalised tensor
        + 2 * 2 * s * h  # QKV and MLP inputs
        + 4 * 2 * s * h  # Q, K, V (MHA: repeat_kv changes nothing) and the output-projection input
        + 4 * 2 * s * f  # SwiGLU as act(gate) * up: gate, SiLU output, up, product
        + 6 * a * s * s  # fp32 probabilities and their bf16 copy
    )
    assert layer_activation_bytes(arch, opts).total_bytes == expected
    # the same layer under Megatron's kernels is Korthikanti's count: 16 + 6f/h per s*h, 2 bytes a score
    mega = ActivationOptions(seq_len=s, micro_batch_size=1, kernels=MEGATRON)
    assert layer_activation_bytes(arch, mega).total_bytes == 16 * s * h + 6 * s * f + 2 * a * s * s


def test_eager_gqa_keeps_repeated_kv_sdpa_does_not() -> None:
    arch, s = preset("llama-2-70b"), 1024  # 64 query heads, 8 KV heads of 128
    eager = layer_activation_bytes(arch, ActivationOptions(seq_len=s, micro_batch_size=1,
                                                           kernels=Kernels(attention=AttentionKernel.EAGER)))  # fmt: skip
    sdpa = layer_activation_bytes(arch, ActivationOptions(seq_len=s, micro_batch_size=1))
    # K and V: 2 * 2 bytes * s * 8192 repeated against 2 * 2 * s * 1024 shared
    assert eager.sharded_bytes - sdpa.sharded_bytes == 4 * s * (8192 - 1024)


def test_parallel_block_norms_read_one_tensor() -> None:
    # GPT-NeoX: two LayerNorms on the same residual input keep it once
    sequential = gpt3_like(n_layers=1, d_model=256, n_heads=4, d_ff=1024)
    parallel = gpt3_like(n_layers=1, d_model=256, n_heads=4, d_ff=1024, parallel_attention=True)
    opts = ActivationOptions(seq_len=128, micro_batch_size=2, kernels=Kernels(framework=Framework.HUGGINGFACE))
    assert (
        layer_activation_bytes(sequential, opts).total_bytes - layer_activation_bytes(parallel, opts).total_bytes
        == 2 * 128 * 2 * 256
    )
