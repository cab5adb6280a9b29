"""Representative architectures: the family rules give back every released configuration they are
built from, with the exact counts the catalog's presets measured in transformers, and a sane
shape at any other size."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.core.errors import InvalidSpecError
from service.core.params import count_params
from service.core.shapes import FAMILIES, ShapeFamily, anchor_counts, describe, representative_architecture

PRESETS = {
    row["id"]: row for row in json.loads((Path(__file__).parents[2] / "service/catalog/models.json").read_text())["models"]
}
# anchors with a preset: the exact count transformers measured (reference_params)
PRESET_OF = {"Llama 3.2 3B": "llama-3.2-3b", "Llama 3.1 8B": "llama-3.1-8b", "Llama 3.1 70B": "llama-3.1-70b",
             "Llama 3.1 405B": "llama-3.1-405b", "Qwen2.5 7B": "qwen2.5-7b", "Qwen2.5 14B": "qwen2.5-14b",
             "Qwen2.5 72B": "qwen2.5-72b"}  # fmt: skip
# anchors without one: the model cards' rounded totals (Qwen2.5 cards: 1.54B, 3.09B, 32.5B; OLMo 2: 7.30B, 13.7B, 32.2B)
CARD = {"Qwen2.5 1.5B": 1.54e9, "Qwen2.5 3B": 3.09e9, "Qwen2.5 32B": 32.5e9, "OLMo 2 7B": 7.30e9, "OLMo 2 13B": 13.7e9,
        "OLMo 2 32B": 32.2e9}  # fmt: skip

ANCHORS = [(family, anchor, n) for family, rules in FAMILIES.items() for anchor, n in anchor_counts(rules)]


@pytest.mark.parametrize(("family", "anchor", "n"), ANCHORS, ids=[a.name for _, a, _ in ANCHORS])
def test_each_released_configuration_comes_back_at_its_own_count(family, anchor, n) -> None:
    arch = representative_architecture(n, family)
    assert (arch.n_layers, arch.d_model, arch.n_kv_heads, arch.d_ff, arch.vocab_size, arch.tied_embeddings) == (
        anchor.n_layers, anchor.d_model, anchor.n_kv_heads, anchor.d_ff, anchor.vocab_size, anchor.tied_embeddings,
    )  # fmt: skip
    if anchor.name in PRESET_OF:
        preset = PRESETS[PRESET_OF[anchor.name]]
        assert n == preset["reference_params"]
        assert (preset["n_layers"], preset["d_model"], preset["n_kv_heads"], preset["d_ff"]) == (
            anchor.n_layers, anchor.d_model, anchor.n_kv_heads, anchor.d_ff,
        )  # fmt: skip
    else:
        assert n == pytest.approx(CARD[anchor.name], rel=0.005)


@settings(max_examples=60, deadline=None)
@given(log_n=st.floats(min_value=math.log(1e9), max_value=math.log(1e14)), family=st.sampled_from(list(ShapeFamily)))
def test_any_size_gets_a_valid_shape_near_its_count(log_n: float, family: ShapeFamily) -> None:
    n = math.exp(log_n)
    arch = representative_architecture(n, family)
    assert count_params(arch).total == pytest.approx(n, rel=0.02)
    assert arch.d_head == 128 and arch.n_heads * 128 == arch.d_model and arch.n_heads % arch.n_kv_heads == 0
    assert 2 <= arch.d_ff / arch.d_model <= 7  # SwiGLU's 8/3 and the families' wider MLPs


def test_llama3_depth_and_width_grow_with_the_size() -> None:
    shapes = [representative_architecture(n) for n in (1e9, 1e10, 1e11, 1e12, 1e13)]
    assert [a.n_layers for a in shapes] == sorted(a.n_layers for a in shapes)
    assert [a.d_model for a in shapes] == sorted(a.d_model for a in shapes)
    # beyond the largest release the aspect ratio of Llama 3.1 405B (d_model / n_layers = 130) is kept
    big = shapes[-1]
    assert big.d_model / big.n_layers == pytest.approx(16384 / 126, rel=0.15)
    assert "llama3: " in describe(big, ShapeFamily.LLAMA3) and "8 KV heads" in describe(big, ShapeFamily.LLAMA3)


@pytest.mark.parametrize("bad", [0.0, -5.0, math.nan, math.inf])
def test_a_count_that_is_not_one_is_refused(bad: float) -> None:
    with pytest.raises(InvalidSpecError) as info:
        representative_architecture(bad)
    assert info.value.field == "n_params"
