"""What LoRA changes in full training's stored activations, per layer and per GPU.

The gradient must flow back through every frozen layer to reach the adapters below it, so the
forward pass keeps what full training keeps (Korthikanti et al. 2022, :mod:`service.core.activations`)
except the inputs that only a frozen weight's gradient would read, plus each adapter's own ``x·A``
(``r`` values a token) and, with LoRA dropout, the dropped copy of its input. Under tensor
parallelism the adapters are split as Megatron-Bridge's ``ParallelLinearAdapter`` (from NeMo) splits
them: a column-parallel projection's ``A`` over its rank and ``B`` over its outputs, a row-parallel
one's (``o``, ``down``) ``A`` over its inputs; every rank keeps the whole ``x·A`` (gathered), and a
row-parallel projection's input is already split. :mod:`service.core.finetune` re-exports these names.
"""

from __future__ import annotations

import math
from dataclasses import replace

from service.core.activations import StageActivations, mlp_inputs_per_token, mlp_width_per_token
from service.core.adapters import Projection, projection_shapes
from service.core.architecture import Architecture
from service.core.compute import Recompute
from service.core.finetune_spec import MASK_BYTES, FinetuneSpec

ROW_PARALLEL = (Projection.O, Projection.DOWN)  # Megatron-LM's row-parallel layers: their inputs are split over tp


def adapter_activation_bytes(
    arch: Architecture,
    spec: FinetuneSpec,
    targets: tuple[Projection, ...],
    *,
    tokens: int,
    element_bytes: int,
    tp: int = 1,
    sequence_parallel: bool = False,
    mask_bytes: int = MASK_BYTES,
) -> int:
    """What the adapters add to the stored activations of all layers for ``tokens = s * b`` tokens:
    each adapter's ``x·A`` (``r`` values a token, needed for B's gradient) and, with LoRA dropout,
    the dropped copy of its input (for A's gradient) and its mask (``mask_bytes`` an element: 1 on
    CUDA, the activation's bytes on the CPU, :func:`service.core.kernels.dropout_mask_bytes`). A routed expert's
    adapters see the ``experts_per_token`` share of the tokens, a shared expert's all of them; each
    layer type (dense first layers, expert layers) counts its own matrices. Under ``tp`` the
    dropped input of a row-parallel projection is split, a column-parallel one's only with
    sequence parallelism; ``x·A`` is whole on every rank (module docstring)."""
    shapes = projection_shapes(arch)
    total = 0
    for t in targets:
        split = tp if (t in ROW_PARALLEL or sequence_parallel) else 1
        for m in shapes[t]:
            per_token = element_bytes * spec.rank
            if spec.dropout > 0:
                per_token += math.ceil((element_bytes + mask_bytes) * m.rows_in / split)
            total += m.active_copies(arch.n_layers) * tokens * per_token
    return total


def adapter_activation_bytes_per_layer(
    arch: Architecture, spec: FinetuneSpec, targets: tuple[Projection, ...], *, tokens: int, element_bytes: int
) -> int:
    """:func:`adapter_activation_bytes` of one layer: exact when every layer has the same
    projections, the mean over the layers (rounded up) when a mixture's first layers are dense."""
    total = adapter_activation_bytes(arch, spec, targets, tokens=tokens, element_bytes=element_bytes)
    return -(-total // arch.n_layers)


def frozen_input_bytes_per_layer(
    arch: Architecture,
    spec: FinetuneSpec,
    targets: tuple[Projection, ...],
    *,
    tokens: int,
    element_bytes: int,
    fused_attention: bool,
    tp: int = 1,
    sequence_parallel: bool = False,
    linear_input_bytes: float | None = None,
) -> int:
    """Bytes of one layer's full-training activations that a frozen projection no longer needs.

    Full training keeps each matmul's input for its weight gradient (Korthikanti et al. 2022 §4.1:
    the QKV input, the output projection's input, the MLP input and the down projection's input).
    A frozen weight needs no weight gradient, and autograd saves a matmul input only for the
    gradient that uses it (PyTorch saves ``self`` of ``mm`` only when ``mat2`` requires grad), so
    these inputs are dropped unless an adapter reads them (without LoRA dropout an adapter's
    ``x·A`` saves the same ``x``; with dropout it saves its own dropped copy instead, counted by
    :func:`adapter_activation_bytes_per_layer`) or another operation keeps them: FlashAttention
    keeps its output, the output projection's input (Dao et al. 2022 §3.1), as does PyTorch's fused
    SDPA (``fused_attention``: any kernel but eager, and not rerun by selective recompute, which keeps
    no output of the kernel). Everything the backward
    pass needs to reach the layers below stays: norm inputs, Q, K, V, scores, the MLP's
    nonlinearity inputs.

    The terms mirror the full-training count they are taken from
    (:func:`service.core.activations.layer_activation_bytes`), which counts every layer alike: the
    attention input (read by ``q``/``k``/``v`` or, under MLA, ``q_a``/``kv_a``/``q``), the MLP input
    once per routed expert a token passes and once for the shared experts (one MLP), the output projection's input and
    the down projections' inputs at :func:`service.core.activations.mlp_width_per_token`. MLA's
    latents (the inputs of ``q_b_proj`` and ``kv_b_proj``) are not in that count, so none is dropped
    for them: an approximation that errs towards more memory. Under ``tp`` (Korthikanti §4.2) the
    attention and MLP inputs are split only with sequence parallelism, the output and down
    projections' inputs always. A model with recurrent layers (Mamba, Gated DeltaNet...) is counted at
    its mean layer, as the full-training count is: the attention inputs over its attention layers, the
    MLP's over its MLP layers, none for a mixer's own projections (not adapted, and kept as counted).

    Under FP8 (``linear_input_bytes``, :func:`service.core.fp8.linear_input_bytes`) full training
    keeps those inputs as the quantised FP8 tensors (1 byte an element plus the recipe's scales) and
    the output projection an FP8 copy of its input (beside a fused kernel's own 16-bit output, which
    stays where selective recompute does not rerun the kernel): the same bytes are taken off here,
    term by term as the full-training count rounds them (an adapter that reads an input is taken to
    keep it as the base does). Behind an output gate the
    16-bit product is kept only for the output projection, so a frozen one drops it.
    """
    t, e = tokens, element_bytes
    li = e if linear_input_bytes is None else linear_input_bytes
    experts = mlp_inputs_per_token(arch)
    keeps = set() if spec.dropout > 0 else set(targets)
    qkv_read = bool(keeps & {Projection.Q, Projection.K, Projection.V, Projection.Q_A, Projection.KV_A})
    mlp_read = bool(keeps & {Projection.GATE, Projection.UP})
    if arch.parallel_attention and arch.norms_per_layer == 1:  # one input feeds attention and the MLP
        attention_in, mlp_in = 0 if (qkv_read or mlp_read) else math.ceil(li * t * arch.d_model), 0
    else:
        attention_in = 0 if qkv_read else math.ceil(li * t * arch.attention_input_width)
        mlp_in = 0 if mlp_read else math.ceil(li * t * arch.d_model * experts)
    out_width = arch.n_heads * (arch.v_head_dim or 0) if arch.is_mla else arch.q_dim  # the output projection's input
    attention_out = 0
    if Projection.O not in keeps:
        if linear_input_bytes is not None:  # the FP8 output projection's own copy (the 16-bit tensor the base keeps
            attention_out = math.ceil(linear_input_bytes * t * out_width)  # only as a fused kernel's output, which stays)
        elif not fused_attention or arch.attention_output_gate:  # kept only for the output projection
            attention_out = e * t * out_width
    mlp_out = 0 if Projection.DOWN in keeps else math.ceil(li * t * mlp_width_per_token(arch))
    # a model with recurrent layers: its mean layer, attention's inputs over its attention layers and the
    # MLP's over its MLP layers, as the full-training count sums them (service.core.activations._mean_layer)
    a, m, n = (arch.attention_layers, arch.mlp_layers, arch.n_layers) if arch.recurrent_layers else (1, 1, 1)
    replicated, sharded = (a * attention_in + m * mlp_in) // n, (a * attention_out + m * mlp_out) // n
    if tp == 1:
        return replicated + sharded
    return (math.floor(replicated / tp) if sequence_parallel else replicated) + math.floor(sharded / tp)


def layer_delta_bytes(
    arch: Architecture,
    spec: FinetuneSpec,
    targets: tuple[Projection, ...],
    *,
    tokens: int,
    element_bytes: int,
    fused_attention: bool,
    recompute: Recompute,
    tp: int = 1,
    sequence_parallel: bool = False,
    mask_bytes: int = MASK_BYTES,
    linear_input_bytes: float | None = None,
) -> int:
    """One layer's change from full training's stored activations on one GPU: the adapters' own
    (mean over the layers, rounded up) less the frozen matmuls' inputs; 0 under full recompute,
    which keeps only each layer's input either way (Chen et al. 2016)."""
    if recompute is Recompute.FULL:
        return 0
    adapters = adapter_activation_bytes(arch, spec, targets, tokens=tokens, element_bytes=element_bytes, tp=tp,
                                        sequence_parallel=sequence_parallel, mask_bytes=mask_bytes)  # fmt: skip
    # selective recompute reruns the attention kernel in the backward: it keeps no output of its own
    frozen = frozen_input_bytes_per_layer(arch, spec, targets, tokens=tokens, element_bytes=element_bytes,
                                          fused_attention=fused_attention and recompute is not Recompute.SELECTIVE, tp=tp,
                                          sequence_parallel=sequence_parallel, linear_input_bytes=linear_input_bytes)  # fmt: skip
    return -(-adapters // arch.n_layers) - frozen


def activation_changes(
    arch: Architecture,
    spec: FinetuneSpec,
    targets: tuple[Projection, ...],
    *,
    tokens: int,
    element_bytes: int,
    fused_attention: bool,
    tp: int = 1,
    sequence_parallel: bool = False,
    mask_bytes: int = MASK_BYTES,
    linear_input_bytes: float | None = None,
) -> tuple[int, int]:
    """What LoRA changes in full training's activations of all layers for ``tokens = s * b``
    tokens: (the adapters' own, :func:`adapter_activation_bytes`; the frozen matmuls' inputs no
    longer kept, :func:`frozen_input_bytes_per_layer` of every layer)."""
    adapter_acts = adapter_activation_bytes(arch, spec, targets, tokens=tokens, element_bytes=element_bytes, tp=tp,
                                            sequence_parallel=sequence_parallel, mask_bytes=mask_bytes)  # fmt: skip
    frozen_inputs = arch.n_layers * frozen_input_bytes_per_layer(
        arch, spec, targets, tokens=tokens, element_bytes=element_bytes, fused_attention=fused_attention, tp=tp,
        sequence_parallel=sequence_parallel, linear_input_bytes=linear_input_bytes,
    )  # fmt: skip
    return adapter_acts, frozen_inputs


def shifted_stage(stage: StageActivations | None, delta: int, n_layers: int) -> StageActivations | None:
    """Full training's stage activations changed by ``delta`` bytes over all layers (one pipeline
    stage: every layer changes by the same bytes)."""
    if stage is not None:
        stage = replace(stage, per_layer_bytes=stage.per_layer_bytes + delta // n_layers,
                        first_stage_bytes=stage.first_stage_bytes + delta, last_stage_bytes=stage.last_stage_bytes + delta,
                        peak_bytes=stage.peak_bytes + delta)  # fmt: skip
    return stage
