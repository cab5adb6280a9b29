"""Published training throughputs against the step-time model: every row of
``validation/measurements/training_throughput.json`` (the training sections of the calibration
sheet) priced by the planner with the row's layout fixed, as ``POST /v1/plan`` prices it.

No torch and no store: the architecture comes from the seed presets (or the row's fields), the GPU
from the seed catalog with its kernel efficiencies (``service/catalog/kernel_efficiency.json``), a
row's ``hardware`` overriding what its cluster had differently. Published TFLOP/s are turned into
tokens/s with the FLOP count the publisher used (``megatron``: Megatron-LM's
``num_floating_point_operations``, the attention square not halved; ``model``: this service's model
FLOPs), so every row compares tokens per second per GPU.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.catalog import loader
from service.core.architecture import Architecture
from service.core.errors import InvalidSpecError
from service.core.fp8 import Fp8Recipe
from service.core.memory import Precision
from service.core.plan import PlanResult, PlanSpec, plan
from service.core.spec import make_architecture
from service.core.steptime import Hardware
from service.services.efficiency import gpu_efficiency

ROWS = Path(__file__).resolve().parent / "measurements" / "training_throughput.json"
ROW_TOLERANCE = 0.15  # the bar per row
MEAN_TOLERANCE = 0.07  # and on the mean absolute error


@dataclass(frozen=True, kw_only=True, slots=True)
class Prediction:
    row: dict[str, Any]
    published_tokens_per_second_per_gpu: float
    predicted_tokens_per_second_per_gpu: float | None
    result: PlanResult

    @property
    def error(self) -> float | None:
        if self.predicted_tokens_per_second_per_gpu is None:
            return None
        return self.predicted_tokens_per_second_per_gpu / self.published_tokens_per_second_per_gpu - 1


def rows() -> list[dict[str, Any]]:
    return json.loads(ROWS.read_text(encoding="utf-8"))["rows"]


def architecture(model: dict[str, Any]) -> Architecture:
    """A row's model: a seed preset's architecture fields, or the fields themselves."""
    if "preset" in model:
        preset = loader.model_presets()[model["preset"]]
        names = [f.name for f in dataclasses.fields(Architecture)]
        return make_architecture(**{n: preset[n] for n in names if preset.get(n) is not None})
    return make_architecture(**model)


def hardware(gpu_id: str, overrides: dict[str, Any] | None = None, options: dict[str, Any] | None = None) -> Hardware:
    """The seed GPU as the planner service builds it (bf16 peak, the FP8 peak, kernel efficiencies)."""
    row = loader.gpus()[gpu_id]
    options = options or {}
    efficiency, _ = gpu_efficiency(gpu_id, row["matmul_efficiency"], attention_kernel=options.get("attention_kernel"),
                                   overrides=options.get("efficiency"))  # fmt: skip
    fp8 = row["peak_tflops"].get("fp8")
    fields: dict[str, Any] = {
        "peak_flops_per_s": row["peak_tflops"]["bf16"] * 1e12, "matmul_efficiency": row["matmul_efficiency"] or 0.75,
        "memory_bytes": row["memory_bytes"], "memory_bandwidth_bytes_per_s": float(row["memory_bandwidth_bytes_per_s"]),
        "gpus_per_node": row["gpus_per_node"], "intra_node_bandwidth_bytes_per_s": float(row["intra_node_bandwidth_bytes_per_s"]),
        "inter_node_bandwidth_bytes_per_s": float(row["inter_node_bandwidth_bytes_per_s"]), "efficiency": efficiency,
        "fp8_peak_flops_per_s": fp8 * 1e12 if fp8 else None,
    }  # fmt: skip
    return Hardware(**(fields | (overrides or {})))


def published_tokens_per_second(row: dict[str, Any], arch: Architecture, model_flops_per_token: float) -> float:
    """The row's published figure as tokens/s per GPU."""
    pub = row["published"]
    if "tokens_per_second_per_gpu" in pub:
        return float(pub["tokens_per_second_per_gpu"])
    if pub["flops"] == "megatron":  # megatron/training/training.py num_floating_point_operations, MHA, 4h GELU
        s, L, h, V = row["seq_len"], arch.n_layers, arch.d_model, arch.vocab_size
        per_token = 12 * L * h * h * (6 + s / h + V / (2 * L * h))
    else:
        per_token = model_flops_per_token
    return pub["tflops_per_gpu"] * 1e12 / per_token


def predict(row: dict[str, Any]) -> Prediction:
    arch = architecture(row["model"])
    hw = hardware(row["gpu"], row.get("hardware"), row.get("options"))
    options = row.get("options") or {}
    spec = PlanSpec(
        n_gpus=row["n_gpus"], seq_len=row["seq_len"], global_batch_size=row["global_batch_size"],
        precision=Precision(row.get("precision", "mixed_bf16")), fp8_recipe=Fp8Recipe(row.get("fp8_recipe", "tensorwise")),
        fixed=row["fixed"], top_k=1, tp_comm_overlap=options.get("tp_comm_overlap", False),
        ep_comm_overlap=options.get("ep_comm_overlap", False), usable_memory_fraction=options.get("usable_memory_fraction", 0.95),
        moe_max_nodes_per_token=options.get("moe_max_nodes_per_token"), time_limit_seconds=60.0,
    )  # fmt: skip
    try:
        result = plan(arch, hw, spec)
    except InvalidSpecError as exc:  # a layout the planner cannot lay out
        empty = PlanResult(plans=[], search=None, reason=f"{exc.field}: {exc.reason}", model_flops_per_token=0.0)  # type: ignore[arg-type]
        return Prediction(row=row, published_tokens_per_second_per_gpu=float(row["published"].get("tokens_per_second_per_gpu", 0)),
                          predicted_tokens_per_second_per_gpu=None, result=empty)  # fmt: skip
    published = published_tokens_per_second(row, arch, result.model_flops_per_token)
    predicted = result.plans[0].tokens_per_second / row["n_gpus"] if result.plans else None
    return Prediction(row=row, published_tokens_per_second_per_gpu=published, predicted_tokens_per_second_per_gpu=predicted, result=result)


def predictions() -> list[Prediction]:
    return [predict(row) for row in rows()]


if __name__ == "__main__":
    for p in predictions():
        best = p.result.plans[0] if p.result.plans else None
        where = (f"{best.pipeline_schedule.value} v={best.virtual_stages} mbs={best.micro_batch_size} rc={best.recompute.value} "
                 f"z={best.zero_stage} mfu={best.mfu:.2f} mem={best.memory.total_bytes / 2**30:.0f}G") if best else p.result.reason  # fmt: skip
        err = f"{p.error:+.1%}" if p.error is not None else "none"
        print(f"{p.row['id']:36s} pub {p.published_tokens_per_second_per_gpu:9.0f} pred {p.predicted_tokens_per_second_per_gpu or 0:9.0f} {err:>8s}  {where}")
