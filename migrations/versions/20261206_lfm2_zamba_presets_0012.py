"""Short-convolution and shared-attention hybrids: the preset columns of their fields
(``short_conv_kernel``, ``short_conv_bias``: LFM2's gated short convolutions; ``shared_attention_blocks``,
``shared_adapter_rank``, ``shared_attention_adapters``: Zamba's shared attention blocks and Zamba2's per-use
adapters), all nullable; and the presets of LFM2 1.2B, LFM2 2.6B, LFM2 8B-A1B, Zamba 7B, Zamba2 1.2B and
Zamba2 7B (exact counts against transformers, ``validation/measurements/recurrent_models.json``).

A store that already holds the catalog (it was seeded before this revision) receives the presets
below, frozen here as ``service/catalog/models.json`` has them at this revision (the seed file may
change later; this migration may not); an empty store is left to the seed, which reads the current
file. A preset id already present is left as it is. The catalog version is bumped so running
instances reload their snapshot.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 16:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations.seeded import delete_unchanged, insert_missing, refuse_dropping

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = {
    "short_conv_kernel": sa.Integer(),
    "short_conv_bias": sa.Boolean(),
    "shared_attention_blocks": sa.Integer(),
    "shared_adapter_rank": sa.Integer(),
    "shared_attention_adapters": sa.Boolean(),
}

# the stored columns the presets below fill, as they were at this revision (earlier revisions' and its own)
_BEFORE = {
    "id": sa.String, "name": sa.String, "family": sa.String, "n_layers": sa.Integer, "d_model": sa.Integer,
    "n_heads": sa.Integer, "n_kv_heads": sa.Integer, "d_head": sa.Integer, "d_ff": sa.Integer, "vocab_size": sa.Integer,
    "ffn": sa.String, "norm": sa.String, "bias": sa.Boolean, "qkv_bias": sa.Boolean, "tied_embeddings": sa.Boolean,
    "position": sa.String, "max_seq_len": sa.Integer, "position_embedding_rows": sa.Integer, "n_experts": sa.Integer,
    "experts_per_token": sa.Integer, "parallel_attention": sa.Boolean, "norms_per_layer": sa.Integer,
    "embedding_norm": sa.Boolean, "reported_params": sa.BigInteger, "source": sa.Text, "notes": sa.Text,
    "version": sa.Integer, "first_k_dense": sa.Integer, "d_ff_dense": sa.Integer, "qk_norm": sa.Boolean,
    "layer_types": sa.JSON, "mixer_mlp": sa.Boolean, "ssm_state_size": sa.Integer, "ssm_conv_kernel": sa.Integer,
    "ssm_expand": sa.Integer, "ssm_n_heads": sa.Integer, "ssm_head_dim": sa.Integer, "ssm_n_groups": sa.Integer,
    "ssm_dt_rank": sa.Integer,
}  # fmt: skip
PRESETS = sa.table(
    "model_presets",
    *(sa.column(name, type_) for name, type_ in _BEFORE.items()),
    *(sa.column(name, type_) for name, type_ in COLUMNS.items()),
)

# the presets this revision adds (service/catalog/models.json at this revision, database columns only)
# fmt: off
NEW_PRESETS: list[dict] = [
    {
        "id": "lfm2-1.2b",
        "name": "LFM2 1.2B",
        "family": "lfm2",
        "n_layers": 16,
        "d_model": 2048,
        "n_heads": 32,
        "n_kv_heads": 8,
        "d_head": 64,
        "d_ff": 8192,
        "vocab_size": 65536,
        "ffn": "swiglu",
        "norm": "rmsnorm",
        "bias": False,
        "qkv_bias": False,
        "tied_embeddings": True,
        "position": "rotary",
        "max_seq_len": 32768,
        "position_embedding_rows": None,
        "n_experts": 1,
        "experts_per_token": 1,
        "parallel_attention": False,
        "norms_per_layer": 2,
        "embedding_norm": False,
        "reported_params": 1170000000,
        "source": "Liquid AI 2025, LFM2-1.2B model card (1.17B parameters; 16 layers: 10 double-gated short-range "
        "convolution blocks and 6 grouped-query attention blocks; 32,768-token context), "
        "https://huggingface.co/LiquidAI/LFM2-1.2B; config: "
        "https://huggingface.co/LiquidAI/LFM2-1.2B/blob/main/config.json",
        "notes": "Attention (32 heads of 64, 8 KV heads, QK-norm) at layers 2, 5, 8, 10, 12 and 14; gated short "
        "convolutions of 3 taps (in_proj 2048 x 6144, out_proj 2048 x 2048) in the other 10; every layer a "
        "SwiGLU MLP of 8192 (block_ff_dim 12288 resized by block_auto_adjust_ff_dim); tied. KV cache on 6 of "
        "16 layers; a 2048 x 3 convolution state in the others. max_seq_len is the card's trained context "
        "(the config allows 128,000 positions).",
        "qk_norm": True,
        "layer_types": [
            "short_conv", "short_conv", "attention", "short_conv", "short_conv", "attention", "short_conv",
            "short_conv", "attention", "short_conv", "attention", "short_conv", "attention", "short_conv",
            "attention", "short_conv"
        ],
        "short_conv_kernel": 3,
    },
    {
        "id": "lfm2-2.6b",
        "name": "LFM2 2.6B",
        "family": "lfm2",
        "n_layers": 30,
        "d_model": 2048,
        "n_heads": 32,
        "n_kv_heads": 8,
        "d_head": 64,
        "d_ff": 10752,
        "vocab_size": 65536,
        "ffn": "swiglu",
        "norm": "rmsnorm",
        "bias": False,
        "qkv_bias": False,
        "tied_embeddings": True,
        "position": "rotary",
        "max_seq_len": 32768,
        "position_embedding_rows": None,
        "n_experts": 1,
        "experts_per_token": 1,
        "parallel_attention": False,
        "norms_per_layer": 2,
        "embedding_norm": False,
        "reported_params": 2570000000,
        "source": "Liquid AI 2025, LFM2-2.6B model card (2.57B parameters; 30 layers: 22 convolution and 8 attention), "
        "https://huggingface.co/LiquidAI/LFM2-2.6B; config: "
        "https://huggingface.co/LiquidAI/LFM2-2.6B/blob/main/config.json",
        "notes": "Attention (32 heads of 64, 8 KV heads, QK-norm) at layers 2, 5, 9, 13, 17, 21, 24 and 27; gated "
        "short convolutions of 3 taps in the other 22; every layer a SwiGLU MLP of 10752 "
        "(block_auto_adjust_ff_dim false); tied. KV cache on 8 of 30 layers. max_seq_len is the card's "
        "trained context (the config allows 128,000 positions).",
        "qk_norm": True,
        "layer_types": [
            "short_conv", "short_conv", "attention", "short_conv", "short_conv", "attention", "short_conv",
            "short_conv", "short_conv", "attention", "short_conv", "short_conv", "short_conv", "attention",
            "short_conv", "short_conv", "short_conv", "attention", "short_conv", "short_conv", "short_conv",
            "attention", "short_conv", "short_conv", "attention", "short_conv", "short_conv", "attention",
            "short_conv", "short_conv"
        ],
        "short_conv_kernel": 3,
    },
    {
        "id": "lfm2-8b-a1b",
        "name": "LFM2 8B-A1B",
        "family": "lfm2",
        "n_layers": 24,
        "d_model": 2048,
        "n_heads": 32,
        "n_kv_heads": 8,
        "d_head": 64,
        "d_ff": 1792,
        "vocab_size": 65536,
        "ffn": "swiglu",
        "norm": "rmsnorm",
        "bias": False,
        "qkv_bias": False,
        "tied_embeddings": True,
        "position": "rotary",
        "max_seq_len": 32768,
        "position_embedding_rows": None,
        "n_experts": 32,
        "experts_per_token": 4,
        "parallel_attention": False,
        "norms_per_layer": 2,
        "embedding_norm": False,
        "reported_params": 8300000000,
        "source": "Liquid AI 2025, LFM2-8B-A1B model card (8.3B total, 1.5B active parameters; 24 layers: 18 "
        "convolution and 6 attention; 32,768-token context), https://huggingface.co/LiquidAI/LFM2-8B-A1B; the "
        "transformers Lfm2Moe docs (Lfm2MoeConfig's defaults are this model's sizes)",
        "notes": "LFM2's layers with a mixture: the first 2 layers a SwiGLU MLP of 7168, the other 22 32 SwiGLU "
        "experts of 1792 (4 active) with a bias-free router (the routing bias is a buffer); 6 attention "
        "layers (32 heads of 64, 8 KV heads, QK-norm), 18 gated short convolutions of 3 taps; tied. The "
        "attention layers' positions here are illustrative; counts, FLOPs and caches depend only on how many "
        "there are.",
        "first_k_dense": 2,
        "d_ff_dense": 7168,
        "qk_norm": True,
        "layer_types": [
            "short_conv", "short_conv", "attention", "short_conv", "short_conv", "short_conv", "attention",
            "short_conv", "short_conv", "short_conv", "attention", "short_conv", "short_conv", "short_conv",
            "attention", "short_conv", "short_conv", "short_conv", "attention", "short_conv", "short_conv",
            "attention", "short_conv", "short_conv"
        ],
        "short_conv_kernel": 3,
    },
    {
        "id": "zamba-7b",
        "name": "Zamba 7B",
        "family": "zamba",
        "n_layers": 76,
        "d_model": 3712,
        "n_heads": 16,
        "n_kv_heads": 16,
        "d_head": 464,
        "d_ff": 14848,
        "vocab_size": 32000,
        "ffn": "swiglu",
        "norm": "rmsnorm",
        "bias": False,
        "qkv_bias": False,
        "tied_embeddings": True,
        "position": "rotary",
        "max_seq_len": 4096,
        "position_embedding_rows": None,
        "n_experts": 1,
        "experts_per_token": 1,
        "parallel_attention": False,
        "norms_per_layer": 1,
        "embedding_norm": False,
        "reported_params": 7000000000,
        "source": "Glorioso et al. 2024, 'Zamba: A Compact 7B SSM Hybrid Model', section 2 and Figure 2 (a Mamba "
        "backbone with one shared attention block every 6 layers, its input the residual stream concatenated "
        "with the embeddings), https://arxiv.org/abs/2405.16712; config: "
        "https://huggingface.co/Zyphra/Zamba-7B-v1/blob/main/config.json",
        "notes": "76 Mamba layers (3712 wide, inner 7424, state 16, dt rank 232, two mamba heads); before the mixer of "
        "13 of them (layers 2, 7, 13, ..., 73) the one shared block runs: attention of 16 heads of 464 "
        "over 2 x 3712, a gated MLP of 14848, two RMSNorms, stored once, then a per-layer 3712 x 3712 "
        "projection; tied. KV cache on the 13 uses, a Mamba state on every layer.",
        "layer_types": [
            "mamba", "mamba", "shared_attention_mamba", "mamba", "mamba", "mamba", "mamba",
            "shared_attention_mamba", "mamba", "mamba", "mamba", "mamba", "mamba", "shared_attention_mamba",
            "mamba", "mamba", "mamba", "mamba", "mamba", "shared_attention_mamba", "mamba", "mamba", "mamba",
            "mamba", "mamba", "shared_attention_mamba", "mamba", "mamba", "mamba", "mamba", "mamba",
            "shared_attention_mamba", "mamba", "mamba", "mamba", "mamba", "mamba", "shared_attention_mamba",
            "mamba", "mamba", "mamba", "mamba", "mamba", "shared_attention_mamba", "mamba", "mamba", "mamba",
            "mamba", "mamba", "shared_attention_mamba", "mamba", "mamba", "mamba", "mamba", "mamba",
            "shared_attention_mamba", "mamba", "mamba", "mamba", "mamba", "mamba", "shared_attention_mamba",
            "mamba", "mamba", "mamba", "mamba", "mamba", "shared_attention_mamba", "mamba", "mamba", "mamba",
            "mamba", "mamba", "shared_attention_mamba", "mamba", "mamba"
        ],
        "mixer_mlp": False,
        "ssm_state_size": 16,
        "ssm_conv_kernel": 4,
        "ssm_expand": 2,
        "ssm_dt_rank": 232,
        "shared_attention_blocks": 1,
    },
    {
        "id": "zamba2-1.2b",
        "name": "Zamba2 1.2B",
        "family": "zamba2",
        "n_layers": 38,
        "d_model": 2048,
        "n_heads": 32,
        "n_kv_heads": 32,
        "d_head": 128,
        "d_ff": 8192,
        "vocab_size": 32000,
        "ffn": "swiglu",
        "norm": "rmsnorm",
        "bias": False,
        "qkv_bias": False,
        "tied_embeddings": True,
        "position": "rotary",
        "max_seq_len": 4096,
        "position_embedding_rows": None,
        "n_experts": 1,
        "experts_per_token": 1,
        "parallel_attention": False,
        "norms_per_layer": 1,
        "embedding_norm": False,
        "reported_params": 1200000000,
        "source": "Glorioso et al. 2024, 'The Zamba2 Suite: Technical Report' (1.2B: Mamba-2 backbone, one shared "
        "attention block with LoRA projectors, rotary positions in it), https://arxiv.org/abs/2411.15242; "
        "config: https://huggingface.co/Zyphra/Zamba2-1.2B/blob/main/config.json",
        "notes": "38 Mamba-2 layers (2048 wide, 64 heads of 64, state 128, one group); at 6 of them (5, 11, ..., 35) "
        "the shared block runs first: attention of 32 heads of 128 over 2 x 2048, a gated MLP of 8192, each "
        "use with its own rank-128 adapters on q, k, v and the MLP and a 2048 x 2048 projection; tied. KV "
        "cache on the 6 uses.",
        "layer_types": [
            "mamba2", "mamba2", "mamba2", "mamba2", "mamba2", "shared_attention_mamba2", "mamba2", "mamba2",
            "mamba2", "mamba2", "mamba2", "shared_attention_mamba2", "mamba2", "mamba2", "mamba2", "mamba2",
            "mamba2", "shared_attention_mamba2", "mamba2", "mamba2", "mamba2", "mamba2", "mamba2",
            "shared_attention_mamba2", "mamba2", "mamba2", "mamba2", "mamba2", "mamba2",
            "shared_attention_mamba2", "mamba2", "mamba2", "mamba2", "mamba2", "mamba2",
            "shared_attention_mamba2", "mamba2", "mamba2"
        ],
        "mixer_mlp": False,
        "ssm_state_size": 128,
        "ssm_conv_kernel": 4,
        "ssm_expand": 2,
        "ssm_n_heads": 64,
        "ssm_head_dim": 64,
        "ssm_n_groups": 1,
        "shared_attention_blocks": 1,
        "shared_adapter_rank": 128,
        "shared_attention_adapters": True,
    },
    {
        "id": "zamba2-7b",
        "name": "Zamba2 7B",
        "family": "zamba2",
        "n_layers": 81,
        "d_model": 3584,
        "n_heads": 32,
        "n_kv_heads": 32,
        "d_head": 224,
        "d_ff": 14336,
        "vocab_size": 32000,
        "ffn": "swiglu",
        "norm": "rmsnorm",
        "bias": False,
        "qkv_bias": False,
        "tied_embeddings": True,
        "position": "rotary",
        "max_seq_len": 4096,
        "position_embedding_rows": None,
        "n_experts": 1,
        "experts_per_token": 1,
        "parallel_attention": False,
        "norms_per_layer": 1,
        "embedding_norm": False,
        "reported_params": 7400000000,
        "source": "Glorioso et al. 2024, 'The Zamba2 Suite: Technical Report' (7.4B parameters; two alternating shared "
        "attention blocks, LoRA projectors on the shared MLP and attention), "
        "https://arxiv.org/abs/2411.15242; config: "
        "https://huggingface.co/Zyphra/Zamba2-7B/blob/main/config.json",
        "notes": "81 Mamba-2 layers (3584 wide, 112 heads of 64, state 64, 2 groups); at 13 of them the two shared "
        "blocks run in turn: attention of 32 heads of 224 over 2 x 3584, a gated MLP of 14336, each use with "
        "its own rank-128 adapters on q, k, v and the MLP and a 3584 x 3584 projection; tied. KV cache on the "
        "13 uses, a Mamba-2 state on every layer.",
        "layer_types": [
            "mamba2", "mamba2", "mamba2", "mamba2", "mamba2", "mamba2", "shared_attention_mamba2", "mamba2",
            "mamba2", "mamba2", "mamba2", "shared_attention_mamba2", "mamba2", "mamba2", "mamba2", "mamba2",
            "mamba2", "shared_attention_mamba2", "mamba2", "mamba2", "mamba2", "mamba2", "mamba2",
            "shared_attention_mamba2", "mamba2", "mamba2", "mamba2", "mamba2", "mamba2",
            "shared_attention_mamba2", "mamba2", "mamba2", "mamba2", "mamba2", "mamba2",
            "shared_attention_mamba2", "mamba2", "mamba2", "mamba2", "mamba2", "mamba2",
            "shared_attention_mamba2", "mamba2", "mamba2", "mamba2", "mamba2", "mamba2",
            "shared_attention_mamba2", "mamba2", "mamba2", "mamba2", "mamba2", "mamba2",
            "shared_attention_mamba2", "mamba2", "mamba2", "mamba2", "mamba2", "mamba2",
            "shared_attention_mamba2", "mamba2", "mamba2", "mamba2", "mamba2", "mamba2",
            "shared_attention_mamba2", "mamba2", "mamba2", "mamba2", "mamba2", "mamba2",
            "shared_attention_mamba2", "mamba2", "mamba2", "mamba2", "mamba2", "mamba2",
            "shared_attention_mamba2", "mamba2", "mamba2", "mamba2"
        ],
        "mixer_mlp": False,
        "ssm_state_size": 64,
        "ssm_conv_kernel": 4,
        "ssm_expand": 2,
        "ssm_n_heads": 112,
        "ssm_head_dim": 64,
        "ssm_n_groups": 2,
        "shared_attention_blocks": 2,
        "shared_adapter_rank": 128,
        "shared_attention_adapters": True,
    },
]
# fmt: on


def upgrade() -> None:
    with op.batch_alter_table("model_presets", recreate="never") as batch_op:
        for name, type_ in COLUMNS.items():
            batch_op.add_column(sa.Column(name, type_, nullable=True))
    insert_missing(PRESETS, NEW_PRESETS)


def downgrade() -> None:
    delete_unchanged("model_presets", NEW_PRESETS)
    refuse_dropping("model_presets", COLUMNS, revision=revision)
    with op.batch_alter_table("model_presets", recreate="never") as batch_op:
        for name in reversed(COLUMNS):
            batch_op.drop_column(name)
