"""The contract as a TypeScript user meets it: types generated from the committed
``openapi/openapi.json`` by openapi-typescript with the README's flags, a user's calls
(``clients/typescript/example.ts``: a calculator, a catalog read with its ETag, an authenticated
write with If-Match and a stale one, a typed 422) type-checked by ``tsc --strict``, then compiled
and run with Node against a running service.

Needs Node.js and npm (the npm registry for ``npm ci``); skipped with a message only outside CI
when they are missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import API_TOKEN
from tests.test_faults import start_server

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "clients" / "typescript"
FILES = ("package.json", "package-lock.json", "tsconfig.json", "example.ts")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (shutil.which("node") and shutil.which("npm")) and not os.environ.get("CI"),
        reason="Node.js and npm are not installed (the TypeScript client check runs where they are, and always in CI)",
    ),
]


def run(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The example project in a scratch folder, its locked dependencies installed, its types
    generated from the committed contract."""
    where = tmp_path_factory.mktemp("typescript")
    for name in FILES:
        shutil.copy(EXAMPLE / name, where / name)
    run("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error", cwd=where)
    generated = run(
        "npx", "--no-install", "openapi-typescript", str(ROOT / "openapi" / "openapi.json"),
        "-o", "api.d.ts", "--default-non-nullable", "false", cwd=where,
    )  # fmt: skip
    output = (generated.stdout + generated.stderr).lower()
    assert "warn" not in output and "error" not in output, output
    return where


def test_the_users_calls_type_check_and_run_against_the_service(project: Path, tmp_path: Path) -> None:
    run("npx", "--no-install", "tsc", "-p", ".", cwd=project)  # strict type-check, then emit (no output: no errors)
    server = start_server(tmp_path, API_TOKEN=API_TOKEN)
    try:
        env = os.environ | {"BASE_URL": server.url, "API_TOKEN": API_TOKEN}
        done = run("node", "build/example.js", cwd=project, env=env, timeout=60)
    finally:
        server.stop()
    assert '"problem_fields":["body.model.n_layers"]' in done.stdout, done.stdout
