"""The benchmark still runs end to end (a smoke run; speed is judged by `make bench`, not here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_throughput_benchmark_runs(tmp_path: Path) -> None:
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{tmp_path / 'bench.sqlite3'}")
    run = subprocess.run(
        [sys.executable, "benchmarks/bench_calculators.py", "--rounds", "1", "--seconds", "0.3", "--concurrency", "2"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode in (0, 1), run.stderr  # 1 only means this short, noisy run missed the target
    for route in ("/healthz", "/bench/echo", "/v1/memory/training"):
        assert f"{route} " in run.stdout
    assert "median ratio" in run.stdout


def test_the_planner_benchmark_runs(tmp_path: Path) -> None:
    env = dict(os.environ, BENCH_DB=str(tmp_path / "planner.sqlite3"))
    run = subprocess.run(
        [sys.executable, "benchmarks/bench_planner.py", "--repeats", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode in (0, 1), run.stderr  # 1 only means this short, noisy run missed a target
    assert "configurations evaluated per second" in run.stdout
    assert run.stdout.count("POST /v1/plan") == 2


def test_the_serving_benchmark_runs(tmp_path: Path) -> None:
    env = dict(os.environ, BENCH_DB=str(tmp_path / "serving.sqlite3"))
    run = subprocess.run(
        [sys.executable, "benchmarks/bench_serving.py", "--rounds", "1", "--seconds", "0.3"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "serving plans/s" in run.stdout and "of /healthz" in run.stdout


def test_the_load_benchmark_runs() -> None:
    run = subprocess.run(  # on a throwaway SQLite file of its own
        [sys.executable, "benchmarks/bench_load.py", "--clients", "4", "--seconds", "0.5"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode in (0, 1), run.stderr  # 1 only means this short, noisy run missed a bar
    for name in ("mix ", "/healthz ", "mix/healthz "):
        assert name in run.stdout
    assert run.stdout.count("errors 0") == 2, run.stdout  # the mix and /healthz


def test_distinct_mix_varies_only_the_priced_requests() -> None:
    from benchmarks.bench_load import MIX, PRICED, distinct_mix

    assert distinct_mix(1) == MIX
    varied = distinct_mix(3)
    assert len(varied) == 3 * len(MIX)
    for path in PRICED:
        bodies = [json.dumps(body, sort_keys=True) for _, p, body in varied if p == path]
        assert len(set(bodies)) == 3, path
    unpriced = [(m, p, b) for m, p, b in varied if p not in PRICED]
    assert unpriced == [(m, p, b) for m, p, b in MIX if p not in PRICED] * 3


def test_the_write_storm_benchmark_checks_what_it_stores() -> None:
    run = subprocess.run(  # a small storm on a throwaway SQLite catalog, one worker
        [sys.executable, "benchmarks/bench_writes.py", "--writers", "24", "--readers", "2", "--pollers", "4",
         "--backends", "sqlite", "--workers", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert "Traceback" not in run.stderr, run.stderr
    assert "twice 0, lost 0, extra 0" in run.stdout, run.stdout  # every 201 stored once
    assert run.stdout.count("twice 0") == 2, run.stdout  # ... and the keyed retry stored nothing twice
    assert "batch of 1000: HTTP 201" in run.stdout, run.stdout
    assert "read errors" not in run.stdout and "without Retry-After" not in run.stdout, run.stdout
