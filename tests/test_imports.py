"""The import structure of ``service/``: no cycles between modules, and the layers' contract.

Every ``import service...`` and ``from service... import ...`` in every module is read from its
source with ``ast`` (imports inside functions too: a deferred import is still a dependency), and
resolved to the module it names (``from service.services import plan`` is ``service.services.plan``).

Layers (docs/ARCHITECTURE.md): ``core`` (pure math) imports no other layer of the service;
``schemas`` imports only ``core``; ``db`` imports no web, service or schema module (``core`` it may:
the preset columns follow the architecture's field declarations); ``services`` imports no ``api``;
nothing below ``api`` imports ``service.main``. (``core`` importing no web or database package is
``tests/core/test_purity.py``.)
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "service"

# layer -> the service layers it may import (besides itself)
ALLOWED = {
    "core": set(),
    "schemas": {"core"},
    "catalog": set(),
    "db": {"core", "catalog", "settings", "errors"},
    "services": {"core", "schemas", "db", "errors", "catalog", "settings"},
    "api": {"core", "schemas", "db", "errors", "services", "settings", "logging_config", "metrics"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported(name: str, path: Path) -> set[str]:
    """The service modules ``name`` imports."""
    out: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names if alias.name.split(".")[0] == "service"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package up
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base.split(".")[0] != "service":
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                out.add(candidate if candidate in MODULES else base)
    return {m for m in out if m in MODULES and m != name}


GRAPH = {name: imported(name, path) for name, path in MODULES.items()}


def cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), and self-loops."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(GRAPH[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return found


def layer(name: str) -> str:
    return name.split(".")[1] if name.count(".") >= 1 else name


def test_no_import_cycles_in_the_service() -> None:
    assert cycles() == []


def test_the_cycle_finder_finds_one() -> None:
    saved = dict(GRAPH)
    try:
        GRAPH["service.services.pricing"] = GRAPH["service.services.pricing"] | {"service.services.plan"}
        assert any({"service.services.plan", "service.services.pricing"} <= set(c) for c in cycles())
    finally:
        GRAPH.clear()
        GRAPH.update(saved)


def test_each_layer_imports_only_the_layers_below_it() -> None:
    wrong = []
    for name, targets in sorted(GRAPH.items()):
        own = layer(name)
        if own not in ALLOWED:
            continue
        for target in sorted(targets):
            other = layer(target)
            if other != own and other not in ALLOWED[own]:
                wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_the_import_reader_sees_deferred_and_relative_imports(tmp_path: Path) -> None:
    path = tmp_path / "probe.py"
    path.write_text("from . import plan\n\ndef f():\n    from service.services import energy\n    import service.core.cost\n")
    assert imported("service.services.probe", path) == {"service.services.plan", "service.services.energy", "service.core.cost"}
