"""The serving rows of the calibration sheet against the serving model (``service.core.serving``
with ``service.core.serving_load``), as ``tests/core/test_serving_load.py`` checks them: MLPerf
Inference v4.1 Llama-2-70B offline and server tokens/s on 8 x H100 and 8 x H200 (bar 15 %), and the
NVIDIA NIM Llama-3.3-70B FP8 TP2 table's TPOT (bar 10 %) and TTFT (bar 25 %). Both run
TensorRT-LLM with FP8 weights and KV cache."""

from __future__ import annotations

from dataclasses import fields

from service.catalog import loader
from service.core import serving_load as load
from service.core.architecture import Architecture
from service.core.dtypes import Dtype
from service.core.engines import LAYER_OVERHEAD_SECONDS, Engine
from service.core.serving import most_per_gpu, replica_candidates, weight_bytes
from service.core.spec import make_architecture
from service.core.steptime import Hardware
from service.services.efficiency import gpu_efficiency


def _arch(model_id: str) -> Architecture:
    row = loader.model_presets()[model_id]
    return make_architecture(**{f.name: row[f.name] for f in fields(Architecture) if row.get(f.name) is not None})


def _hardware(gpu_id: str) -> Hardware:
    row = loader.gpus()[gpu_id]
    return Hardware(
        peak_flops_per_s=row["peak_tflops"]["fp8"] * 1e12, matmul_efficiency=row["matmul_efficiency"],
        memory_bytes=row["memory_bytes"], memory_bandwidth_bytes_per_s=row["memory_bandwidth_bytes_per_s"],
        gpus_per_node=row["gpus_per_node"], intra_node_bandwidth_bytes_per_s=row["intra_node_bandwidth_bytes_per_s"],
        inter_node_bandwidth_bytes_per_s=row["inter_node_bandwidth_bytes_per_s"],
        efficiency=gpu_efficiency(gpu_id, row["matmul_efficiency"])[0], fp8_peak_flops_per_s=row["peak_tflops"]["fp8"] * 1e12,
    )  # fmt: skip


def trtllm_workload(model_id: str, gpu_id: str, prompt: int, output: int, tp: int | None = None) -> tuple[int, load.Workload]:
    """The replica TensorRT-LLM serves ``model_id`` with on ``gpu_id`` in FP8 at its largest batch
    (the degree with the most tokens/s per GPU unless ``tp``): its degree and its workload."""
    arch, hw = _arch(model_id), _hardware(gpu_id)
    weights = weight_bytes(arch, Dtype.FP8)
    found = []
    for degree in [tp] if tp else [1, 2, 4, 8]:
        setup = load.engine_setup(Engine.TRTLLM, arch, tp=degree, gpu_memory_bytes=hw.memory_bytes)
        got = replica_candidates(arch, hw, weights=weights, kv_dtype=Dtype.FP8, prompt_tokens=prompt, output_tokens=output, tp=degree,
                                 utilization=setup.utilization, reserve_bytes=setup.reserve_bytes, limits=setup.limits)  # fmt: skip
        found += [(r, setup) for r in got] if isinstance(got, list) else []
    full = most_per_gpu([r for r, _ in found])
    setup = next(s for r, s in found if r.tp == full.tp)
    return full.tp, load.workload(arch, hw, full, setup=setup, prompt_tokens=prompt,
                                  output_tokens=output)  # fmt: skip


def rows() -> list[tuple[str, str, float, float, float]]:
    """(row, quantity, published, predicted, bar) for every serving row."""
    out = []
    for gpu_id, offline, server in (("h100-sxm", 24_525, 21_606), ("h200-sxm", 31_303, 29_228)):
        tp, w = trtllm_workload("llama-2-70b", gpu_id, 294, 294)
        n = 8 // tp
        predicted_offline = load.closed_loop(w, w.max_batch).output_tokens_per_second * n
        top = load.max_rate(w, max_p99_time_to_first_token_seconds=2.0, max_time_per_output_token_seconds=0.2)
        predicted_server = top.output_tokens_per_second * n if top else 0.0
        name = f"MLPerf v4.1 Llama-2-70B, 8 x {gpu_id}, TP {tp}"
        out += [(name, "offline tok/s", offline, predicted_offline, 0.15), (name, "server tok/s", server, predicted_server, 0.15)]
    _, nim = trtllm_workload("llama-3.1-70b", "h100-sxm", 5000, 500, tp=2)
    for users, itl in ((1, 18.58), (25, 38.75), (50, 59.73), (100, 93.0)):
        point = load.closed_loop(nim, users)
        out.append((f"NIM Llama-3.3-70B FP8 TP2 H100, 5000/500, {users} users", "TPOT ms", itl,
                    point.time_per_output_token_seconds * 1e3, 0.10))  # fmt: skip
    out.append(("NIM Llama-3.3-70B FP8 TP2 H100, 5000/500, 1 user", "TTFT ms", 406.77,
                load.closed_loop(nim, 1).time_to_first_token_seconds * 1e3, 0.25))  # fmt: skip
    _, short = trtllm_workload("llama-3.1-70b", "h100-sxm", 500, 2000, tp=2)
    out.append(("NIM Llama-3.3-70B FP8 TP2 H100, 500/2000, 1 user", "TTFT ms", 47.77,
                load.closed_loop(short, 1).time_to_first_token_seconds * 1e3, 0.25))  # fmt: skip
    return out


def render_section() -> list[str]:
    """ACCURACY.md's serving section."""
    table = rows()
    inside = sum(abs(p / m - 1) <= bar for _, _, m, p, bar in table)
    lines = [
        "## Serving: the serving model against published runs",
        "",
        "The serving rows of the calibration sheet, predicted by the serving model with `engine` `trtllm`, FP8 weights and",
        "KV cache (`validation/serving.py`; `tests/core/test_serving_load.py` asserts the same bars). MLPerf's OpenOrca",
        "samples are taken as 294 input and 294 output tokens (the reference's mean output; the input mean is assumed",
        "equal). Offline: every replica at its largest batch; server: the highest Poisson rate with p99 TTFT <= 2 s and",
        "TPOT <= 200 ms. NIM: a closed loop of the listed users (TTFT is listed at one user only).",
        "",
        f"**{inside} of {len(table)} rows within their bar.**",
        "",
        "Fitted values (every other serving input is an engine default with its documentation page, `service/core/engines.py`):",
        "",
        f"- per-step overhead {LAYER_OVERHEAD_SECONDS * 1e6:.0f} us per layer (all engines): fitted on one row, NIM Llama-3.3-70B FP8",
        "  TP2 on H100 at concurrency 1 (ITL 18.58 ms; the kernels' roofline and all-reduces give 13.8 ms; 80 layers).",
        "- vLLM's 1 ms host overhead per step is assumed, not fitted (no vLLM row in the sheet).",
        "",
        "| row | quantity | published | predicted | error | bar | verdict |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for name, quantity, measured, predicted, bar in table:
        error = predicted / measured - 1
        verdict = "pass" if abs(error) <= bar else "**FAIL**"
        lines.append(f"| {name} | {quantity} | {measured:,.2f} | {predicted:,.2f} | {error:+.1%} | {bar:.0%} | {verdict} |")
    lines += [
        "",
        "Not yet compared: the DeepSeek-V3 production and SGLang disaggregated rows (expert parallelism, prefix caching and",
        "disaggregated pools are not modelled yet).",
        "",
    ]
    return lines
