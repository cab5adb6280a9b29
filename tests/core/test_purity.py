"""``service.core`` is pure math: it imports no web framework, validation library or database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BLOCKED = ("fastapi", "starlette", "pydantic", "pydantic_settings", "sqlalchemy", "alembic", "psycopg", "httpx", "uvicorn")

PROBE = f"""
import importlib, pkgutil, sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError("service.core must not import " + name)
        return None

sys.meta_path.insert(0, Block())
import service.core
for mod in pkgutil.walk_packages(service.core.__path__, "service.core."):
    importlib.import_module(mod.name)
leaked = sorted(m for m in sys.modules if m.split(".")[0] in {BLOCKED!r})
assert not leaked, leaked
print("ok")
"""


def test_core_imports_nothing_from_web_or_db_packages() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_probe_does_block() -> None:
    # the guard itself works: importing service.main (which needs fastapi) must fail under it
    probe = PROBE.replace("import service.core\n", "import service.main\n", 1)
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "must not import" in result.stderr
