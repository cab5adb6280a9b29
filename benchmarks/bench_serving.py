"""Serving plans per second: POST /v1/plan/serving against GET /healthz, same server, same client.

One uvicorn worker (benchmarks/server.py), one keep-alive httpx client, alternating rounds of a
serving plan over five GPU types (Llama-3.1-70B in fp8) and of the health endpoint, so both see the
same machine noise. Every serving request asks for a different number of users, so each is computed,
never a kept answer. Prints requests per second of each and their ratio; target: 0.3 of /healthz.

    make bench-serving      # or: .venv/bin/python benchmarks/bench_serving.py --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.server import running_service  # noqa: E402

GPUS = ["h100-sxm", "h200-sxm", "a100-80gb-sxm", "l40s", "mi300x"]
BODY = {"model": {"preset": "llama-3.1-70b"}, "gpu": GPUS, "weights_dtype": "fp8", "kv_dtype": "fp8",
        "prompt_tokens": 2000, "output_tokens": 500}  # fmt: skip
TARGET_RATIO = 0.3
USERS = iter(range(1, 10**9))  # a new load per request: no two serving requests alike


def rate(client, method: str, path: str, body: dict | None, seconds: float) -> float:  # noqa: ANN001
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fresh = None if body is None else body | {"concurrent_users": next(USERS)}
        r = client.post(path, json=fresh) if method == "POST" else client.get(path)
        if r.status_code != 200:
            raise SystemExit(f"{path}: HTTP {r.status_code} {r.text[:200]}")
        done += 1
    return done / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    db = Path(os.environ.get("BENCH_DB", ROOT / "data" / "bench-serving.sqlite3"))
    with running_service(db) as client:
        rate(client, "POST", "/v1/plan/serving", BODY, 0.5)  # warm-up
        plans, health = [], []
        for i in range(args.rounds):
            plans.append(rate(client, "POST", "/v1/plan/serving", BODY, args.seconds))
            health.append(rate(client, "GET", "/healthz", None, args.seconds))
            print(f"round {i + 1}: POST /v1/plan/serving {plans[-1]:7.1f} req/s   GET /healthz {health[-1]:7.1f} req/s   "
                  f"ratio {plans[-1] / health[-1]:.2f}")  # fmt: skip
    ratio = statistics.median(p / h for p, h in zip(plans, health, strict=True))
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    print(
        f"median: {statistics.median(plans):.1f} serving plans/s ({len(GPUS)} GPU types each), "
        f"{ratio:.2f} of /healthz — {verdict} the {TARGET_RATIO} target"
    )
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
