"""Energy and carbon of GPU-hours.

The operational footprint of a run, as Patterson et al. 2022 ("The Carbon Footprint of Machine
Learning Training Will Plateau, Then Shrink", arXiv:2204.05149, §2) count it and as the Llama 3.1
model card applies their method ("power consumption is the peak power capacity per GPU device
used, adjusted for power usage efficiency"; meta-llama/llama-models, models/llama3_1/MODEL_CARD.md,
"Training Energy Use")::

    energy_kwh  = GPU-hours x TDP / 1000 x gpu_power_fraction x PUE
    co2e_tonnes = energy_kwh x grid kg CO2e per kWh / 1000

Only the accelerators are counted, at a fraction of their thermal design power (TDP); PUE, total
facility power over IT power, adds cooling and power delivery. Host CPUs, memory and network
switches are not counted separately (as in the card's method), nor is embodied carbon: the
answer is location-based operational emissions, not a market-based figure after renewable
purchases.

Defaults (each one an input, stated in every answer):

- ``gpu_power_fraction`` 1.0: each GPU at its TDP, the Llama 3.1 card's method. Measured average
  draw is usually lower; the host, memory and network the method leaves out are not zero either.
- ``pue`` 1.09: Meta's published PUE of the data-centre buildings it completed in 2021
  (sustainability.fb.com/data-centers). Large training clusters sit in hyperscale halls like
  these. The Uptime Institute's survey average, 1.58 in 2023 ("Large data centers are mostly
  more efficient, analysis confirms", Uptime Intelligence Update 221), includes older enterprise
  rooms: pass ``pue`` of about 1.6 for such a room.
- ``grid_kg_co2e_per_kwh`` 0.366: the US average of 2023, 1,532 million metric tons of CO2 over
  4,183,271 million kWh of utility-scale net generation (EIA FAQ "How much carbon dioxide is
  produced per kilowatthour of U.S. electricity generation?", 0.81 lb/kWh). EIA counts CO2 only;
  the CH4 and N2O of combustion add about 0.5 % for coal and 0.1 % for gas at the IPCC 2006
  default factors (vol. 2 ch. 2, table 2.2: coal 1 kg CH4 and 1.5 kg N2O per TJ beside 94,600 kg
  CO2; gas 1 and 0.1 beside 56,100), so the figure is within 0.5 % of CO2e. Pass the grid where
  the run is: a regional figure, or 0 for a market-based answer after renewable matching.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from service.core.errors import InvalidSpecError
from service.core.limits import check_flops

DEFAULT_GPU_POWER_FRACTION = 1.0  # the Llama 3.1 model card: "peak power capacity per GPU device"
DEFAULT_PUE = 1.09  # Meta's data-centre buildings completed in 2021 (sustainability.fb.com/data-centers)
DEFAULT_GRID_KG_CO2E_PER_KWH = 0.366  # US 2023: 1,532 Mt CO2 / 4,183,271 GWh (EIA FAQ id=74)

# bounds of the inputs (the request schema states the same ones)
PUE_RANGE = (1.0, 3.0)  # 1: a facility spending nothing beyond its IT load
GRID_RANGE = (0.0, 2.0)  # kg CO2e/kWh; 0: a market-based answer after matching with renewables
MAX_GPU_POWER_FRACTION = 1.5  # above 1: room for the host, memory and network beside the GPU's TDP

GPU_POWER_FRACTION_SOURCE = "default: each GPU at its TDP, as the Llama 3.1 model card counts it (Patterson et al. 2022)"
PUE_SOURCE = ("default: Meta's published PUE of its data-centre buildings completed in 2021 (sustainability.fb.com), "
              "a hyperscale figure; the Uptime Institute's 2023 survey average is 1.58")  # fmt: skip
GRID_SOURCE = ("default: US average 2023, 1,532 Mt CO2 / 4,183,271 GWh (EIA, 'How much carbon dioxide is produced per "
               "kilowatthour of U.S. electricity generation?'); location-based")  # fmt: skip
FORMULA = (
    "energy_kwh = GPU-hours * TDP/1000 * gpu_power_fraction * PUE; co2e_tonnes = energy_kwh * grid kg CO2e/kWh / 1000 "
    "(Patterson et al. 2022 §2, as the Llama 3.1 model card applies it)"
)


@dataclass(frozen=True, kw_only=True, slots=True)
class EnergyInputs:
    """How a GPU-hour turns into kWh and CO2e: the share of TDP drawn, the facility overhead and
    the grid's intensity."""

    gpu_power_fraction: float = DEFAULT_GPU_POWER_FRACTION
    pue: float = DEFAULT_PUE
    grid_kg_co2e_per_kwh: float = DEFAULT_GRID_KG_CO2E_PER_KWH

    def __post_init__(self) -> None:
        check_inputs(self)


@dataclass(frozen=True, kw_only=True, slots=True)
class Energy:
    energy_kwh: float  # at the facility meter: the GPUs' draw times PUE
    co2e_tonnes: float  # metric tonnes (1,000 kg), location-based


def check_inputs(inputs: EnergyInputs) -> None:
    """Reject inputs outside their ranges, naming the field (the request schema checks the same)."""
    low, high = PUE_RANGE
    if not (math.isfinite(inputs.pue) and low <= inputs.pue <= high):
        raise InvalidSpecError("pue", f"must be in [{low:g}, {high:g}], got {inputs.pue}")
    low, high = GRID_RANGE
    if not (math.isfinite(inputs.grid_kg_co2e_per_kwh) and low <= inputs.grid_kg_co2e_per_kwh <= high):
        raise InvalidSpecError("grid_kg_co2e_per_kwh", f"must be in [{low:g}, {high:g}], got {inputs.grid_kg_co2e_per_kwh}")
    if not (math.isfinite(inputs.gpu_power_fraction) and 0 < inputs.gpu_power_fraction <= MAX_GPU_POWER_FRACTION):
        raise InvalidSpecError(
            "gpu_power_fraction", f"must be in (0, {MAX_GPU_POWER_FRACTION:g}], got {inputs.gpu_power_fraction}"
        )


def energy_kwh(gpu_hours: float, *, tdp_watts: float, gpu_power_fraction: float, pue: float) -> float:
    """Facility energy of ``gpu_hours``: ``GPU-hours x TDP/1000 x gpu_power_fraction x PUE`` kWh
    (Patterson et al. 2022 §2: processors x hours x average power x PUE)."""
    if not (math.isfinite(gpu_hours) and gpu_hours >= 0):
        raise InvalidSpecError("gpu_hours", f"must be a finite number of at least 0, got {gpu_hours}")
    if not (math.isfinite(tdp_watts) and tdp_watts > 0):
        raise InvalidSpecError("tdp_watts", f"must be greater than 0, got {tdp_watts}")
    return check_flops("energy_kwh", gpu_hours * tdp_watts / 1000 * gpu_power_fraction * pue)


def co2e_tonnes(kwh: float, *, grid_kg_co2e_per_kwh: float) -> float:
    """Location-based emissions of ``kwh``: ``kWh x kg CO2e/kWh / 1000`` metric tonnes."""
    return check_flops("co2e_tonnes", kwh * grid_kg_co2e_per_kwh / 1000)


def run_energy(gpu_hours: float, *, tdp_watts: float, inputs: EnergyInputs) -> Energy:
    """Energy and CO2e of ``gpu_hours`` on GPUs of ``tdp_watts`` (:func:`energy_kwh`,
    :func:`co2e_tonnes`)."""
    kwh = energy_kwh(gpu_hours, tdp_watts=tdp_watts, gpu_power_fraction=inputs.gpu_power_fraction, pue=inputs.pue)
    return Energy(energy_kwh=kwh, co2e_tonnes=co2e_tonnes(kwh, grid_kg_co2e_per_kwh=inputs.grid_kg_co2e_per_kwh))
