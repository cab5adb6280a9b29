"""Public training runs that are not calibration rows, priced as the calibration rows are
(:func:`validation.throughput.predict`): ``validation/measurements/cross_checks.json``. Nothing is
fitted to them; they show how the step-time model carries to systems and releases it was not fitted
on (Blackwell's DGX-B200 and NVL72 GB200, and a newer container on H100)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from validation.throughput import Prediction, layout_text, predict

ROWS = Path(__file__).resolve().parent / "measurements" / "cross_checks.json"


def data() -> dict[str, Any]:
    return json.loads(ROWS.read_text(encoding="utf-8"))


def predictions() -> list[Prediction]:
    return [predict(row) for row in data()["rows"]]


def mean_absolute_error(preds: list[Prediction], gpus: tuple[str, ...]) -> float:
    errors = [abs(p.error) for p in preds if p.error is not None and p.row["gpu"] in gpus]
    return sum(errors) / len(errors)


def render_section(preds: list[Prediction] | None = None) -> list[str]:
    """ACCURACY.md's cross-checks: every row, predicted against published, no bar (nothing was fitted)."""
    preds = predictions() if preds is None else preds
    lines = [
        "### Cross-checks: public runs outside the calibration sheet",
        "",
        f"{data()['notes']} (`validation/measurements/cross_checks.json`, `validation/cross_checks.py`.)",
        "",
        f"Mean absolute error {mean_absolute_error(preds, ('b200', 'gb200')):.1%} on Blackwell (whose FP8 matmul efficiency is "
        f"its MAMF times the A100-fitted 0.75, no Blackwell row fitted), {mean_absolute_error(preds, ('h100-sxm',)):.1%} "
        "on H100.",
        "",
        "| row | GPUs | recipe | layout predicted | published tok/s/GPU | predicted | error |",
        "|---|---:|---|---|---:|---:|---:|",
    ]
    for p in preds:
        r, layout = p.row, layout_text(p.result) if p.result.plans else p.result.reason
        predicted = f"{p.predicted_tokens_per_second_per_gpu:,.0f}" if p.predicted_tokens_per_second_per_gpu else "—"
        error = f"{p.error:+.1%}" if p.error is not None else "—"
        lines.append(f"| {r['id']} | {r['n_gpus']:,} | {r.get('fp8_recipe', 'bf16')} | {layout} | "
                     f"{p.published_tokens_per_second_per_gpu:,.0f} | {predicted} | {error} |")  # fmt: skip
    lines.append("")
    return lines
