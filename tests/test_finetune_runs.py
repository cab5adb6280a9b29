"""The step-time model against published fine-tuning runs (``validation/measurements/finetune_throughput.json``):
the calibration sheet's Megatron-Bridge rows and NVIDIA's MLPerf Training Llama-2-70B LoRA submissions,
every check within its bar or a known, explained exception (``validation.finetune.KNOWN_EXCEPTIONS``)."""

from __future__ import annotations

import pytest

from validation.finetune import (
    KNOWN_EXCEPTIONS,
    STEP,
    TIME_TO_TRAIN_TOLERANCE,
    TOKENS,
    TTT,
    checks,
    render_section,
    rows,
)

CHECKS = checks()
# the errors each known exception's reason explains: the model's step 0.440 s against 0.651 s (v4.0) and 0.547 s
# (v4.1), its 42 s and 44 s against 89.2 s and 73.6 s
EXCEPTION_ERRORS = {
    ("mlperf-v4.0-lora-1024gpu", STEP): (-0.36, -0.29),
    ("mlperf-v4.0-lora-1024gpu", TTT): (-0.56, -0.49),
    ("mlperf-v4.1-lora-1024gpu", STEP): (-0.23, -0.16),
    ("mlperf-v4.1-lora-1024gpu", TTT): (-0.44, -0.37),
}


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: f"{c.row['id']}: {c.quantity}")
def test_check_within_its_bar(check) -> None:
    if (check.row["id"], check.quantity) in KNOWN_EXCEPTIONS:
        # a known exception must still be outside: once inside, its reason goes; and it stays where its reason
        # puts it (the model's step and time to train short of the run by what the reason counts)
        assert not check.within, f"{check.row['id']} {check.quantity} is now within its bar: remove it from KNOWN_EXCEPTIONS"
        low, high = EXCEPTION_ERRORS[(check.row["id"], check.quantity)]
        assert low <= check.error <= high, f"{check.row['id']} {check.quantity}: {check.error:+.1%} left its explained range"
        return
    assert check.within, (
        f"{check.row['id']} {check.quantity}: {check.predicted:,.3f} against {check.published:,.3f} ({check.error:+.1%})"
    )


def test_bars_are_the_sheets() -> None:
    assert TIME_TO_TRAIN_TOLERANCE == 0.25  # MLPerf's time to train; never widened to make a check pass
    assert {c.bar for c in CHECKS if c.quantity in (TOKENS, STEP)} == {0.15}
    assert {(c.row["id"], c.quantity) for c in CHECKS} >= set(KNOWN_EXCEPTIONS) == set(EXCEPTION_ERRORS)


def test_every_row_is_checked_with_its_published_layout() -> None:
    by_id = {c.row["id"]: c for c in CHECKS}
    assert set(by_id) == {r["id"] for r in rows()}
    # the planner keeps the layout the row fixes (dp follows from the GPUs left over; the text names cp only above 1)
    assert by_id["mlperf-v4.0-lora-8gpu"].layout.startswith("tp 4, pp 1, dp 2, mbs 1,")
    assert by_id["mlperf-v4.0-lora-1024gpu"].layout.startswith("tp 4, pp 1, dp 128, cp 2, mbs 1,")
    assert by_id["bridge-llama3-70b-lora-8gpu"].layout.startswith("tp 2, pp 4, dp 1, interleaved v20, mbs 1,")


def test_mlperf_lora_on_8_gpus_is_within_the_bars_the_1024_gpu_run_misses() -> None:
    # the same benchmark, recipe and step-time model: 4 micro-batches a step of 3.712 s (2.155 samples/s at
    # GBS 8) and 88 forward micro-batches an evaluation (37.3-37.5 s) on 8 H100; the 1,024-GPU run steps one
    # micro-batch in 0.651 s and evaluates two, where the host and the evaluation loop's fixed cost set the pace
    got = {(c.row["id"], c.quantity): c for c in CHECKS}
    small, large = got[("mlperf-v4.0-lora-8gpu", TTT)], got[("mlperf-v4.0-lora-1024gpu", TTT)]
    assert small.published == pytest.approx(1629.04) and abs(small.error) <= 0.10
    assert large.published == pytest.approx(89.207) and large.error < -0.25
    # the CUDA-graph run of the same layout (v4.1, a newer container too) steps 0.104 s faster than v4.0: host time
    # the model leaves out
    v40, v41 = got[("mlperf-v4.0-lora-1024gpu", STEP)], got[("mlperf-v4.1-lora-1024gpu", STEP)]
    assert v40.published - v41.published == pytest.approx(128 / 196.6 - 128 / 234.0)  # 0.104 s
    assert v40.predicted == pytest.approx(v41.predicted)  # the same layout priced the same
    assert abs(v41.error) < abs(v40.error)


def test_section_lists_every_check_and_reason() -> None:
    text = "\n".join(render_section(CHECKS))
    assert f"of {len(CHECKS)} checks within their bar" in text
    for row_id, quantity in KNOWN_EXCEPTIONS:
        assert f"**{row_id}**, {quantity}" in text
