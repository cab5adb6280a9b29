"""Inference memory: the weights, the KV cache and the runtime's overhead of serving a model.

Follows Transformers Math 101 (Anthony, Biderman & Schoelkopf 2023, "Inference": total ≈ 1.2 ×
weights plus the KV cache); the KV cache holds a key and a value per KV head, layer and token (Pope
et al. 2022 §3.1), or multi-head latent attention's compressed latent (DeepSeek-V2 §2.1.2), and a
sliding-window layer at most its window (Mistral 7B §2). All byte counts are exact integers
(rounded up where a term is fractional). :mod:`service.core.memory` re-exports these names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from service.core.architecture import Architecture, LayerType, ModelShape
from service.core.compute import require_architecture
from service.core.dtypes import Dtype, tensor_bytes
from service.core.limits import check_bytes
from service.core.params import count_params
from service.core.recurrent import state_elements_per_sequence
from service.core.rwkv import fp32_state_elements

INFERENCE_OVERHEAD_FRACTION = 0.2  # Transformers Math 101: total ≈ 1.2 × model memory


@dataclass(frozen=True, kw_only=True, slots=True)
class InferenceMemory:
    """Serving memory: weights, KV cache and the 20 % overhead, and GPUs needed."""

    weights_bytes: int
    kv_cache_bytes: int
    kv_cache_bytes_per_token: int
    overhead_bytes: int
    total_bytes: int
    gpus_needed: int | None
    formulas: tuple[str, ...]
    state_cache_bytes: int = 0  # the recurrent layers' states of the batch (0 for a transformer)
    state_cache_bytes_per_sequence: int = 0


def kv_cache_elements_per_token_per_layer(arch: Architecture) -> int:
    """Cached values per token and layer: a key and a value per KV head, ``2*k*d_head`` (Pope et
    al. 2022 §3.1); for multi-head latent attention the compressed latent and the shared rotary key,
    ``kv_lora_rank + qk_rope_head_dim`` (DeepSeek-V2, Liu et al. 2024, §2.1.2 and Table 1: 4.5
    d_h per layer for d_c = 4 d_h, d_r = d_h/2), as DeepSeek's inference code and vLLM/SGLang cache
    it with the up-projections absorbed."""
    if arch.is_mla:
        return (arch.kv_lora_rank or 0) + (arch.qk_rope_head_dim or 0)
    return 2 * arch.kv_dim


def kv_cache_tensor_shards(arch: Architecture) -> int:
    """Ranks a layer's KV cache can be split over with tensor parallelism: one per KV head; an MLA
    latent is shared by every head, so each tensor-parallel rank keeps all of it (1)."""
    return 1 if arch.is_mla else arch.n_kv_heads


def cached_tokens(arch: Architecture, seq_len: int) -> int:
    """Token slots held over all layers after ``seq_len`` tokens: ``seq_len`` per global layer,
    ``min(seq_len, sliding_window)`` per sliding-window layer (a rolling buffer, Jiang et al. 2023,
    Mistral 7B §2 "Rolling Buffer Cache"; Gemma 2 alternates local and global layers, Gemma Team
    2024 §2). Recurrent layers (``layer_types``) cache no tokens: they keep a state
    (:func:`state_cache_bytes_per_sequence`)."""
    local = arch.local_layers
    window = min(seq_len, arch.sliding_window or seq_len)
    return arch.global_layers * seq_len + local * window


def kv_cache_bytes(arch: Architecture, *, seq_len: int, batch_size: int, kv_dtype: Dtype) -> int:
    """KV cache: ``2 * L * k * d_head * s * batch * bytes`` — a key and a value vector per KV
    head, layer and token (Pope et al. 2022, "Efficiently Scaling Transformer Inference" §3.1;
    GQA/MQA shrink k, Ainslie et al. 2023). Multi-head latent attention caches
    ``kv_lora_rank + qk_rope_head_dim`` values instead of ``2*k*d_head``; sliding-window layers hold
    at most ``sliding_window`` tokens (:func:`kv_cache_elements_per_token_per_layer`,
    :func:`cached_tokens`)."""
    per = kv_cache_elements_per_token_per_layer(arch)
    return tensor_bytes(per * cached_tokens(arch, seq_len) * batch_size, kv_dtype)


def state_cache_bytes_per_sequence(arch: Architecture, state_dtype: Dtype) -> int:
    """Bytes of the fixed-size state one sequence keeps in the recurrent layers (Mamba, Mamba-2,
    RWKV), constant in the context length (:func:`service.core.recurrent.state_elements_per_sequence`:
    Gu & Dao 2023 §3.4; Dao & Gu 2024 §7; Peng et al. 2023 §3.4); 0 for a transformer. Held in
    ``state_dtype``, as vLLM holds it in the model's dtype by default (the ``mamba_ssm_cache_dtype``
    ``auto``); transformers keeps it in the weights' dtype, RWKV-4's in fp32. RWKV-6/7's WKV matrices are
    fp32 whatever ``state_dtype`` (:func:`service.core.rwkv.fp32_state_elements`: fla's kernels and the rwkv
    package keep them so), their token-shift vectors in ``state_dtype``."""
    fp32 = fp32_state_elements(arch)
    return tensor_bytes(state_elements_per_sequence(arch) - fp32, state_dtype) + 4 * fp32


def recurrent_state_dtype(weights: Dtype) -> Dtype:
    """The format a recurrent layer's state is held in when serving: the model's own dtype, not the KV
    cache's (vLLM's ``mamba_cache_dtype`` ``auto`` takes the model config's dtype whatever
    ``kv_cache_dtype``: ``MambaStateDtypeCalculator`` in vllm/model_executor/layers/mamba/mamba_utils.py).
    fp32 and fp16 weights keep their own; bf16 weights and quantised ones (fp8, int8, int4, whose
    activations are 16-bit) bf16."""
    return weights if weights in (Dtype.FP32, Dtype.FP16) else Dtype.BF16


def inference_memory(
    model: ModelShape,
    *,
    dtype: Dtype = Dtype.BF16,
    kv_dtype: Dtype | None = None,
    batch_size: int = 1,
    seq_len: int | None = None,
    gpu_memory_bytes: int | None = None,
    weights_bytes: int | None = None,
) -> InferenceMemory:
    """Memory to serve ``model``: weights ``P * bytes(dtype)``, overhead ``0.2 * weights``
    (Transformers Math 101: total ≈ 1.2 × model memory) and the KV cache for ``batch_size``
    sequences of ``seq_len`` tokens (default the model's context). ``gpus_needed`` divides the
    total by one GPU's memory, rounded up (weights sharded with tensor parallelism).
    A bare parameter count gets a KV cache only when ``seq_len`` is 0 (no cache). The KV cache is
    bf16 unless ``kv_dtype`` says otherwise (never the weights' format silently);
    ``weights_bytes`` replaces ``P * bytes(dtype)`` where a caller counts quantisation scales
    (:func:`service.core.serving.weight_bytes`). Recurrent layers add a fixed-size state per sequence
    in the model's dtype (:func:`state_cache_bytes_per_sequence` in :func:`recurrent_state_dtype` of
    ``dtype``), whatever ``seq_len`` and ``kv_dtype``."""
    kv_dtype = kv_dtype or Dtype.BF16
    total_params = count_params(model).total if isinstance(model, Architecture) else model.n_params
    weights = tensor_bytes(total_params, dtype) if weights_bytes is None else weights_bytes
    overhead = math.ceil(weights * INFERENCE_OVERHEAD_FRACTION)
    formulas = ["memory = 1.2 * P * bytes(dtype) + KV cache (Transformers Math 101)"]
    state, per_sequence = 0, 0
    if isinstance(model, Architecture) and model.recurrent_layers:
        per_sequence = state_cache_bytes_per_sequence(model, recurrent_state_dtype(dtype))
        state = per_sequence * batch_size
        formulas.append(
            f"state = {model.recurrent_layers} recurrent layers' fixed state per sequence * batch * bytes(the model's dtype), "
            "constant in the context (Mamba: I*(K + N), Gu & Dao 2023 §3.4; Mamba-2: (I + 2GN)*K + H*P*N, Dao & Gu "
            "2024 §7; RWKV-4: 5*h, Peng et al. 2023 §3.4)"
        )
        if model.layers_of(LayerType.GATED_DELTANET):
            formulas[-1] += " (Gated DeltaNet: conv_dim*K + H_v*d_k*d_v, Yang et al. 2024 §3)"
        if model.layers_of(LayerType.SHORT_CONV):
            formulas[-1] += " (a short convolution: h*K, its last K inputs; LFM2's Lfm2ShortConv)"
        if (model.rwkv_version or 4) > 4:
            formulas[-1] += (
                f" (RWKV-{model.rwkv_version}: H*N^2 in fp32 + 2*h per layer, Peng et al. "
                f"{2024 if model.rwkv_version == 6 else 2025})"
            )
    if seq_len == 0:
        kv, per_token = 0, 0
    else:
        arch = require_architecture(model, "the KV cache (set seq_len to 0 to leave it out)")
        kv = kv_cache_bytes(arch, seq_len=seq_len or arch.max_seq_len, batch_size=batch_size, kv_dtype=kv_dtype)
        per_token = kv_cache_bytes(arch, seq_len=1, batch_size=1, kv_dtype=kv_dtype)
        if not arch.attention_layers:
            formulas.append("no attention layer: no KV cache")
        elif arch.is_mla:
            formulas.append(
                "KV cache = L*(kv_lora_rank + qk_rope_head_dim)*s*batch*bytes(kv_dtype), the compressed latent "
                "(DeepSeek-V2 §2.1.2, Table 1)"
            )
        elif arch.recurrent_layers:
            formulas.append(
                f"KV cache = 2*L*k*d_head*s*batch*bytes(kv_dtype) over the {arch.attention_layers} attention layers "
                "(Pope et al. 2022 §3.1)"
            )
        else:
            formulas.append("KV cache = 2*L*k*d_head*s*batch*bytes(kv_dtype) (Pope et al. 2022 §3.1)")
        if arch.local_layers:
            formulas.append(
                f"{arch.local_layers} of {arch.n_layers} layers cache at most sliding_window={arch.sliding_window} "
                "tokens (Mistral 7B §2, rolling buffer cache)"
            )
    total = check_bytes("total_bytes", weights + overhead + kv + state)
    gpus = math.ceil(total / gpu_memory_bytes) if gpu_memory_bytes else None
    return InferenceMemory(
        weights_bytes=weights,
        kv_cache_bytes=kv,
        kv_cache_bytes_per_token=per_token,
        overhead_bytes=overhead,
        total_bytes=total,
        gpus_needed=gpus,
        formulas=tuple(formulas),
        state_cache_bytes=state,
        state_cache_bytes_per_sequence=per_sequence,
    )
