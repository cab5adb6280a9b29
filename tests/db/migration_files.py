"""The migration files as modules, for tests that read the rows a revision froze."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from service.settings import PROJECT_ROOT


def migration_module(revision: str) -> ModuleType:
    """``migrations/versions/*_<revision>.py`` loaded as a module (the directory is no package)."""
    path = next((PROJECT_ROOT / "migrations" / "versions").glob(f"*_{revision}.py"))
    spec = importlib.util.spec_from_file_location(f"migration_{revision}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
