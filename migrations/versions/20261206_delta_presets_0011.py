"""Gated DeltaNet layers: the preset columns of their fields (``linear_n_key_heads``,
``linear_n_value_heads``, ``linear_key_head_dim``, ``linear_value_head_dim``, ``linear_conv_kernel``) and of
the attention output gate (``attention_output_gate``: Qwen3-Next's gated attention), all nullable; and the
preset of Qwen3-Next 80B-A3B (exact count against transformers,
``validation/measurements/recurrent_models.json``).

A store that already holds the catalog (it was seeded before this revision) receives the preset
below, frozen here as ``service/catalog/models.json`` has it at this revision (the seed file may
change later; this migration may not); an empty store is left to the seed, which reads the current
file. A preset id already present is left as it is. The catalog version is bumped so running
instances reload their snapshot.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 14:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations.seeded import delete_unchanged, insert_missing, refuse_dropping

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = {
    "attention_output_gate": sa.Boolean(),
    "linear_n_key_heads": sa.Integer(),
    "linear_n_value_heads": sa.Integer(),
    "linear_key_head_dim": sa.Integer(),
    "linear_value_head_dim": sa.Integer(),
    "linear_conv_kernel": sa.Integer(),
}

# the stored columns the preset below fills, as they were at this revision (earlier revisions' and its own)
_BEFORE = {
    "id": sa.String, "name": sa.String, "family": sa.String, "n_layers": sa.Integer, "d_model": sa.Integer,
    "n_heads": sa.Integer, "n_kv_heads": sa.Integer, "d_head": sa.Integer, "d_ff": sa.Integer, "vocab_size": sa.Integer,
    "ffn": sa.String, "norm": sa.String, "bias": sa.Boolean, "qkv_bias": sa.Boolean, "tied_embeddings": sa.Boolean,
    "position": sa.String, "max_seq_len": sa.Integer, "position_embedding_rows": sa.Integer, "n_experts": sa.Integer,
    "experts_per_token": sa.Integer, "parallel_attention": sa.Boolean, "norms_per_layer": sa.Integer,
    "embedding_norm": sa.Boolean, "reported_params": sa.BigInteger, "source": sa.Text, "notes": sa.Text,
    "version": sa.Integer, "n_shared_experts": sa.Integer, "d_ff_shared": sa.Integer, "shared_expert_gate": sa.Boolean,
    "qk_norm": sa.Boolean, "layer_types": sa.JSON,
}  # fmt: skip
PRESETS = sa.table(
    "model_presets",
    *(sa.column(name, type_) for name, type_ in _BEFORE.items()),
    *(sa.column(name, type_) for name, type_ in COLUMNS.items()),
)

# the preset this revision adds (service/catalog/models.json at this revision, database columns only)
NEW_PRESETS: list[dict] = [
    {
        "id": "qwen3-next-80b-a3b",
        "name": "Qwen3-Next 80B-A3B",
        "family": "qwen3-next",
        "n_layers": 48,
        "d_model": 2048,
        "n_heads": 16,
        "n_kv_heads": 2,
        "d_head": 256,
        "d_ff": 512,
        "vocab_size": 151936,
        "ffn": "swiglu",
        "norm": "rmsnorm",
        "bias": False,
        "qkv_bias": False,
        "tied_embeddings": False,
        "position": "rotary",
        "max_seq_len": 262144,
        "position_embedding_rows": None,
        "n_experts": 512,
        "experts_per_token": 10,
        "parallel_attention": False,
        "norms_per_layer": 2,
        "embedding_norm": False,
        "reported_params": 80000000000,
        "source": "Qwen team 2025, Qwen3-Next-80B-A3B model card (80B total, 3B activated; 48 layers, hybrid layout 12 x "
        "(3 x (Gated DeltaNet -> MoE) -> 1 x (Gated Attention -> MoE)); 512 experts, 10 routed + 1 shared), "
        "https://huggingface.co/Qwen/Qwen3-Next-80B-A3B-Instruct; config: "
        "https://huggingface.co/Qwen/Qwen3-Next-80B-A3B-Instruct/blob/main/config.json; Gated DeltaNet: Yang, Kautz "
        "& Hatamizadeh 2024, https://arxiv.org/abs/2412.06464",
        "notes": "Every fourth layer gated attention (16 query heads of 256 with a sigmoid output gate, 2 KV heads, "
        "QK-norm), the others Gated DeltaNet (16 key heads and 32 value heads of 128, a 4-tap convolution, a 128 x 128 "
        "state per value head); every layer 512 SwiGLU experts of 512 (10 active) and one gated shared expert of 512; "
        "untied. KV cache on 12 of 48 layers; the multi-token-prediction weights of the checkpoint are not counted "
        "(transformers does not build them).",
        "n_shared_experts": 1,
        "d_ff_shared": 512,
        "shared_expert_gate": True,
        "qk_norm": True,
        "attention_output_gate": True,
        "layer_types": ["gated_deltanet", "gated_deltanet", "gated_deltanet", "attention"],
        "linear_n_key_heads": 16,
        "linear_n_value_heads": 32,
        "linear_key_head_dim": 128,
        "linear_value_head_dim": 128,
        "linear_conv_kernel": 4,
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
