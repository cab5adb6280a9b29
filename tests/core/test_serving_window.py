"""The GPUs a served model needs count a sliding-window KV cache at its window, as the replica
and ``kv_cache_bytes`` do (Jiang et al. 2023, Mistral 7B §2, "Rolling Buffer Cache": a layer
keeps the last W = 4,096 tokens, so "on a sequence length of 32k tokens, this reduces the cache
memory usage by 8x")."""

from __future__ import annotations

from service.core.dtypes import Dtype
from service.core.memory import kv_cache_bytes
from service.core.serving import replica, replica_kv_cache_bytes, smallest_fitting_tp, weight_bytes
from tests.core.helpers import hardware, preset

# Mistral 7B (Table 1): 32 layers, 8 KV heads of 128, window 4,096; K and V in bf16
MISTRAL_KV_BYTES_PER_TOKEN = 2 * 32 * 8 * 128 * 2  # 131,072
CONTEXT_TOKENS = 32_768


def test_mistral_7b_kv_cache_at_32k_is_the_window():
    arch = preset("mistral-7b")
    capped = kv_cache_bytes(arch, seq_len=CONTEXT_TOKENS, batch_size=1, kv_dtype=Dtype.BF16)
    assert capped == MISTRAL_KV_BYTES_PER_TOKEN * 4096 == 536_870_912
    linear = MISTRAL_KV_BYTES_PER_TOKEN * CONTEXT_TOKENS
    assert linear == 8 * capped  # the paper's "8x"
    # over 8 ranks each holds one of the 8 KV heads; over more would replicate them (none here)
    assert replica_kv_cache_bytes(arch, tp=8, seq_len=CONTEXT_TOKENS, kv_dtype=Dtype.BF16) == capped


def test_mistral_7b_at_32k_fits_the_gpus_its_capped_cache_needs():
    """32 sequences of 32K tokens on H100 80GB: weights 13.5 GiB + 32 x 0.5 GiB of window fit one
    GPU's 70 GiB usable (0.9 x 80 GiB less 2 GiB); counted linearly (32 x 4 GiB) they needed 4."""
    arch, h100 = preset("mistral-7b"), hardware("h100-sxm")
    weights = weight_bytes(arch, Dtype.BF16).total_bytes
    common = dict(
        memory_bytes=h100.memory_bytes, gpus_per_node=8, weights_bytes=weights, kv_dtype=Dtype.BF16, seq_len=CONTEXT_TOKENS
    )
    assert smallest_fitting_tp(arch, batch_size=32, **common) == 1
    # the same rule as the replica's: its largest batch on one GPU fits one GPU, one more does not
    most = replica(arch, h100, tp=1, weights=weight_bytes(arch, Dtype.BF16), kv_dtype=Dtype.BF16, prompt_tokens=CONTEXT_TOKENS - 1,
                   output_tokens=1).max_batch  # fmt: skip
    assert most == (70 * 2**30 - weights) // 536_870_912 == 113
    assert smallest_fitting_tp(arch, batch_size=most, **common) == 1
    assert smallest_fitting_tp(arch, batch_size=most + 1, **common) == 2
    # a model without a window still grows linearly: the window removed, 32 sequences need 4 GPUs
    full = preset("mistral-7b", sliding_window=None)
    assert smallest_fitting_tp(full, batch_size=32, **common) == 4
