"""Op-level selective activation checkpointing, as torchtitan applies it (``selective_op``).

torchtitan's ``activation_checkpoint.mode = "selective"`` with ``selective_ac_option = "op"`` (the
Llama 3 8B train config of the December 2024 benchmarks, ``train_configs/llama3_8b.toml``) wraps
every transformer block in PyTorch's selective checkpoint (``torch.utils.checkpoint.
create_selective_checkpoint_contexts``) with a policy over aten ops
(``torchtitan/models/llama/parallelize_llama.py``, ``_save_list`` and ``_get_custom_policy``):

- it saves (``MUST_SAVE``) the outputs of ``aten.mm`` — but a counter skips every second one, so
  the 1st, 3rd, 5th, ... matmul of the block's forward is saved —, of SDPA's fused kernels
  (``_scaled_dot_product_flash_attention`` / ``_efficient_attention``: the attention output and its
  fp32 log-sum-exp), of the functional ``reduce_scatter_tensor`` (sequence parallelism's) and of
  ``aten.max`` (the Float8 amax, one scalar per cast);
- every other op is recomputed in the backward pass (``PREFER_RECOMPUTE``): the unsaved matmuls,
  the norms, rotary embeddings, the activation function, residual adds, Float8 casts and the
  all-gathers/all-reduces of tensor parallelism. The attention core is not recomputed.

A Llama block's forward runs ``wq, wk, wv`` (separate linears), ``wo``, then ``w1`` (gate), ``w3``
(up) and ``w2`` (down) (``torchtitan/models/llama/model.py``: ``w2(F.silu(w1(x)) * w3(x))``): the
policy keeps ``wq``, ``wv``, ``w1``, ``w2`` and recomputes ``wk``, ``wo``, ``w3``. The block input
is kept by the checkpoint itself (the recompute reruns the block from it).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from service.core.architecture import Architecture, Ffn
from service.core.errors import InvalidSpecError
from service.core.hardware import Hardware, matmul_seconds

LSE_BYTES = 4  # SDPA's flash/efficient kernels return one fp32 log-sum-exp per query and head (Dao et al. 2022 §3.1)


def op_checkpoint_problem(arch: Architecture, flash_attention: bool, finetune: object | None = None) -> str | None:
    """Why ``selective_op`` cannot price this model, or None. The policy is counted on a dense
    transformer block with separate Q/K/V projections (torchtitan's Llama); MLA, MoE (grouped GEMMs
    are not on the 2024 list) and recurrent mixers run other ops, and without SDPA's fused kernels
    the attention core is not on the list either."""
    if arch.is_mla or arch.is_moe or arch.recurrent_layers:
        return "selective_op is torchtitan's op policy on a dense attention block (no MLA, MoE or recurrent layers)"
    if not flash_attention:
        return "selective_op keeps SDPA's fused attention output (FlashAttention/efficient kernels): needs flash_attention"
    if finetune is not None:
        return "selective_op is not counted for fine-tunes (their frozen matmuls keep other inputs)"
    return None


def _check(arch: Architecture, flash_attention: bool = True) -> None:
    if reason := op_checkpoint_problem(arch, flash_attention=flash_attention):
        raise InvalidSpecError("recompute", reason)


def block_matmuls(arch: Architecture) -> list[tuple[str, int, int]]:
    """The block's forward matmuls in the order they run, as (name, input width, output width):
    ``wq, wk, wv, wo`` and the MLP's ``w1, w3, w2`` (SwiGLU) or ``fc1, fc2`` (GELU)."""
    _check(arch)
    h, f = arch.d_model, arch.d_ff
    attention = [("wq", h, arch.q_proj_width), ("wk", h, arch.kv_dim), ("wv", h, arch.kv_dim), ("wo", arch.q_dim, h)]
    mlp = [("w1", h, f), ("w3", h, f), ("w2", f, h)] if arch.ffn is Ffn.SWIGLU else [("fc1", h, f), ("fc2", f, h)]
    return attention + mlp


def saved(index: int) -> bool:
    """The policy's counter: the ``index``-th matmul (from 0) is saved when its count ``index + 1`` is odd."""
    return (index + 1) % 2 == 1


def _row_parallel(name: str) -> bool:
    return name in ("wo", "w2", "fc2")  # their outputs are partial sums, reduced after the matmul


def saved_layer_bytes(
    arch: Architecture, *, tokens: int, tp: int, sequence_parallel: bool, element_bytes: int
) -> tuple[int, int, int]:
    """(replicated, sharded, attention) bytes one block keeps for ``tokens`` tokens of a micro-batch
    under the policy: the block input ``e*T*h`` (divided over ``tp`` with sequence parallelism); each
    saved matmul's output (a column-parallel one's ``e*T*n/tp``, K and V over at most ``n_kv_heads``
    ranks; a row-parallel one's full ``e*T*h`` of partial sums, and with sequence parallelism the
    saved reduce-scatter output ``e*T*h/tp`` too); SDPA's output ``e*T*a*d_head/tp`` and log-sum-exp
    ``4*T*a/tp``. Float8's saved amax scalars (a few bytes) are left out."""
    _check(arch)
    e, t, h = element_bytes, tp, arch.d_model
    replicated = e * tokens * h
    if sequence_parallel:
        replicated = math.ceil(replicated / t)
    kv_ranks = min(t, arch.n_kv_heads)
    sharded = 0
    for i, (name, _, width) in enumerate(block_matmuls(arch)):
        if not saved(i):
            continue
        if _row_parallel(name):
            replicated += e * tokens * h + (math.ceil(e * tokens * h / t) if sequence_parallel and t > 1 else 0)
        else:
            sharded += math.ceil(e * tokens * width / (kv_ranks if name in ("wk", "wv") else t))
    attention = math.ceil(e * tokens * arch.q_dim / t) + math.ceil(LSE_BYTES * tokens * arch.n_heads / t)
    return replicated, sharded, attention


def recomputed_matmul_seconds(arch: Architecture, hw: Hardware, *, tokens: Any, tp: Any, element_bytes: int, fp8: bool) -> Any:
    """Seconds of the matmuls the policy recomputes (every second one), on their per-GPU shapes at
    the step-time model's matmul rate (:func:`service.core.hardware.matmul_seconds`)."""
    kv_ranks = np.minimum(tp, arch.n_kv_heads)
    seconds: Any = 0.0
    for i, (name, k, n) in enumerate(block_matmuls(arch)):
        if saved(i):
            continue
        if _row_parallel(name):
            seconds = seconds + matmul_seconds(tokens, k / tp, n, hw, element_bytes, fp8=fp8)
        else:
            ranks = kv_ranks if name in ("wk", "wv") else tp
            seconds = seconds + matmul_seconds(tokens, k, n / ranks, hw, element_bytes, fp8=fp8)
    return seconds


def recomputed_matmul_weights(arch: Architecture) -> int:
    """Weights of the matmuls the policy recomputes in one layer: ``2*`` this is their forward FLOPs per token."""
    return sum(k * n for i, (_, k, n) in enumerate(block_matmuls(arch)) if not saved(i))
