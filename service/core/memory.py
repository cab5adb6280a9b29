"""Training and inference memory.

Weights, gradients and optimizer states follow Rajbhandari et al. 2020 (ZeRO, §3 and §5);
activations follow Korthikanti et al. 2022 (:mod:`service.core.activations`); inference follows
Transformers Math 101 (Anthony, Biderman & Schoelkopf 2023, "Inference": total ≈ 1.2 × weights
plus the KV cache). All byte counts are exact integers (rounded up where a term is fractional).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from service.core.activations import ActivationOptions, StageActivations, stage_activation_bytes
from service.core.architecture import Architecture, Ffn, ModelShape
from service.core.compute import Recompute, require_architecture
from service.core.dtypes import Dtype, tensor_bytes
from service.core.errors import InvalidSpecError
from service.core.fp8 import BF16_OPS, Fp8Recipe, weight_copy_bytes_per_param
from service.core.kernels import MEGATRON, AttentionKernel, Kernels, resolve_kernels
from service.core.limits import check_bytes
from service.core.params import (
    attention_params_per_layer,
    count_params,
    dense_mlp_params,
    mlp_params_per_expert,
    norm_params,
    router_params_per_layer,
    shared_expert_params_per_layer,
)
from service.core.pipeline import (
    SCHEDULE_CODES,
    PipelineSchedule,
    default_schedule,
    max_chunks,
    parameter_copies,
    schedule_problem,
    stage_layers,
)

INFERENCE_OVERHEAD_FRACTION = 0.2  # Transformers Math 101: total ≈ 1.2 × model memory


class Precision(StrEnum):
    """Training number formats.

    ``mixed_bf16``/``mixed_fp16``: 16-bit weights and gradients with an fp32 master copy and
    fp32 optimizer states (Micikevicius et al. 2018; ZeRO §3: 2 + 2 + 12 bytes/param with AdamW).
    ``bf16``: everything in bf16, no master copy. ``fp32``: everything in fp32. ``fp8``:
    mixed bf16 with the blocks' matmuls in FP8 and FP8 copies of their weights
    (:mod:`service.core.fp8`).
    """

    MIXED_BF16 = "mixed_bf16"
    MIXED_FP16 = "mixed_fp16"
    BF16 = "bf16"
    FP32 = "fp32"
    FP8 = "fp8"


class Optimizer(StrEnum):
    ADAMW = "adamw"
    ADAMW_8BIT = "adamw_8bit"
    SGD_MOMENTUM = "sgd_momentum"
    SGD = "sgd"
    ADAFACTOR = "adafactor"
    LION = "lion"


@dataclass(frozen=True, kw_only=True, slots=True)
class PrecisionBytes:
    """Bytes per parameter of the weights, the gradients and the master copy, and bytes per
    optimizer-state element (fp32 states under mixed precision)."""

    weight: int
    gradient: int
    master: int
    state: int
    activation: int


PRECISION_BYTES: dict[Precision, PrecisionBytes] = {
    Precision.MIXED_BF16: PrecisionBytes(weight=2, gradient=2, master=4, state=4, activation=2),
    Precision.MIXED_FP16: PrecisionBytes(weight=2, gradient=2, master=4, state=4, activation=2),
    Precision.BF16: PrecisionBytes(weight=2, gradient=2, master=0, state=2, activation=2),
    Precision.FP32: PrecisionBytes(weight=4, gradient=4, master=0, state=4, activation=4),
    Precision.FP8: PrecisionBytes(weight=2, gradient=2, master=4, state=4, activation=2),
}


def fp8_copy_params(model: ModelShape, params: int) -> float:
    """The matmul weights among ``params`` of a shard (the blocks' share of all parameters:
    embeddings, the output layer and norms keep no FP8 copy), for :mod:`service.core.fp8`."""
    if not isinstance(model, Architecture):
        return float(params)
    b = count_params(model)
    return params * (b.attention + b.mlp) / b.total


# Dettmers et al. 2022 ("8-bit Optimizers via Block-wise Quantization") use blocks of 2048 (§2);
# bitsandbytes' AdamW8bit, what users run, keeps one fp32 absmax per 256 values of each state
# (measured: ACCURACY.md)
EIGHT_BIT_BLOCK = 256

# The process's CUDA context: the driver's state, the kernels loaded so far (lazily since CUDA 11.7,
# PyTorch's default) and local memory reserved for every resident thread. PyTorch's maintainers put
# it at "around 400MB if CUDA >= 11.7 is used and lazy module loading enabled" (pytorch/pytorch
# issue 109888); 426 MiB is what nvidia-smi showed after the first CUDA call with PyTorch 2.10 and
# CUDA 13.0 on an RTX 6000 Ada (unslothai/unsloth-zoo pull request 1053). Loaded eagerly, the kernels
# alone take 1-2 GB (transformers docs, "Model training anatomy": 1,343 MB). It grows with the SM
# count and the libraries loaded (cuBLAS, NCCL); nvidia-smi's figure less
# torch.cuda.memory_reserved() measures it.
CUDA_CONTEXT_BYTES = 426 * 2**20


def factored_elements(arch: Architecture) -> tuple[int, int]:
    """Adafactor's second-moment elements, and how many parameters they stand for.

    Shazeer & Stern 2018 ("Adafactor", §3): an ``n x m`` matrix keeps a row and a column
    accumulator (``n + m`` values) instead of ``n*m``; vectors (norms, biases) keep a full one.
    Returns (elements kept for the matrices, parameters in those matrices).
    """
    h, f, q, kv = arch.d_model, arch.d_ff, arch.q_dim, arch.kv_dim
    mlp_matrices = 3 if arch.ffn is Ffn.SWIGLU else 2
    if arch.is_mla:  # MLA's projections (DeepSeek-V2 §2.1): (rows, cols) of each matrix
        a, d_c, rope = arch.n_heads, arch.kv_lora_rank or 0, arch.qk_rope_head_dim or 0
        nope, d_v, d_q = arch.qk_nope_head_dim or 0, arch.v_head_dim or 0, arch.q_lora_rank
        queries = [(h, d_q), (d_q, a * (nope + rope))] if d_q else [(h, a * (nope + rope))]
        attention = [*queries, (h, d_c + rope), (d_c, a * (nope + d_v)), (a * d_v, h)]
    else:
        attention = [(h, q), (h, kv), (h, kv), (q, h)]
    per_layer_factored = sum(r + c for r, c in attention)
    per_layer_params = sum(r * c for r, c in attention)
    factored = arch.n_layers * per_layer_factored + (arch.vocab_size + h)
    params = arch.n_layers * per_layer_params + arch.vocab_size * h
    if arch.is_moe:  # routed experts + router + shared experts in the MoE layers, one MLP in the dense ones
        f_shared, f_dense = arch.shared_expert_width, arch.d_ff_dense or f  # the shared experts: one MLP that wide
        shared_factored = mlp_matrices * (h + f_shared) if f_shared else 0
        factored += arch.moe_layers * (
            arch.n_experts * mlp_matrices * (h + f) + (h + arch.n_experts) + shared_factored
        ) + arch.dense_mlp_layers * mlp_matrices * (h + f_dense)
        params += (
            arch.moe_layers * (arch.n_experts * mlp_matrices * h * f + h * arch.n_experts + mlp_matrices * h * f_shared)
            + arch.dense_mlp_layers * mlp_matrices * h * f_dense
        )
    else:
        factored += arch.n_layers * mlp_matrices * (h + f)
        params += arch.n_layers * mlp_matrices * h * f
    if arch.learned_position_rows:
        factored += arch.learned_position_rows + h
        params += arch.learned_position_rows * h
    if not arch.tied_embeddings:
        factored += arch.vocab_size + h
        params += arch.vocab_size * h
    return factored, params


def optimizer_state_bytes(n_params: float, optimizer: Optimizer, precision: Precision, arch: Architecture | None = None) -> int:
    """Bytes of optimizer state for ``n_params`` parameters, fp32 master copy included.

    - AdamW: momentum and variance (Loshchilov & Hutter 2019) → mixed precision 4 + 4 + 4 = 12
      bytes/param (ZeRO §3, K = 12).
    - 8-bit AdamW: both states in 1 byte plus an fp32 absmax per block (Dettmers et al. 2022;
      bitsandbytes' blocks of 256) → 4 + 2 + 8/256 bytes/param under mixed precision
      (bitsandbytes keeps tensors under 4096 values in 32 bits: norms, biases).
    - SGD with momentum: one state (4 + 4 = 8); plain SGD: only the master copy (4).
    - Adafactor without momentum (β1 = 0, its default): factored second moment (Shazeer & Stern
      2018 §3), a few bytes per matrix row and column; needs the shapes, else counted as 0.
    - Lion: one momentum state (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms",
      §2): 4 + 4 = 8.
    """
    pb = PRECISION_BYTES[precision]
    master = pb.master * n_params
    if optimizer is Optimizer.ADAMW:
        states = 2 * pb.state * n_params
    elif optimizer is Optimizer.ADAMW_8BIT:
        states = 2 * n_params + 2 * 4 * n_params / EIGHT_BIT_BLOCK
    elif optimizer in (Optimizer.SGD_MOMENTUM, Optimizer.LION):
        states = pb.state * n_params
    elif optimizer is Optimizer.SGD:
        states = 0.0
    else:  # Adafactor
        if arch is None:
            states = 0.0
        else:
            total = count_params(arch).total
            factored, matrix_params = factored_elements(arch)
            states = pb.state * (factored + (total - matrix_params)) * n_params / total
    return math.ceil(master + states)


@dataclass(frozen=True, kw_only=True, slots=True)
class Parallelism:
    """3D parallelism and ZeRO: ``dp`` data-parallel, ``tp`` tensor-parallel, ``pp`` pipeline
    stages; ``zero_stage`` 0-3 shards optimizer states (1), gradients (2) and weights (3) over
    the ``dp * cp`` ranks that hold the same weights (Rajbhandari et al. 2020 §5; Megatron-LM's
    distributed optimizer shards over data- and context-parallel ranks); ``offload_optimizer``
    keeps the optimizer states and the master copy in host memory (Ren et al. 2021,
    ZeRO-Offload). ``cp`` context-parallel ranks split each sequence (ring attention, Liu et al.
    2023); ``ep`` expert-parallel ranks split a mixture's experts, carved out of the
    data-parallel ranks (Lepikhin et al. 2020, GShard §2.2); ``virtual_stages`` interleaved
    pipeline chunks per GPU (Narayanan et al. 2021 §2.2.2); ``pipeline_schedule`` how the stages
    run (:mod:`service.core.pipeline`; default: interleaved with ``virtual_stages > 1``, else 1F1B)."""

    dp: int = 1
    tp: int = 1
    pp: int = 1
    cp: int = 1
    ep: int = 1
    virtual_stages: int = 1
    sequence_parallel: bool = False
    zero_stage: int = 0
    offload_optimizer: bool = False
    pipeline_schedule: PipelineSchedule | None = None
    expert_tensor_parallel: int | None = None

    @property
    def etp(self) -> int:
        """The experts' own tensor-parallel size: ``tp`` unless set; 1 is Megatron-Core's MoE
        parallel folding (Liu et al. 2025, "MoE Parallel Folding"): whole experts, expert parallelism
        across the tensor- and data-parallel ranks."""
        return self.expert_tensor_parallel or self.tp

    @property
    def expert_fold(self) -> int:
        """How many more ranks share an expert's ZeRO shard under folding: ``tp / etp``."""
        return self.tp // self.etp

    @property
    def schedule(self) -> PipelineSchedule:
        """The pipeline schedule, the default one when none is named."""
        return self.pipeline_schedule or default_schedule(self.virtual_stages)

    @property
    def n_gpus(self) -> int:
        return self.dp * self.tp * self.pp * self.cp

    @property
    def zero_shards(self) -> int:
        """Ranks that hold the same weights and share their optimizer states under ZeRO."""
        return self.dp * self.cp


def validate_parallelism(par: Parallelism, model: ModelShape, microbatches: int | None = None) -> None:
    """Reject layouts that cannot run: tp must divide the heads, pp cannot exceed the layers,
    interleaving needs pp > 1 and (Megatron-LM's rule) micro-batches in multiples of pp."""
    if par.zero_stage not in (0, 1, 2, 3):
        raise InvalidSpecError("parallelism.zero_stage", "must be 0, 1, 2 or 3")
    if par.virtual_stages > 1 and par.pp == 1:
        raise InvalidSpecError("parallelism.virtual_stages", "interleaving needs pp > 1")
    if par.pp > 1 and (problem := schedule_problem(par.schedule, par.pp, par.virtual_stages, microbatches)):
        raise InvalidSpecError("parallelism.pipeline_schedule", problem)
    if par.virtual_stages > 1 and microbatches is not None and microbatches % par.pp:
        raise InvalidSpecError(
            "gradient_accumulation_steps", f"the interleaved schedule needs micro-batches in multiples of pp={par.pp}"
        )
    if par.offload_optimizer and par.zero_stage == 0:
        raise InvalidSpecError("parallelism.offload_optimizer", "optimizer offload needs zero_stage 1, 2 or 3 (ZeRO-Offload)")
    if isinstance(model, Architecture):
        if model.n_heads % par.tp:
            raise InvalidSpecError("parallelism.tp", f"tp={par.tp} does not divide n_heads={model.n_heads}")
        if model.n_kv_heads % par.tp and par.tp % model.n_kv_heads:
            raise InvalidSpecError(
                "parallelism.tp",
                f"tp={par.tp} and n_kv_heads={model.n_kv_heads}: one must divide the other",
            )
        if par.pp > model.n_layers:
            raise InvalidSpecError("parallelism.pp", f"pp={par.pp} exceeds n_layers={model.n_layers}")
        if par.virtual_stages > 1 and (par.pp == 1 or par.pp * par.virtual_stages > max_chunks(model.n_layers)):
            raise InvalidSpecError(
                "parallelism.virtual_stages",
                f"interleaving needs pp > 1 and at least one of the n_layers={model.n_layers} layers per chunk (the embedding and the output layer may fill one each)",
            )
        if par.etp not in (1, par.tp):
            raise InvalidSpecError("parallelism.expert_tensor_parallel", f"must be 1 (parallel folding) or tp={par.tp}")
        if par.ep > 1 and (model.n_experts % par.ep or (par.dp * par.expert_fold) % par.ep):
            ranks = f"tp*dp={par.tp * par.dp}" if par.expert_fold > 1 else f"dp={par.dp}"
            raise InvalidSpecError("parallelism.ep", f"ep={par.ep} must divide n_experts={model.n_experts} and {ranks}")


def params_per_gpu(model: ModelShape, par: Parallelism) -> int:
    """Parameters held by one GPU of the busiest pipeline stage before ZeRO-3 sharding.

    With the architecture: the first stage holds the embedding and its layers, a middle stage
    :func:`~service.core.activations.layers_per_stage` layers (``ceil(L/pp)`` without
    interleaving), the last stage its layers, the final norm and the LM head (a tied head is a
    second copy when pp > 1, as in Megatron-LM); the first and last stages hold one layer fewer
    where the stages have room (:func:`service.core.pipeline.stage_layers`); each stage's shard is
    counted from its own layers and the largest is the busiest. Matrices are split over ``tp``,
    norms are replicated (Shoeybi et al. 2019 §3), K/V projections split over at most
    ``n_kv_heads`` ranks (GQA heads are replicated beyond that), routed experts over ``ep`` (and
    over ``tp``, or whole under parallel folding). DualPipe keeps two copies
    (:func:`service.core.pipeline.parameter_copies`). With only a count: ``P / (tp * pp)``.
    """
    return _busiest_shard(model, par)[0]


def _busiest_shard(model: ModelShape, par: Parallelism) -> tuple[int, int]:
    """(parameters, of which routed experts) on one GPU of the stage with the most parameters."""
    copies = int(parameter_copies(SCHEDULE_CODES[par.schedule])) if par.pp > 1 else 1
    if not isinstance(model, Architecture):
        return copies * math.ceil(model.n_params / (par.tp * par.pp)), 0
    b = count_params(model)
    norm = norm_params(model)
    layer_norms = model.norms_per_layer * norm
    if par.pp == 1:
        stages = [(model.n_layers, b.total, b.norm)]
    else:
        first_layers, layers, last_layers = stage_layers(model.n_layers, par.pp, par.virtual_stages)
        head = model.vocab_size * model.d_model + (model.vocab_size if model.lm_head_bias else 0)
        embedding = b.embedding + (norm if model.embedding_norm else 0)
        stages = [
            (first_layers, embedding + stage_block_params(model, first_layers) + first_layers * layer_norms),
            (last_layers, stage_block_params(model, last_layers) + last_layers * layer_norms + norm + head),
        ]
        if par.pp > 2:
            stages.append((layers, stage_block_params(model, layers) + layers * layer_norms))
        stages = [(k, total, k * layer_norms + norm) for k, total in stages]
    # with more tensor-parallel ranks than KV heads, each rank keeps a whole KV head (replicated)
    kv_ranks = min(par.tp, model.n_kv_heads)
    kv_bias = model.bias or model.qkv_bias or model.attention_bias
    kv_per_layer = 2 * model.d_model * model.kv_dim + (2 * model.kv_dim if kv_bias else 0)
    per_expert = mlp_params_per_expert(model)
    best = (-1, 0)
    for layers, total, norms in stages:
        kv_replication = layers * kv_per_layer * (1 / kv_ranks - 1 / par.tp)
        # expert parallelism: each rank keeps n_experts / ep of every layer's experts
        moe_layers = min(layers, model.moe_layers)  # a mixture's first dense layers hold no experts
        elsewhere = moe_layers * (model.n_experts - model.n_experts // par.ep) * per_expert
        local = moe_layers * (model.n_experts // par.ep) * per_expert
        if par.etp == par.tp:
            shard = math.ceil((total - norms - elsewhere) / par.tp + kv_replication) + norms
        else:  # whole experts under parallel folding
            shard = math.ceil((total - norms - elsewhere - local) / par.tp + local / par.etp + kv_replication) + norms
        experts = math.ceil(local / par.etp) if model.is_moe and par.ep > 1 else 0
        best = max(best, (shard, experts))
    return copies * best[0], copies * best[1]


def stage_block_params(arch: Architecture, layers: int) -> int:
    """Attention and MLP parameters of ``layers`` layers of a stage: a mixture's stage is counted
    with as many of its layers routed-expert layers as the model has (the busiest case), the rest
    dense (DeepSeek's first dense layers)."""
    moe = min(layers, arch.moe_layers)
    moe_layer = (
        arch.n_experts * mlp_params_per_expert(arch) + router_params_per_layer(arch) + shared_expert_params_per_layer(arch)
    )
    return layers * attention_params_per_layer(arch) + moe * moe_layer + (layers - moe) * dense_mlp_params(arch)


def expert_params_per_gpu(model: ModelShape, par: Parallelism) -> int:
    """The routed experts' share of :func:`params_per_gpu`: ``n_experts / ep`` expert MLPs per
    layer of the busiest stage, split over ``tp``. Each is replicated over only ``dp*cp/ep``
    ranks, so ZeRO shards it over those (Megatron-Core's expert data-parallel group; Rajbhandari
    et al. 2022, DeepSpeed-MoE §5). 0 for a dense model or ``ep = 1`` (the experts then follow
    the dense parameters)."""
    return _busiest_shard(model, par)[1]


def zero_sharded_bytes(dense_bytes: int, expert_bytes: int, *, sharded: bool, shards: int, ep: int, fold: int = 1) -> int:
    """Bytes left on one GPU after ZeRO: the dense part over ``shards`` ranks, the expert part
    over ``shards * fold / ep`` (``fold`` = tp / etp under parallel folding; rounded up each);
    unchanged when this stage does not shard the term."""
    if not sharded:
        return dense_bytes + expert_bytes
    return math.ceil(dense_bytes / shards) + math.ceil(expert_bytes * ep / (shards * fold))


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainingMemory:
    """Per-GPU training memory of the busiest pipeline stage, and host memory for offload."""

    params_per_gpu: int
    weights_bytes: int
    gradients_bytes: int
    optimizer_bytes: int
    activations_bytes: int
    total_bytes: int
    cpu_offload_bytes: int
    activations: StageActivations | None
    bytes_per_param: dict[str, float]
    formulas: tuple[str, ...]
    notes: tuple[str, ...]
    resident_params_per_gpu: int = 0  # after ZeRO-3 sharding (params_per_gpu is the tp x pp shard before it)


def training_memory(
    model: ModelShape,
    *,
    precision: Precision = Precision.MIXED_BF16,
    optimizer: Optimizer = Optimizer.ADAMW,
    parallelism: Parallelism = Parallelism(),
    micro_batch_size: int = 1,
    seq_len: int | None = None,
    recompute: Recompute = Recompute.NONE,
    flash_attention: bool = False,
    dropout: bool = False,
    include_activations: bool = True,
    microbatches: int | None = None,
    kernels: Kernels = Kernels(),
    fp8_recipe: Fp8Recipe = Fp8Recipe.TENSORWISE,
) -> TrainingMemory:
    """Memory per GPU for training ``model``.

    weights ``P_gpu * w``, gradients ``P_gpu * g``, optimizer ``K * P_gpu`` with P_gpu the
    parameters of one tp×pp shard; ZeRO stage 1 divides the optimizer term by ``dp``, stage 2 the
    gradients too, stage 3 the weights too (Rajbhandari et al. 2020 §5.1, Figure 1: 7.5B
    parameters, dp = 64 → 120 GB, 31.4 GB, 16.6 GB, 1.9 GB). Activations are not sharded by ZeRO
    (:func:`service.core.activations.stage_activation_bytes`) and depend on the implementation's
    ``kernels`` (:mod:`service.core.kernels`; transformers with SDPA unless stated).
    """
    validate_parallelism(parallelism, model, microbatches)
    par = parallelism
    pb = PRECISION_BYTES[precision]
    arch = model if isinstance(model, Architecture) else None
    notes: list[str] = []
    p_gpu = params_per_gpu(model, par)
    p_expert = expert_params_per_gpu(model, par)
    p_dense = p_gpu - p_expert
    if optimizer is Optimizer.ADAFACTOR and arch is None:
        notes.append("Adafactor's factored second moment needs the shapes; counted as 0 bytes")
    shards, z, ep, fold = par.zero_shards, par.zero_stage, par.ep, par.expert_fold
    optimizer_total = zero_sharded_bytes(
        optimizer_state_bytes(p_dense, optimizer, precision, arch),
        optimizer_state_bytes(p_expert, optimizer, precision, arch) if p_expert else 0,
        sharded=z >= 1,
        shards=shards,
        ep=ep,
        fold=fold,
    )
    gradients = zero_sharded_bytes(pb.gradient * p_dense, pb.gradient * p_expert, sharded=z >= 2, shards=shards, ep=ep, fold=fold)
    weights = zero_sharded_bytes(pb.weight * p_dense, pb.weight * p_expert, sharded=z >= 3, shards=shards, ep=ep, fold=fold)
    if precision is Precision.FP8 and z < 3:  # the FP8 row- and column-wise copies of the matmul weights (service.core.fp8)
        per_param = weight_copy_bytes_per_param(fp8_recipe)
        weights += math.ceil(per_param * fp8_copy_params(model, p_dense)) + math.ceil(
            per_param * fp8_copy_params(model, p_expert)
        )
        notes.append(f"FP8 ({fp8_recipe.value}): {per_param:g} bytes of FP8 weight copies per matmul parameter; {BF16_OPS}")
    elif precision is Precision.FP8:
        notes.append(
            f"FP8 ({fp8_recipe.value}) under ZeRO-3: weights gathered in FP8 layer by layer, no persistent FP8 copies; {BF16_OPS}"
        )
    cpu_offload = 0
    if par.offload_optimizer:
        cpu_offload, optimizer_total = optimizer_total, 0
    formulas = [
        "weights + gradients + optimizer per GPU, sharded by tp*pp and ZeRO over dp (Rajbhandari et al. 2020, ZeRO §5)",
    ]
    stage: StageActivations | None = None
    activations = 0
    if include_activations:
        arch = require_architecture(model, "activation memory")
        full_seq = seq_len or arch.max_seq_len
        k = resolve_kernels(kernels, arch, flash_attention=flash_attention)
        if par.cp > 1 and (full_seq % par.cp or k.attention is AttentionKernel.EAGER):
            raise InvalidSpecError(
                "parallelism.cp", f"context parallelism needs flash_attention and seq_len={full_seq} divisible by cp={par.cp}"
            )
        stage = stage_activation_bytes(
            arch,
            ActivationOptions(
                seq_len=full_seq // par.cp,
                micro_batch_size=micro_batch_size,
                tp=par.tp,
                sequence_parallel=par.sequence_parallel,
                recompute=recompute,
                flash_attention=flash_attention,
                dropout=dropout,
                element_bytes=pb.activation,
                kernels=kernels,
            ),
            pp=par.pp,
            virtual_stages=par.virtual_stages,
            microbatches=microbatches,
            schedule=par.schedule,
        )
        activations = stage.peak_bytes
        formulas.append(
            "activations per layer s*b*h*(10 + 24/t + 5*a*s/(h*t)) generalised to the architecture; "
            "first pipeline stage holds pp micro-batches (Korthikanti et al. 2022 §4, Table 2)"
        )
        formulas.append(
            f"kept tensors of {k.framework.value} kernels: attention {k.attention.value}, fp32 softmax {k.fp32_softmax}, "
            f"fp32 norms {k.fp32_norms}, fused activation {k.fused_activation}, K/V repeated in eager {k.repeat_kv}, "
            f"residual dropout {k.residual_dropout} (measured against PyTorch: ACCURACY.md)"
        )
    else:
        notes.append("activations not included")
    total = weights + gradients + optimizer_total + activations
    for name, value in (("weights_bytes", weights), ("total_bytes", total), ("cpu_offload_bytes", cpu_offload)):
        check_bytes(name, value)
    return TrainingMemory(
        params_per_gpu=p_gpu,
        weights_bytes=weights,
        gradients_bytes=gradients,
        optimizer_bytes=optimizer_total,
        activations_bytes=activations,
        total_bytes=total,
        cpu_offload_bytes=cpu_offload,
        activations=stage,
        bytes_per_param={
            "weights": pb.weight,
            "gradients": pb.gradient,
            "optimizer": optimizer_state_bytes(1e6, optimizer, precision, arch) / 1e6,
        },
        formulas=tuple(formulas),
        notes=tuple(notes),
        resident_params_per_gpu=zero_sharded_bytes(p_dense, p_expert, sharded=z >= 3, shards=shards, ep=ep, fold=fold),
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class InferenceMemory:
    """Serving memory: weights, KV cache and the 20 % overhead, and GPUs needed."""

    weights_bytes: int
    kv_cache_bytes: int
    kv_cache_bytes_per_token: int
    overhead_bytes: int
    total_bytes: int
    gpus_needed: int | None
    formulas: tuple[str, ...]


def kv_cache_elements_per_token_per_layer(arch: Architecture) -> int:
    """Cached values per token and layer: a key and a value per KV head, ``2*k*d_head`` (Pope et
    al. 2022 §3.1); for multi-head latent attention the compressed latent and the shared rotary key,
    ``kv_lora_rank + qk_rope_head_dim`` (DeepSeek-V2, Liu et al. 2024, §2.1.2 and Table 1: 4.5
    d_h per layer for d_c = 4 d_h, d_r = d_h/2), as DeepSeek's inference code and vLLM/SGLang cache
    it with the up-projections absorbed."""
    if arch.is_mla:
        return (arch.kv_lora_rank or 0) + (arch.qk_rope_head_dim or 0)
    return 2 * arch.kv_dim


def kv_cache_tensor_shards(arch: Architecture) -> int:
    """Ranks a layer's KV cache can be split over with tensor parallelism: one per KV head; an MLA
    latent is shared by every head, so each tensor-parallel rank keeps all of it (1)."""
    return 1 if arch.is_mla else arch.n_kv_heads


def cached_tokens(arch: Architecture, seq_len: int) -> int:
    """Token slots held over all layers after ``seq_len`` tokens: ``seq_len`` per global layer,
    ``min(seq_len, sliding_window)`` per sliding-window layer (a rolling buffer, Jiang et al. 2023,
    Mistral 7B §2 "Rolling Buffer Cache"; Gemma 2 alternates local and global layers, Gemma Team
    2024 §2)."""
    local = arch.local_layers
    window = min(seq_len, arch.sliding_window or seq_len)
    return (arch.n_layers - local) * seq_len + local * window


def kv_cache_bytes(arch: Architecture, *, seq_len: int, batch_size: int, kv_dtype: Dtype) -> int:
    """KV cache: ``2 * L * k * d_head * s * batch * bytes`` — a key and a value vector per KV
    head, layer and token (Pope et al. 2022, "Efficiently Scaling Transformer Inference" §3.1;
    GQA/MQA shrink k, Ainslie et al. 2023). Multi-head latent attention caches
    ``kv_lora_rank + qk_rope_head_dim`` values instead of ``2*k*d_head``; sliding-window layers hold
    at most ``sliding_window`` tokens (:func:`kv_cache_elements_per_token_per_layer`,
    :func:`cached_tokens`)."""
    per = kv_cache_elements_per_token_per_layer(arch)
    return tensor_bytes(per * cached_tokens(arch, seq_len) * batch_size, kv_dtype)


def inference_memory(
    model: ModelShape,
    *,
    dtype: Dtype = Dtype.BF16,
    kv_dtype: Dtype | None = None,
    batch_size: int = 1,
    seq_len: int | None = None,
    gpu_memory_bytes: int | None = None,
    weights_bytes: int | None = None,
) -> InferenceMemory:
    """Memory to serve ``model``: weights ``P * bytes(dtype)``, overhead ``0.2 * weights``
    (Transformers Math 101: total ≈ 1.2 × model memory) and the KV cache for ``batch_size``
    sequences of ``seq_len`` tokens (default the model's context). ``gpus_needed`` divides the
    total by one GPU's memory, rounded up (weights sharded with tensor parallelism).
    A bare parameter count gets a KV cache only when ``seq_len`` is 0 (no cache). The KV cache is
    bf16 unless ``kv_dtype`` says otherwise (never the weights' format silently);
    ``weights_bytes`` replaces ``P * bytes(dtype)`` where a caller counts quantisation scales
    (:func:`service.core.serving.weight_bytes`)."""
    kv_dtype = kv_dtype or Dtype.BF16
    total_params = count_params(model).total if isinstance(model, Architecture) else model.n_params
    weights = tensor_bytes(total_params, dtype) if weights_bytes is None else weights_bytes
    overhead = math.ceil(weights * INFERENCE_OVERHEAD_FRACTION)
    formulas = ["memory = 1.2 * P * bytes(dtype) + KV cache (Transformers Math 101)"]
    if seq_len == 0:
        kv, per_token = 0, 0
    else:
        arch = require_architecture(model, "the KV cache (set seq_len to 0 to leave it out)")
        kv = kv_cache_bytes(arch, seq_len=seq_len or arch.max_seq_len, batch_size=batch_size, kv_dtype=kv_dtype)
        per_token = kv_cache_bytes(arch, seq_len=1, batch_size=1, kv_dtype=kv_dtype)
        if arch.is_mla:
            formulas.append(
                "KV cache = L*(kv_lora_rank + qk_rope_head_dim)*s*batch*bytes(kv_dtype), the compressed latent "
                "(DeepSeek-V2 §2.1.2, Table 1)"
            )
        else:
            formulas.append("KV cache = 2*L*k*d_head*s*batch*bytes(kv_dtype) (Pope et al. 2022 §3.1)")
        if arch.local_layers:
            formulas.append(
                f"{arch.local_layers} of {arch.n_layers} layers cache at most sliding_window={arch.sliding_window} "
                "tokens (Mistral 7B §2, rolling buffer cache)"
            )
    total = check_bytes("total_bytes", weights + overhead + kv)
    gpus = math.ceil(total / gpu_memory_bytes) if gpu_memory_bytes else None
    return InferenceMemory(
        weights_bytes=weights,
        kv_cache_bytes=kv,
        kv_cache_bytes_per_token=per_token,
        overhead_bytes=overhead,
        total_bytes=total,
        gpus_needed=gpus,
        formulas=tuple(formulas),
    )


def device_total_bytes(tensor_bytes: int, cuda_context_bytes: int = CUDA_CONTEXT_BYTES) -> int:
    """GPU memory a process needs: its tensors plus its CUDA context (:data:`CUDA_CONTEXT_BYTES`), the
    part ``torch.cuda.memory_allocated`` never shows and ``nvidia-smi`` always does. Allocator
    fragmentation and communication buffers are not in it."""
    return check_bytes("device_total_bytes", tensor_bytes + cuda_context_bytes)


def smallest_training_footprint(
    model: ModelShape, *, n_gpus: int, seq_len: int | None = None, cuda_context_bytes: int = CUDA_CONTEXT_BYTES
) -> int:
    """The least per-GPU training memory, CUDA context included (:func:`device_total_bytes`), over
    sensible layouts of ``n_gpus`` GPUs: tensor
    parallelism 1/2/4/8 inside a node (where it divides the heads and the GPU count), data
    parallelism over the rest with ZeRO-3, full recompute, FlashAttention, micro-batch 1,
    mixed-precision AdamW, Megatron-LM's kernels (as the planner lays them out). A GPU whose
    memory is below this cannot hold the job at any reasonable parallelism (a smaller micro-batch
    or more offload is not tried)."""
    best: int | None = None
    for tp in (1, 2, 4, 8):
        if tp > n_gpus or n_gpus % tp:
            continue
        par = Parallelism(dp=n_gpus // tp, tp=tp, zero_stage=3, sequence_parallel=tp > 1)
        try:
            validate_parallelism(par, model)
        except InvalidSpecError:
            continue
        r = training_memory(
            model,
            parallelism=par,
            recompute=Recompute.FULL,
            flash_attention=True,
            seq_len=seq_len,
            include_activations=isinstance(model, Architecture),
            kernels=MEGATRON,
        )
        best = r.total_bytes if best is None else min(best, r.total_bytes)
    assert best is not None  # tp = 1 is always valid
    return device_total_bytes(best, cuda_context_bytes)
