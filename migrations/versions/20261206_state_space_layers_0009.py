"""State-space and RWKV layers: the preset columns of ``layer_types`` and the Mamba, Mamba-2 and
RWKV fields (``mixer_mlp``, ``ssm_state_size``, ``ssm_conv_kernel``, ``ssm_expand``, ``ssm_n_heads``,
``ssm_head_dim``, ``ssm_n_groups``, ``ssm_dt_rank``, ``ssm_conv_bias``, ``ssm_proj_bias``,
``ssm_inner_norms``, ``rwkv_version``), all nullable (a transformer keeps null), ``layer_types`` a JSON
list; and the presets of Mamba 2.8B, Mamba-2 2.7B, Falcon Mamba 7B and Jamba 1.5 Mini.

A store that already holds the catalog (it was seeded before this revision) receives the presets
below, frozen here as ``service/catalog/models.json`` has them at this revision (the seed file may
change later; this migration may not); an empty store is left to the seed, which reads the current
file. A preset id already present is left as it is. The catalog version is bumped so running
instances reload their snapshot.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 12:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations.seeded import delete_unchanged, insert_missing, refuse_dropping

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = {
    "layer_types": sa.JSON(),
    "mixer_mlp": sa.Boolean(),
    "ssm_state_size": sa.Integer(),
    "ssm_conv_kernel": sa.Integer(),
    "ssm_expand": sa.Integer(),
    "ssm_n_heads": sa.Integer(),
    "ssm_head_dim": sa.Integer(),
    "ssm_n_groups": sa.Integer(),
    "ssm_dt_rank": sa.Integer(),
    "ssm_conv_bias": sa.Boolean(),
    "ssm_proj_bias": sa.Boolean(),
    "ssm_inner_norms": sa.Boolean(),
    "rwkv_version": sa.Integer(),
}

# the stored columns the presets below fill, as they were at this revision
_BEFORE = {
    "id": sa.String, "name": sa.String, "family": sa.String, "n_layers": sa.Integer, "d_model": sa.Integer,
    "n_heads": sa.Integer, "n_kv_heads": sa.Integer, "d_head": sa.Integer, "d_ff": sa.Integer, "vocab_size": sa.Integer,
    "ffn": sa.String, "norm": sa.String, "bias": sa.Boolean, "qkv_bias": sa.Boolean, "tied_embeddings": sa.Boolean,
    "position": sa.String, "max_seq_len": sa.Integer, "position_embedding_rows": sa.Integer, "n_experts": sa.Integer,
    "experts_per_token": sa.Integer, "parallel_attention": sa.Boolean, "norms_per_layer": sa.Integer,
    "embedding_norm": sa.Boolean, "reported_params": sa.BigInteger, "source": sa.Text, "notes": sa.Text,
    "first_k_dense": sa.Integer, "version": sa.Integer,
}  # fmt: skip
PRESETS = sa.table(
    "model_presets",
    *(sa.column(name, type_) for name, type_ in _BEFORE.items()),
    *(sa.column(name, type_) for name, type_ in COLUMNS.items()),
)

# the presets this revision adds (service/catalog/models.json at this revision, database columns only)
NEW_PRESETS: list[dict] = [
    {
        "id": "mamba-2.8b",
        "name": "Mamba 2.8B",
        "family": "mamba",
        "n_layers": 64,
        "d_model": 2560,
        "n_heads": 1,
        "n_kv_heads": 1,
        "d_head": 2560,
        "d_ff": 5120,
        "vocab_size": 50280,
        "ffn": "gelu",
        "norm": "rmsnorm",
        "bias": False,
        "qkv_bias": False,
        "position": "rotary",
        "position_embedding_rows": None,
        "n_experts": 1,
        "experts_per_token": 1,
        "parallel_attention": False,
        "norms_per_layer": 1,
        "embedding_norm": False,
        "tied_embeddings": True,
        "max_seq_len": 2048,
        "reported_params": 2800000000,
        "source": "Gu & Dao 2023, 'Mamba: Linear-Time Sequence Modeling with Selective State Spaces', Table 3 (Mamba-2.8B, "
        "trained on 300B tokens of the Pile at 2,048 tokens), https://arxiv.org/abs/2312.00752; config: "
        "https://huggingface.co/state-spaces/mamba-2.8b-hf",
        "notes": "64 Mamba blocks (RMSNorm and mixer, no attention, no MLP): inner width 5120, state 16, convolution of 4, "
        "dt rank 160; tied embeddings. No KV cache: a fixed state per sequence.",
        "layer_types": ["mamba"],
        "mixer_mlp": False,
        "ssm_state_size": 16,
        "ssm_conv_kernel": 4,
        "ssm_expand": 2,
        "ssm_dt_rank": 160,
    },
    {
        "id": "mamba2-2.7b",
        "name": "Mamba-2 2.7B",
        "family": "mamba2",
        "n_layers": 64,
        "d_model": 2560,
        "n_heads": 1,
        "n_kv_heads": 1,
        "d_head": 2560,
        "d_ff": 5120,
        "vocab_size": 50288,
        "ffn": "gelu",
        "norm": "rmsnorm",
        "bias": False,
        "qkv_bias": False,
        "position": "rotary",
        "position_embedding_rows": None,
        "n_experts": 1,
        "experts_per_token": 1,
        "parallel_attention": False,
        "norms_per_layer": 1,
        "embedding_norm": False,
        "tied_embeddings": True,
        "max_seq_len": 2048,
        "reported_params": 2700000000,
        "source": "Dao & Gu 2024, 'Transformers are SSMs: Generalized Models and Efficient Algorithms Through Structured "
        "State Space Duality', §9.2 and Table 10 (Mamba-2 2.7B on 300B tokens of the Pile), "
        "https://arxiv.org/abs/2405.21060; config: https://huggingface.co/state-spaces/mamba2-2.7b",
        "notes": "64 Mamba-2 blocks (RMSNorm and mixer, no attention, no MLP): 80 heads of 64, one group, state 128, "
        "convolution of 4; the 50,277-token vocabulary padded to 50,288; tied embeddings. No KV cache: a fixed "
        "state per sequence.",
        "layer_types": ["mamba2"],
        "mixer_mlp": False,
        "ssm_state_size": 128,
        "ssm_conv_kernel": 4,
        "ssm_expand": 2,
        "ssm_n_heads": 80,
        "ssm_head_dim": 64,
        "ssm_n_groups": 1,
    },
    {
        "id": "falcon-mamba-7b",
        "name": "Falcon Mamba 7B",
        "family": "falcon-mamba",
        "n_layers": 64,
        "d_model": 4096,
        "n_heads": 1,
        "n_kv_heads": 1,
        "d_head": 4096,
        "d_ff": 8192,
        "vocab_size": 65024,
        "ffn": "gelu",
        "norm": "rmsnorm",
        "bias": False,
        "qkv_bias": False,
        "position": "rotary",
        "position_embedding_rows": None,
        "n_experts": 1,
        "experts_per_token": 1,
        "parallel_attention": False,
        "norms_per_layer": 1,
        "embedding_norm": False,
        "tied_embeddings": False,
        "max_seq_len": 8192,
        "reported_params": 7270000000,
        "source": "Zuo et al. 2024, 'Falcon Mamba: The First Competitive Attention-free 7B Language Model', §2 (7.27B "
        "parameters, 64 layers, d_model 4096, state 16), https://arxiv.org/abs/2410.05355; config: "
        "https://huggingface.co/tiiuae/falcon-mamba-7b",
        "notes": "64 Mamba blocks with weightless RMSNorms on dt, B and C: inner width 8192, state 16, dt rank 256; "
        "untied. max_seq_len 8192 is the context answers default to (the recurrence has no position limit).",
        "layer_types": ["mamba"],
        "mixer_mlp": False,
        "ssm_state_size": 16,
        "ssm_conv_kernel": 4,
        "ssm_expand": 2,
        "ssm_dt_rank": 256,
    },
    {
        "id": "jamba-1.5-mini",
        "name": "Jamba 1.5 Mini",
        "family": "jamba",
        "n_layers": 32,
        "d_model": 4096,
        "n_heads": 32,
        "n_kv_heads": 8,
        "d_head": 128,
        "d_ff": 14336,
        "vocab_size": 65536,
        "ffn": "swiglu",
        "norm": "rmsnorm",
        "bias": False,
        "qkv_bias": False,
        "tied_embeddings": False,
        "position": "rotary",
        "max_seq_len": 262144,
        "position_embedding_rows": None,
        "n_experts": 16,
        "experts_per_token": 2,
        "parallel_attention": False,
        "norms_per_layer": 2,
        "embedding_norm": False,
        "reported_params": 52000000000,
        "source": "Jamba Team 2024, 'Jamba-1.5: Hybrid Transformer-Mamba Models at Scale', §2 and Table 1 (12B active of "
        "52B, 256K context), https://arxiv.org/abs/2408.12570; Lieber et al. 2024, 'Jamba', §2 (the 1:7 "
        "attention:Mamba block); config: https://huggingface.co/ai21labs/AI21-Jamba-1.5-Mini",
        "notes": "Every 8th layer (offset 4) attends (32 heads, 8 KV heads), the other 28 are Mamba layers (state 16, dt "
        "rank 256, RMSNorms on dt, B and C); every other layer (odd) holds 16 experts of 14336 (2 active), "
        "counted as 16 dense layers first. KV cache on 4 of 32 layers; a fixed Mamba state per sequence.",
        "first_k_dense": 16,
        "layer_types": ["mamba", "mamba", "mamba", "mamba", "attention", "mamba", "mamba", "mamba"],
        "mixer_mlp": True,
        "ssm_state_size": 16,
        "ssm_conv_kernel": 4,
        "ssm_expand": 2,
        "ssm_dt_rank": 256,
        "ssm_inner_norms": True,
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
