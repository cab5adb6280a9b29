"""Request and response models of the calculator endpoints (``/v1/params``, ``/v1/compute/*``,
``/v1/memory/*``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from service.core.compute import AttentionFormula, Recompute
from service.core.dtypes import Dtype
from service.core.fp8 import Fp8Recipe
from service.core.gradients import GradReduceDtype
from service.core.kernels import AttentionKernel, CrossEntropy, DeviceConvention, Framework
from service.core.limits import MAX_BATCH, MAX_INT64, MAX_SEQ_LEN, MAX_TOKENS
from service.core.memory import CUDA_CONTEXT_BYTES, Optimizer, Precision
from service.core.pipeline import PipelineSchedule
from service.schemas.base import Assumptions, Schema
from service.schemas.finetune import Finetune, FinetuneComputeDetail, FinetuneMemoryDetail, lora_shorthand
from service.schemas.layout import GRAD_REDUCE_DESCRIPTION, check_precision_options
from service.schemas.model import ModelSpec

SeqLen = Annotated[int, Field(ge=1, le=MAX_SEQ_LEN)]
Batch = Annotated[int, Field(ge=1, le=MAX_BATCH)]
GpuId = Annotated[str, Field(min_length=1, max_length=100, description="Catalog GPU id, e.g. `h100-sxm`.")]
Bytes = Annotated[int, Field(ge=0, le=MAX_INT64)]

LLAMA_2_7B = {"preset": "llama-2-7b"}
FINETUNE_DESCRIPTION = (
    "Fine-tuning method: absent or `full` trains every weight; `lora`/`qlora` freeze the base and train adapters. "
    "Top-level `lora: {...}` or `qlora: {...}` are shorthands for it."
)


class Estimate(Schema):
    """Fields every estimate carries."""

    formulas: list[str] = Field(description="The formulas used, each with its source.")
    assumptions: Assumptions = Field(description="Defaults filled in for this answer.")


# --- /v1/params ---------------------------------------------------------------------------------


class ParamsRequest(Schema):
    model_config = Schema.model_config | {"json_schema_extra": {"examples": [{"model": LLAMA_2_7B}]}}

    model: ModelSpec


class ParamsResponse(Estimate):
    total: int = Field(description="All parameters, tied weights once.")
    active: int = Field(description="Parameters used per token (MoE: experts_per_token experts).")
    embedding: int
    attention: int = Field(
        description="The token mixers: attention (a shared block's once), and the Mamba, Mamba-2, RWKV time-mix, Gated "
        "DeltaNet or short-convolution layers, with a shared block's per-use projections and adapters."
    )
    mlp: int = Field(description="MLPs and experts with their routers, and RWKV's channel mixing.")
    norm: int
    lm_head: int
    non_embedding: int = Field(description="total − embedding − lm_head (Kaplan et al. 2020's N).")


# --- /v1/compute/training -----------------------------------------------------------------------


class TrainingComputeRequest(Schema):
    model_config = Schema.model_config | {
        "json_schema_extra": {
            "examples": [
                {"model": {"preset": "gpt-3-175b"}, "tokens": 300e9},
                {"model": LLAMA_2_7B, "tokens": 2e12, "include_attention": True, "recompute": "selective"},
            ]
        }
    }

    model: ModelSpec
    tokens: float = Field(gt=0, le=MAX_TOKENS, description="Training tokens D.")
    recompute: Recompute = Recompute.NONE
    include_attention: bool = Field(False, description="Add the attention (sequence-length) FLOPs; false = 6PD.")
    attention_formula: AttentionFormula = AttentionFormula.PALM
    causal_attention: bool = Field(False, description="Halve the attention term for causal masking.")
    seq_len: SeqLen | None = Field(None, description="Training sequence length; default: the model's context, at most 8,192.")
    finetune: Finetune | None = Field(None, description=FINETUNE_DESCRIPTION)

    @model_validator(mode="before")
    @classmethod
    def _lora_shorthand(cls, data: object) -> object:
        return lora_shorthand(data)


class TrainingComputeResponse(Estimate):
    total_flops: float = Field(description="Model FLOPs of the run (what MFU counts).")
    flops_per_token: float
    hardware_flops: float = Field(description="Including recomputation (what HFU counts).")
    hardware_flops_per_token: float
    forward_flops_per_token: float
    backward_flops_per_token: float
    params: float = Field(
        description="Parameters P used in the formula: the active parameters for 6PD (embedding table included); with "
        "include_attention the active matmul weights (palm, megatron: the embedding lookup is free) or Kaplan's non-embedding N."
    )
    tokens: float
    finetune: FinetuneComputeDetail | None = Field(None, description="LoRA/QLoRA: the adapters' share (null for full training).")


# --- /v1/compute/inference ----------------------------------------------------------------------


class InferenceComputeRequest(Schema):
    model_config = Schema.model_config | {
        "json_schema_extra": {"examples": [{"model": LLAMA_2_7B, "prompt_tokens": 1000, "output_tokens": 200}]}
    }

    model: ModelSpec
    prompt_tokens: int = Field(0, ge=0, le=MAX_SEQ_LEN)
    output_tokens: int = Field(1, ge=0, le=MAX_SEQ_LEN)
    batch_size: Batch = 1
    include_attention: bool = Field(True, description="Count attention over the context (needs the architecture).")


class InferenceComputeResponse(Estimate):
    flops_per_token: float = Field(description="Average FLOPs per generated token (prefill average if none).")
    flops_per_token_weights: float = Field(description="The 2P part of it.")
    prefill_flops: float
    decode_flops: float
    total_flops: float


# --- /v1/memory/training ------------------------------------------------------------------------


class ParallelismSpec(Schema):
    dp: int = Field(1, ge=1, le=1_000_000, description="Data-parallel ranks.")
    tp: int = Field(1, ge=1, le=4096, description="Tensor-parallel ranks.")
    pp: int = Field(1, ge=1, le=4096, description="Pipeline stages.")
    cp: int = Field(1, ge=1, le=4096, description="Context-parallel ranks (each holds seq_len/cp tokens; needs flash_attention).")
    ep: int = Field(1, ge=1, le=4096, description="Expert-parallel ranks, within dp (mixtures of experts).")
    virtual_stages: int = Field(1, ge=1, le=64, description="Interleaved pipeline chunks per GPU.")
    sequence_parallel: bool = False
    zero_stage: int = Field(0, ge=0, le=3, description="ZeRO shards over the dp*cp ranks that hold the same weights.")
    offload_optimizer: bool = False
    pipeline_schedule: PipelineSchedule | None = Field(
        None,
        description="1f1b, interleaved, zero_bubble, dualpipe (two copies of the parameters) or dualpipev; default interleaved "
        "with virtual_stages > 1, else 1f1b. Sets the micro-batches the busiest stage holds in flight.",
    )


class TrainingMemoryRequest(Schema):
    model_config = Schema.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "model": LLAMA_2_7B,
                    "micro_batch_size": 1,
                    "seq_len": 4096,
                    "recompute": "selective",
                    "flash_attention": True,
                    "parallelism": {"dp": 8, "zero_stage": 1},
                    "gpu": "a100-80gb-sxm",
                }
            ]
        }
    }

    model: ModelSpec
    precision: Precision = Precision.MIXED_BF16
    fp8_recipe: Fp8Recipe = Field(
        Fp8Recipe.TENSORWISE,
        description="With precision fp8: how the FP8 weight copies and the FP8 activations kept for the backward are scaled. "
        "Another recipe than the default without fp8 is a 422.",
    )
    optimizer: Optimizer = Optimizer.ADAMW
    grad_reduce_dtype: GradReduceDtype | None = Field(None, description=GRAD_REDUCE_DESCRIPTION)
    micro_batch_size: Batch = 1
    seq_len: SeqLen | None = Field(None, description="Default: the model's context, at most 8,192 (as the planner).")
    recompute: Recompute = Recompute.NONE
    flash_attention: bool = False
    dropout: bool = False
    include_activations: bool = Field(True, description="False answers for a bare n_params.")
    parallelism: ParallelismSpec = ParallelismSpec()
    gradient_accumulation_steps: int | None = Field(
        None,
        ge=1,
        le=MAX_BATCH,
        description="Micro-batches per step; fewer than pp leaves the pipeline's first stage holding fewer.",
    )
    gpu: GpuId | None = None
    gpu_memory_bytes: Bytes | None = Field(None, gt=0, description="Instead of gpu.")
    framework: Framework = Field(
        Framework.HUGGINGFACE,
        description="Whose kernels keep the activations: `huggingface` (PyTorch + transformers, the stack most users run) or "
        "`megatron` (Megatron-LM's fused kernels, Korthikanti et al. 2022's count). Unset choices below take its values.",
    )
    attention_implementation: AttentionKernel | None = Field(
        None,
        description="`eager` keeps the a*s^2 scores, `sdpa` and `flash` an fp32 log-sum-exp per query and head. Default: `flash` "
        "with flash_attention=true; else `sdpa` (transformers) or `eager` (megatron, or flash_attention=false given explicitly).",
    )
    fp32_softmax: bool | None = Field(
        None, description="Eager softmax in fp32: keeps fp32 probabilities and their 16-bit copy. Default: true for transformers."
    )
    fp32_norms: bool | None = Field(
        None,
        description="Norms upcast their input to fp32 and keep the copy. Default: transformers' RMSNorm does, LayerNorm does not.",
    )
    fused_activation: bool | None = Field(
        None,
        description="The MLP activation is one kernel. Default: megatron yes; transformers: GELU yes, SwiGLU no (act(gate)*up).",
    )
    fp32_norm_weight: bool | None = Field(
        None,
        description="Norms multiply by their weight in fp32 and keep the fp32 normalised tensor, as OLMo 2's and Gemma's "
        "RMSNorm do in transformers (8 bytes an element). Default: the model's family (true for a Gemma or OLMo 2 preset "
        "or config.json, false otherwise).",
    )
    cross_entropy: CrossEntropy | None = Field(
        None,
        description="How the loss runs over the logits s*b*V/t of the last stage's micro-batch: `fused` (Megatron's "
        "vocab-parallel cross entropy, in place on the fp32 softmax: 4 bytes a logit, Korthikanti et al. 2022 §4.3) or "
        "`eager` (PyTorch's F.cross_entropy on logits upcast to fp32, as transformers' ForCausalLMLoss and torchtitan: the "
        "saved fp32 log-softmax, nll_loss's fp32 gradient and the log-softmax's input gradient together in the backward, "
        "12 bytes a logit; on tp > 1 vocabulary shards PyTorch's loss_parallel, whose fused backward holds four fp32 "
        "tensors, 16). Default: the framework's (megatron fused, huggingface eager).",
    )
    residual_dropout: bool = Field(
        True, description="With dropout: also on the embedding, attention output and MLP output (GPT-2, NeoX; not Llama)."
    )
    device_convention: DeviceConvention = Field(
        DeviceConvention.CUDA,
        description="Where the step runs, for what dropout keeps: `cuda` (a 1-byte mask an element, SDPA's fused kernels "
        "regenerate theirs) or `cpu` (a noise tensor of the dropped tensor's dtype, and SDPA with dropout runs PyTorch's "
        "fp32 math path), the convention of CPU measurements. Mamba, Mamba-2 and RWKV-4 layers keep what their fused "
        "CUDA kernels keep on `cuda`, what transformers' reference torch code keeps on `cpu` (fp32 scan intermediates, "
        "far more). Changes nothing else without dropout.",
    )
    finetune: Finetune | None = Field(None, description=FINETUNE_DESCRIPTION)
    cuda_context_bytes: int = Field(
        CUDA_CONTEXT_BYTES,
        ge=0,
        le=64 * 2**30,
        description="The process's CUDA context on each GPU (driver state, loaded kernels): about 400 MiB with CUDA's lazy "
        "module loading (PyTorch's default since CUDA 11.7), 1-2 GB loaded eagerly. Measure: nvidia-smi's used memory less "
        "torch.cuda.memory_reserved(). Counted in device_total_bytes and fits.",
    )

    @model_validator(mode="before")
    @classmethod
    def _lora_shorthand(cls, data: object) -> object:
        return lora_shorthand(data)

    @model_validator(mode="after")
    def _recipe_with_fp8(self) -> TrainingMemoryRequest:
        check_precision_options(self)
        return self


class PerGpuMemory(Schema):
    weights_bytes: int
    gradients_bytes: int
    optimizer_bytes: int
    activations_bytes: int
    total_bytes: int = Field(description="The tensors: weights + gradients + optimizer states + activations.")
    total_gib: float = Field(description="total_bytes / 2^30, a convenience copy.")
    cuda_context_bytes: int = Field(description="The CUDA context, as given (not a tensor; nvidia-smi shows it).")
    device_total_bytes: int = Field(description="total_bytes + cuda_context_bytes: the GPU memory the job needs.")


class ActivationDetail(Schema):
    per_layer_bytes: int
    layers_per_stage: int
    in_flight_microbatches: float = Field(
        description="Micro-batches' worth held by the first stage (fractional when interleaved)."
    )
    first_stage_bytes: int
    last_stage_bytes: int
    recompute_working_bytes: int = Field(
        description="The layer recomputation rebuilds in its backward, one layer of one micro-batch, counted in the stages' "
        "bytes on top of what they keep (after the loss's peak on the last stage): full recompute's layer without "
        "recompute, selective's attention core (Korthikanti et al. 2022 §5), selective_op's recomputed ops; 0 without "
        "recompute."
    )


class TrainingMemoryResponse(Estimate):
    per_gpu: PerGpuMemory
    cpu_offload_bytes: int = Field(description="Host memory per GPU for offloaded optimizer states.")
    params_per_gpu: int = Field(
        description="Parameters one GPU holds: its tp x pp shard, divided over the ZeRO-3 shards (whole under a pipeline, "
        "where ZeRO-3 keeps the stage gathered through the step)."
    )
    n_gpus: int
    activations: ActivationDetail | None
    gpu: str | None
    gpu_memory_bytes: int | None
    fits: bool | None = Field(description="per_gpu.device_total_bytes <= the GPU's memory (null without a GPU).")
    params_per_gpu_before_zero: int | None = Field(
        None, description="The tp x pp shard before ZeRO-3 divides it (what each GPU gathers layer by layer)."
    )
    finetune: FinetuneMemoryDetail | None = Field(
        None, description="LoRA/QLoRA: the parts behind per_gpu (null for full training)."
    )


# --- /v1/memory/inference -----------------------------------------------------------------------


class InferenceMemoryRequest(Schema):
    model_config = Schema.model_config | {
        "json_schema_extra": {
            "examples": [
                {"model": {"preset": "llama-2-70b"}, "dtype": "bf16", "batch_size": 8, "seq_len": 4096, "gpu": "h100-sxm"}
            ]
        }
    }

    model: ModelSpec
    dtype: Dtype = Dtype.BF16
    kv_dtype: Dtype | None = Field(None, description="KV-cache format; default bf16 (never the weights' format silently).")
    batch_size: Batch = 1
    seq_len: int | None = Field(None, ge=0, le=MAX_SEQ_LEN, description="Default max_seq_len; 0 = no KV cache.")
    gpu: GpuId | None = None
    gpu_memory_bytes: Bytes | None = Field(None, gt=0, description="Instead of gpu.")


class InferenceMemoryResponse(Estimate):
    weights_bytes: int
    kv_cache_bytes: int
    kv_cache_bytes_per_token: int
    overhead_bytes: int
    total_bytes: int
    total_gib: float
    gpu: str | None
    gpu_memory_bytes: int | None
    gpus_needed: int | None
    state_cache_bytes_per_sequence: int | None = Field(
        None,
        description="Models with recurrent layers (layer_types: mamba, mamba2, rwkv, gated_deltanet, short_conv and the "
        "shared_attention_* layers' mixers): the fixed-size state one "
        "sequence keeps, constant in the context; null for a transformer.",
    )
    state_cache_bytes: int | None = Field(
        None, description="That state for the whole batch (in total_bytes); null for a transformer."
    )
