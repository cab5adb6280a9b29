"""Load: a mix of catalog-backed requests against GET /healthz, same server, same clients.

Starts one uvicorn worker (benchmarks/server.py) on a free port against a throwaway SQLite
catalog (or ``--database-url``: a Postgres database, migrated and seeded here first), then
drives it with ``--clients`` keep-alive connections (asyncio, pre-encoded HTTP/1.1 requests, as
benchmarks/bench_calculators.py) for ``--seconds``: first the mix, each connection cycling
through

    POST /v1/memory/training        a preset on a catalog GPU
    POST /v1/cost/training          a bare parameter count, priced at the cheapest catalog price
    POST /v1/budget                 dollars on a catalog GPU at its catalog price
    POST /v1/cost/compare           every GPU x provider with a current price (a bare count: no planner)
    GET  /v1/gpus/h100-sxm
    GET  /v1/gpus?limit=20
    GET  /v1/prices?latest=true
    POST /v1/plan                   Llama-3-70B on 256 H100s (the contract's example)
    POST /v1/plan/serving           Llama-3.1-70B for 200 users on H100 and A100 (the contract's example)

then /healthz alone, with the same clients for the same time. Prints requests per second, p50
and p99 latency and errors of each, and the mix / healthz throughput ratio. Exit status 1 when
the mix had errors, its p99 is 250 ms or more, or the ratio is under 0.4. The client shares the
machine with the server, so on few cores it takes some of the server's CPU.

    make bench-load      # or: .venv/bin/python benchmarks/bench_load.py --clients 64 --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_calculators import MEMORY_BODY, encode  # noqa: E402
from benchmarks.server import running_service  # noqa: E402

MAX_P99_SECONDS = 0.250
MIN_RATIO = 0.4
MIX = [
    ("POST", "/v1/memory/training", MEMORY_BODY),
    ("POST", "/v1/cost/training", {"model": {"n_params": 7e9}, "tokens": 1e12, "gpu": "h100-sxm", "n_gpus": 8}),
    ("POST", "/v1/budget", {"budget_usd": 1e6, "gpu": "h100-sxm"}),
    ("POST", "/v1/cost/compare", {"model": {"n_params": 7e9}, "tokens": 1e12, "n_gpus": 8}),
    ("GET", "/v1/gpus/h100-sxm", None),
    ("GET", "/v1/gpus?limit=20", None),
    ("GET", "/v1/prices?latest=true", None),
    (
        "POST",
        "/v1/plan",
        {
            "model": {"preset": "llama-3-70b"},
            "gpu": "h100-sxm",
            "n_gpus": 256,
            "seq_len": 8192,
            "global_batch_size": 512,
            "tokens": 15e12,
            "top_k": 5,
        },
    ),
    (
        "POST",
        "/v1/plan/serving",
        {
            "model": {"preset": "llama-3.1-70b"},
            "gpu": ["h100-sxm", "a100-80gb-sxm"],
            "concurrent_users": 200,
            "prompt_tokens": 2000,
            "output_tokens": 500,
            "weights_dtype": "fp8",
            "kv_dtype": "fp8",
        },
    ),
]
HEALTH = [("GET", "/healthz", None)]


@dataclass
class Tally:
    """Latencies of the answered requests and the errors (non-200 answers, broken connections)."""

    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def line(self, name: str) -> str:
        errors = sum(self.errors.values())
        detail = f" ({', '.join(f'{k}: {v}' for k, v in sorted(self.errors.items()))})" if errors else ""
        return (
            f"{name:8} {self.rate:8.0f} req/s   p50 {1e3 * self.percentile(0.50):7.1f} ms   "
            f"p99 {1e3 * self.percentile(0.99):7.1f} ms   errors {errors}{detail}"
        )


async def client(host: str, port: int, requests: list[tuple[str, bytes]], start: int, deadline: float, tally: Tally) -> None:
    """One keep-alive connection cycling through ``requests`` from ``start`` until ``deadline``."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        tally.error(type(exc).__name__)
        return
    i = start
    try:
        while time.perf_counter() < deadline:
            name, request = requests[i % len(requests)]
            i += 1
            sent = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            if head.startswith(b"HTTP/1.1 200"):
                tally.latencies.append(time.perf_counter() - sent)
            else:
                tally.error(f"{name} {head[9:12].decode()}")
    except (OSError, asyncio.IncompleteReadError, IndexError, ValueError) as exc:
        tally.error(type(exc).__name__)
    finally:
        writer.close()


async def drive(port: int, mix: list[tuple[str, str, dict | None]], clients: int, seconds: float) -> Tally:
    requests = [(f"{method} {path}", encode(method, path, body)) for method, path, body in mix]
    tally = Tally()
    began = time.perf_counter()
    starts = [i * len(requests) // clients if len(requests) > clients else i for i in range(clients)]  # spread over the list
    await asyncio.gather(*(client("127.0.0.1", port, requests, start, began + seconds, tally) for start in starts))
    tally.seconds = time.perf_counter() - began
    return tally


def prepare_postgres(url: str) -> None:
    """Migrate and seed ``url`` (Postgres deployments do not migrate at start-up)."""
    from sqlalchemy.orm import Session

    from service.db.engine import build_engine
    from service.db.migrate import upgrade
    from service.db.seed import seed_catalog

    engine = build_engine(url)
    try:
        upgrade(engine)
        with Session(engine) as session:
            seed_catalog(session)
            session.commit()
    finally:
        engine.dispose()


PRICED = ("/v1/cost/training", "/v1/budget", "/v1/cost/compare", "/v1/plan", "/v1/plan/serving")


def distinct_mix(variants: int) -> list[tuple[str, str, dict | None]]:
    """The mix with ``variants`` different bodies of each priced request (other token counts and
    budgets), interleaved, so that with more variants than the service keeps answers
    (``ANSWER_CACHE_SIZE``) every priced answer is computed afresh."""
    if variants <= 1:
        return MIX
    mix = []
    for i in range(variants):
        for method, path, body in MIX:
            if path in PRICED and body is not None:
                if "budget_usd" in body:
                    body = body | {"budget_usd": body["budget_usd"] + i}
                elif "tokens" in body:
                    body = body | {"tokens": body["tokens"] + i * 1e9}
                else:  # a serving plan
                    body = body | {"prompt_tokens": body["prompt_tokens"] + i}
            mix.append((method, path, body))
    return mix


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--database-url", help="a Postgres database to use (migrated and seeded); default a throwaway SQLite file"
    )
    parser.add_argument(
        "--distinct",
        type=int,
        default=1,
        help="bodies per priced request (default 1: the same request again; 2000: every priced answer computed afresh)",
    )
    args = parser.parse_args()
    mix_requests = distinct_mix(args.distinct)
    with tempfile.TemporaryDirectory() as tmp:
        database = Path(tmp) / "load.sqlite3"
        url = args.database_url or f"sqlite:///{database}"
        if args.database_url:
            prepare_postgres(url)
        os.environ["DATABASE_URL"] = url  # running_service lets the environment's URL win
        with running_service(database) as http:
            port = http.base_url.port
            for method, path, body in MIX:  # every request of the mix answers before the clock starts
                r = http.request(method, path, content=json.dumps(body) if body is not None else None,
                                 headers={"content-type": "application/json"})  # fmt: skip
                if r.status_code != 200:
                    print(f"{method} {path}: HTTP {r.status_code} {r.text[:300]}", file=sys.stderr)
                    return 2
            asyncio.run(drive(port, mix_requests, args.clients, min(2.0, args.seconds)))  # warm-up
            mix = asyncio.run(drive(port, mix_requests, args.clients, args.seconds))
            health = asyncio.run(drive(port, HEALTH, args.clients, args.seconds))
    backend = "postgres" if args.database_url else "sqlite"
    print(f"{args.clients} clients, {args.seconds:g} s each, {backend}, {args.distinct} bodies per priced request; mix: "
          + ", ".join(f"{m} {p}" for m, p, _ in MIX))  # fmt: skip
    print(mix.line("mix"))
    print(health.line("/healthz"))
    ratio = mix.rate / health.rate if health.rate else 0.0
    print(f"mix/healthz {ratio:.2f}")
    failures = []
    if sum(mix.errors.values()) or sum(health.errors.values()):
        failures.append("errors")
    if not mix.percentile(0.99) < MAX_P99_SECONDS:
        failures.append(f"mix p99 >= {1e3 * MAX_P99_SECONDS:.0f} ms")
    if ratio < MIN_RATIO:
        failures.append(f"ratio < {MIN_RATIO}")
    print("MISSES: " + "; ".join(failures) if failures else "meets every bar")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
