"""Parallel layouts and the parameters each GPU holds under them.

:class:`Parallelism` names a layout: data, tensor (Shoeybi et al. 2019), pipeline (Narayanan et al.
2021), context (Liu et al. 2023) and expert (Lepikhin et al. 2020) parallel sizes and ZeRO's stage
(Rajbhandari et al. 2020); :func:`validate_parallelism` rejects layouts that cannot run, and
:func:`params_per_gpu` and :func:`expert_params_per_gpu` count the busiest pipeline stage's shard.
:mod:`service.core.memory` re-exports these names.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from service.core.architecture import Architecture, LayerType, ModelShape
from service.core.errors import InvalidSpecError
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
from service.core.recurrent import channel_mix_params, inner_width, mixer_params
from service.core.shared_blocks import shared_block_norm_params


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


def tensor_parallel_problem(arch: Architecture, tp: int) -> str | None:
    """Why ``tp`` tensor-parallel ranks cannot split ``arch``'s layers, or ``None``: the one rule the
    calculators, the planner and serving share.

    Attention splits whole heads: ``tp`` divides the query heads, and the KV heads divide it or it
    them (replicated beyond ``k``; Shoeybi et al. 2019 §3). Mamba-2 splits its heads and its B/C
    groups (Megatron-LM's ``MambaMixer`` asserts ``nheads`` and ``ngroups`` divisible by the
    tensor-parallel size); Gated DeltaNet its key and value heads whole (vLLM's ``Qwen3NextGatedDeltaNet``
    divides ``num_k_heads`` and ``num_v_heads`` by the tensor-parallel size, each rank keeping its heads'
    states); Mamba its inner channels (the depthwise convolution and the scan are
    per channel; vLLM's ``MambaMixer`` column-splits ``intermediate_size``); a short convolution its ``h``
    channels (vLLM's ``ShortConv`` column-splits ``in_proj`` into B, C and x and runs the depthwise
    convolution on each rank's channels); RWKV is not split (no tensor-parallel implementation of its
    WKV)."""
    if tp == 1:
        return None
    if arch.attention_layers and (arch.n_heads % tp or (arch.n_kv_heads % tp and tp % arch.n_kv_heads)):
        return f"tp={tp} must divide n_heads={arch.n_heads} (and n_kv_heads={arch.n_kv_heads} divide it or it them)"
    if arch.layers_of(LayerType.MAMBA2) and ((arch.ssm_n_heads or 0) % tp or (arch.ssm_n_groups or 0) % tp):
        return (f"tp={tp} must divide the Mamba-2 layers' ssm_n_heads={arch.ssm_n_heads} and ssm_n_groups={arch.ssm_n_groups} "
                "(heads and groups are split whole)")  # fmt: skip
    if arch.layers_of(LayerType.MAMBA) and inner_width(arch) % tp:
        return f"tp={tp} must divide the Mamba layers' inner width ssm_expand * d_model"
    if arch.layers_of(LayerType.GATED_DELTANET) and (
        (arch.linear_n_key_heads or 0) % tp or (arch.linear_n_value_heads or 0) % tp
    ):
        return (f"tp={tp} must divide the Gated DeltaNet layers' linear_n_key_heads={arch.linear_n_key_heads} and "
                f"linear_n_value_heads={arch.linear_n_value_heads} (heads are split whole)")  # fmt: skip
    if arch.layers_of(LayerType.SHORT_CONV) and arch.d_model % tp:
        return f"tp={tp} must divide the short_conv layers' channels d_model={arch.d_model}"
    if arch.layers_of(LayerType.RWKV):
        return f"tp={tp}: RWKV layers are not split over tensor-parallel ranks (no implementation splits WKV); tp must be 1"
    return None


def context_parallel_problem(
    arch: Architecture, cp: int, *, seq_len: int | None = None, fused_attention: bool = True
) -> str | None:
    """Why ``cp`` context-parallel ranks cannot split ``arch``'s sequences, or ``None``: the one rule the
    calculators and the planner share. Ring attention (Liu et al. 2023) passes K/V chunks with their
    log-sum-exp between fused attention kernels, so it needs one (``flash_attention``) and ``cp``
    dividing ``seq_len``; a recurrent layer's scan would pass its state from rank to rank in sequence
    order, which is not modelled, so a model with Mamba or RWKV layers is refused rather than answered
    as if its scans split for free."""
    if cp == 1:
        return None
    if arch.recurrent_layers:
        return (f"cp={cp}: context parallelism is not modelled for the {arch.recurrent_layers} recurrent layers "
                "(their scans carry a state along the sequence); cp must be 1")  # fmt: skip
    if not fused_attention or (seq_len is not None and seq_len % cp):
        return f"cp={cp} needs flash_attention (ring attention over fused kernels) and must divide seq_len={seq_len}"
    return None


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
        if problem := tensor_parallel_problem(model, par.tp):
            raise InvalidSpecError("parallelism.tp", problem)
        if problem := context_parallel_problem(model, par.cp):
            raise InvalidSpecError("parallelism.cp", problem)
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


def end_params_per_gpu(model: ModelShape, par: Parallelism) -> int:
    """Of :func:`params_per_gpu`, the embedding's and the LM head's (split over ``tp``, Megatron-LM's
    vocab-parallel layers) on one GPU of the busiest stage: the parameters outside the blocks that a
    first or last stage adds (0 on a middle stage; without the architecture, 0)."""
    return _busiest_shard(model, par)[2]


def _busiest_shard(model: ModelShape, par: Parallelism) -> tuple[int, int, int]:
    """(parameters, of which routed experts, of which the embedding and LM head) on one GPU of the
    stage with the most parameters."""
    return _busiest_shard_of(model, _ShardKey(tp=par.tp, pp=par.pp, ep=par.ep, virtual_stages=par.virtual_stages,
                                              pipeline_schedule=par.schedule, expert_tensor_parallel=par.expert_tensor_parallel))  # fmt: skip


@dataclass(frozen=True, kw_only=True, slots=True)
class _ShardKey:
    """The fields of :class:`Parallelism` a shard's parameters depend on (the rest: dp, cp, ZeRO...)."""

    tp: int
    pp: int
    ep: int
    virtual_stages: int
    pipeline_schedule: PipelineSchedule
    expert_tensor_parallel: int | None

    @property
    def etp(self) -> int:
        return self.expert_tensor_parallel or self.tp

    @property
    def schedule(self) -> PipelineSchedule:
        return self.pipeline_schedule


@functools.lru_cache(maxsize=65_536)
def _busiest_shard_of(model: ModelShape, par: _ShardKey) -> tuple[int, int, int]:
    """:func:`_busiest_shard`, memoised: the planner asks the same shard for every data-parallel
    size, ZeRO stage and micro-batch of a layout, and again for every cluster size and GPU type."""
    copies = int(parameter_copies(SCHEDULE_CODES[par.schedule])) if par.pp > 1 else 1
    if not isinstance(model, Architecture):
        return copies * math.ceil(model.n_params / (par.tp * par.pp)), 0, 0
    if par.pp == 1:
        b = count_params(model)
        stages = [(model.n_layers, b.total, b.norm, b.embedding + b.lm_head)]
    else:
        first_layers, layers, last_layers = stage_layers(model.n_layers, par.pp, par.virtual_stages)
        stages = [_stage_totals(model, first_layers, first=True, last=False),
                  _stage_totals(model, last_layers, first=False, last=True)]  # fmt: skip
        if par.pp > 2:
            stages.append(_stage_totals(model, layers, first=False, last=False))
    params, experts, ends = _shard_of_stages(model, par, stages)
    return copies * params, copies * experts, copies * ends


def stage_params(model: Architecture, par: Parallelism, layers: int, *, first: bool, last: bool) -> tuple[int, int]:
    """(parameters, of which routed experts) on one GPU of one pipeline stage of several holding
    ``layers`` layers, the embedding when ``first`` and the final norm and LM head when ``last``
    (both: the one stage of a data-parallel group's ``pp = 1``, :mod:`service.core.mixed_groups`):
    one stage of :func:`params_per_gpu`, counted the same way (a mixed cluster's stages differ in
    their layers and tensor-parallel size, :mod:`service.core.plan_mixed`)."""
    return _shard_of_stages(model, par, [_stage_totals(model, layers, first=first, last=last)])[:2]


def stage_end_params(model: Architecture, par: Parallelism, *, first: bool, last: bool) -> int:
    """Of :func:`stage_params`, the embedding's and the LM head's on one GPU (:func:`end_params_per_gpu`)."""
    return _shard_of_stages(model, par, [_stage_totals(model, 1, first=first, last=last)])[2]


def _stage_totals(model: Architecture, layers: int, *, first: bool, last: bool) -> tuple[int, int, int, int]:
    """(layers, parameters, replicated norm parameters, embedding and LM head parameters) of a stage of a pipeline of several, or
    of the one stage of a pipeline of one when both ``first`` and ``last``: its tied LM head is then
    the embedding itself, no second copy (as :func:`params_per_gpu` counts ``pp = 1``)."""
    b = count_params(model)
    norm = norm_params(model)
    layer_norms = model.norms_per_layer * norm
    shared = model.tied_embeddings and first  # one stage holds the embedding and the head tied to it
    head = (0 if shared else model.vocab_size * model.d_model) + (model.vocab_size if model.lm_head_bias else 0)
    embedding = b.embedding + (norm if model.embedding_norm else 0)
    total = stage_block_params(model, layers) + layers * layer_norms
    total += (embedding if first else 0) + (norm + head if last else 0)
    return layers, total, layers * layer_norms + norm, (b.embedding if first else 0) + (head if last else 0)


def _shard_of_stages(
    model: Architecture, par: Parallelism | _ShardKey, stages: list[tuple[int, int, int, int]]
) -> tuple[int, int, int]:
    """The largest per-GPU shard of ``stages`` (layers, parameters, norms, embedding and LM head), one
    copy: (parameters, of which routed experts, of which the embedding and LM head, split over ``tp``)."""
    # with more tensor-parallel ranks than KV heads, each rank keeps a whole KV head (replicated)
    kv_ranks = min(par.tp, model.n_kv_heads)
    kv_bias = model.bias or model.qkv_bias or model.attention_bias
    kv_per_layer = 2 * model.d_model * model.kv_dim + (2 * model.kv_dim if kv_bias else 0)
    per_expert = mlp_params_per_expert(model)
    best = (-1, 0, 0)
    for layers, total, norms, ends in stages:
        attention_layers = -(-layers * model.attention_layers // model.n_layers)  # a hybrid's stage: its share
        kv_replication = attention_layers * kv_per_layer * (1 / kv_ranks - 1 / par.tp)
        # expert parallelism: each rank keeps n_experts / ep of every layer's experts
        moe_layers = min(layers, model.moe_layers)  # a mixture's first dense layers hold no experts
        elsewhere = moe_layers * (model.n_experts - model.n_experts // par.ep) * per_expert
        local = moe_layers * (model.n_experts // par.ep) * per_expert
        if par.etp == par.tp:
            shard = math.ceil((total - norms - elsewhere) / par.tp + kv_replication) + norms
        else:  # whole experts under parallel folding
            shard = math.ceil((total - norms - elsewhere - local) / par.tp + local / par.etp + kv_replication) + norms
        experts = math.ceil(local / par.etp) if model.is_moe and par.ep > 1 else 0
        best = max(best, (shard, experts, math.ceil(ends / par.tp)))
    return best


def stage_block_params(arch: Architecture, layers: int) -> int:
    """Attention and MLP parameters of ``layers`` layers of a stage: a mixture's stage is counted
    with as many of its layers routed-expert layers as the model has (the busiest case), the rest
    dense (DeepSeek's first dense layers). The stage holds its share of the model's mixers (attention
    and :func:`service.core.recurrent.mixer_params` with RWKV's channel mixing) and of its layers with
    an MLP, at the model's mean: exactly ``layers`` of each in a transformer. A stage of a model with
    shared attention blocks (Zamba) holds every block whole, as each stage runs uses of them."""
    moe_layer = (
        arch.n_experts * mlp_params_per_expert(arch) + router_params_per_layer(arch) + shared_expert_params_per_layer(arch)
    )
    blocks = arch.shared_blocks
    shared = blocks * (attention_params_per_layer(arch) + dense_mlp_params(arch)) + shared_block_norm_params(arch)
    own_attention = arch.attention_weight_layers - blocks  # attention layers of their own
    mixers = own_attention * attention_params_per_layer(arch) + mixer_params(arch) + channel_mix_params(arch)
    mlp_layers = -(-layers * (arch.mlp_layers - arch.shared_attention_layers) // arch.n_layers)
    moe = min(layers, arch.moe_layers, mlp_layers)
    own = -(-layers * mixers // arch.n_layers) + moe * moe_layer + (mlp_layers - moe) * dense_mlp_params(arch)
    return own + (shared if layers else 0)


def expert_params_per_gpu(model: ModelShape, par: Parallelism) -> int:
    """The routed experts' share of :func:`params_per_gpu`: ``n_experts / ep`` expert MLPs per
    layer of the busiest stage, split over ``tp``. Each is replicated over only ``dp*cp/ep``
    ranks, so ZeRO shards it over those (Megatron-Core's expert data-parallel group; Rajbhandari
    et al. 2022, DeepSpeed-MoE §5). 0 for a dense model or ``ep = 1`` (the experts then follow
    the dense parameters)."""
    return _busiest_shard(model, par)[1]
