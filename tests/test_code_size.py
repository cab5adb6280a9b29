"""Sizes a newcomer can read: no module in ``service/`` over 600 lines, no function over 100."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 100


def sources() -> list[Path]:
    return sorted((ROOT / "service").rglob("*.py"))


def test_no_module_is_over_600_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in sources() if (n := p.read_text(encoding="utf-8").count("\n")) > MAX_MODULE_LINES}
    assert long == {}


def test_no_function_is_over_100_lines() -> None:
    long = {}
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                and (n := node.end_lineno - node.lineno + 1) > MAX_FUNCTION_LINES
            ):
                long[f"{path.relative_to(ROOT)}:{node.name}"] = n
    assert long == {}
