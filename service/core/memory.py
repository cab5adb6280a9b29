"""Training and inference memory.

Weights, gradients and optimizer states follow Rajbhandari et al. 2020 (ZeRO, §3 and §5);
activations follow Korthikanti et al. 2022 (:mod:`service.core.activations`); inference follows
Transformers Math 101 (Anthony, Biderman & Schoelkopf 2023, "Inference": total ≈ 1.2 × weights
plus the KV cache; :mod:`service.core.inference`, whose names this module re-exports). The parallel
layouts and the parameters each GPU holds are in :mod:`service.core.parallelism`, also re-exported.
All byte counts are exact integers (rounded up where a term is fractional).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from service.core.activations import (
    ActivationOptions,
    StageActivations,
    activation_formulas,
    pick,
    round_up,
    stage_activation_bytes,
)
from service.core.architecture import Architecture, Ffn, LayerType, ModelShape
from service.core.compute import Recompute, require_architecture
from service.core.errors import InvalidSpecError
from service.core.fp8 import BF16_OPS, Fp8Recipe, gathered_weight_bytes_per_param, linear_input_bytes, weight_copy_bytes_per_param
from service.core.gradients import GradReduceDtype, grad_formula, resolve_gradient_bytes
from service.core.inference import INFERENCE_OVERHEAD_FRACTION as INFERENCE_OVERHEAD_FRACTION
from service.core.inference import InferenceMemory as InferenceMemory
from service.core.inference import cached_tokens as cached_tokens
from service.core.inference import inference_memory as inference_memory
from service.core.inference import kv_cache_bytes as kv_cache_bytes
from service.core.inference import kv_cache_elements_per_token_per_layer as kv_cache_elements_per_token_per_layer
from service.core.inference import kv_cache_tensor_shards as kv_cache_tensor_shards
from service.core.inference import recurrent_state_dtype as recurrent_state_dtype
from service.core.inference import state_cache_bytes_per_sequence as state_cache_bytes_per_sequence
from service.core.kernels import MEGATRON, AttentionKernel, Kernels, ResolvedKernels, resolve_kernels
from service.core.limits import check_bytes
from service.core.parallelism import (
    Parallelism,
    context_parallel_problem,
    end_params_per_gpu,
    expert_params_per_gpu,
    params_per_gpu,
    validate_parallelism,
)
from service.core.parallelism import stage_block_params as stage_block_params
from service.core.params import count_params


class Precision(StrEnum):
    """Training number formats.

    ``mixed_bf16``/``mixed_fp16``: 16-bit weights and gradients with an fp32 master copy and
    fp32 optimizer states (Micikevicius et al. 2018; ZeRO §3: 2 + 2 + 12 = 16 bytes/param with AdamW;
    2 + 4 + 12 = 18 with the fp32 gradients Megatron-LM keeps under ``--bf16``, ``grad_reduce_dtype``
    fp32: :mod:`service.core.gradients`).
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
    """Bytes per parameter of the weights and the master copy, and bytes per optimizer-state element
    (fp32 states under mixed precision); the gradients' are :func:`service.core.gradients.resolve_gradient_bytes`'."""

    weight: int
    master: int
    state: int
    activation: int


def zero3_gathered(zero_stage: Any, pp: Any) -> Any:
    """Whether ZeRO-3 runs under a pipeline, its stage gathered through the step (:class:`ZeroSharding`
    ``gathered``); scalars or arrays alike."""
    return (zero_stage >= 3) & (pp > 1)


PRECISION_BYTES: dict[Precision, PrecisionBytes] = {
    Precision.MIXED_BF16: PrecisionBytes(weight=2, master=4, state=4, activation=2),
    Precision.MIXED_FP16: PrecisionBytes(weight=2, master=4, state=4, activation=2),
    Precision.BF16: PrecisionBytes(weight=2, master=0, state=2, activation=2),
    Precision.FP32: PrecisionBytes(weight=4, master=0, state=4, activation=4),
    Precision.FP8: PrecisionBytes(weight=2, master=4, state=4, activation=2),
}


def kept_linear_input_bytes(precision: Precision, recipe: Fp8Recipe) -> float | None:
    """Bytes a block's linear layer keeps per element of its input for the weight gradient
    (:attr:`service.core.activations.ActivationOptions.linear_input_bytes`): under FP8 the quantised
    copy and its scales (:func:`service.core.fp8.linear_input_bytes`), otherwise None (the
    activation's bytes)."""
    return linear_input_bytes(recipe) if precision is Precision.FP8 else None


def fp8_copy_params(model: ModelShape, params: Any, ends: Any = None) -> Any:
    """The matmul weights among ``params`` of a shard (the embedding, LM head and norms keep no FP8 copy): with ``ends``,
    the embedding's and LM head's among them (a stage's, :func:`service.core.parallelism.end_params_per_gpu`), the
    blocks' share of the rest; without, the blocks' share of all parameters (a whole model's rate)."""
    outside = 0 if ends is None else ends
    if not isinstance(model, Architecture):
        return params - outside
    b = count_params(model)
    rest = b.total if ends is None else b.total - b.embedding - b.lm_head
    return (params - outside) * (b.attention + b.mlp) / rest


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


def zero_sharded_bytes(dense_bytes: Any, expert_bytes: Any, *, sharded: Any, shards: Any, ep: Any = 1, fold: Any = 1) -> Any:
    """Bytes left on one GPU after ZeRO: the dense part over ``shards`` ranks, the expert part
    over ``shards * fold / ep`` (``fold`` = tp / etp under parallel folding; rounded up each);
    unchanged when this stage does not shard the term. Scalars (integers, exact below 2**53) or
    NumPy arrays alike."""
    if np.ndim(sharded) == 0 and not sharded:  # one layout whose stage keeps the term whole
        return dense_bytes + expert_bytes
    shared = round_up(dense_bytes / shards) + round_up(expert_bytes * ep / (shards * fold))
    return pick(sharded, shared, dense_bytes + expert_bytes)


@dataclass(frozen=True, kw_only=True, slots=True)
class ZeroSharding:
    """How ZeRO (Rajbhandari et al. 2020 §5) shards one layout's states: its ``stage``, whether the
    optimizer states are offloaded to the host (ZeRO-Offload, Ren et al. 2021), the ranks that share
    the dense states (``dp * cp``) and the experts' ``ep`` and ``fold``
    (:func:`zero_sharded_bytes`). Integers for one layout, NumPy arrays for the planner's grid.

    ``gathered``: ZeRO-3 under a pipeline (``pp > 1``), as FSDP2 runs under PyTorch's pipeline
    schedules (torchtitan's ``apply_fsdp`` sets ``reshard_after_forward=False`` with pipelining, "to
    avoid per-microbatch all-gathers"; the schedule turns off gradient sync and resharding until the
    last micro-batch's backward): the stage's weights stay gathered through the step (under FP8 the
    matmul weights as the all-gather holds them, :func:`gathered_fp8_weight_bytes`) and its
    gradients accumulate unsharded, in the fp32 reduce dtype (FSDP2's ``to_accumulated_grad_if_needed``);
    only the optimizer states stay sharded. It gathers and reduces once a step, as ZeRO-1 does."""

    stage: Any
    offload: Any
    shards: Any
    ep: Any = 1
    fold: Any = 1
    gathered: Any = False

    @classmethod
    def of(cls, par: Parallelism) -> ZeroSharding:
        return cls(stage=par.zero_stage, offload=par.offload_optimizer, shards=par.zero_shards, ep=par.ep, fold=par.expert_fold,
                   gathered=zero3_gathered(par.zero_stage, par.pp))  # fmt: skip

    def sharded(self, from_stage: int) -> Any:
        """Whether stages ``from_stage`` and above shard this layout's term (under ``gathered``, the
        weights and gradients are whole)."""
        sharded = self.stage >= from_stage
        if from_stage >= 2:
            sharded = sharded & (np.logical_not(self.gathered) if np.ndim(self.gathered) else not self.gathered)
        return sharded

    def shard(self, dense_bytes: Any, expert_bytes: Any, from_stage: int) -> Any:
        """One GPU's bytes of a term that stages ``from_stage`` and above shard (:meth:`sharded`)."""
        sharded = self.sharded(from_stage)
        return zero_sharded_bytes(dense_bytes, expert_bytes, sharded=sharded, shards=self.shards, ep=self.ep,
                                  fold=self.fold)  # fmt: skip


def fp8_copy_bytes(model: ModelShape, params: Any, recipe: Fp8Recipe, ends: Any = None) -> Any:
    """Bytes of the FP8 copies of the matmul weights among ``params`` (:func:`fp8_copy_params`;
    :func:`service.core.fp8.weight_copy_bytes_per_param`), rounded up; scalars or arrays."""
    return round_up(weight_copy_bytes_per_param(recipe) * fp8_copy_params(model, params, ends))


def gathered_fp8_weight_bytes(model: ModelShape, params: Any, recipe: Fp8Recipe, weight_bytes: int, ends: Any = None) -> Any:
    """Bytes of the weights of ``params`` that ZeRO-3 keeps gathered through the step under FP8
    (:class:`ZeroSharding` ``gathered``): the matmul weights (:func:`fp8_copy_params`) as FSDP2's
    all-gather holds them (:func:`service.core.fp8.gathered_weight_bytes_per_param`: one FP8 byte under
    tensorwise scaling, no BF16 weight and no FP8 copies beside it), the rest in ``weight_bytes``;
    rounded up, scalars or arrays."""
    matmul_bytes = gathered_weight_bytes_per_param(recipe)
    return round_up(weight_bytes * params - (weight_bytes - matmul_bytes) * fp8_copy_params(model, params, ends))


def optimizer_shard_bytes(
    p_dense: int, p_expert: int, optimizer: Optimizer, precision: Precision, arch: Architecture | None
) -> tuple[int, int]:
    """:func:`optimizer_state_bytes` of a shard's dense and routed-expert parameters, each rounded up."""
    return optimizer_state_bytes(p_dense, optimizer, precision, arch), (
        optimizer_state_bytes(p_expert, optimizer, precision, arch) if p_expert else 0
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class ShardedStates:
    """One GPU's weights (FP8 copies included), gradients and optimizer states after ZeRO, and the
    optimizer states offloaded to the host: integers for one layout, arrays for the planner's grid."""

    weights: Any
    gradients: Any
    optimizer: Any
    offloaded: Any


def sharded_states(
    model: ModelShape, precision: Precision, zero: ZeroSharding, *, dense_params: Any, expert_params: Any, end_params: Any = None,
    optimizer_dense: Any, optimizer_expert: Any, fp8_recipe: Fp8Recipe, grad_reduce_dtype: GradReduceDtype | None = None,
) -> ShardedStates:  # fmt: skip
    """Weights ``P * w``, gradients ``P * g`` and optimizer states (``optimizer_dense`` and
    ``optimizer_expert``: :func:`optimizer_shard_bytes`) of a shard of ``dense_params`` and
    ``expert_params``; ZeRO stage 1 shards the optimizer states, 2 the gradients too, 3 the weights
    too (Rajbhandari et al. 2020 §5.1; ZeRO-2 shards the gradients in ``grad_reduce_dtype``'s bytes,
    :func:`service.core.gradients.resolve_gradient_bytes`), under a pipeline with the weights gathered and the gradients
    whole (in FSDP2's fp32 reduce dtype unless ``grad_reduce_dtype`` names one) through the step (:class:`ZeroSharding` ``gathered``); under FP8 the matmul weights keep FP8 copies below ZeRO-3
    (:mod:`service.core.fp8`), and a gathered stage holds them as its FP8 all-gather output
    (:func:`gathered_fp8_weight_bytes`), the matmul weights those of ``dense_params`` less ``end_params``, its
    embedding and LM head (:func:`fp8_copy_params`); offload moves the optimizer states to the host. The one formula of
    :func:`training_memory` (scalars, exact integers) and of the planner's grid
    (:func:`service.core.plan_space.memory_arrays`, NumPy arrays)."""
    pb = PRECISION_BYTES[precision]
    weights = zero.shard(pb.weight * dense_params, pb.weight * expert_params, 3)
    if precision is Precision.FP8:  # the FP8 row- and column-wise copies of the matmul weights
        ends, no_ends = (None, None) if end_params is None else (end_params, 0)  # the stage's embedding and LM head
        copies = fp8_copy_bytes(model, dense_params, fp8_recipe, ends) + fp8_copy_bytes(model, expert_params, fp8_recipe, no_ends)
        # ZeRO-3 under a pipeline: the stage's matmul weights held as FSDP2's FP8 all-gather output, no copies
        gathered = gathered_fp8_weight_bytes(model, dense_params + expert_params, fp8_recipe, pb.weight, ends)
        weights = pick(zero.gathered, gathered, weights + pick(zero.sharded(3), 0, copies))
    g, g_gathered = resolve_gradient_bytes(precision, grad_reduce_dtype)
    gradients = zero.shard(g * dense_params, g * expert_params, 2)
    # ZeRO-3 under a pipeline: gradients accumulated whole in the reduce dtype (ZeroSharding)
    gradients = pick(zero.gathered, g_gathered * (dense_params + expert_params), gradients)
    optimizer = zero.shard(optimizer_dense, optimizer_expert, 1)
    return ShardedStates(weights=weights, gradients=gradients, optimizer=pick(zero.offload, 0, optimizer),
                         offloaded=pick(zero.offload, optimizer, 0))  # fmt: skip


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
    layer_delta_bytes: int = 0,
    grad_reduce_dtype: GradReduceDtype | None = None,
) -> TrainingMemory:
    """Memory per GPU for training ``model``.

    weights ``P_gpu * w``, gradients ``P_gpu * g``, optimizer ``K * P_gpu`` with P_gpu the
    parameters of one tp×pp shard; ZeRO stage 1 divides the optimizer term by ``dp``, stage 2 the
    gradients too, stage 3 the weights too (Rajbhandari et al. 2020 §5.1, Figure 1: 7.5B
    parameters, dp = 64 → 120 GB, 31.4 GB, 16.6 GB, 1.9 GB). Activations are not sharded by ZeRO
    (:func:`service.core.activations.stage_activation_bytes`) and depend on the implementation's
    ``kernels`` (:mod:`service.core.kernels`; transformers with SDPA unless stated).
    ``layer_delta_bytes`` changes every layer's activations (a LoRA fine-tune's frozen inputs and
    adapters, :func:`service.core.finetune.finetune_memory`); ``grad_reduce_dtype`` the gradients' (:mod:`service.core.gradients`).
    """
    validate_parallelism(parallelism, model, microbatches)
    par = parallelism
    pb = PRECISION_BYTES[precision]
    arch = model if isinstance(model, Architecture) else None
    notes: list[str] = []
    p_gpu = params_per_gpu(model, par)
    p_dense = p_gpu - (p_expert := expert_params_per_gpu(model, par))
    if optimizer is Optimizer.ADAFACTOR and arch is None:
        notes.append("Adafactor's factored second moment needs the shapes; counted as 0 bytes")
    zero = ZeroSharding.of(par)
    optimizer_dense, optimizer_expert = optimizer_shard_bytes(p_dense, p_expert, optimizer, precision, arch)
    states = sharded_states(model, precision, zero, dense_params=p_dense, expert_params=p_expert, optimizer_dense=optimizer_dense,
                            optimizer_expert=optimizer_expert, fp8_recipe=fp8_recipe, grad_reduce_dtype=grad_reduce_dtype,
                            end_params=end_params_per_gpu(model, par))  # fmt: skip
    weights, gradients, optimizer_total, cpu_offload = states.weights, states.gradients, states.optimizer, states.offloaded
    if precision is Precision.FP8:
        notes.append(_fp8_note(fp8_recipe, zero_3=bool(zero.sharded(3)), gathered=bool(zero.gathered)))
    g, g_gathered = resolve_gradient_bytes(precision, grad_reduce_dtype)
    formulas = [
        "weights + gradients + optimizer per GPU, sharded by tp*pp and ZeRO over dp (Rajbhandari et al. 2020, ZeRO §5)",
        grad_formula(precision, grad_reduce_dtype, g_gathered if zero.gathered else g),
    ]
    if zero.gathered:
        formulas.append("ZeRO-3 under a pipeline, as FSDP2 runs under PyTorch's pipeline schedules (torchtitan): the stage's "
                        "weights gathered for the whole step, its gradients accumulated whole in fp32, the optimizer states "
                        "sharded over dp; one gather and one reduce-scatter a step")  # fmt: skip
    stage: StageActivations | None = None
    activations = 0
    if include_activations:
        arch = require_architecture(model, "activation memory")
        k = resolve_kernels(kernels, arch, flash_attention=flash_attention)
        stage = _stage_activations(arch, par, k, micro_batch_size=micro_batch_size, seq_len=seq_len, recompute=recompute,
                                   flash_attention=flash_attention, dropout=dropout, element_bytes=pb.activation,
                                   linear_input_bytes=kept_linear_input_bytes(precision, fp8_recipe),
                                   microbatches=microbatches, kernels=kernels, layer_delta_bytes=layer_delta_bytes)  # fmt: skip
        activations = stage.peak_bytes
        formulas.extend(activation_formulas(k, recurrent=arch.recurrent_layers, tp=par.tp, recompute=recompute,
                                            deltanet=bool(arch.layers_of(LayerType.GATED_DELTANET))))  # fmt: skip
        if precision is Precision.FP8 and recompute in (Recompute.NONE, Recompute.SELECTIVE):  # full, selective_op: BF16 kept
            dense = not (
                arch.is_moe or arch.is_mla or arch.recurrent_layers or arch.parallel_attention or arch.attention_output_gate
            )
            formulas.append(
                f"FP8 ({fp8_recipe.value}): the QKV, MLP and down projections' inputs kept at {linear_input_bytes(fp8_recipe):g} "
                "bytes an element instead of 2, and the output projection's FP8 copy of its input"
                + (": (2h + f - q_dim) bytes a token fewer in this dense layer with a fused attention kernel, before tp"
                   if dense and k.attention is not AttentionKernel.EAGER and recompute is not Recompute.SELECTIVE else "") + " (Transformer Engine, torchao Float8, DeepSeek-V3 §3.3.3)"
            )  # fmt: skip
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
            "gradients": g_gathered if zero.gathered else g,  # as sharded_states counts them
            "optimizer": optimizer_state_bytes(1e6, optimizer, precision, arch) / 1e6,
        },
        formulas=tuple(formulas),
        notes=tuple(notes),
        resident_params_per_gpu=zero.shard(p_dense, p_expert, 3),
    )


def _fp8_note(recipe: Fp8Recipe, *, zero_3: bool, gathered: bool = False) -> str:
    """The note on FP8 training: the copies :func:`sharded_states` counts, or none under ZeRO-3 (a stage
    kept gathered: its matmul weights as the all-gather holds them), and the linear layers' inputs kept
    in FP8 (:mod:`service.core.fp8`, "Activations")."""
    inputs = (
        f"the linear layers keep their inputs for the backward in FP8, {linear_input_bytes(recipe):g} bytes an element "
        "(Transformer Engine's saved quantised input, torchao Float8's input_fp8, DeepSeek-V3 §3.3.3), a fused attention "
        "kernel its BF16 output (unless selective recompute reruns it) beside the output projection's FP8 copy"
    )
    held = gathered_weight_bytes_per_param(recipe)  # what ZeRO-3's all-gather moves a matmul weight (service.core.fp8)
    how = "FSDP2's FP8 all-gather output" if held < 2 else "gathered in BF16, cast for each matmul"
    if gathered:
        return (f"FP8 ({recipe.value}) under ZeRO-3 with a pipeline: the stage's matmul weights held gathered through the "
                f"step at {held:g} bytes a parameter ({how}), no persistent FP8 copies; {inputs}; {BF16_OPS}")  # fmt: skip
    if not zero_3:
        per_param = weight_copy_bytes_per_param(recipe)
        return f"FP8 ({recipe.value}): {per_param:g} bytes of FP8 weight copies per matmul parameter; {inputs}; {BF16_OPS}"
    return (f"FP8 ({recipe.value}) under ZeRO-3: matmul weights gathered layer by layer at {held:g} bytes a parameter ({how}), "
            f"no persistent FP8 copies; {inputs}; {BF16_OPS}")  # fmt: skip


def _stage_activations(
    arch: Architecture,
    par: Parallelism,
    k: ResolvedKernels,
    *,
    micro_batch_size: int,
    seq_len: int | None,
    recompute: Recompute,
    flash_attention: bool,
    dropout: bool,
    element_bytes: int,
    microbatches: int | None,
    kernels: Kernels,
    layer_delta_bytes: int = 0,
    linear_input_bytes: float | None = None,
) -> StageActivations:
    """The busiest pipeline stage's activations (:func:`service.core.activations.stage_activation_bytes`)
    for one ``seq_len / cp`` chunk of each sequence, with ``k`` the kernels ``kernels`` resolve to; context
    parallelism needs a fused attention kernel."""
    full_seq = seq_len or arch.max_seq_len
    if problem := context_parallel_problem(
        arch, par.cp, seq_len=full_seq, fused_attention=k.attention is not AttentionKernel.EAGER
    ):
        raise InvalidSpecError("parallelism.cp", problem)
    return stage_activation_bytes(
        arch,
        ActivationOptions(
            seq_len=full_seq // par.cp,
            micro_batch_size=micro_batch_size,
            tp=par.tp,
            sequence_parallel=par.sequence_parallel,
            recompute=recompute,
            flash_attention=flash_attention,
            dropout=dropout,
            element_bytes=element_bytes,
            linear_input_bytes=linear_input_bytes,
            kernels=kernels,
            layer_delta_bytes=layer_delta_bytes,
        ),
        pp=par.pp,
        virtual_stages=par.virtual_stages,
        microbatches=microbatches,
        schedule=par.schedule,
    )


def device_total_bytes(tensor_bytes: int, cuda_context_bytes: int = CUDA_CONTEXT_BYTES) -> int:
    """GPU memory a process needs: its tensors plus its CUDA context (:data:`CUDA_CONTEXT_BYTES`), the
    part ``torch.cuda.memory_allocated`` never shows and ``nvidia-smi`` always does. Allocator
    fragmentation and communication buffers are not in it."""
    return check_bytes("device_total_bytes", tensor_bytes + cuda_context_bytes)


def usable_bytes(memory_bytes: Any, usable_fraction: float | None = None) -> Any:
    """What a training job may fill of a GPU's ``memory_bytes``: all of it (``None``: the need
    counts the CUDA context itself, :func:`device_total_bytes`), or ``usable_fraction`` of it (the
    planner's ``usable_memory_fraction``; the rest holds what it does not count: the CUDA context,
    NCCL's buffers and the allocator's fragmentation)."""
    return memory_bytes if usable_fraction is None else memory_bytes * usable_fraction


def memory_fits(needed_bytes: Any, memory_bytes: Any, *, usable_fraction: float | None = None) -> Any:
    """Whether a job that needs ``needed_bytes`` per GPU fits GPUs of ``memory_bytes``:
    ``needed <= usable`` (:func:`usable_bytes`), for one layout or the planner's arrays. Every
    training answer decides with it, leaving the headroom in one of two ways:

    - counted: ``needed_bytes`` is a device total, the tensors plus the CUDA context
      (:func:`device_total_bytes`), against the whole memory (``usable_fraction`` None): the
      memory calculators (``fits``, ``fits_if_paged``) and the least footprints of the cost answers
      (:func:`smallest_training_footprint`, :func:`service.core.finetune.smallest_finetune_footprint`),
      which report what ``nvidia-smi`` would show;
    - a share: ``needed_bytes`` is the tensors, against ``usable_fraction`` of the memory: the
      planner (:func:`service.core.plan.plan`, its paged fine-tunes and the mixed pools' layer caps),
      whose ``usable_memory_fraction`` (a request field, 0.95 by default) is the user's margin.

    Serving keeps its own rule, for a reason: an inference engine claims a share of each GPU up
    front and fills what the weights leave with KV-cache blocks, so its budget is vLLM's
    (:func:`service.core.serving.usable_memory_bytes`, whole bytes per GPU less a runtime reserve)
    and it admits sequences by that cache's capacity; it compares with this function where it asks
    whether bytes fit (:func:`service.core.serving.smallest_fitting_tp`). The 1.2x rule of
    :func:`service.core.inference.inference_memory` counts GPUs, not a fit."""
    return needed_bytes <= usable_bytes(memory_bytes, usable_fraction)


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
