"""Write storm: N concurrent catalog writers while reads, calculators and plans keep answering.

For each backend (SQLite file, Postgres database) and worker count asked for, a throwaway catalog
is migrated and seeded, ``python -m service serve --workers W`` is started on a free port, and:

1. **storm**: ``--writers`` connections each send one ``POST /v1/prices`` with its own
   ``Idempotency-Key`` at the same moment, while ``--readers`` connections cycle through
   ``GET /v1/gpus/h100-sxm``, ``GET /v1/prices?latest=true``, ``POST /v1/memory/training`` and
   ``POST /v1/plan`` (Llama-3-70B on 1,024 H100s) until the last write has answered;
2. **exactly once**: the prices in the store are compared with the 201 answers (each price
   stored once, none lost, none extra);
3. **retry**: every write of the storm is sent again with its key, concurrently; then no price
   may be stored twice;
4. **batch**: one ``POST /v1/prices/batch`` of 1,000 rows, timed, then how long until every one of
   ``--pollers`` fresh connections (spread over the workers) sees all of it.

Bars (issue "a burst of catalog writes must not stall the service"): every write answers within
2 s, with 201 or 503/429 carrying ``Retry-After``; every 201 stored exactly once; reads and
calculators p99 < 250 ms and ``/v1/plan`` p99 < 1 s during the storm; the retry stores nothing
twice; the batch lands in < 2 s and is visible everywhere within 1 s. Exit status 1 when a bar is
missed. The client shares the machine with the server.

    make bench-writes    # or: .venv/bin/python benchmarks/bench_writes.py --backends sqlite postgres --workers 1 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_calculators import MEMORY_BODY, encode, free_port  # noqa: E402

TOKEN = "bench-writes-token"
MAX_WRITE_SECONDS = 2.0
MAX_READ_P99_SECONDS = 0.250
MAX_PLAN_P99_SECONDS = 1.0
MAX_BATCH_SECONDS = 2.0
MAX_VISIBLE_SECONDS = 1.0
BATCH_ROWS = 1000
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PLAN_BODY = {"model": {"preset": "llama-3-70b"}, "gpu": "h100-sxm", "n_gpus": 1024, "seq_len": 8192, "global_batch_size": 512}
READS = [
    ("GET", "/v1/gpus/h100-sxm", None),
    ("GET", "/v1/prices?latest=true", None),
    ("POST", "/v1/memory/training", MEMORY_BODY),
    ("POST", "/v1/plan", PLAN_BODY),
]


@dataclass
class Answer:
    status: int
    seconds: float
    headers: dict[str, str]
    body: bytes


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> Answer:
    sent = time.perf_counter()
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Answer(int(lines[0].split()[1]), time.perf_counter() - sent, headers, body)


async def one_request(port: int, request: bytes) -> Answer:
    """One request on a connection of its own (a writer)."""
    began = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            answer = await exchange(reader, writer, request)
        finally:
            writer.close()
    except (OSError, asyncio.IncompleteReadError) as exc:
        return Answer(0, time.perf_counter() - began, {"error": type(exc).__name__}, b"")
    answer.seconds = time.perf_counter() - began  # the connection's set-up included
    return answer


@dataclass
class ReadTally:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter = field(default_factory=Counter)

    def p99(self, names: list[str]) -> float:
        values = sorted(v for name in names for v in self.latencies.get(name, []))
        return values[min(len(values) - 1, int(0.99 * len(values)))] if values else float("nan")


async def reader_loop(port: int, start: int, stop: asyncio.Event, tally: ReadTally) -> None:
    requests = [(path, encode(method, path, body)) for method, path, body in READS]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = start
    try:
        while not stop.is_set():
            name, request = requests[i % len(requests)]
            i += 1
            answer = await exchange(reader, writer, request)
            if answer.status == 200:
                tally.latencies.setdefault(name, []).append(answer.seconds)
            else:
                tally.errors[f"{name} {answer.status}"] += 1
    except (OSError, asyncio.IncompleteReadError) as exc:
        tally.errors[type(exc).__name__] += 1
    finally:
        writer.close()


def price(run: str, i: int) -> dict:
    """Writer ``i``'s price: a value of its own, so the store can be checked row by row."""
    return {
        "gpu_id": "h100-sxm", "provider_id": "lambda", "pricing": "spot", "usd_per_gpu_hour": 1 + i / 1000,
        "as_of": "2026-01-01", "source": f"bench-writes {run}",
    }  # fmt: skip


def write_request(run: str, i: int) -> bytes:
    headers = {"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": f"{run}-{i}"}
    return encode("POST", "/v1/prices", price(run, i), headers)


async def storm(port: int, run: str, writers: int, readers: int) -> tuple[list[Answer], ReadTally]:
    tally = ReadTally()
    stop = asyncio.Event()
    reading = [asyncio.create_task(reader_loop(port, k, stop, tally)) for k in range(readers)]
    await asyncio.sleep(0.5)  # the readers are under way before the burst
    answers = await asyncio.gather(*(one_request(port, write_request(run, i)) for i in range(writers)))
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.gather(*reading)
    return list(answers), tally


def stored_prices(url: str, run: str) -> Counter:
    """How many rows the store holds per writer of ``run`` (by its price)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT id, usd_per_gpu_hour FROM prices WHERE source = :s"), {"s": f"bench-writes {run}"}
            )
            return Counter(round((usd - 1) * 1000) for _id, usd in rows)
    finally:
        engine.dispose()


def write_summary(name: str, answers: list[Answer]) -> tuple[str, list[str]]:
    statuses = Counter(a.status for a in answers)
    slowest = max(a.seconds for a in answers)
    misses = []
    refused = [a for a in answers if a.status in (429, 503)]
    if any("retry-after" not in a.headers for a in refused):
        misses.append(f"{name}: a 503/429 without Retry-After")
    if other := {s for s in statuses if s not in (200, 201, 429, 503)}:
        misses.append(f"{name}: answers {sorted(other)}")
    if slowest >= MAX_WRITE_SECONDS:
        misses.append(f"{name}: slowest write {slowest:.2f} s")
    line = f"{name:6} {dict(sorted(statuses.items()))}   slowest {slowest * 1e3:.0f} ms   median {1e3 * sorted(a.seconds for a in answers)[len(answers) // 2]:.0f} ms"
    return line, misses


async def batch_and_visibility(port: int, run: str, pollers: int) -> tuple[Answer, float]:
    rows = [price(f"{run}-batch", i) | {"region": f"batch-{run}"} for i in range(BATCH_ROWS)]
    headers = {"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": f"{run}-batch"}
    answer = await one_request(port, encode("POST", "/v1/prices/batch", {"prices": rows}, headers))
    committed = time.perf_counter()
    query = f"/v1/prices?limit=1&region=batch-{run}"

    async def seen_by_a_fresh_connection() -> float:
        while time.perf_counter() - committed < 10:
            got = await one_request(port, encode("GET", query, None))
            if got.status == 200 and json.loads(got.body)["total"] == BATCH_ROWS:
                return time.perf_counter() - committed
            await asyncio.sleep(0.02)
        return float("inf")

    waits = await asyncio.gather(*(seen_by_a_fresh_connection() for _ in range(pollers)))
    return answer, max(waits)


def make_database(backend: str, tmp: Path, admin_url: str) -> tuple[str, object]:
    """A throwaway catalog, migrated and seeded; its URL and a clean-up call."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.orm import Session

    from service.db.engine import build_engine
    from service.db.migrate import upgrade
    from service.db.seed import seed_catalog

    if backend == "sqlite":
        url, cleanup = f"sqlite:///{tmp / f'writes-{uuid.uuid4().hex[:8]}.sqlite3'}", lambda: None
    else:
        name = f"ltm_bench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)

        def cleanup() -> None:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()

    engine = build_engine(url)
    upgrade(engine)
    with Session(engine) as session:
        seed_catalog(session)
        session.commit()
    engine.dispose()
    return url, cleanup


def serve(url: str, workers: int) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = dict(os.environ) | {
        "DATABASE_URL": url, "API_TOKEN": TOKEN, "AUTO_MIGRATE": "false", "PORT": str(port), "LOG_LEVEL": "warning",
        "PYTHONPATH": str(ROOT),
    }  # fmt: skip
    server = subprocess.Popen([sys.executable, "-m", "service", "serve", "--workers", str(workers)], cwd=ROOT, env=env)
    import httpx

    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                # every worker has imported and warmed: a plan and a memory answer on fresh connections
                for _ in range(4 * workers):
                    httpx.post(f"http://127.0.0.1:{port}/v1/plan", json=PLAN_BODY, timeout=30)
                return server, port
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.terminate()
    raise SystemExit("server did not start")


def run_case(backend: str, workers: int, args: argparse.Namespace, tmp: Path) -> list[str]:
    url, cleanup = make_database(backend, tmp, args.postgres_url)
    server, port = serve(url, workers)
    run = uuid.uuid4().hex[:8]
    misses: list[str] = []
    try:
        answers, tally = asyncio.run(storm(port, run, args.writers, args.readers))
        line, missed = write_summary("storm", answers)
        misses += missed
        print(f"{backend}, {workers} worker(s), {args.writers} writers, {args.readers} readers")
        print("  " + line)
        created = Counter(i for i, a in enumerate(answers) if a.status == 201)
        stored = stored_prices(url, run)
        twice, lost, extra = (
            [i for i, n in stored.items() if n > 1],
            [i for i in created if stored[i] != 1],
            set(stored) - set(created),
        )
        print(
            f"  stored {sum(stored.values())} rows for {len(created)} answers 201: twice {len(twice)}, lost {len(lost)}, extra {len(extra)}"
        )
        if twice or lost or extra:
            misses.append(f"{backend}/{workers}: exactly once broken (twice {len(twice)}, lost {len(lost)}, extra {len(extra)})")
        reads = ["/v1/gpus/h100-sxm", "/v1/prices?latest=true", "/v1/memory/training"]
        read_p99, plan_p99 = tally.p99(reads), tally.p99(["/v1/plan"])
        counts = {name: len(v) for name, v in tally.latencies.items()}
        print(f"  during the storm: reads+calculators p99 {read_p99 * 1e3:.0f} ms, /v1/plan p99 {plan_p99 * 1e3:.0f} ms, "
              f"answers {counts}, errors {dict(tally.errors)}")  # fmt: skip
        if not read_p99 < MAX_READ_P99_SECONDS:
            misses.append(f"{backend}/{workers}: read p99 {read_p99 * 1e3:.0f} ms")
        if not plan_p99 < MAX_PLAN_P99_SECONDS:
            misses.append(f"{backend}/{workers}: plan p99 {plan_p99 * 1e3:.0f} ms")
        if tally.errors:
            misses.append(f"{backend}/{workers}: read errors {dict(tally.errors)}")

        retry = asyncio.run(_all(port, run, args.writers))
        line, missed = write_summary("retry", retry)
        misses += missed
        replayed = sum(1 for a in retry if a.headers.get("idempotent-replayed") == "true")
        after = stored_prices(url, run)
        twice = [i for i, n in after.items() if n > 1]
        print(f"  {line}   replayed {replayed}; stored now {sum(after.values())}, twice {len(twice)}")
        if twice:
            misses.append(f"{backend}/{workers}: the retry stored {len(twice)} prices twice")

        batch, visible = asyncio.run(batch_and_visibility(port, run, args.pollers))
        print(f"  batch of {BATCH_ROWS}: HTTP {batch.status} in {batch.seconds * 1e3:.0f} ms; "
              f"seen by all {args.pollers} fresh connections within {visible * 1e3:.0f} ms")  # fmt: skip
        if batch.status != 201 or batch.seconds >= MAX_BATCH_SECONDS:
            misses.append(f"{backend}/{workers}: batch {batch.status} in {batch.seconds:.2f} s")
        if visible >= MAX_VISIBLE_SECONDS:
            misses.append(f"{backend}/{workers}: batch visible after {visible:.2f} s")
    finally:
        server.terminate()
        server.wait(timeout=30)
        cleanup()
    return misses


async def _all(port: int, run: str, writers: int) -> list[Answer]:
    return list(await asyncio.gather(*(one_request(port, write_request(run, i)) for i in range(writers))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=int, default=256)
    parser.add_argument("--readers", type=int, default=8)
    parser.add_argument("--pollers", type=int, default=16, help="fresh connections that must each see the batch")
    parser.add_argument("--backends", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"])
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--postgres-url", default=os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES))
    args = parser.parse_args()
    misses: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends:
            for workers in args.workers:
                misses += run_case(backend, workers, args, Path(tmp))
    print("MISSES: " + "; ".join(misses) if misses else "meets every bar")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
