"""Byte-for-byte answers of every computation endpoint, for checking that a refactor changes none.

For every request example of every computation operation in ``openapi/openapi.json`` (params,
compute, memory, cost, budget, plan, serving plan, ``config.json`` import) and, where the request
names a model, once for every model preset of the seed catalog, the service answers in-process
on a fresh seeded SQLite catalog; the status and the sha256 of each body are recorded. The one
field that measures the machine rather than the answer, a plan search's wall-clock
``search.seconds``, is zeroed before hashing. A search cut by its time bound (``search.cut``: a
deadline search on a busy machine) depends on the machine too: such answers are recorded as cut
and not compared (``--check`` lists them; run them again on a quiet machine with ``--only``).

    .venv/bin/python scripts/compare_answers.py --record /tmp/before.json   # on the old code
    .venv/bin/python scripts/compare_answers.py --check /tmp/before.json    # on the new code

``--check`` lists every request whose answer differs (status or bytes) and exits 1 if any does.
The calibration cases are compared by the test suite itself (ACCURACY.md is regenerated and must
not change: ``tests/test_accuracy.py``, ``tests/test_training_throughput.py``).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CATALOG_PATHS = ("/v1/gpus", "/v1/providers", "/v1/prices", "/v1/models/{")


def requests(spec: dict, presets: list[str]) -> Iterator[tuple[str, dict]]:
    """(path, body) for every example of every computation POST, per preset where it has a model."""
    for path, operations in sorted(spec["paths"].items()):
        op = operations.get("post")
        if op is None or path.startswith(CATALOG_PATHS) or path == "/v1/models":
            continue
        examples = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("examples", {})
        for name in sorted(examples):
            body = examples[name]["value"]
            yield path, body
            if isinstance(body.get("model"), dict) and "preset" in body["model"]:
                for preset in presets:
                    if preset != body["model"]["preset"]:
                        yield path, copy.deepcopy(body) | {"model": body["model"] | {"preset": preset}}


def digest(content: bytes) -> tuple[str, bool]:
    """sha256 of the body, with every ``search.seconds`` (a plan search's wall clock) zeroed, and
    whether a search in it was cut by its time bound."""
    try:
        body = json.loads(content)
    except ValueError:
        return hashlib.sha256(content).hexdigest(), False
    cut = False

    def zero(node: object) -> None:
        nonlocal cut
        if isinstance(node, dict):
            if isinstance(node.get("search"), dict) and "seconds" in node["search"]:
                node["search"]["seconds"] = 0
                cut = cut or bool(node["search"].get("cut"))
            for value in node.values():
                zero(value)
        elif isinstance(node, list):
            for value in node:
                zero(value)

    zero(body)
    return hashlib.sha256(json.dumps(body, sort_keys=False, separators=(",", ":")).encode()).hexdigest(), cut


def answers(only: str | None = None) -> dict[str, dict[str, object]]:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DATABASE_URL"] = f"sqlite:///{Path(tmp) / 'answers.sqlite3'}"
        from fastapi.testclient import TestClient

        from service.catalog import loader
        from service.main import create_app
        from service.settings import Settings

        spec = json.loads((ROOT / "openapi" / "openapi.json").read_text())
        app = create_app(Settings(database_url=os.environ["DATABASE_URL"], auto_migrate=True))
        out: dict[str, dict[str, object]] = {}
        with TestClient(app, raise_server_exceptions=False) as client:  # a 500 is an answer to record
            for path, body in requests(spec, sorted(loader.model_presets())):
                key = f"POST {path} {json.dumps(body, sort_keys=True)}"
                if only is not None and only not in key:
                    continue
                r = client.post(path, json=body)
                sha, cut = digest(r.content)
                out[key] = {"status": r.status_code, "sha256": sha} | ({"cut": True} if cut else {})
        app.state.engine.dispose()
        return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--record", type=Path, help="write the answers' digests here")
    group.add_argument("--check", type=Path, help="compare with digests recorded earlier")
    parser.add_argument("--only", help="only the requests whose key (method, path, body) contains this text")
    args = parser.parse_args()
    began = time.perf_counter()
    now = answers(args.only)
    seconds = time.perf_counter() - began
    if args.record:
        args.record.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
        print(f"recorded {len(now)} answers in {seconds:.0f} s to {args.record}")
        return 0
    before = json.loads(args.check.read_text())
    if args.only is not None:
        before = {k: v for k, v in before.items() if args.only in k}
    cut = sorted(k for k in before.keys() & now.keys() if before[k].get("cut") or now[k].get("cut"))
    differ = sorted(k for k in before.keys() & now.keys() - set(cut) if before[k] != now[k])
    missing, added = sorted(before.keys() - now.keys()), sorted(now.keys() - before.keys())
    for k in cut:
        print(f"CUT (a search stopped at its time bound; not compared): {k[:300]}")
    for k in differ:
        print(f"DIFFERS {before[k]['status']} -> {now[k]['status']}: {k[:300]}")
    for k in missing:
        print(f"MISSING: {k[:300]}")
    for k in added:
        print(f"NEW: {k[:300]}")
    same = len(before.keys() & now.keys()) - len(differ) - len(cut)
    print(
        f"{same} of {len(before)} answers byte-identical; {len(differ)} differ, {len(cut)} cut searches not compared, "
        f"{len(missing)} missing, {len(added)} new ({seconds:.0f} s)"
    )
    return 1 if differ or missing else 0


if __name__ == "__main__":
    sys.exit(main())
