"""Energy and CO2e of an answer's GPU-hours: the request's inputs (or the stated defaults) and the
catalog GPU's TDP → :mod:`service.core.energy`. Every answer with GPU-hours gives ``energy_kwh``
and ``co2e_tonnes`` beside them, and states the inputs and TDPs in its ``assumptions``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from service.core import energy as core
from service.schemas.energy import EnergyChoice
from service.services.catalog_reader import GpuView

FORMULA = core.FORMULA


@dataclass(frozen=True, slots=True)
class GpuEnergy:
    """The energy inputs bound to one GPU type's TDP (None: not in the catalog)."""

    tdp_watts: int | None
    inputs: core.EnergyInputs

    def fields(self, gpu_hours: float | None) -> dict[str, float | None]:
        """``energy_kwh`` and ``co2e_tonnes`` of ``gpu_hours`` on this GPU, as an answer holds them
        (both None without GPU-hours or without a TDP)."""
        if gpu_hours is None or self.tdp_watts is None:
            return {"energy_kwh": None, "co2e_tonnes": None}
        found = core.run_energy(gpu_hours, tdp_watts=self.tdp_watts, inputs=self.inputs)
        return {"energy_kwh": found.energy_kwh, "co2e_tonnes": found.co2e_tonnes}


@dataclass(frozen=True)
class EnergyTerms:
    """A request's energy inputs and where each one came from."""

    inputs: core.EnergyInputs
    sources: dict[str, str]

    def for_gpu(self, gpu: GpuView) -> GpuEnergy:
        return GpuEnergy(tdp_watts=gpu.tdp_watts, inputs=self.inputs)

    def assumptions(self, gpus: Iterable[GpuView], *, per_gpu: bool) -> dict[str, Any]:
        """The inputs, their sources and each GPU's TDP (``tdp_watts``, or ``<gpu>.tdp_watts`` in an
        answer that compares GPU types); ``energy_unavailable`` says which GPUs have no TDP."""
        out: dict[str, Any] = {
            "gpu_power_fraction": self.inputs.gpu_power_fraction,
            "gpu_power_fraction_source": self.sources["gpu_power_fraction"],
            "pue": self.inputs.pue,
            "pue_source": self.sources["pue"],
            "grid_kg_co2e_per_kwh": self.inputs.grid_kg_co2e_per_kwh,
            "grid_kg_co2e_per_kwh_source": self.sources["grid_kg_co2e_per_kwh"],
        }
        missing: list[str] = []
        for gpu in {g.id: g for g in gpus}.values():
            out[f"{gpu.id}.tdp_watts" if per_gpu else "tdp_watts"] = gpu.tdp_watts
            if gpu.tdp_watts is None:
                missing.append(gpu.id)
        if missing:
            out["energy_unavailable"] = (f"the catalog has no tdp_watts for {', '.join(missing)}: energy_kwh and co2e_tonnes "
                                         "are null there (PATCH /v1/gpus/{gpu_id} with tdp_watts to add one)")  # fmt: skip
        return out


def terms(req: EnergyChoice) -> EnergyTerms:
    """The request's inputs, each default filled in and its source said."""
    defaults = {
        "gpu_power_fraction": (core.DEFAULT_GPU_POWER_FRACTION, core.GPU_POWER_FRACTION_SOURCE),
        "pue": (core.DEFAULT_PUE, core.PUE_SOURCE),
        "grid_kg_co2e_per_kwh": (core.DEFAULT_GRID_KG_CO2E_PER_KWH, core.GRID_SOURCE),
    }
    values: dict[str, float] = {}
    sources: dict[str, str] = {}
    for name, (default, source) in defaults.items():
        given = getattr(req, name)
        values[name], sources[name] = (default, source) if given is None else (given, "request")
    return EnergyTerms(inputs=core.EnergyInputs(**values), sources=sources)
