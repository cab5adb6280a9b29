"""AMP's measured V100 + T4 runs (validation/mixed_clusters.py): the data file holds the artifact's numbers,
every layout the planner can lay out is priced, and the section says what the rows show."""

from __future__ import annotations

import math

import pytest

from validation import mixed_clusters as mc

# (micro-batch, tp, dp, pp, measured s/iter; None: "inf") in trial order, read from the artifact:
# src/results/het_cluster_results.txt @ 62fc27dea3112d4d62289f7405c43f93341609f5
MIXED = [
    (1, 1, 4, 4, 1.47), (1, 1, 2, 8, 1.28), (1, 1, 1, 16, 1.52), (2, 1, 4, 4, 1.53), (2, 1, 2, 8, 1.54), (2, 1, 1, 16, 1.58),
    (4, 1, 4, 4, 1.71), (1, 1, 8, 2, 2.23), (1, 2, 2, 4, 2.8), (4, 1, 2, 8, 1.71), (4, 1, 1, 16, None), (1, 2, 1, 8, 3.81),
    (2, 1, 8, 2, 2.26), (1, 2, 4, 2, 2.89), (2, 2, 2, 4, 2.37), (4, 1, 8, 2, 2.34), (2, 2, 1, 8, 3.36), (2, 2, 4, 2, 2.5),
    (1, 2, 8, 1, 3.13), (2, 2, 8, 1, 3.06), (4, 2, 8, 1, 3.03), (1, 1, 16, 1, 2.9), (2, 1, 16, 1, None), (8, 1, 4, 4, 2.07),
    (4, 2, 4, 2, 2.41), (4, 2, 2, 4, 1.65), (8, 1, 2, 8, None), (1, 4, 2, 2, None), (4, 2, 1, 8, 1.79), (1, 4, 1, 4, None),
    (1, 4, 4, 1, 3.8), (2, 4, 4, 1, 3.56), (4, 4, 4, 1, 3.29), (8, 4, 4, 1, 3.27), (8, 1, 1, 16, None), (2, 4, 2, 2, 3.29),
    (2, 4, 1, 4, 3.92), (4, 4, 2, 2, 2.66), (8, 2, 4, 2, 2.45), (4, 4, 1, 4, 2.05), (8, 2, 2, 4, 1.91), (8, 4, 2, 2, 2.71),
    (8, 2, 1, 8, 2.12), (8, 4, 1, 4, 2.13), (16, 1, 2, 8, None), (16, 1, 1, 16, None), (16, 4, 2, 2, 2.66), (16, 2, 2, 4, 2.33),
    (16, 4, 1, 4, 2.49), (16, 2, 1, 8, 2.69), (32, 1, 1, 16, None), (32, 4, 1, 4, 3.13), (32, 2, 1, 8, None),
]  # fmt: skip
# DeepSpeed/DeepSpeedExamples/Megatron-LM-v1.1.5-3D_parallelism/results/homogeneous_results.txt @ cf0a32a57b5d
T4 = [
    (1, 1, 16, 1, 1.32), (2, 1, 16, 1, None), (1, 1, 8, 2, 1.28), (1, 1, 4, 4, 1.2), (1, 1, 2, 8, 1.23), (2, 1, 8, 2, 1.38),
    (1, 1, 1, 16, 1.55), (2, 1, 4, 4, 1.41), (2, 1, 2, 8, 1.43), (4, 1, 8, 2, 1.72), (2, 1, 1, 16, 1.76), (1, 2, 8, 1, 1.76),
    (2, 2, 8, 1, 1.64), (4, 2, 8, 1, 1.55), (1, 2, 4, 2, 1.68), (1, 2, 2, 4, 1.74), (4, 1, 4, 4, 1.85), (1, 2, 1, 8, 1.95),
    (2, 2, 4, 2, 1.61), (4, 1, 2, 8, 1.88), (2, 2, 2, 4, 1.66), (4, 1, 1, 16, 2.19), (2, 2, 1, 8, 1.85), (4, 2, 4, 2, 1.79),
    (4, 2, 2, 4, 1.89), (1, 4, 4, 1, 2.48), (2, 4, 4, 1, 2.13), (4, 4, 4, 1, 1.98), (8, 4, 4, 1, 1.94), (8, 1, 4, 4, 2.7),
    (4, 2, 1, 8, 2.09), (1, 4, 2, 2, 2.61), (8, 2, 4, 2, 2.13), (1, 4, 1, 4, 2.67), (2, 4, 2, 2, 2.12), (8, 1, 2, 8, 2.92),
    (2, 4, 1, 4, 2.22), (4, 4, 2, 2, 2.1), (8, 1, 1, 16, 3.25), (8, 2, 2, 4, 2.5), (4, 4, 1, 4, 2.24), (8, 4, 2, 2, 2.4),
    (8, 2, 1, 8, 2.81), (8, 4, 1, 4, 2.69), (16, 4, 2, 2, 3.03), (16, 1, 2, 8, None), (16, 2, 2, 4, 3.74), (16, 1, 1, 16, None),
    (16, 2, 1, 8, 4.29), (16, 4, 1, 4, 3.7), (32, 4, 1, 4, None), (32, 1, 1, 16, None),
]  # fmt: skip


def _rows(cluster: str) -> list[tuple]:
    return [(t["micro_batch_size"], t["tp"], t["dp"], t["pp"], t["measured_seconds"]) for t in mc.trials(cluster)]


def test_data_file_holds_the_artifact_numbers() -> None:
    assert _rows(mc.MIXED) == MIXED and _rows(mc.HOMOGENEOUS) == T4
    src = mc.data()
    assert src["clusters"][mc.MIXED]["commit"] == "62fc27dea3112d4d62289f7405c43f93341609f5"
    assert src["clusters"][mc.HOMOGENEOUS]["commit"] == "cf0a32a57b5dc9aef6aaddfe3d69f73a622ea292"
    best = mc.trials(mc.MIXED)[1]  # the mixed cluster's fastest run
    assert best["partition"] == [0, 5, 9, 12, 15, 18, 21, 24, 30] and best["amp_predicted_seconds"] == 1.1402
    assert mc.transformer_layers(best["partition"]) == [3, 4, 3, 3, 3, 3, 3, 2]
    for t in mc.trials(mc.MIXED) + mc.trials(mc.HOMOGENEOUS):
        assert t["tp"] * t["dp"] * t["pp"] == 16 and sum(mc.transformer_layers(t["partition"])) == 24


@pytest.fixture(scope="module")
def homogeneous() -> list[mc.Priced]:
    return mc.homogeneous_rows()


@pytest.fixture(scope="module")
def mixed() -> list[mc.Priced]:
    return mc.mixed_rows()


def test_every_layout_is_priced(homogeneous, mixed) -> None:
    assert len(homogeneous) == 52 and len(mixed) == 33
    for r in homogeneous + mixed:
        assert r.seconds is not None and math.isfinite(r.seconds) and r.seconds > 0, r.trial
    # each mixed pipeline has AMP's stage count: floor(12 / (dp tp)) V100 stages + floor(4 / (dp tp)) T4 stages
    for r in mixed:
        if r.trial["dp"] < 16:
            assert len(r.plan.stages) == r.trial["pp"] and {st.gpu for st in r.plan.stages} == {"t4", "v100-16gb-sxm"}


def test_the_model_is_optimistic_on_every_t4_row(homogeneous) -> None:
    ratios = sorted(r.ratio for r in homogeneous if r.ratio is not None)
    assert len(ratios) == 47
    assert 1.3 < ratios[0] < 1.4 and 3.0 < ratios[-1] < 3.2  # 1.3-3.1x: measured / predicted
    dp4pp4 = next(r for r in homogeneous if r.trial["trial"] == 3)  # the T4 cluster's fastest run, 1.20 s
    assert dp4pp4.seconds == pytest.approx(0.559, abs=0.01)


def test_the_planner_gives_the_t4s_fewer_layers_than_amp(mixed) -> None:
    pipelines = [r for r in mixed if r.trial["dp"] < 16]
    assert max(mc.t4_layers(r.plan) for r in pipelines) <= 4  # AMP's T4 stages hold 5-6 of the 24 layers
    first = next(r for r in mixed if r.trial["trial"] == 1)  # tp 1, dp 2, pp 8, mbs 1: measured 1.28 s
    assert mc.amp_split(first.trial) == "V100 [3, 4, 3, 3, 3, 3] → T4 [3, 2]"
    assert mc.planner_split(first.plan) == "T4 [1, 1] → V100 [4, 4, 4, 4, 4, 2]"
    assert first.seconds == pytest.approx(0.325, abs=0.01)


def test_pure_data_parallel_link_change() -> None:
    dp = mc.pure_data_parallel()
    assert dp.measured_difference == pytest.approx(1.58)
    assert dp.model_difference == pytest.approx(1.23, abs=0.01)  # 78 % of the measured +1.58 s
    assert abs(dp.model_difference - dp.measured_difference) < 0.4
    assert dp.model_t4_slow_links == pytest.approx(dp.model_mixed, rel=1e-9)  # the ring's links alone


def test_no_mixed_row_meets_the_bar(mixed) -> None:
    priced = [r for r in mixed if r.error is not None]
    assert len(priced) == 25 and all(abs(r.error) > mc.BAR for r in priced)
    free = mc.free_plans()
    assert free.best_homogeneous_gpu == "v100-16gb-sxm" and free.best_seconds < 0.3  # measured best: 1.28 s


def test_section_renders() -> None:
    text = "\n".join(mc.render_section())
    assert text.startswith("## Mixed clusters: AMP's measured V100 + T4 runs")
    assert "is not met by this dataset" in text and "+1.58 s measured" in text and "+1.23 s" in text
    assert "nan" not in text and "inf s" not in text
