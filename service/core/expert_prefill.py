"""A prefill's MLP matmuls on one GPU of a serving replica, a mixture's routed experts one expert at a time.

A dense MLP (and a mixture's shared experts) multiplies every prompt token by one weight matrix
per projection; tensor parallelism splits the up (and gate) projection's output and the down
projection's input (Shoeybi et al. 2019 §3).

A mixture's **routed experts** do not run as one matmul over the layer: each expert multiplies the
rows routed to it by its own weights, as the fused MoE kernels do (vLLM's ``fused_moe`` Triton
kernel sorts the routed rows by expert, ``moe_align_block_size``, and runs one GEMM per expert
block; SGLang's DeepEP path DeepGEMM's grouped contiguous GEMM; TensorRT-LLM's MoE plugin its
grouped GEMM). Over a prefill of ``T`` tokens, each picking ``k`` of a layer's ``E`` experts with
routing balanced over the experts (what the load-balancing loss aims at: Fedus et al. 2022, Switch
Transformer §2.2; DeepSeek-V3 §2.1.2), a given expert is missed by all ``T`` tokens with probability
``(1 - k/E)^T``, so ``E (1 - (1 - k/E)^T)`` experts are touched
(:func:`service.core.params.unread_expert_share`, the same count a decode step reads), each with
``T k / touched`` rows on average. Every touched expert's GEMM is priced on its own shape
(:func:`service.core.hardware.matmul_seconds`, the roofline of its FLOPs and its weights, rows and
output through HBM): a short prompt's experts are skinny GEMMs bound by reading their weights, and
only the touched experts' weights are read (all ``E`` once ``T k`` is large). Each expert GEMM runs
at the grouped-GEMM share of the fitted matmul rate its reduction depth gives
(:func:`service.core.steptime_moe.grouped_gemm_factor`: ``K0`` of 190 in 16 bits, 720 in FP8, the
training side's measured values in ``service/catalog/kernel_efficiency.json``), ``K`` the model
width for the up projection and the expert's width on the GPU for the down projection.

With **expert parallelism** (``ep`` GPUs each holding ``E / ep`` experts and prefilling its own
prompt, :mod:`service.core.expert_serving`), a GPU's experts see the unit's ``ep * T`` tokens: it
touches ``E/ep (1 - (1 - k/E)^(ep T))`` of its experts, and its routed rows are ``T k`` (balanced:
what it computes for others equals what others compute for it).

The touched count is concave in the tokens, so over prompts of varied length the mean prompt's
expert cost (what :func:`service.core.serving.prefill_seconds` takes) is an upper bound of the mean
cost (Jensen), tight once every expert is touched. Chunked prefill
(:mod:`service.core.serving_load`) charges each prompt this whole-prompt cost, the touched experts'
weights read once a prompt; its chunks ride in decode steps that read the experts their own tokens
pick, so a chunk's marginal read is at most this.

Left out: the rows each expert's GEMM pads to its kernel's row block (vLLM's ``BLOCK_SIZE_M``, 16
to 128 by its tuned configs; DeepGEMM's 128). Below the ridge point of the roofline (a 16-bit
expert GEMM on an H100 runs at its weights' read up to about 250 rows) the padding costs no time;
above it, at most a block's rows.
"""

from __future__ import annotations

from service.core.architecture import Architecture
from service.core.dtypes import Dtype
from service.core.hardware import Hardware, matmul_seconds
from service.core.params import expert_missed, mlp_linear_shapes
from service.core.steptime_moe import grouped_gemm_factor


def mlp_shapes_per_gpu(arch: Architecture, d_ff: int, tp: int) -> list[tuple[int, float, float]]:
    """One MLP of width ``d_ff`` on one of ``tp`` ranks: up (and gate) column-split, down row-split
    (:func:`service.core.params.mlp_linear_shapes` for the full shapes)."""
    (up_count, h, _), _down = mlp_linear_shapes(arch, d_ff)
    return [(up_count, h, d_ff / tp), (1, d_ff / tp, h)]


def fp8_matmuls(hw: Hardware, weights_format: Dtype) -> bool:
    """Whether a replica's matmuls run on FP8 tensor cores: FP8 weights on a GPU with an FP8 peak
    (elsewhere FP8 weights are dequantised into 16-bit matmuls, as vLLM's FP8 Marlin kernel does)."""
    return weights_format is Dtype.FP8 and bool(hw.fp8_peak_flops_per_s)


def experts_touched(arch: Architecture, tokens: float, ep: int = 1) -> float:
    """The routed experts of one layer on one of ``ep`` GPUs that ``tokens`` tokens a GPU touch:
    ``E/ep (1 - (1 - k/E)^(ep tokens))`` (module docstring); 0 for a dense model or no tokens."""
    if not arch.moe_layers or tokens <= 0:
        return 0.0
    return arch.n_experts / ep * (1.0 - float(expert_missed(arch, ep * tokens)))


def routed_expert_seconds(
    arch: Architecture, hw: Hardware, *, tokens: float, tp: int = 1, ep: int = 1, fp8: bool = False, element_bytes: int = 2
) -> float:  # fmt: skip
    """One MoE layer's routed experts over ``tokens`` prompt tokens on one GPU (module docstring):
    every touched expert's GEMMs on its own shape, ``tokens * k / touched`` rows each, split over
    ``tp`` ranks as the dense MLP is, at the grouped-GEMM share of the matmul rate (FP8's ``K0``
    with ``fp8``); 0 for a dense model or no tokens."""
    touched = experts_touched(arch, tokens, ep)
    if touched <= 0:
        return 0.0
    rows = tokens * arch.experts_per_token / touched
    eff = hw.kernels
    fixed_k = eff.grouped_gemm_fixed_k_fp8 if fp8 else eff.grouped_gemm_fixed_k
    per_expert = sum(
        count * matmul_seconds(rows, k_in, n_out, hw, element_bytes, rate_factor=grouped_gemm_factor(k_in, fixed_k))
        for count, k_in, n_out in mlp_shapes_per_gpu(arch, arch.d_ff, tp)
    )
    return float(touched * per_expert)
