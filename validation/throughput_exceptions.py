"""What the training-throughput table's known exceptions are not: the costs their code paths add
beyond the step-time model, counted from the code the published runs used, at the model's own rates
(HBM bandwidth, NVLink, the measured attention curves), each at its upper bound and added to the
modelled step. A cost that brought a row within its bar would belong in the step-time model; these
do not, and ``ACCURACY.md`` gives the numbers (:func:`render_section`).

**PyTorch's context parallelism** (torchtitan's long-context rows, torch of 2024-12-23;
``torch/distributed/tensor/experimental/_attention.py``, ``_templated_ring_attention`` and its
backward): each ring step runs one SDPA call on the load-balanced halves (after the first, causal,
step: all queries against the first half of the keys, or the second half of the queries against all
keys), so ``cp - 1`` of every ``cp`` halves run without the causal mask; the output and log-sum-exp
are merged in fp32 after every step (``_SDPAMerger``: ``out.to(float32)``, then
``out - sigmoid(block_lse - lse) * (out - block_out)``); K and V are all-gathered once per pass
(``_AllGatherRotater``, the default rotate method) and concatenated for the exchange every step; the
backward accumulates dQ, dK and dV in fp32, rebuilds dK and dV with ``torch.cat`` when it adds half of
them (``_partial_update``) and passes the fp32 dK and dV to the next rank every step
(``_AllToAllRotater``). torchtitan's Llama repeats K and V to every query head before SDPA
(``repeat_kv`` in ``torchtitan/models/llama/model.py``), so every one of these tensors is as wide as
the output. Bytes per element of one rank's attention output, the busiest rank (the last, which
merges every step whole):

- forward: :data:`RING_FORWARD_FIXED` + :data:`RING_FORWARD_PER_STEP` per step after the first;
  twice under full recompute (the ring re-runs in the backward);
- backward: :data:`RING_BACKWARD_FIXED` + :data:`RING_BACKWARD_PER_STEP` per step after the first +
  :data:`RING_BACKWARD_EVERY_STEP` per step;
- exchanges, none hidden: the K/V all-gather in every pass and the fp32 dK/dV hop of every backward step;
- the non-causal halves at the implementation's measured non-causal rate (a saving: the model times
  every chunk at the causal rate).

**torchao's Float8** (tensorwise dynamic scaling, torchao of 2024-12-23, ``float8/float8_linear.py``,
``manual_float8_matmul_with_args_in_float8``; ``float8/float8_ops.py``, ``preprocess_addmm``): each
linear's input is cast once in the forward (its max-abs reduction, then the cast) and kept in FP8 for
the weight-gradient GEMM, which makes a transposed copy of it; the output gradient is cast once in the
backward and copied transposed for the same GEMM; the input-gradient GEMM copies the FP8 weight to
column-major. Against the model's 6 bytes per cast element (:func:`service.core.fp8.cast_bytes_per_element`):
:data:`TORCHAO_CAST_BYTES` with the max-abs pass unfused (torchao's own roofline,
``float8/roofline_utils.py``, assumes it fused into the producer: 2 bytes fewer); per weight
:data:`TORCHAO_WEIGHT_BYTES` (the column-major copy, and the max-abs pass and cast of a weight gathered
in BF16; with FSDP's Float8 all-gather only the copy remains).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.catalog import loader
from service.core.architecture import Ffn
from service.core.compute import attention_score_flops_per_token
from service.core.fp8 import Fp8Recipe, cast_bytes_per_element
from service.core.hardware import INTRA_NODE_LATENCY_SECONDS, link_bandwidths, memory_rate, ring_gather_seconds
from service.core.params import block_linear_shapes
from validation.throughput import KNOWN_EXCEPTIONS, Prediction, architecture, hardware, predict, rows, tolerance

# bytes per element of the local attention output (module docstring)
RING_FORWARD_FIXED = 20  # K, V .contiguous() 8; the first step's out.to(float32) 2+4; the result's .to(bf16) 4+2
RING_FORWARD_PER_STEP = 46  # cat of K, V for the exchange 8; out.to(float32) 6; out - block_out 12; sigmoid * (.) 8; out - (.) 12
RING_BACKWARD_FIXED = 58  # zeros_like dQ, dK, dV in fp32 12; K, V .contiguous() 8; first dK, dV += 20; dQ, dK/dV .to(bf16) 6 + 12
RING_BACKWARD_PER_STEP = 34  # cat of K, V 8; dK and dV half added (5) and rebuilt by torch.cat (8), each
RING_BACKWARD_EVERY_STEP = 26  # dQ += 10; cat of the fp32 dK, dV for the exchange 16
KV_GATHER_BYTES = 2 * 2  # K and V in bf16, per element
DKV_HOP_BYTES = 2 * 4  # dK and dV in fp32, per element
TORCHAO_CAST_BYTES = 2 + (2 + 1) + (1 + 1)  # max-abs read; cast read bf16, write fp8; transposed copy
TORCHAO_WEIGHT_BYTES = 2 + (2 + 1) + (1 + 1)  # max-abs read and cast of a BF16-gathered weight; column-major copy
CONTROL_ROW = "torchtitan-8b-64k-cp2"  # the same code path at cp 2, within its bar: the candidates must keep it there


@dataclass(frozen=True, kw_only=True, slots=True)
class Candidate:
    name: str
    seconds: float  # per optimizer step on one GPU; negative: the model charges more


@dataclass(frozen=True, kw_only=True, slots=True)
class ExceptionCheck:
    row_id: str
    error: float  # the model's, tokens/s against published
    step_seconds: float
    candidates: list[Candidate]
    bar: float

    @property
    def error_with_all(self) -> float:
        """The row's error with every candidate added to the modelled step."""
        added = sum(c.seconds for c in self.candidates)
        return (1 + self.error) * self.step_seconds / (self.step_seconds + added) - 1


def _noncausal_ratio(row: dict, context: float) -> float:
    """The measured causal over non-causal forward rate of the row's attention implementation at
    ``context`` keys (head dimension 128), 1 where no non-causal curve is published."""
    table = loader.kernel_efficiency()["attention"][loader.kernel_efficiency()["gpus"][row["gpu"]]["family"]]
    entry = table["implementations"][(row.get("options") or {}).get("attention_kernel") or table["default"]]
    curves = entry["head_dims"].get("128", {})
    if "forward" not in curves:
        return 1.0
    x, xs = np.log2(context), np.log2(np.asarray(table["seq_lens"], dtype=np.float64))
    return float(np.interp(x, xs, curves["forward_causal"]) / np.interp(x, xs, curves["forward"]))


def ring_candidates(p: Prediction) -> list[Candidate]:
    """PyTorch's ring attention's costs beyond the model for one step (module docstring)."""
    row, best = p.row, p.result.plans[0]
    arch, hw = architecture(row["model"]), hardware(row["gpu"], row.get("hardware"), row.get("options"))
    c, s, layers = best.cp, row["seq_len"], arch.n_layers / best.pp
    micro = row["global_batch_size"] / (best.dp * best.micro_batch_size)
    tokens = best.micro_batch_size * s / c  # one rank's share of a micro-batch
    elements = tokens * arch.n_heads / best.tp * arch.d_head  # of its attention output
    passes = 2 if best.recompute.value == "full" else 1  # forward passes of the ring per layer
    forward = RING_FORWARD_FIXED + RING_FORWARD_PER_STEP * (c - 1)
    backward = RING_BACKWARD_FIXED + RING_BACKWARD_PER_STEP * (c - 1) + RING_BACKWARD_EVERY_STEP * c
    merges = micro * layers * elements * (passes * forward + backward) / memory_rate(hw)
    nvlink, _ = link_bandwidths(hw)
    gather = float(ring_gather_seconds(c * KV_GATHER_BYTES * elements, c, nvlink, INTRA_NODE_LATENCY_SECONDS))
    hops = c * (DKV_HOP_BYTES * elements / nvlink + INTRA_NODE_LATENCY_SECONDS)
    exchanges = micro * layers * ((passes + 1) * gather + hops)
    # the attention core as the model times it (service.core.steptime._attention_core), all layers
    flops = tokens * attention_score_flops_per_token(arch, s, causal=True) / best.tp / best.pp
    fwd, bwd = hw.kernels.attention_fractions(s / c, arch.d_head)
    attention = micro * (passes * flops / fwd + 2.5 * flops / bwd) / hw.peak_flops_per_s
    saving = (c - 1) / c * (1 - _noncausal_ratio(row, s / c)) * attention
    return [
        Candidate(name="fp32 merges, accumulations and copies of the ring (HBM)", seconds=merges),
        Candidate(name="K/V all-gathers and fp32 dK/dV hops, none hidden (NVLink)", seconds=exchanges),
        Candidate(name="non-causal halves at the measured non-causal rate", seconds=-saving),
    ]


def float8_candidates(p: Prediction) -> list[Candidate]:
    """torchao's Float8 costs beyond the model for one step of a dense model at tp 1 (module docstring)."""
    row, best = p.row, p.result.plans[0]
    arch, hw = architecture(row["model"]), hardware(row["gpu"], row.get("hardware"), row.get("options"))
    if best.tp != 1 or arch.is_moe or arch.is_mla:
        raise ValueError(f"{row['id']}: the Float8 check counts a dense model's linears at tp 1")
    h, f = arch.d_model, arch.d_ff
    up = 2 if arch.ffn is Ffn.SWIGLU else 1
    # each GEMM input (Q/K/V share one, up and gate share one) and each output gradient, per token and layer
    inputs = h + arch.q_dim + h + f
    gradients = arch.q_proj_width + 2 * arch.kv_dim + h + up * f + h
    tokens = row["global_batch_size"] * row["seq_len"] / (best.dp * best.cp)
    elements = tokens * arch.n_layers / best.pp * (inputs + gradients)
    casts = elements * (TORCHAO_CAST_BYTES - cast_bytes_per_element(Fp8Recipe.TENSORWISE)) / memory_rate(hw)
    weights = sum(n * i * o for n, i, o in block_linear_shapes(arch)) / best.pp
    return [
        Candidate(name="max-abs pass unfused, transposed copy instead of a second cast (HBM)", seconds=casts),
        Candidate(name="weights: max-abs and cast after a BF16 gather, column-major copy (HBM)", seconds=weights * TORCHAO_WEIGHT_BYTES / memory_rate(hw)),
    ]  # fmt: skip


def checks(preds: list[Prediction]) -> list[ExceptionCheck]:
    """Every known exception (and the context-parallel control row) with its candidates."""
    out = []
    for p in preds:
        row = p.row
        if (row["id"] not in KNOWN_EXCEPTIONS and row["id"] != CONTROL_ROW) or p.error is None:
            continue
        candidates = ring_candidates(p) if row["fixed"].get("cp", 1) > 1 else float8_candidates(p)
        out.append(ExceptionCheck(row_id=row["id"], error=p.error, step_seconds=p.result.plans[0].step_seconds,
                                  candidates=candidates, bar=tolerance(row)))  # fmt: skip
    return out


# The same benchmark file's 405B context-parallel sweep (pytorch/torchtitan benchmarks/llama3_h100_202412_torchtitan.md,
# Table 6: 512 GPUs, TP 8, PP 8, 1F1B, local batch 8, full recompute, compile + Float8 + AsyncTP): not a calibration
# row, a cross-check that the 8B sweep's growth is not the 8B's alone
SWEEP_405B = {1: 76, 2: 47, 4: 31, 8: 16}  # cp -> tokens/s per GPU, at 32K x cp tokens


def cp_sweep_405b() -> dict[int, Prediction]:
    """Table 6 through the planner as the calibration row ``torchtitan-405b-512gpu-1f1b`` is (its H100, recipe and
    recompute), at each row's cp, sequence, FSDP degree (8 / cp), micro-batch 1 and async TP."""
    base = next(r for r in rows() if r["id"] == "torchtitan-405b-512gpu-1f1b")
    out = {}
    for cp, published in SWEEP_405B.items():
        dp = 8 // cp
        row = base | {"id": f"torchtitan-405b-cp{cp}", "seq_len": 32768 * cp, "global_batch_size": 8 * dp,
                      "fixed": base["fixed"] | {"cp": cp, "dp": dp, "micro_batch_size": 1},
                      "options": base["options"] | {"tp_comm_overlap": True},
                      "published": {"tokens_per_second_per_gpu": published}}  # fmt: skip
        out[cp] = predict(row)
    return out


def render_section(preds: list[Prediction]) -> list[str]:
    """ACCURACY.md's check of the exceptions: each candidate's seconds and share of the modelled step,
    and the error with all of them added."""
    lines = [
        "### What the exceptions are not",
        "",
        "The costs the exceptions' code paths add beyond the step-time model, counted from the code the runs used",
        "(`validation/throughput_exceptions.py`, with the sources) at the model's own rates, each at its upper bound",
        f"(nothing hidden, nothing fused), added to the modelled step. `{CONTROL_ROW}` runs the same context-parallel",
        "code at cp 2 and stays within its bar with them.",
        "",
        "| row | candidate | seconds per step | share of the modelled step |",
        "|---|---|---:|---:|",
    ]
    for check in checks(preds):
        for c in check.candidates:
            lines.append(f"| {check.row_id} | {c.name} | {c.seconds:+.3f} | {c.seconds / check.step_seconds:+.1%} |")
        lines.append(f"| {check.row_id} | **error with all** ({check.error:+.1%} without; bar {check.bar:.0%}) | | "
                     f"**{check.error_with_all:+.1%}** |")  # fmt: skip
    sweep = cp_sweep_405b()
    lines += ["", "The same benchmark file's 405B context-parallel sweep (Table 6; TP 8, PP 8, 1F1B, local batch 8; not a",
              "calibration row) through the planner as `torchtitan-405b-512gpu-1f1b` is: the same growth with cp.", "",
              "| cp | sequence | published tok/s/GPU | predicted | error |", "|---:|---:|---:|---:|---:|"]  # fmt: skip
    for cp, p in sweep.items():
        predicted = p.predicted_tokens_per_second_per_gpu or 0.0
        lines.append(f"| {cp} | {32768 * cp:,} | {p.published_tokens_per_second_per_gpu:,.0f} | {predicted:,.1f} | "
                     f"{predicted / p.published_tokens_per_second_per_gpu - 1:+.1%} |")  # fmt: skip
    return lines
