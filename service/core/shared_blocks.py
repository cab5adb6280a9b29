"""Zamba's shared attention blocks: what is stored once a block and what every use adds.

A Zamba layer of kind ``shared_attention_mamba`` (Zamba) or ``shared_attention_mamba2`` (Zamba2) runs a
shared transformer block before its Mamba mixer: an RMSNorm over the residual stream concatenated with
the token embeddings (``2h``), attention whose projections read that ``2h``-wide input, an RMSNorm and an
MLP; its output goes through a per-layer ``h x h`` projection and is added to the mixer's input
(Glorioso et al. 2024, "Zamba: A Compact 7B SSM Hybrid Model", §2, Figure 2; ``ZambaHybridLayer``,
``ZambaAttentionDecoderLayer`` in ``transformers``). Zamba2 alternates ``shared_attention_blocks`` such
blocks and gives every use its own LoRA adapters on the MLP's fused gate-and-up projection and, with
``shared_attention_adapters``, on q, k and v (Glorioso et al. 2024, "The Zamba2 Suite: Technical
Report", §2; ``Zamba2MLP.gate_up_proj_adapter_list``, ``Zamba2Attention.linear_q_adapter_list``).

The block's attention and MLP are counted with the model's attention and MLP layers
(:attr:`~service.core.architecture.Architecture.attention_weight_layers` stores them once a block, their
FLOPs and KV cache once a use); this module counts the rest. Symbols: h ``d_model``, f ``d_ff``, r
``shared_adapter_rank``. Pure Python.
"""

from __future__ import annotations

from service.core.architecture import Architecture


def shared_use_linear_shapes(arch: Architecture) -> list[tuple[int, int, int]]:
    """``(count, in_features, out_features)`` of the linear layers every use of a shared block has,
    all uses: the bias-free ``h x h`` projection of the block's output (``ZambaHybridLayer.linear``);
    with adapters of rank r, the MLP's ``h x r`` and ``r x 2f`` (``gate_up_proj_adapter_list``) and,
    with ``shared_attention_adapters``, q's, k's and v's ``2h x r`` and ``r x 2h``
    (``linear_q_adapter_list``, ``linear_k_adapter_list``, ``linear_v_adapter_list``). Each use holds its
    own: ``Zamba2AttentionDecoderLayer`` builds adapters for the uses ``i`` with ``i % num_mem_blocks ==
    block_id`` and ties the block's weights across its uses, adapters included."""
    uses, h = arch.shared_attention_layers, arch.d_model
    if not uses:
        return []
    shapes = [(uses, h, h)]
    if rank := arch.shared_adapter_rank:
        shapes += [(uses, h, rank), (uses, rank, 2 * arch.d_ff)]
        if arch.shared_attention_adapters:
            shapes += [(3 * uses, 2 * h, rank), (3 * uses, rank, 2 * h)]
    return shapes


def shared_use_params(arch: Architecture) -> int:
    """Parameters of :func:`shared_use_linear_shapes` (none has a bias)."""
    return sum(n * i * o for n, i, o in shared_use_linear_shapes(arch))


def shared_block_norm_params(arch: Architecture) -> int:
    """The RMSNorms of the stored blocks: the ``2h``-wide input norm and the ``h``-wide one before the
    MLP (``input_layernorm``, ``pre_ff_layernorm``), once a block."""
    return arch.shared_blocks * (arch.attention_input_width + arch.d_model)
