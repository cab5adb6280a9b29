"""RWKV-6 (Finch) and RWKV-7 (Goose) layers: the preset columns of their fields (``rwkv_head_size``,
``rwkv_mix_lora_rank``, ``rwkv_decay_lora_rank``, ``rwkv_a_lora_rank``, ``rwkv_value_lora_rank``,
``rwkv_gate_lora_rank``), all nullable, and the presets of the RWKV-7 World 0.1B, 0.4B, 1.5B and 2.9B and the
RWKV-6 World 1.6B, 3B and 7B models (exact counts against flash-linear-attention 0.6.0,
``validation/measurements/recurrent_models.json``).

A store that already holds the catalog (it was seeded before this revision) receives the presets
below, frozen here as ``service/catalog/models.json`` has them at this revision (the seed file may
change later; this migration may not); an empty store is left to the seed, which reads the current
file. A preset id already present is left as it is. The catalog version is bumped so running
instances reload their snapshot.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 16:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations.seeded import delete_unchanged, insert_missing, refuse_dropping

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = {
    "rwkv_head_size": sa.Integer(),
    "rwkv_mix_lora_rank": sa.Integer(),
    "rwkv_decay_lora_rank": sa.Integer(),
    "rwkv_a_lora_rank": sa.Integer(),
    "rwkv_value_lora_rank": sa.Integer(),
    "rwkv_gate_lora_rank": sa.Integer(),
}

# the stored columns the presets below fill, as they were at this revision (earlier revisions' and its own)
_BEFORE = {
    "id": sa.String, "name": sa.String, "family": sa.String, "n_layers": sa.Integer, "d_model": sa.Integer,
    "n_heads": sa.Integer, "n_kv_heads": sa.Integer, "d_head": sa.Integer, "d_ff": sa.Integer, "vocab_size": sa.Integer,
    "ffn": sa.String, "norm": sa.String, "bias": sa.Boolean, "qkv_bias": sa.Boolean, "tied_embeddings": sa.Boolean,
    "position": sa.String, "max_seq_len": sa.Integer, "position_embedding_rows": sa.Integer, "n_experts": sa.Integer,
    "experts_per_token": sa.Integer, "parallel_attention": sa.Boolean, "norms_per_layer": sa.Integer,
    "embedding_norm": sa.Boolean, "reported_params": sa.BigInteger, "source": sa.Text, "notes": sa.Text,
    "version": sa.Integer, "layer_types": sa.JSON, "rwkv_version": sa.Integer,
}  # fmt: skip
PRESETS = sa.table(
    "model_presets",
    *(sa.column(name, type_) for name, type_ in _BEFORE.items()),
    *(sa.column(name, type_) for name, type_ in COLUMNS.items()),
)

# the presets this revision adds (service/catalog/models.json at this revision, database columns only)
NEW_PRESETS: list[dict] = [
    {
        "id": "rwkv7-world-0.1b",
        "name": "RWKV-7 World 0.1B",
        "family": "rwkv7",
        "n_layers": 12,
        "d_model": 768,
        "n_heads": 12,
        "n_kv_heads": 12,
        "d_head": 64,
        "d_ff": 3072,
        "vocab_size": 65536,
        "ffn": "gelu",
        "norm": "layernorm",
        "bias": False,
        "qkv_bias": False,
        "tied_embeddings": False,
        "position": "rotary",
        "max_seq_len": 4096,
        "position_embedding_rows": None,
        "n_experts": 1,
        "experts_per_token": 1,
        "parallel_attention": False,
        "norms_per_layer": 2,
        "embedding_norm": True,
        "reported_params": 190000000,
        "source": "Peng et al. 2025, 'RWKV-7 \"Goose\" with Expressive Dynamic State Evolution' (four RWKV-7 World models of 0.19B to 2.9B on the 3.1T-token World v3 corpus), https://arxiv.org/abs/2503.14456; weights: https://huggingface.co/BlinkDL/rwkv-7-world (RWKV-x070-World-0.1B-v2.8-20241210-ctx4096.pth); LoRA ranks: the checkpoint's w1, a1, v1 and g1 matrices (RWKV-LM RWKV-v7 training code)",
        "notes": "12 RWKV-7 blocks (LayerNorm, time mixing with a 12-head generalised delta-rule WKV of 64 x 64 states, LayerNorm, squared-ReLU channel mixing of 3072); LoRA ranks decay 64, a 64, value 32, gate 128; untied. The count is fla's, which builds no value LoRA on the first layer; BlinkDL's rwkv package (0.8.32) reads v0, v1 and v2 on every layer, the first included, so a checkpoint that holds them has 49,920 more. No KV cache: a fixed state per sequence (64 x 64 fp32 per head and two token-shift vectors per layer). max_seq_len 4096 is the trained context (the recurrence has no position limit).",
        "layer_types": ["rwkv"],
        "rwkv_version": 7,
        "rwkv_head_size": 64,
        "rwkv_decay_lora_rank": 64,
        "rwkv_a_lora_rank": 64,
        "rwkv_value_lora_rank": 32,
        "rwkv_gate_lora_rank": 128,
    },
    {
        "id": "rwkv7-world-0.4b",
        "name": "RWKV-7 World 0.4B",
        "family": "rwkv7",
        "n_layers": 24,
        "d_model": 1024,
        "n_heads": 16,
        "n_kv_heads": 16,
        "d_head": 64,
        "d_ff": 4096,
        "vocab_size": 65536,
        "ffn": "gelu",
        "norm": "layernorm",
        "bias": False,
        "qkv_bias": False,
        "tied_embeddings": False,
        "position": "rotary",
        "max_seq_len": 4096,
        "position_embedding_rows": None,
        "n_experts": 1,
        "experts_per_token": 1,
        "parallel_attention": False,
        "norms_per_layer": 2,
        "embedding_norm": True,
        "reported_params": 400000000,
        "source": "Peng et al. 2025, 'RWKV-7 \"Goose\" with Expressive Dynamic State Evolution' (four RWKV-7 World models of 0.19B to 2.9B on the 3.1T-token World v3 corpus), https://arxiv.org/abs/2503.14456; weights: https://huggingface.co/BlinkDL/rwkv-7-world (RWKV-x070-World-0.4B-v2.9-20250107-ctx4096.pth); LoRA ranks: the checkpoint's w1, a1, v1 and g1 matrices (RWKV-LM RWKV-v7 training code)",
        "notes": "24 RWKV-7 blocks (LayerNorm, time mixing with a 16-head generalised delta-rule WKV of 64 x 64 states, LayerNorm, squared-ReLU channel mixing of 4096); LoRA ranks decay 64, a 64, value 32, gate 128; untied. The count is fla's, which builds no value LoRA on the first layer; BlinkDL's rwkv package (0.8.32) reads v0, v1 and v2 on every layer, the first included, so a checkpoint that holds them has 66,560 more. No KV cache: a fixed state per sequence (64 x 64 fp32 per head and two token-shift vectors per layer). max_seq_len 4096 is the trained context (the recurrence has no position limit).",
        "layer_types": ["rwkv"],
        "rwkv_version": 7,
        "rwkv_head_size": 64,
        "rwkv_decay_lora_rank": 64,
        "rwkv_a_lora_rank": 64,
        "rwkv_value_lora_rank": 32,
        "rwkv_gate_lora_rank": 128,
    },
    {
        "id": "rwkv7-world-1.5b",
        "name": "RWKV-7 World 1.5B",
        "family": "rwkv7",
        "n_layers": 24,
        "d_model": 2048,
        "n_heads": 32,
        "n_kv_heads": 32,
        "d_head": 64,
        "d_ff": 8192,
        "vocab_size": 65536,
        "ffn": "gelu",
        "norm": "layernorm",
        "bias": False,
        "qkv_bias": False,
        "tied_embeddings": False,
        "position": "rotary",
        "max_seq_len": 4096,
        "position_embedding_rows": None,
        "n_experts": 1,
        "experts_per_token": 1,
        "parallel_attention": False,
        "norms_per_layer": 2,
        "embedding_norm": True,
        "reported_params": 1500000000,
        "source": "Peng et al. 2025, 'RWKV-7 \"Goose\" with Expressive Dynamic State Evolution' (four RWKV-7 World models of 0.19B to 2.9B on the 3.1T-token World v3 corpus), https://arxiv.org/abs/2503.14456; weights: https://huggingface.co/BlinkDL/rwkv-7-world (RWKV-x070-World-1.5B-v3-20250127-ctx4096.pth); LoRA ranks: the checkpoint's w1, a1, v1 and g1 matrices (RWKV-LM RWKV-v7 training code)",
        "notes": "24 RWKV-7 blocks (LayerNorm, time mixing with a 32-head generalised delta-rule WKV of 64 x 64 states, LayerNorm, squared-ReLU channel mixing of 8192); LoRA ranks decay 96, a 96, value 64, gate 256; untied. The count is fla's, which builds no value LoRA on the first layer; BlinkDL's rwkv package (0.8.32) reads v0, v1 and v2 on every layer, the first included, so a checkpoint that holds them has 264,192 more. No KV cache: a fixed state per sequence (64 x 64 fp32 per head and two token-shift vectors per layer). max_seq_len 4096 is the trained context (the recurrence has no position limit).",
        "layer_types": ["rwkv"],
        "rwkv_version": 7,
        "rwkv_head_size": 64,
        "rwkv_decay_lora_rank": 96,
        "rwkv_a_lora_rank": 96,
        "rwkv_value_lora_rank": 64,
        "rwkv_gate_lora_rank": 256,
    },
    {
        "id": "rwkv7-world-2.9b",
        "name": "RWKV-7 World 2.9B",
        "family": "rwkv7",
        "n_layers": 32,
        "d_model": 2560,
        "n_heads": 40,
        "n_kv_heads": 40,
        "d_head": 64,
        "d_ff": 10240,
        "vocab_size": 65536,
        "ffn": "gelu",
        "norm": "layernorm",
        "bias": False,
        "qkv_bias": False,
        "tied_embeddings": False,
        "position": "rotary",
        "max_seq_len": 4096,
        "position_embedding_rows": None,
        "n_experts": 1,
        "experts_per_token": 1,
        "parallel_attention": False,
        "norms_per_layer": 2,
        "embedding_norm": True,
        "reported_params": 2900000000,
        "source": "Peng et al. 2025, 'RWKV-7 \"Goose\" with Expressive Dynamic State Evolution' (four RWKV-7 World models of 0.19B to 2.9B on the 3.1T-token World v3 corpus), https://arxiv.org/abs/2503.14456; weights: https://huggingface.co/BlinkDL/rwkv-7-world (RWKV-x070-World-2.9B-v3-20250211-ctx4096.pth); LoRA ranks: the checkpoint's w1, a1, v1 and g1 matrices (RWKV-LM RWKV-v7 training code)",
        "notes": "32 RWKV-7 blocks (LayerNorm, time mixing with a 40-head generalised delta-rule WKV of 64 x 64 states, LayerNorm, squared-ReLU channel mixing of 10240); LoRA ranks decay 96, a 96, value 64, gate 320; untied. The count is fla's, which builds no value LoRA on the first layer; BlinkDL's rwkv package (0.8.32) reads v0, v1 and v2 on every layer, the first included, so a checkpoint that holds them has 330,240 more. No KV cache: a fixed state per sequence (64 x 64 fp32 per head and two token-shift vectors per layer). max_seq_len 4096 is the trained context (the recurrence has no position limit).",
        "layer_types": ["rwkv"],
        "rwkv_version": 7,
        "rwkv_head_size": 64,
        "rwkv_decay_lora_rank": 96,
        "rwkv_a_lora_rank": 96,
        "rwkv_value_lora_rank": 64,
        "rwkv_gate_lora_rank": 320,
    },
    {
        "id": "rwkv6-world-1.6b",
        "name": "RWKV-6 World 1.6B (Finch)",
        "family": "rwkv6",
        "n_layers": 24,
        "d_model": 2048,
        "n_heads": 32,
        "n_kv_heads": 32,
        "d_head": 64,
        "d_ff": 7168,
        "vocab_size": 65536,
        "ffn": "gelu",
        "norm": "layernorm",
        "bias": False,
        "qkv_bias": False,
        "tied_embeddings": False,
        "position": "rotary",
        "max_seq_len": 4096,
        "position_embedding_rows": None,
        "n_experts": 1,
        "experts_per_token": 1,
        "parallel_attention": False,
        "norms_per_layer": 2,
        "embedding_norm": True,
        "reported_params": 1600000000,
        "source": "Peng et al. 2024, 'Eagle and Finch: RWKV with Matrix-Valued States and Dynamic Recurrence' (Finch 1.6B, 3B and 7B on World v2.1), https://arxiv.org/abs/2404.05892; weights: https://huggingface.co/BlinkDL/rwkv-6-world (World v2.1, ctx4096); LoRA ranks: RWKV-LM RWKV-v5/src/model.py (RWKV_Tmix_x060: D_MIX_LORA 32, D_DECAY_LORA 64, doubled at n_embd 4096)",
        "notes": "24 RWKV-6 blocks (LayerNorm, time mixing with 32 heads of 64 x 64 WKV states, data-dependent token shift and decay, LayerNorm, receptance-gated squared-ReLU channel mixing of 7168); LoRA ranks token shift 32, decay 64; untied. No KV cache: a fixed state per sequence. max_seq_len 4096 is the trained context.",
        "layer_types": ["rwkv"],
        "rwkv_version": 6,
        "rwkv_head_size": 64,
        "rwkv_mix_lora_rank": 32,
        "rwkv_decay_lora_rank": 64,
    },
    {
        "id": "rwkv6-world-3b",
        "name": "RWKV-6 World 3B (Finch)",
        "family": "rwkv6",
        "n_layers": 32,
        "d_model": 2560,
        "n_heads": 40,
        "n_kv_heads": 40,
        "d_head": 64,
        "d_ff": 8960,
        "vocab_size": 65536,
        "ffn": "gelu",
        "norm": "layernorm",
        "bias": False,
        "qkv_bias": False,
        "tied_embeddings": False,
        "position": "rotary",
        "max_seq_len": 4096,
        "position_embedding_rows": None,
        "n_experts": 1,
        "experts_per_token": 1,
        "parallel_attention": False,
        "norms_per_layer": 2,
        "embedding_norm": True,
        "reported_params": 3000000000,
        "source": "Peng et al. 2024, 'Eagle and Finch: RWKV with Matrix-Valued States and Dynamic Recurrence' (Finch 1.6B, 3B and 7B on World v2.1), https://arxiv.org/abs/2404.05892; weights: https://huggingface.co/BlinkDL/rwkv-6-world (World v2.1, ctx4096); LoRA ranks: RWKV-LM RWKV-v5/src/model.py (RWKV_Tmix_x060: D_MIX_LORA 32, D_DECAY_LORA 64, doubled at n_embd 4096)",
        "notes": "32 RWKV-6 blocks (LayerNorm, time mixing with 40 heads of 64 x 64 WKV states, data-dependent token shift and decay, LayerNorm, receptance-gated squared-ReLU channel mixing of 8960); LoRA ranks token shift 32, decay 64; untied. No KV cache: a fixed state per sequence. max_seq_len 4096 is the trained context.",
        "layer_types": ["rwkv"],
        "rwkv_version": 6,
        "rwkv_head_size": 64,
        "rwkv_mix_lora_rank": 32,
        "rwkv_decay_lora_rank": 64,
    },
    {
        "id": "rwkv6-world-7b",
        "name": "RWKV-6 World 7B (Finch)",
        "family": "rwkv6",
        "n_layers": 32,
        "d_model": 4096,
        "n_heads": 64,
        "n_kv_heads": 64,
        "d_head": 64,
        "d_ff": 14336,
        "vocab_size": 65536,
        "ffn": "gelu",
        "norm": "layernorm",
        "bias": False,
        "qkv_bias": False,
        "tied_embeddings": False,
        "position": "rotary",
        "max_seq_len": 4096,
        "position_embedding_rows": None,
        "n_experts": 1,
        "experts_per_token": 1,
        "parallel_attention": False,
        "norms_per_layer": 2,
        "embedding_norm": True,
        "reported_params": 7600000000,
        "source": "Peng et al. 2024, 'Eagle and Finch: RWKV with Matrix-Valued States and Dynamic Recurrence' (Finch 1.6B, 3B and 7B on World v2.1), https://arxiv.org/abs/2404.05892; weights: https://huggingface.co/BlinkDL/rwkv-6-world (World v2.1, ctx4096); LoRA ranks: RWKV-LM RWKV-v5/src/model.py (RWKV_Tmix_x060: D_MIX_LORA 32, D_DECAY_LORA 64, doubled at n_embd 4096)",
        "notes": "32 RWKV-6 blocks (LayerNorm, time mixing with 64 heads of 64 x 64 WKV states, data-dependent token shift and decay, LayerNorm, receptance-gated squared-ReLU channel mixing of 14336); LoRA ranks token shift 64, decay 128; untied. No KV cache: a fixed state per sequence. max_seq_len 4096 is the trained context.",
        "layer_types": ["rwkv"],
        "rwkv_version": 6,
        "rwkv_head_size": 64,
        "rwkv_mix_lora_rank": 64,
        "rwkv_decay_lora_rank": 128,
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
