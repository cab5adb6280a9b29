"""Throughput of POST /v1/memory/training against GET /healthz, same server, same client.

Starts one uvicorn worker on a free local port, then drives it with one client: asyncio
keep-alive connections (``--concurrency`` of them) sending pre-encoded HTTP/1.1 requests, light
enough that the server, not the client, is the bottleneck (an httpx client tops out near the
server's speed and flatters the ratio). The endpoints alternate in rounds, so that both see the
same machine noise. Reports requests per second of each and their ratio; the target is
that the calculator reaches at least 70 % of the health endpoint's throughput (the math must cost
almost nothing next to the framework). A third route, POST /bench/echo (benchmarks/bench_app.py),
reads and validates the same body through the same lean route path and answers a constant: the
framework's floor for that body, so calc/echo is the share left after the calculator's own work
(catalog lookups, the formulas, building and serialising the answer). On Linux it also reports
the server's CPU time per request, which does not depend on the client. Where the machine has
two CPUs or more, the server is pinned to one and the client to the others (Linux affinity),
which steadies the rounds. Exit status 1 when the median ratio misses the target.

    make bench            # or: .venv/bin/python benchmarks/bench_calculators.py --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 0.70
MEMORY_BODY = {
    "model": {"preset": "llama-2-7b"},
    "seq_len": 4096,
    "micro_batch_size": 2,
    "recompute": "selective",
    "flash_attention": True,
    "parallelism": {"dp": 8, "tp": 2, "pp": 2, "zero_stage": 1},
    "gpu": "h100-sxm",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def encode(method: str, path: str, body: object | None, headers: dict[str, str] | None = None) -> bytes:
    """One pre-encoded HTTP/1.1 keep-alive request, with any extra ``headers``."""
    payload = json.dumps(body).encode() if body is not None else b""
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        f"{extra}\r\n"
    )
    return head.encode() + payload


async def connection(host: str, port: int, request: bytes, deadline: float) -> int:
    """Send ``request`` over one keep-alive connection until ``deadline``; count the answers."""
    reader, writer = await asyncio.open_connection(host, port)
    done = 0
    try:
        while time.perf_counter() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise SystemExit(f"unexpected answer: {head[:80]!r}")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            done += 1
    finally:
        writer.close()
    return done


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of process ``pid`` (Linux ``/proc``; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_round(host: str, port: int, request: bytes, seconds: float, concurrency: int) -> tuple[float, int]:
    """Requests per second over one round, and how many were answered."""
    start = time.perf_counter()
    counts = await asyncio.gather(*(connection(host, port, request, start + seconds) for _ in range(concurrency)))
    return sum(counts) / (time.perf_counter() - start), sum(counts)


async def main_async(host: str, port: int, server_pid: int, rounds: int, seconds: float, concurrency: int) -> float:
    requests = {
        "/healthz": encode("GET", "/healthz", None),
        "/bench/echo": encode("POST", "/bench/echo", MEMORY_BODY),
        "/v1/memory/training": encode("POST", "/v1/memory/training", MEMORY_BODY),
    }
    await run_round(host, port, requests["/v1/memory/training"], 1.0, concurrency)  # warm-up
    ratios, floors = [], []
    cpu_us: dict[str, list[float]] = {path: [] for path in requests}
    for i in range(rounds):
        rps = {}
        for path, req in requests.items():
            before = cpu_seconds(server_pid)
            rps[path], answered = await run_round(host, port, req, seconds, concurrency)
            after = cpu_seconds(server_pid)
            if before is not None and after is not None and answered:
                cpu_us[path].append(1e6 * (after - before) / answered)
        ratios.append(rps["/v1/memory/training"] / rps["/healthz"])
        floors.append(rps["/bench/echo"] / rps["/healthz"])
        print(
            f"round {i + 1}: "
            + "   ".join(f"{path} {value:7.0f} req/s" for path, value in rps.items())
            + f"   calc/health {ratios[-1]:.2f}   echo/health {floors[-1]:.2f}"
            + f"   calc/echo {rps['/v1/memory/training'] / rps['/bench/echo']:.2f}"
        )
    print(f"median echo/health {statistics.median(floors):.2f}: the framework's floor for the same body, no math")
    if all(cpu_us.values()):
        print(
            "median server CPU per request: "
            + "   ".join(f"{path} {statistics.median(values):.0f} µs" for path, values in cpu_us.items())
        )
    return statistics.median(ratios)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    port = free_port()
    env = dict(os.environ)
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pin = len(cpus) >= 2  # server and client on CPUs of their own: steadier rounds
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            "benchmarks",
            "bench_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env | {"PYTHONPATH": str(ROOT)},
        preexec_fn=(lambda: os.sched_setaffinity(0, {cpus[-1]})) if pin else None,
    )
    if pin:
        os.sched_setaffinity(0, set(cpus[:-1]))
    try:
        base_url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base_url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            print("server did not start", file=sys.stderr)
            return 2
        ratio = asyncio.run(main_async("127.0.0.1", port, server.pid, args.rounds, args.seconds, args.concurrency))
    finally:
        server.terminate()
        server.wait(timeout=10)
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    print(f"median ratio {ratio:.2f} — {verdict} the {TARGET_RATIO:.0%} target")
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
