"""Energy and CO2e of GPU-hours against the Llama 3.1 model card."""

from __future__ import annotations

import pytest

from service.core import energy
from service.core.energy import Energy, EnergyInputs, run_energy
from service.core.errors import InvalidSpecError

# The Llama 3.1 model card (meta-llama/llama-models, models/llama3_1/MODEL_CARD.md, "Training
# Energy Use" and "Training Greenhouse Gas Emissions"): GPU-hours on H100-80GB at a TDP of 700 W,
# and location-based tons CO2eq, per size (39.3M GPU-hours and 11,390 t in all).
H100_TDP_WATTS = 700
LLAMA_3_1 = [("8b", 1.46e6, 420), ("70b", 7.0e6, 2_040), ("405b", 30.84e6, 8_930)]
CARD_TOLERANCE = 0.15


def card_kg_per_gpu_kwh(gpu_hours: float, tonnes: float) -> float:
    """The card's kg CO2e per kWh drawn by the GPUs at TDP, before PUE."""
    return tonnes * 1000 / (gpu_hours * H100_TDP_WATTS / 1000)


def test_the_card_implies_about_0_414_kg_per_gpu_kwh() -> None:
    # 8,930 t / (30.84M h x 0.7 kW) = 0.414 kg CO2e per kWh at the GPUs, PUE and grid together;
    # the three sizes agree to 1 % (0.411, 0.416, 0.414), so the card applies one factor throughout
    assert card_kg_per_gpu_kwh(30.84e6, 8_930) == pytest.approx(0.4137, rel=1e-3)
    for _, gpu_hours, tonnes in LLAMA_3_1:
        assert card_kg_per_gpu_kwh(gpu_hours, tonnes) == pytest.approx(0.414, rel=0.01)


@pytest.mark.parametrize(("size", "gpu_hours", "card_tonnes"), LLAMA_3_1)
def test_the_defaults_reproduce_the_card(size: str, gpu_hours: float, card_tonnes: float) -> None:
    # The defaults are sourced, not fitted (service.core.energy): TDP at fraction 1.0 (the card's
    # method), PUE 1.09 (Meta's published figure), 0.366 kg/kWh (EIA, US 2023). Together
    # 1.09 x 0.366 = 0.399 kg per GPU-kWh against the card's 0.411-0.416: predicted 408 t,
    # 1,955 t and 8,612 t against 420 t, 2,040 t and 8,930 t (2.9 %, 4.2 % and 3.6 % low).
    got = run_energy(gpu_hours, tdp_watts=H100_TDP_WATTS, inputs=EnergyInputs())
    assert got.co2e_tonnes == pytest.approx(card_tonnes, rel=CARD_TOLERANCE)
    assert got.co2e_tonnes < card_tonnes  # and on the low side: the card's grid was dirtier than the 2023 US average
    assert got.energy_kwh == pytest.approx(gpu_hours * 0.7 * 1.09)


def test_the_inputs_that_reproduce_the_card() -> None:
    # With the card's own method (TDP, PUE 1.09) its 8,930 t for 405B imply a grid of
    # 0.414 / 1.09 = 0.380 kg CO2e/kWh; with that grid every size lands within 1.5 %.
    grid = card_kg_per_gpu_kwh(30.84e6, 8_930) / 1.09
    assert grid == pytest.approx(0.3795, rel=1e-3)
    for _, gpu_hours, tonnes in LLAMA_3_1:
        got = run_energy(gpu_hours, tdp_watts=H100_TDP_WATTS, inputs=EnergyInputs(grid_kg_co2e_per_kwh=grid))
        assert got.co2e_tonnes == pytest.approx(tonnes, rel=0.015)


def test_an_industry_average_pue_overshoots_the_card() -> None:
    # The Uptime Institute's 2023 survey average PUE, 1.58, at the same grid gives 12,484 t for
    # 405B: 40 % above the card. That is why the default is a hyperscale PUE (a training cluster
    # of this size sits in one), and why pue is an input.
    got = run_energy(30.84e6, tdp_watts=H100_TDP_WATTS, inputs=EnergyInputs(pue=1.58))
    assert got.co2e_tonnes == pytest.approx(12_484, rel=0.001)
    assert got.co2e_tonnes > 8_930 * (1 + CARD_TOLERANCE)


def test_every_input_scales_the_answer_in_proportion() -> None:
    base = run_energy(1000, tdp_watts=400, inputs=EnergyInputs())
    assert base == Energy(energy_kwh=1000 * 0.4 * 1.0 * 1.09, co2e_tonnes=1000 * 0.4 * 1.09 * 0.366 / 1000)
    half = run_energy(1000, tdp_watts=400, inputs=EnergyInputs(gpu_power_fraction=0.5))
    assert half.energy_kwh == pytest.approx(base.energy_kwh / 2)
    assert half.co2e_tonnes == pytest.approx(base.co2e_tonnes / 2)
    pue = run_energy(1000, tdp_watts=400, inputs=EnergyInputs(pue=2.18))
    assert pue.energy_kwh == pytest.approx(base.energy_kwh * 2)
    grid = run_energy(1000, tdp_watts=400, inputs=EnergyInputs(grid_kg_co2e_per_kwh=0.732))
    assert grid.energy_kwh == base.energy_kwh
    assert grid.co2e_tonnes == pytest.approx(base.co2e_tonnes * 2)
    assert run_energy(1000, tdp_watts=400, inputs=EnergyInputs(grid_kg_co2e_per_kwh=0)).co2e_tonnes == 0
    assert run_energy(0, tdp_watts=400, inputs=EnergyInputs()) == Energy(energy_kwh=0, co2e_tonnes=0)


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("pue", {"pue": 0.99}),
        ("pue", {"pue": 3.01}),
        ("pue", {"pue": float("nan")}),
        ("grid_kg_co2e_per_kwh", {"grid_kg_co2e_per_kwh": -0.1}),
        ("grid_kg_co2e_per_kwh", {"grid_kg_co2e_per_kwh": 2.01}),
        ("gpu_power_fraction", {"gpu_power_fraction": 0}),
        ("gpu_power_fraction", {"gpu_power_fraction": 1.51}),
        ("gpu_power_fraction", {"gpu_power_fraction": float("inf")}),
    ],
)
def test_inputs_out_of_range_name_their_field(field: str, kwargs: dict) -> None:
    with pytest.raises(InvalidSpecError) as exc:
        EnergyInputs(**kwargs)
    assert exc.value.field == field


def test_bad_hours_or_tdp_name_their_field() -> None:
    with pytest.raises(InvalidSpecError, match="tdp_watts"):
        run_energy(1.0, tdp_watts=0, inputs=EnergyInputs())
    with pytest.raises(InvalidSpecError, match="gpu_hours"):
        run_energy(-1.0, tdp_watts=700, inputs=EnergyInputs())
    with pytest.raises(InvalidSpecError, match="energy_kwh"):
        energy.energy_kwh(1e300, tdp_watts=1e5, gpu_power_fraction=1.5, pue=3)
