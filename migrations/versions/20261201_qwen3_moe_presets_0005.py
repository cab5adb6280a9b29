"""Model presets of Qwen3's mixture-of-experts models (Qwen3-30B-A3B, Qwen3-235B-A22B).

A store that already holds the catalog (it was seeded before this revision) receives the presets
below, frozen here as ``service/catalog/models.json`` has them at this revision (the seed file may
change later; this migration may not); an empty store is left to the seed, which reads the current
file. A preset id already present is left as it is. The catalog version is bumped so running
instances reload their snapshot. No column changes: revision 0004 added every one they use.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 12:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from migrations.seeded import delete_unchanged, insert_missing

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PRESETS = sa.table(
    "model_presets",
    sa.column("id", sa.String),
    sa.column("name", sa.String),
    sa.column("family", sa.String),
    sa.column("n_layers", sa.Integer),
    sa.column("d_model", sa.Integer),
    sa.column("n_heads", sa.Integer),
    sa.column("n_kv_heads", sa.Integer),
    sa.column("d_head", sa.Integer),
    sa.column("d_ff", sa.Integer),
    sa.column("vocab_size", sa.Integer),
    sa.column("ffn", sa.String),
    sa.column("norm", sa.String),
    sa.column("bias", sa.Boolean),
    sa.column("qkv_bias", sa.Boolean),
    sa.column("tied_embeddings", sa.Boolean),
    sa.column("position", sa.String),
    sa.column("max_seq_len", sa.Integer),
    sa.column("position_embedding_rows", sa.Integer),
    sa.column("n_experts", sa.Integer),
    sa.column("experts_per_token", sa.Integer),
    sa.column("parallel_attention", sa.Boolean),
    sa.column("norms_per_layer", sa.Integer),
    sa.column("embedding_norm", sa.Boolean),
    sa.column("reported_params", sa.BigInteger),
    sa.column("source", sa.Text),
    sa.column("notes", sa.Text),
    sa.column("q_lora_rank", sa.Integer),
    sa.column("kv_lora_rank", sa.Integer),
    sa.column("qk_nope_head_dim", sa.Integer),
    sa.column("qk_rope_head_dim", sa.Integer),
    sa.column("v_head_dim", sa.Integer),
    sa.column("sliding_window", sa.Integer),
    sa.column("sliding_window_layers", sa.Integer),
    sa.column("n_shared_experts", sa.Integer),
    sa.column("d_ff_shared", sa.Integer),
    sa.column("shared_expert_gate", sa.Boolean),
    sa.column("first_k_dense", sa.Integer),
    sa.column("d_ff_dense", sa.Integer),
    sa.column("router_bias", sa.Boolean),
    sa.column("qk_norm", sa.Boolean),
    sa.column("version", sa.Integer),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)

# the presets this revision adds (service/catalog/models.json at this revision, database columns only)
NEW_PRESETS: list[dict] = [
    {
        "id": "qwen3-30b-a3b",
        "name": "Qwen3-30B-A3B",
        "family": "qwen3-moe",
        "n_layers": 48,
        "d_model": 2048,
        "n_heads": 32,
        "n_kv_heads": 4,
        "d_head": 128,
        "d_ff": 768,
        "vocab_size": 151936,
        "ffn": "swiglu",
        "norm": "rmsnorm",
        "bias": False,
        "qkv_bias": False,
        "tied_embeddings": False,
        "position": "rotary",
        "max_seq_len": 40960,
        "position_embedding_rows": None,
        "n_experts": 128,
        "experts_per_token": 8,
        "parallel_attention": False,
        "norms_per_layer": 2,
        "embedding_norm": False,
        "reported_params": 30500000000,
        "source": "Qwen Team 2025, 'Qwen3 Technical Report', Table 2 (30B total, 3B activated), "
        "https://arxiv.org/abs/2505.09388; model card (30.5B total, 3.3B activated) and config: "
        "https://huggingface.co/Qwen/Qwen3-30B-A3B",
        "notes": "128 routed experts of 768 (8 active per token, top-k weights renormalised), no shared expert; 32 query "
        "heads of 128 (wider than d_model/heads), 4 KV heads; QK-norm; 32K native context (config: 40960 "
        "positions).",
        "qk_norm": True,
    },
    {
        "id": "qwen3-235b-a22b",
        "name": "Qwen3-235B-A22B",
        "family": "qwen3-moe",
        "n_layers": 94,
        "d_model": 4096,
        "n_heads": 64,
        "n_kv_heads": 4,
        "d_head": 128,
        "d_ff": 1536,
        "vocab_size": 151936,
        "ffn": "swiglu",
        "norm": "rmsnorm",
        "bias": False,
        "qkv_bias": False,
        "tied_embeddings": False,
        "position": "rotary",
        "max_seq_len": 40960,
        "position_embedding_rows": None,
        "n_experts": 128,
        "experts_per_token": 8,
        "parallel_attention": False,
        "norms_per_layer": 2,
        "embedding_norm": False,
        "reported_params": 235000000000,
        "source": "Qwen Team 2025, 'Qwen3 Technical Report', Table 2 (235B total, 22B activated), "
        "https://arxiv.org/abs/2505.09388; config: https://huggingface.co/Qwen/Qwen3-235B-A22B",
        "notes": "128 routed experts of 1536 (8 active per token, top-k weights renormalised), no shared expert; 64 query "
        "heads, 4 KV heads; QK-norm; 32K native context (config: 40960 positions).",
        "qk_norm": True,
    },
]


def upgrade() -> None:
    insert_missing(PRESETS, NEW_PRESETS)


def downgrade() -> None:
    delete_unchanged("model_presets", NEW_PRESETS)
