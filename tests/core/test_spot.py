"""Interruptible capacity: Young's and Daly's checkpoint intervals and the expected wall time."""

from __future__ import annotations

import math

import pytest

from service.core.spot import daly_interval_seconds, expected_wall_seconds, spot_run, young_interval_seconds


def test_young_interval_is_sqrt_2cm() -> None:
    # a 10-minute checkpoint and a 10-hour mean time between interruptions: sqrt(2 * 600 * 36000) s
    assert young_interval_seconds(600, 36_000) == pytest.approx(math.sqrt(2 * 600 * 36_000))
    assert young_interval_seconds(600, 36_000) / 3600 == pytest.approx(1.8257, rel=1e-4)


def test_daly_adds_the_higher_order_terms_and_caps_at_m() -> None:
    c, m = 600.0, 36_000.0
    x = c / (2 * m)
    assert daly_interval_seconds(c, m) == pytest.approx(math.sqrt(2 * c * m) * (1 + math.sqrt(x) / 3 + x / 9) - c)
    assert daly_interval_seconds(100_000, 36_000) == 36_000  # a checkpoint longer than 2M: one interval of M


def test_dalys_interval_minimises_the_expected_wall_time() -> None:
    c, m, r, work = 300.0, 20_000.0, 600.0, 1e6
    best = daly_interval_seconds(c, m)

    def wall(tau: float) -> float:
        return expected_wall_seconds(work, mtbf_seconds=m, checkpoint_seconds=c, restart_seconds=r, interval_seconds=tau)

    assert wall(best) < wall(0.8 * best) and wall(best) < wall(1.25 * best)
    assert wall(best) <= min(wall(best * k / 100) for k in range(50, 201)) * (1 + 1e-4)


def test_no_interruptions_cost_nothing_more() -> None:
    run = spot_run(100.0, n_nodes=32, interruptions_per_node_hour=0.0, checkpoint_seconds=60, restart_seconds=600)
    assert run.expected_wall_clock_hours == 100.0 and run.overhead_fraction == 1.0 and run.checkpoint_interval_hours is None
    # the job is interrupted when any node is: 32 nodes at 0.001 an hour is a 31.25-hour MTBF
    busy = spot_run(100.0, n_nodes=32, interruptions_per_node_hour=0.001, checkpoint_seconds=60, restart_seconds=600)
    assert busy.mtbf_hours == pytest.approx(31.25) and busy.expected_wall_clock_hours > 100.0
