"""The README's table of published recurrent and hybrid sizes: every row's exact total and active counts are
what the config mappers count and, for the total, what the reference implementation builds
(``validation/measurements/recurrent_models.json``, with the checkpoint's stored buffers)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from service.core.hf_config import architecture_from_hf_config
from service.core.params import count_params

ROOT = Path(__file__).resolve().parents[2]
MEASURED = json.loads((ROOT / "validation" / "measurements" / "recurrent_models.json").read_text())["models"]
ROWS = {
    "Jamba 1.5 Mini": "jamba-1.5-mini",
    "Falcon-H1 7B": "falcon-h1-7b",
    "Mamba-2 2.7B": "mamba2-2.7b",
    "RWKV-7 World 2.9B": "rwkv7-world-2.9b",
    "Qwen3-Next 80B-A3B": "qwen3-next-80b-a3b",
    "Nemotron 3 Nano 30B-A3B": "nemotron-3-nano-30b-a3b",
}


def _table() -> dict[str, list[str]]:
    text = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| ([^|]+?) \| [^|]+ \| `(\w+)` \| ([\d,]+) \| ([\d,]+) \|$", text, flags=re.MULTILINE)
    return {name: [cls, total, active] for name, cls, total, active in rows}


def test_the_table_lists_the_issue_s_published_sizes():
    assert set(ROWS) <= set(_table())


@pytest.mark.parametrize(("row", "name"), sorted(ROWS.items()))
def test_each_row_is_the_exact_count(row, name):
    cls, total, active = _table()[row]
    m = MEASURED[name]
    b = count_params(architecture_from_hf_config(m["config"]))
    assert cls == m["model_class"]
    assert int(total.replace(",", "")) == b.total == m["parameters"] + m["checkpoint_buffers"]
    assert int(active.replace(",", "")) == b.active
