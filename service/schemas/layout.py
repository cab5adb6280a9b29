"""One parallel layout with its memory and step-time breakdown: what the planner returns and
what cost answers cite when the planner priced them."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from service.core.compute import Recompute
from service.core.errors import InvalidSpecError
from service.core.fp8 import Fp8Recipe
from service.core.gradients import GradReduceDtype, grad_dtype_problem
from service.core.kernels import CrossEntropy
from service.core.limits import MAX_INT64
from service.core.memory import Precision
from service.core.pipeline import PipelineSchedule
from service.core.steptime_moe import MoeDispatcher
from service.schemas.base import Schema, sent
from service.schemas.energy import Co2eTonnes, EnergyKwh
from service.schemas.spot import SpotDetail

Bytes = Annotated[int, Field(ge=0, le=MAX_INT64)]
Size = Annotated[int, Field(ge=1, le=1_000_000)]
Bandwidth = Annotated[
    int, Field(ge=1_000_000, le=10**14, description="Bytes per second, per GPU, one direction (at most 100 TB/s).")
]
# an efficiency: no kernel worth timing reaches less than 0.1 % of its peak (and a denormal would overflow)
Fraction = Annotated[float, Field(ge=0.001, le=1)]


class FixedDimensions(Schema):
    """Dimensions held fixed; each one given is not searched."""

    tp: Size | None = Field(None, description="Tensor-parallel size (inside a node, divides the heads).")
    pp: Size | None = Field(None, description="Pipeline stages (uneven stages allowed).")
    dp: Size | None = Field(None, description="Data-parallel size.")
    cp: Size | None = Field(None, description="Context-parallel size (needs flash_attention).")
    ep: Size | None = Field(None, description="Expert-parallel size (mixtures of experts).")
    zero_stage: int | None = Field(None, ge=0, le=3)
    micro_batch_size: Size | None = None
    recompute: Recompute | None = None
    sequence_parallel: bool | None = None
    virtual_stages: Annotated[int, Field(ge=1, le=64)] | None = Field(None, description="Interleaved chunks per GPU.")
    offload_optimizer: bool | None = None
    pipeline_schedule: PipelineSchedule | None = Field(
        None, description="1f1b, interleaved (with virtual_stages > 1), zero_bubble (ZB-H1), dualpipe (even pp) or dualpipev."
    )


class EfficiencyOverrides(Schema):
    """Kernel efficiencies to use instead of the GPU's (each a fraction in (0, 1]); unset ones keep the
    catalog's, stated in `assumptions` as `<gpu>.efficiency.*`."""

    matmul: Fraction | None = Field(None, description="Sustained share of the dense peak a step's GEMMs reach.")
    matmul_fp8: Fraction | None = Field(None, description="The same for FP8 GEMMs, of the dense FP8 peak.")
    attention_core: Fraction | None = Field(
        None,
        description="Share of the dense peak the attention core reaches, forward and backward (instead of the measured curve).",
    )
    memory_bandwidth: Fraction | None = Field(None, description="Share of HBM bandwidth streaming kernels reach.")
    intra_node_collective: Fraction | None = Field(None, description="NCCL bus bandwidth over the intra-node link rate.")
    inter_node_collective: Fraction | None = Field(None, description="NCCL bus bandwidth over the scale-out link rate.")


GRAD_REDUCE_DESCRIPTION = (
    "The dtype gradients are accumulated, stored (ZeRO-2 shards them) and reduced over data parallelism in: `fp32` (4 bytes: "
    "Megatron-LM's --bf16 default, grad_reduce_in_fp32; Megatron-Bridge's bf16_mixed; FSDP2's reduce_dtype=float32 in "
    "torchtitan; 18 bytes a parameter with AdamW) or the weights' 16-bit format (`bf16`, or `fp16` under mixed_fp16: 2 bytes, "
    "ZeRO §3's 16 bytes a parameter; Megatron-LM --fp16, --grad-reduce-in-bf16, DeepSpeed ZeRO). Default null: the 16-bit "
    "format, with ZeRO-3 under a pipeline in FSDP2's fp32."
)


def check_precision_options(req: Schema) -> None:
    """A request's ``fp8_recipe`` and ``grad_reduce_dtype`` against its ``precision`` (a recipe sent at
    another value than its default needs fp8; :func:`service.core.gradients.grad_dtype_problem`), each
    a 422 naming its field."""
    precision = req.precision
    if sent(req, "fp8_recipe") and precision is not Precision.FP8:
        raise InvalidSpecError("fp8_recipe", "fp8_recipe applies to precision fp8 only")
    if problem := grad_dtype_problem(precision, req.grad_reduce_dtype):
        raise InvalidSpecError("grad_reduce_dtype", problem)


class StepTimeOptions(Schema):
    """How the step-time model runs a training step: precision, FP8 recipe, kernels, overlaps. Read by
    the planner only; the mixture-of-experts options (`ep_comm_overlap`, `moe_max_nodes_per_token`,
    `moe_load_imbalance`, `moe_dispatcher`, `expert_tensor_parallel`) on a model without experts, and
    `cuda_graphs` without LoRA/QLoRA adapters, are a 422 naming them (sent at a value other than their
    default: a default sent means what leaving it out does)."""

    precision: Precision = Field(
        Precision.MIXED_BF16,
        description="mixed_bf16 (default), mixed_fp16, bf16, fp32, or fp8: the blocks' matmuls in FP8 with BF16 master weights and "
        "gradients as Transformer Engine runs them (needs FP8 tensor cores); MFU stays against the dense BF16 peak.",
    )
    fp8_recipe: Fp8Recipe = Field(
        Fp8Recipe.TENSORWISE,
        description="With precision fp8: tensorwise (one scale per tensor), blockwise (DeepSeek-V3's 1x128 / 128x128) or mxfp8 (Blackwell). "
        "Another recipe than the default without fp8 is a 422.",
    )
    grad_reduce_dtype: GradReduceDtype | None = Field(None, description=GRAD_REDUCE_DESCRIPTION)
    attention_kernel: str | None = Field(
        None,
        max_length=32,
        description="The attention implementation whose measured rates time the attention core: flash2, flash3, cudnn (Hopper), "
        "flash4 (Blackwell); default the GPU family's (cudnn on Hopper, flash2 on Ampere).",
    )
    tp_comm_overlap: bool = Field(
        False,
        description="Tensor-parallel collectives pipelined with their GEMMs (Megatron-Core --tp-comm-overlap); default exposed.",
    )
    tp_comm_overlap_rs_dgrad: bool = Field(
        False,
        description="With tp_comm_overlap and sequence parallelism: the reduce-scatters of the QKV and up projections' input "
        "gradients pipelined with those GEMMs (Megatron-Core --tp-comm-overlap-rs-dgrad). Default false, Megatron-Core's: "
        "they overlap the weight-gradient GEMMs instead, which a fine-tune's frozen base does not run, so there they are exposed.",
    )
    ep_comm_overlap: bool = Field(
        False,
        description="Expert-parallel all-to-alls overlapped with another micro-batch's compute (Megatron-Core "
        "--overlap-moe-expert-parallel-comm); default exposed (DualPipe schedules hide them anyway). Mixtures only (a 422 on a "
        "dense model).",
    )
    moe_max_nodes_per_token: int | None = Field(
        None,
        ge=1,
        le=4096,
        description="Node-limited routing: each token's experts on at most this many nodes (DeepSeek-V3: 4); "
        "default unlimited (experts chosen uniformly). Sets the scale-out traffic of the expert all-to-alls. Mixtures only.",
    )
    moe_load_imbalance: float = Field(
        1.0,
        ge=1,
        le=64,
        description="Routed tokens of the busiest expert-parallel rank over the mean (its expert GEMMs and "
        "all-to-alls wait for it); default 1.0: balanced, as the published MoE benchmarks force it. Dropless runs without "
        "balancing see more. Mixtures only (a 422 on a dense model).",
    )
    moe_dispatcher: MoeDispatcher = Field(
        MoeDispatcher.DEEPEP,
        description="How the expert all-to-alls move tokens: deepep (DeepEP / HybridEP, Megatron-Core's flex dispatcher: "
        "a token crosses the network once per node holding its experts; the default) or alltoall (NCCL all-to-all: "
        "every routed copy on its own, and two more permutation passes). Mixtures only (a 422 on a dense model).",
    )
    expert_tensor_parallel: int | None = Field(
        None,
        ge=1,
        le=1,
        description="1: MoE parallel folding (Megatron-Core): whole experts on each rank, expert parallelism "
        "across the tensor- and data-parallel ranks (ep divides tp*dp); default unset: the experts split over tp like the rest. "
        "Mixtures only (a 422 on a dense model).",
    )
    fused_kernels: bool = Field(
        True,
        description="Element-wise work (norms, rotary, activation) in fused kernels, as Megatron-LM / Transformer Engine or "
        "torch.compile run it; false: PyTorch eager, one kernel per op, each intermediate through HBM.",
    )
    cross_entropy: CrossEntropy | None = Field(
        None,
        description="How the loss runs over the last stage's logits s*b*V/t, for the per-GPU memory: `fused` (Megatron's "
        "vocab-parallel cross entropy, in place on the fp32 softmax: 4 bytes a logit, Korthikanti et al. 2022 §4.3) or "
        "`eager` (PyTorch's F.cross_entropy on logits upcast to fp32, as torchtitan and transformers' ForCausalLMLoss call "
        "it: 12 bytes a logit at its backward's peak; 16 on tp > 1 vocabulary shards, PyTorch's loss_parallel). Default "
        "null: fused, the planner's Megatron-LM count.",
    )
    cuda_graphs: bool = Field(
        False,
        description="The layers' kernels captured in CUDA graphs (Megatron-Core --enable-cuda-graph, NeMo LAYER_CUDA_GRAPH): "
        "the host launches a layer at once. Default false (eager): a fine-tune's adapted layer is no faster than the host "
        "issues its kernels, the GPU's adapter_layer_host_seconds per micro-batch (fitted, stated in assumptions). LoRA/QLoRA "
        "only: pre-training's layers (a mixture's too) and a full fine-tune's have no such floor to lift (a 422).",
    )
    efficiency: EfficiencyOverrides | None = Field(None, description="Kernel efficiencies instead of the GPU's.")

    @model_validator(mode="after")
    def _recipe_with_fp8(self) -> StepTimeOptions:
        check_precision_options(self)
        if self.tp_comm_overlap_rs_dgrad and not self.tp_comm_overlap:
            raise InvalidSpecError(
                "tp_comm_overlap_rs_dgrad",
                "tp_comm_overlap_rs_dgrad pipelines collectives that only tp_comm_overlap overlaps: set both",
            )
        return self


class PlanMemory(Schema):
    weights_bytes: Bytes
    gradients_bytes: Bytes
    optimizer_bytes: Bytes
    activations_bytes: Bytes


class StepTimeParts(Schema):
    """Seconds of one optimizer step by part; they sum to ``step_time_seconds``. Communication
    parts are what is exposed (not hidden under compute)."""

    compute_seconds: float = Field(description="Forward and backward: matmuls, attention, element-wise kernels, output layer.")
    recompute_seconds: float = Field(description="The forward work recomputation repeats.")
    tp_comm_seconds: float = Field(description="Tensor-parallel all-reduces (or reduce-scatter + all-gather).")
    cp_comm_seconds: float = Field(description="Context-parallel K/V ring exchange beyond the attention it hides under.")
    ep_comm_seconds: float = Field(description="Expert-parallel all-to-alls.")
    pp_comm_seconds: float = Field(description="Pipeline point-to-point sends.")
    bubble_seconds: float = Field(
        description="Pipeline fill and drain, by schedule: (p-1)/(v*m) of the ideal time for 1F1B and interleaved."
    )
    dp_comm_seconds: float = Field(description="Gradient reduction and ZeRO gathers beyond the compute they overlap.")
    optimizer_seconds: float = Field(description="The optimizer update (on the host with offload).")
    host_seconds: float = Field(
        description="The GPU waiting on the host: Mixture-of-Experts layers whose kernels take less time than the host "
        "needs to issue them (and, dropless, to read their token counts), and a fine-tune's adapted layers run eagerly "
        "(without cuda_graphs) on small micro-batches; 0 for dense pre-training."
    )


class PlanStage(Schema):
    """One pipeline stage of a plan over pools: ``dp`` x ``tp`` GPUs of one type holding ``layers``
    layers; its step-time parts sum to the plan's step (what it waits for is its bubble). In
    data-parallel groups of different types, each group's stages have its own micro-batch size,
    count and recompute, and, where the groups' splits differ, its own tp, stage count and ZeRO stage."""

    gpu: str
    n_gpus: int = Field(description="dp x tp GPUs of this stage.")
    layers: int
    tp: int
    dp: int
    micro_batch_size: int
    gradient_accumulation_steps: int = Field(description="Micro-batches per optimizer step on each of this stage's pipelines.")
    recompute: Recompute
    zero_stage: int = Field(
        description="ZeRO stage of this stage's data-parallel ranks: the plan's, except in data-parallel groups of their own "
        "splits, where each group takes its own (sharding over that group's replicas alone)."
    )
    group: int = Field(
        description="The data-parallel group the stage belongs to: 0 for every stage of a pipeline across pools; data-parallel "
        "groups of different types number their groups, each a pipeline on one pool: of `pp` stages when every group shares one "
        "tp x pp split (one gradient ring over every replica of every group), or of its own stages and tp when the groups' "
        "splits differ (each group reduces over its own replicas, then the groups all-reduce across: `cross_group_seconds`)."
    )
    per_gpu_total_bytes: Bytes
    per_gpu: PlanMemory
    step_time: StepTimeParts


class PlanItem(Schema):
    gpu: str
    n_gpus: int
    tp: int
    pp: int
    dp: int
    cp: int
    ep: int
    zero_stage: int
    micro_batch_size: int
    gradient_accumulation_steps: int = Field(description="Micro-batches per optimizer step on each pipeline.")
    recompute: Recompute
    sequence_parallel: bool
    virtual_stages: int
    offload_optimizer: bool
    pipeline_schedule: PipelineSchedule = Field(description="The schedule whose bubble and in-flight memory the plan has.")
    per_gpu_total_bytes: Bytes = Field(description="Busiest pipeline stage, as /v1/memory/training answers.")
    per_gpu: PlanMemory
    cpu_offload_bytes: Bytes
    step_time_seconds: float
    step_time: StepTimeParts
    tokens_per_second: float = Field(description="Whole cluster, steady state.")
    tflops_per_gpu: float = Field(description="Achieved model FLOP/s per GPU, 10^12.")
    mfu: float
    hfu: float
    training_hours: float | None = Field(description="With tokens: wall clock, after the effective-time fraction.")
    gpu_hours: float | None
    energy_kwh: EnergyKwh = None
    co2e_tonnes: Co2eTonnes = None
    cost_usd: float | None
    stages: list[PlanStage] | None = Field(
        None,
        description="A plan over pools: its pipeline stages, first to last, each on one GPU type (null on one GPU type). "
        "`gpu` then names the types, `tp` the largest stage's, `pp` the stages, `per_gpu` the stage with the most bytes. "
        "Data-parallel groups of different types list each group's stages (`group`); `pp` is then each group's stages (the "
        "largest group's where the groups' splits differ), `dp` the replicas of all groups, and `micro_batch_size`, "
        "`gradient_accumulation_steps`, `recompute`, `zero_stage` and `tp` the largest group's. Groups of one shared tp x pp reduce "
        "their gradients in one ring over every replica at the slowest link between the pools (ZeRO over all replicas); "
        "groups of their own splits each reduce over their own replicas on their own network (ZeRO over their own), then "
        "all-reduce across the groups (`cross_group_seconds`).",
    )
    cross_group_seconds: float | None = Field(
        None,
        description="Data-parallel groups of their own tp x pp splits: seconds a step of the all-reduce across the groups after "
        "each group's own reduction (each GPU's 1/n_k share of the gradients, a ring over the groups on each group's own "
        "scale-out link capped by the link between the pools, the slowest group setting the pace), exposed and counted in "
        "every group's `dp_comm_seconds`. Null on one GPU type, for a pipeline "
        "across pools (each stage reduces over its own ranks) and for groups of one shared split (one ring over every replica).",
    )
    spot: SpotDetail | None = Field(
        None,
        description="A fleet holding spot GPUs (POST /v1/plan with max_n_gpus): the interruptions, checkpoints and restarts "
        "its training_hours, gpu_hours and cost_usd include (expected values, Daly 2006); null otherwise.",
    )
