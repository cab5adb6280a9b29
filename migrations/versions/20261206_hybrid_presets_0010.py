"""Mamba-2 hybrids: the preset columns ``ssm_inner_size`` (a Mamba-2 width other than ``ssm_expand *
d_model``: Falcon-H1's ``mamba_d_ssm``, Nemotron-H's heads * head dim) and ``ssm_gated_norm`` (false:
Falcon-H1 without the gated RMSNorm), both nullable; and the presets of Nemotron-H 8B, Falcon-H1 7B and
Granite 4.0-H Tiny (exact counts against transformers, ``validation/measurements/recurrent_models.json``).

A store that already holds the catalog (it was seeded before this revision) receives the presets
below, frozen here as ``service/catalog/models.json`` has them at this revision (the seed file may
change later; this migration may not); an empty store is left to the seed, which reads the current
file. A preset id already present is left as it is. The catalog version is bumped so running
instances reload their snapshot.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 13:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations.seeded import delete_unchanged, insert_missing, refuse_dropping

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = {
    "ssm_inner_size": sa.Integer(),
    "ssm_gated_norm": sa.Boolean(),
}

# the stored columns the presets below fill, as they were at this revision (0009's and its own)
_BEFORE = {
    "id": sa.String, "name": sa.String, "family": sa.String, "n_layers": sa.Integer, "d_model": sa.Integer,
    "n_heads": sa.Integer, "n_kv_heads": sa.Integer, "d_head": sa.Integer, "d_ff": sa.Integer, "vocab_size": sa.Integer,
    "ffn": sa.String, "norm": sa.String, "bias": sa.Boolean, "qkv_bias": sa.Boolean, "tied_embeddings": sa.Boolean,
    "position": sa.String, "max_seq_len": sa.Integer, "position_embedding_rows": sa.Integer, "n_experts": sa.Integer,
    "experts_per_token": sa.Integer, "parallel_attention": sa.Boolean, "norms_per_layer": sa.Integer,
    "embedding_norm": sa.Boolean, "reported_params": sa.BigInteger, "source": sa.Text, "notes": sa.Text,
    "first_k_dense": sa.Integer, "version": sa.Integer, "n_shared_experts": sa.Integer, "d_ff_shared": sa.Integer,
    "layer_types": sa.JSON, "mixer_mlp": sa.Boolean, "ssm_state_size": sa.Integer, "ssm_conv_kernel": sa.Integer,
    "ssm_expand": sa.Integer, "ssm_n_heads": sa.Integer, "ssm_head_dim": sa.Integer, "ssm_n_groups": sa.Integer,
}  # fmt: skip
PRESETS = sa.table(
    "model_presets",
    *(sa.column(name, type_) for name, type_ in _BEFORE.items()),
    *(sa.column(name, type_) for name, type_ in COLUMNS.items()),
)

# the presets this revision adds (service/catalog/models.json at this revision, database columns only)
NEW_PRESETS: list[dict] = [
    {
        "id": "nemotron-h-8b",
        "name": "Nemotron-H 8B",
        "family": "nemotron-h",
        "n_layers": 52,
        "d_model": 4096,
        "n_heads": 32,
        "n_kv_heads": 8,
        "d_head": 128,
        "d_ff": 21504,
        "vocab_size": 131072,
        "ffn": "gelu",
        "norm": "rmsnorm",
        "bias": False,
        "qkv_bias": False,
        "tied_embeddings": False,
        "position": "rotary",
        "max_seq_len": 8192,
        "position_embedding_rows": None,
        "n_experts": 1,
        "experts_per_token": 1,
        "parallel_attention": False,
        "norms_per_layer": 1,
        "embedding_norm": False,
        "reported_params": 8100000000,
        "source": "NVIDIA 2025, 'Nemotron-H: A Family of Accurate and Efficient Hybrid Mamba-Transformer Models', §2.1 "
        "and Table 1 (Nemotron-H-8B: 52 layers, 24 Mamba-2, 4 self-attention, 24 FFN), "
        "https://arxiv.org/abs/2504.03624; config: https://huggingface.co/nvidia/Nemotron-H-8B-Base-8K",
        "notes": "Pattern M-M-M-M*-...: one operator a block (24 Mamba-2 of 128 heads of 64, 8 groups, state 128; 4 "
        "attention of 32 heads of 128, 8 KV heads, no positions; 24 squared-ReLU MLPs of 21504), one RMSNorm "
        "each; untied. KV cache on 4 of 52 layers; a fixed Mamba-2 state per sequence.",
        "layer_types": [
            "mamba2",
            "mlp",
            "mamba2",
            "mlp",
            "mamba2",
            "mlp",
            "mamba2",
            "attention",
            "mlp",
            "mamba2",
            "mlp",
            "mamba2",
            "mlp",
            "mamba2",
            "mlp",
            "mamba2",
            "mlp",
            "mamba2",
            "attention",
            "mlp",
            "mamba2",
            "mlp",
            "mamba2",
            "mlp",
            "mamba2",
            "mlp",
            "mamba2",
            "mlp",
            "mamba2",
            "attention",
            "mlp",
            "mamba2",
            "mlp",
            "mamba2",
            "mlp",
            "mamba2",
            "mlp",
            "mamba2",
            "mlp",
            "mamba2",
            "attention",
            "mlp",
            "mamba2",
            "mlp",
            "mamba2",
            "mlp",
            "mamba2",
            "mlp",
            "mamba2",
            "mlp",
            "mamba2",
            "mlp",
        ],
        "mixer_mlp": False,
        "ssm_state_size": 128,
        "ssm_conv_kernel": 4,
        "ssm_expand": 2,
        "ssm_n_heads": 128,
        "ssm_head_dim": 64,
        "ssm_n_groups": 8,
        "ssm_inner_size": 8192,
    },
    {
        "id": "falcon-h1-7b",
        "name": "Falcon-H1 7B",
        "family": "falcon-h1",
        "n_layers": 44,
        "d_model": 3072,
        "n_heads": 12,
        "n_kv_heads": 2,
        "d_head": 128,
        "d_ff": 12288,
        "vocab_size": 130048,
        "ffn": "swiglu",
        "norm": "rmsnorm",
        "bias": False,
        "qkv_bias": False,
        "tied_embeddings": False,
        "position": "rotary",
        "max_seq_len": 262144,
        "position_embedding_rows": None,
        "n_experts": 1,
        "experts_per_token": 1,
        "parallel_attention": False,
        "norms_per_layer": 2,
        "embedding_norm": False,
        "reported_params": 7590000000,
        "source": "TII 2025, 'Falcon-H1: A Family of Hybrid-Head Language Models Redefining Efficiency and "
        "Performance', §2.1 (attention and Mamba-2 heads in parallel in every layer), "
        "https://arxiv.org/abs/2507.22448; the transformers FalconH1 model table (44 layers, 3072 wide, 12 "
        "attention / 2 KV heads, 24 Mamba heads of 128, state 256); config: "
        "https://huggingface.co/tiiuae/Falcon-H1-7B-Base",
        "notes": "Every one of the 44 layers runs attention (12 heads of 128, 2 KV heads) and a Mamba-2 mixer (24 heads "
        "of 128, width 3072, state 256, no gated norm) side by side, then a SwiGLU MLP of 12288; untied. KV "
        "cache on all 44 layers plus a Mamba-2 state each; the muP multipliers add no parameters.",
        "layer_types": ["attention_mamba2"],
        "ssm_state_size": 256,
        "ssm_conv_kernel": 4,
        "ssm_expand": 2,
        "ssm_n_heads": 24,
        "ssm_head_dim": 128,
        "ssm_n_groups": 1,
        "ssm_inner_size": 3072,
        "ssm_gated_norm": False,
    },
    {
        "id": "granite-4.0-h-tiny",
        "name": "Granite 4.0-H Tiny",
        "family": "granite-4.0-h",
        "n_layers": 40,
        "d_model": 1536,
        "n_heads": 12,
        "n_kv_heads": 4,
        "d_head": 128,
        "d_ff": 512,
        "vocab_size": 100352,
        "ffn": "swiglu",
        "norm": "rmsnorm",
        "bias": False,
        "qkv_bias": False,
        "tied_embeddings": True,
        "position": "rotary",
        "max_seq_len": 131072,
        "position_embedding_rows": None,
        "n_experts": 64,
        "experts_per_token": 6,
        "parallel_attention": False,
        "norms_per_layer": 2,
        "embedding_norm": False,
        "reported_params": 7000000000,
        "source": "IBM 2025, 'IBM Granite 4.0: hyper-efficient, high performance hybrid models' (Granite-4.0-H-Tiny: 7B "
        "total, 1B active, Mamba-2/transformer 9:1 with MoE), "
        "https://www.ibm.com/new/announcements/ibm-granite-4-0-hyper-efficient-high-performance-hybrid-models; "
        "config: https://huggingface.co/ibm-granite/granite-4.0-h-tiny",
        "notes": "40 layers: attention (12 heads, 4 KV heads, no positions) at 5, 15, 25 and 35, Mamba-2 (48 heads of "
        "64, state 128) elsewhere; every layer a mixture of 64 SwiGLU experts of 512 (6 active) and a shared "
        "SwiGLU MLP of 1024; tied embeddings. KV cache on 4 of 40 layers.",
        "n_shared_experts": 1,
        "d_ff_shared": 1024,
        "layer_types": [
            "mamba2",
            "mamba2",
            "mamba2",
            "mamba2",
            "mamba2",
            "attention",
            "mamba2",
            "mamba2",
            "mamba2",
            "mamba2",
            "mamba2",
            "mamba2",
            "mamba2",
            "mamba2",
            "mamba2",
            "attention",
            "mamba2",
            "mamba2",
            "mamba2",
            "mamba2",
            "mamba2",
            "mamba2",
            "mamba2",
            "mamba2",
            "mamba2",
            "attention",
            "mamba2",
            "mamba2",
            "mamba2",
            "mamba2",
            "mamba2",
            "mamba2",
            "mamba2",
            "mamba2",
            "mamba2",
            "attention",
            "mamba2",
            "mamba2",
            "mamba2",
            "mamba2",
        ],
        "ssm_state_size": 128,
        "ssm_conv_kernel": 4,
        "ssm_expand": 2,
        "ssm_n_heads": 48,
        "ssm_head_dim": 64,
        "ssm_n_groups": 1,
    },
]


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
