"""Shared builders for core tests."""

from __future__ import annotations

from dataclasses import fields

from service.catalog import loader
from service.core.architecture import Architecture
from service.core.spec import make_architecture
from service.core.steptime import Hardware
from service.services.efficiency import gpu_efficiency


def preset_architecture(preset: dict[str, object]) -> dict[str, object]:
    """The architecture fields of a seed-file preset."""
    names = [f.name for f in fields(Architecture)]
    return {name: preset[name] for name in names if preset.get(name) is not None}


def preset(model_id: str, **overrides: object) -> Architecture:
    """A stored preset as a core architecture, with optional field overrides."""
    return make_architecture(**(preset_architecture(loader.model_presets()[model_id]) | overrides))


def gpt3_like(**overrides: object) -> Architecture:
    """Korthikanti et al. 2022's setting: MHA, 4h GELU MLP, LayerNorm, biases (GPT-3 175B)."""
    fields: dict[str, object] = dict(
        n_layers=96, d_model=12288, n_heads=96, d_ff=4 * 12288, vocab_size=51200,
        position="learned", max_seq_len=2048, bias=True, tied_embeddings=True,
    )  # fmt: skip
    return make_architecture(**(fields | overrides))


def hardware(gpu_id: str, **overrides: object) -> Hardware:
    """A seed-file GPU as the step-time model sees it (bf16 peak, catalog interconnect, the kernel
    efficiencies of ``kernel_efficiency.json`` as the service builds them, the fp8 peak)."""
    row = loader.gpus()[gpu_id]
    fp8 = row["peak_tflops"].get("fp8")
    fields: dict[str, object] = dict(
        peak_flops_per_s=row["peak_tflops"]["bf16"] * 1e12, matmul_efficiency=row["matmul_efficiency"],
        memory_bytes=row["memory_bytes"], memory_bandwidth_bytes_per_s=row["memory_bandwidth_bytes_per_s"],
        gpus_per_node=row["gpus_per_node"], intra_node_bandwidth_bytes_per_s=row["intra_node_bandwidth_bytes_per_s"],
        inter_node_bandwidth_bytes_per_s=row["inter_node_bandwidth_bytes_per_s"],
        efficiency=gpu_efficiency(gpu_id, row["matmul_efficiency"])[0], fp8_peak_flops_per_s=fp8 * 1e12 if fp8 else None,
    )  # fmt: skip
    return Hardware(**(fields | overrides))  # type: ignore[arg-type]
