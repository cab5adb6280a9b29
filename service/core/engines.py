"""Serving engines: the memory defaults and the scheduler of vLLM, SGLang and TensorRT-LLM, as
their documentation states them, and the per-step overhead the serving model adds to a decode step.

Each engine splits a GPU's memory its own way:

- **vLLM** (docs, "Engine Arguments", ``--gpu-memory-utilization`` 0.9): the instance may fill
  0.9 of each GPU's *total* memory with the weights, the activation peak of a profiling forward of
  ``max_num_batched_tokens`` tokens, non-torch memory (CUDA context, NCCL, cuBLAS workspaces) and
  the KV cache; the KV cache is paged in blocks of 16 tokens (``--block-size`` 16). The V1 engine
  schedules continuous batches with chunked prefill on by default, decode first and then prompt
  chunks up to ``max_num_batched_tokens``: 8,192 tokens and ``max_num_seqs`` 1,024 for the OpenAI
  server on GPUs of 70 GiB or more other than A100, 2,048 and 256 otherwise
  (``vllm/engine/arg_utils.py``, ``_set_default_args``). CUDA graphs are captured for decode
  batches up to 512 sequences. The reserve beside weights and cache is taken as 2 GiB per GPU
  (:data:`VLLM_RESERVE_BYTES`: context and NCCL, graphs, the profiled activation peak).
- **SGLang** (docs, "Server Arguments"): ``--mem-fraction-static`` of each GPU's total memory
  holds the weights and the KV cache pool (0.88 at TP 1, 0.87 at TP 2, 0.85 at TP 4, 0.81 at TP 8:
  ``python/sglang/srt/server_args.py``, v0.4); the rest is left to activations and CUDA graphs.
  Pages of one token (``--page-size`` 1, the radix cache), ``--chunked-prefill-size`` 8,192, the
  overlap scheduler on by default, which runs the CPU's scheduling of step ``n+1`` while the GPU
  runs step ``n`` (SGLang v0.4 release blog, 2024-12-04, "zero-overhead batch scheduler").
- **TensorRT-LLM** (docs, "How to Change KV Cache Behavior": ``free_gpu_memory_fraction`` 0.9 of
  the memory *free after the weights and the activation buffers*; "Memory Usage of TensorRT-LLM":
  activations are pre-computed at build time for the largest shapes): in-flight batching with
  ``max_batch_size`` 2,048 and ``max_num_tokens`` 8,192 (``trtllm-build`` / LLM API defaults), KV
  blocks of 64 tokens (``tokens_per_block``), a C++ executor.

The **per-step overhead** is the time a decode step takes beyond its kernels' roofline: kernel
launch and synchronisation gaps inside the captured graph, and the host's scheduling between steps
where the engine does not overlap it. One value per layer (the gaps grow with the kernels a step
runs) and one per step (the host):

- the per-layer term, :data:`LAYER_OVERHEAD_SECONDS`, is fitted on one row: the NVIDIA NIM
  benchmarking guide's Llama-3.3-70B FP8 on 2 x H100 at concurrency 1 (ITL 18.58 ms, where the
  roofline and the all-reduces give 13.8 ms; TensorRT-LLM engine). vLLM and SGLang run the same
  kind of captured kernel sequence and take the same value: an assumption, not fitted on their
  rows (the calibration sheet has none at batch 1).
- the per-step host term: TensorRT-LLM 0 (folded into the fitted value), SGLang 0 (the overlap
  scheduler), vLLM 1 ms (assumed, not fitted: V1 schedules and prepares the next step's inputs
  between steps unless ``--async-scheduling`` is set, which is off by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from service.core.architecture import Architecture

GIB = 2**30
# Fitted on one row: NIM Llama-3.3-70B FP8 TP2 on H100 at concurrency 1 (ITL 18.58 ms; the model
# without it: 13.8 ms; 80 layers): (18.58 - 13.8) / 80 = 60 microseconds per layer.
LAYER_OVERHEAD_SECONDS = 60e-6
# Assumed, not fitted: vLLM V1 schedules and prepares the next step between steps unless
# --async-scheduling is set (off by default).
VLLM_HOST_OVERHEAD_SECONDS = 1e-3
CUDA_CONTEXT_BYTES = 1 * GIB  # per GPU: CUDA context, NCCL communicators, cuBLAS workspaces (about 0.5-1 GiB)
# vLLM, per GPU: CUDA context and NCCL (~1 GiB), CUDA graphs (~0.5 GiB) and the profiled activation peak
VLLM_RESERVE_BYTES = 2 * GIB
LARGE_GPU_BYTES = 70 * GIB  # vLLM's threshold for its larger scheduler defaults (arg_utils.py)


class Engine(StrEnum):
    """The serving engine a plan assumes."""

    VLLM = "vllm"
    SGLANG = "sglang"
    TRTLLM = "trtllm"


@dataclass(frozen=True, kw_only=True, slots=True)
class EngineProfile:
    """One engine's defaults (module docstring for each value's source).

    ``memory_fraction`` is of the GPU's total memory (vLLM, SGLang) or, with ``fraction_of_free``,
    of what the weights and activation buffers leave (TensorRT-LLM). ``cuda_graph_bytes`` is the
    per-GPU memory of the captured graphs; ``token_budget`` the tokens one step may carry (chunked
    prefill); ``max_num_seqs`` the sequences one step may decode (None: what the KV cache holds)."""

    engine: Engine
    memory_fraction: float
    fraction_of_free: bool
    cuda_graph_bytes: int
    block_size_tokens: int
    token_budget: int
    max_num_seqs: int | None
    layer_overhead_seconds: float
    host_overhead_seconds: float
    sources: tuple[str, ...]


def engine_profile(engine: Engine, *, tp: int, gpu_memory_bytes: int) -> EngineProfile:
    """The defaults of ``engine`` for a replica of ``tp`` GPUs of ``gpu_memory_bytes`` each."""
    if engine is Engine.VLLM:
        large = gpu_memory_bytes >= LARGE_GPU_BYTES
        return EngineProfile(
            engine=engine, memory_fraction=0.9, fraction_of_free=False, cuda_graph_bytes=GIB // 2, block_size_tokens=16,
            token_budget=8192 if large else 2048, max_num_seqs=1024 if large else 256,
            layer_overhead_seconds=LAYER_OVERHEAD_SECONDS, host_overhead_seconds=VLLM_HOST_OVERHEAD_SECONDS,
            sources=("vLLM docs, Engine Arguments: --gpu-memory-utilization 0.9 (of total memory), --block-size 16",
                     "vllm/engine/arg_utils.py: max_num_batched_tokens 8192 / max_num_seqs 1024 (OpenAI server, >= 70 GiB, "
                     "not A100), else 2048 / 256; chunked prefill on (V1)"),
        )  # fmt: skip
    if engine is Engine.SGLANG:
        fraction = 0.88 if tp < 2 else 0.87 if tp < 4 else 0.85 if tp < 8 else 0.81
        return EngineProfile(
            engine=engine, memory_fraction=fraction, fraction_of_free=False, cuda_graph_bytes=0, block_size_tokens=1,
            token_budget=8192, max_num_seqs=None, layer_overhead_seconds=LAYER_OVERHEAD_SECONDS, host_overhead_seconds=0.0,
            sources=("SGLang docs, Server Arguments; python/sglang/srt/server_args.py (v0.4): mem_fraction_static 0.88/0.87/"
                     "0.85/0.81 at TP 1/2/4/8 (weights + KV pool; the rest for activations and CUDA graphs), page_size 1, "
                     "chunked_prefill_size 8192", "SGLang v0.4 blog (2024-12-04): overlap scheduler, no host gap per step"),
        )  # fmt: skip
    return EngineProfile(
        engine=engine, memory_fraction=0.9, fraction_of_free=True, cuda_graph_bytes=GIB // 2, block_size_tokens=64,
        token_budget=8192, max_num_seqs=2048, layer_overhead_seconds=LAYER_OVERHEAD_SECONDS, host_overhead_seconds=0.0,
        sources=("TensorRT-LLM docs, How to Change KV Cache Behavior: free_gpu_memory_fraction 0.9 of the free memory",
                 "TensorRT-LLM docs, Memory Usage: activation buffers sized at build time for max_num_tokens",
                 "trtllm-build / LLM API defaults: max_batch_size 2048, max_num_tokens 8192, tokens_per_block 64"),
    )  # fmt: skip


def activation_workspace_bytes(arch: Architecture, *, tp: int, tokens: int, sequences: int) -> int:
    """Per GPU, the activation peak of one forward of ``tokens`` tokens that the engines profile
    (vLLM) or pre-allocate (TensorRT-LLM): 16-bit, four ``d_model``-wide tensors alive at once
    (residual, normalised input, attention output, MLP output) and the MLP's gate, up and product
    (three ``d_ff / tp`` wide; ``experts_per_token`` of them for an MoE), plus fp32 logits over the
    vocabulary shard for the last token of ``sequences`` sequences (the sampler)."""
    width = arch.d_ff * max(1, arch.experts_per_token if arch.is_moe else 1)
    hidden = tokens * (4 * arch.d_model + 3 * width / tp) * 2
    logits = min(tokens, sequences) * arch.vocab_size / tp * 4
    return int(hidden + logits)


def runtime_reserve_bytes(profile: EngineProfile, arch: Architecture, *, tp: int) -> int:
    """Per GPU, what the engine keeps beside the weights and the KV cache inside its fraction.
    TensorRT-LLM: the CUDA context, the captured graphs and the activation buffers of a full token
    budget (:func:`activation_workspace_bytes`). vLLM: :data:`VLLM_RESERVE_BYTES` (its profiling run
    measures the activation peak; for a 7B model at an 8,192-token budget that is under 1 GiB).
    SGLang: 0 (activations and graphs live outside its static fraction)."""
    if profile.engine is Engine.SGLANG:
        return 0
    if profile.engine is Engine.VLLM:
        return VLLM_RESERVE_BYTES
    sequences = profile.max_num_seqs or profile.token_budget
    return (
        CUDA_CONTEXT_BYTES
        + profile.cuda_graph_bytes
        + activation_workspace_bytes(arch, tp=tp, tokens=profile.token_budget, sequences=sequences)
    )
