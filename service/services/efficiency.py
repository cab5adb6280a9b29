"""The kernel efficiencies of a catalog GPU (``service/catalog/kernel_efficiency.json``) as the
core's :class:`~service.core.efficiency.KernelEfficiency`, with a request's overrides and a note of
where each value came from."""

from __future__ import annotations

from functools import cache
from typing import Any

from service.catalog import loader
from service.core.efficiency import (
    DEFAULT_ATTENTION_RATIO,
    DEFAULT_SUSTAINED_FRACTION_OF_MAMF,
    AttentionCurve,
    KernelEfficiency,
    default_efficiency,
    with_overrides,
)
from service.errors import Unprocessable

FRACTIONS = ("matmul", "matmul_fp8", "memory_bandwidth", "intra_node_collective", "inter_node_collective")


@cache
def attention_curve(family: str, implementation: str) -> AttentionCurve:
    """A family's measured curve for one implementation, as fractions of the measuring GPU's peak:
    forward from the causal forward rates; backward from them times the measured non-causal
    backward/forward ratio (of the nearest head dimension that has both); a combined forward +
    backward rate is taken for both passes."""
    table = loader.kernel_efficiency()["attention"][family]
    entry = table["implementations"][implementation]
    peak = table["measured_peak_tflops"]
    dims = sorted(entry["head_dims"], key=int)
    ratios = {d: [b / f for b, f in zip(row["backward"], row["forward"], strict=True)]
              for d, row in entry["head_dims"].items() if "backward" in row and "forward" in row}  # fmt: skip
    forward, backward = [], []
    for d in dims:
        row = entry["head_dims"][d]
        if "forward_backward_causal" in row:
            both = tuple(x / peak for x in row["forward_backward_causal"])
            forward.append(both)
            backward.append(both)
            continue
        fwd = tuple(x / peak for x in row["forward_causal"])
        nearest = min(ratios, key=lambda r: abs(int(r) - int(d))) if ratios else None
        ratio = ratios[nearest] if nearest else [1.0] * len(fwd)
        forward.append(fwd)
        backward.append(tuple(f * r for f, r in zip(fwd, ratio, strict=True)))
    return AttentionCurve(name=implementation, seq_lens=tuple(table["seq_lens"]), head_dims=tuple(float(d) for d in dims),
                          forward=tuple(forward), backward=tuple(backward), source=entry["source"])  # fmt: skip


def attention_kernels(gpu_id: str) -> list[str]:
    """The attention implementations with measured rates for this GPU's family."""
    row = loader.kernel_efficiency()["gpus"].get(gpu_id)
    if row is None:
        return []
    return list(loader.kernel_efficiency()["attention"][row["family"]]["implementations"])


def moe_terms(gpu_id: str, notes: dict[str, Any]) -> dict[str, float]:
    """The grouped-GEMM shape terms and the host seconds of a MoE layer and of an adapted layer
    (every GPU takes the table's; :mod:`service.core.steptime_moe`,
    :mod:`service.core.steptime_finetune`), each noted with its source."""
    table = loader.kernel_efficiency()
    gemm, host, adapter = table["grouped_gemm"], table["moe_host"], table["adapter_host"]
    entries = (("grouped_gemm_fixed_k", "fixed_k_bf16", gemm), ("grouped_gemm_fixed_k_fp8", "fixed_k_fp8", gemm),
               ("moe_layer_host_seconds", "layer_seconds", host), ("adapter_layer_host_seconds", "layer_seconds", adapter))  # fmt: skip
    terms = {name: float(section[key]) for name, key, section in entries}
    for name, key, section in entries:
        notes[f"{gpu_id}.efficiency.{name}"] = terms[name]
        notes[f"{gpu_id}.efficiency.{name}_source"] = section[f"{key}_source"]
    return terms


def gpu_efficiency(
    gpu_id: str, mamf: float | None, *, attention_kernel: str | None = None, overrides: dict[str, float | None] | None = None
) -> tuple[KernelEfficiency, dict[str, Any]]:
    """The GPU's kernel efficiencies and the notes that say where each came from (for
    ``assumptions``). A GPU the table does not list takes :func:`default_efficiency`;
    ``attention_kernel`` names a measured implementation (422 when the GPU has none by that name);
    ``overrides`` (a request's ``efficiency``) replace values, each checked to be in (0, 1]."""
    table = loader.kernel_efficiency()
    row = table["gpus"].get(gpu_id, {})
    base = default_efficiency(mamf)
    notes: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for name in FRACTIONS:
        if name in row:
            values[name] = row[name]
            notes[f"{gpu_id}.efficiency.{name}"] = row[name]
            notes[f"{gpu_id}.efficiency.{name}_source"] = row.get(f"{name}_source", "")
        else:
            notes[f"{gpu_id}.efficiency.{name}"] = getattr(base, name) if name != "matmul_fp8" else None
    if "matmul" not in row:
        notes[f"{gpu_id}.efficiency.matmul_source"] = (
            f"MAMF {mamf or 'default'} x {DEFAULT_SUSTAINED_FRACTION_OF_MAMF} (the A100-fitted fraction; no per-GPU value)"
        )
    curve = None
    family = row.get("family")
    known = attention_kernels(gpu_id)
    if attention_kernel is not None and attention_kernel not in known:
        measured = ", ".join(known) or "none"
        raise Unprocessable.for_field(
            "attention_kernel", f"{attention_kernel} has no measured rates for {gpu_id} (measured: {measured})"
        )
    notes[f"{gpu_id}.family"] = family or "not listed (generic efficiencies)"
    if family:
        name = attention_kernel or table["attention"][family]["default"]
        curve = attention_curve(family, name)
        notes[f"{gpu_id}.attention_kernel"] = name
        notes[f"{gpu_id}.attention_kernel_source"] = curve.source
    else:
        notes[f"{gpu_id}.attention_kernel"] = f"no measured curve: {DEFAULT_ATTENTION_RATIO} x the matmul rate"
    moe = moe_terms(gpu_id, notes)
    efficiency = KernelEfficiency(**({"matmul": base.matmul} | values | moe), attention=curve)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    if given:
        renamed = {("attention_override" if k == "attention_core" else k): v for k, v in given.items()}
        efficiency = with_overrides(efficiency, **renamed)
        notes.update({f"{gpu_id}.efficiency.{k}": v for k, v in given.items()})
        notes.update({f"{gpu_id}.efficiency.{k}_source": "request" for k in given})
    return efficiency, notes
