"""Shared builders for core tests."""

from __future__ import annotations

from dataclasses import fields

from service.catalog import loader
from service.core.architecture import Architecture
from service.core.spec import make_architecture


def preset_architecture(preset: dict[str, object]) -> dict[str, object]:
    """The architecture fields of a seed-file preset."""
    names = [f.name for f in fields(Architecture)]
    return {name: preset[name] for name in names if preset.get(name) is not None}


def preset(model_id: str, **overrides: object) -> Architecture:
    """A stored preset as a core architecture, with optional field overrides."""
    return make_architecture(**(preset_architecture(loader.model_presets()[model_id]) | overrides))


def gpt3_like(**overrides: object) -> Architecture:
    """Korthikanti et al. 2022's setting: MHA, 4h GELU MLP, LayerNorm, biases (GPT-3 175B)."""
    fields: dict[str, object] = dict(
        n_layers=96, d_model=12288, n_heads=96, d_ff=4 * 12288, vocab_size=51200,
        position="learned", max_seq_len=2048, bias=True, tied_embeddings=True,
    )  # fmt: skip
    return make_architecture(**(fields | overrides))
