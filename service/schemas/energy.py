"""The energy inputs every request with GPU-hours takes, and the two fields its answer gives beside
each ``gpu_hours`` (the formula and its defaults: :mod:`service.core.energy`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from service.core import energy as core
from service.schemas.base import Schema


class EnergyChoice(Schema):
    """How GPU-hours turn into energy and CO2e; each default is stated in the answer's `assumptions`."""

    pue: float | None = Field(
        None, ge=core.PUE_RANGE[0], le=core.PUE_RANGE[1],
        description=f"Power usage effectiveness: facility power over IT power. Default {core.DEFAULT_PUE} (Meta's published "
        "figure for its data-centre buildings completed in 2021, a hyperscale hall); about 1.6 for an average "
        "enterprise room (Uptime Institute 2023 survey: 1.58).",
    )  # fmt: skip
    grid_kg_co2e_per_kwh: float | None = Field(
        None, ge=core.GRID_RANGE[0], le=core.GRID_RANGE[1],
        description=f"Carbon intensity of the electricity, kg CO2e per kWh. Default {core.DEFAULT_GRID_KG_CO2E_PER_KWH} "
        "(US average 2023, EIA); 0 for a market-based answer after matching with renewables.",
    )  # fmt: skip
    gpu_power_fraction: float | None = Field(
        None, gt=0, le=core.MAX_GPU_POWER_FRACTION,
        description=f"Average draw per GPU as a fraction of its catalog TDP. Default {core.DEFAULT_GPU_POWER_FRACTION} "
        "(the TDP, as the Llama 3.1 model card counts it); above 1 to count the host, memory and network too.",
    )  # fmt: skip


EnergyKwh = Annotated[
    float | None,
    Field(
        description="Facility energy of the GPU-hours: GPU-hours × TDP × gpu_power_fraction × PUE, kWh; null without "
        "GPU-hours or without the GPU's TDP in the catalog (`assumptions` says why)."
    ),
]
Co2eTonnes = Annotated[
    float | None,
    Field(description="Location-based emissions of that energy: energy_kwh × grid_kg_co2e_per_kwh, metric tonnes CO2e."),
]
