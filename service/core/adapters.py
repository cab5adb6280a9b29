"""LoRA adapters: the linear projections they may target, their shapes and their parameters.

Hu et al. 2021 ("LoRA", §4.1): a frozen projection ``W`` (``in x out``) gains a trainable update
``B·A`` with ``A`` ``r x in`` and ``B`` ``out x r``, so each adapted matrix adds ``r * (in + out)``
parameters. The projections are those of a transformer block (attention's, multi-head latent
attention's, the MLP's per layer type and expert), named as Hugging Face PEFT targets them.
:mod:`service.core.finetune` re-exports these names.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from service.core.architecture import Architecture, Ffn
from service.core.errors import InvalidSpecError


class Projection(StrEnum):
    """The linear projections of a transformer block an adapter may target (Llama's
    ``q_proj``, ``k_proj``, ``v_proj``, ``o_proj``, ``gate_proj``, ``up_proj``, ``down_proj``; a
    2-matrix MLP has ``up`` and ``down`` only). Multi-head latent attention (DeepSeek-V2 §2.1.2-2.1.3,
    ``DeepseekV3Attention`` in ``transformers``) has ``q_proj`` (no query rank) or ``q_a_proj`` and
    ``q_b_proj``, then ``kv_a_proj_with_mqa``, ``kv_b_proj`` and ``o_proj``; on such a model the
    generic names map onto them (:func:`resolve_targets`)."""

    Q = "q"
    K = "k"
    V = "v"
    O = "o"  # noqa: E741 - the output projection's usual name
    GATE = "gate"
    UP = "up"
    DOWN = "down"
    # multi-head latent attention (DeepSeek-V2/V3): q_a_proj, q_b_proj, kv_a_proj_with_mqa, kv_b_proj
    Q_A = "q_a"
    Q_B = "q_b"
    KV_A = "kv_a"
    KV_B = "kv_b"


@dataclass(frozen=True, kw_only=True, slots=True)
class MatrixShape:
    """One kind of weight matrix in every block: ``rows_in x cols_out``, ``per_layer`` copies
    (``n_experts`` for an expert MLP), of which ``active_per_layer`` see each token."""

    rows_in: int
    cols_out: int
    per_layer: int
    active_per_layer: int
    layers: int | None = None  # blocks that have it; None: every block
    module: str = ""  # Hugging Face's module name (PEFT's target name)

    def copies(self, n_layers: int) -> int:
        """Matrices of this kind in the whole model."""
        return (n_layers if self.layers is None else self.layers) * self.per_layer

    def active_copies(self, n_layers: int) -> int:
        """Matrices of this kind one token passes through, all layers."""
        return (n_layers if self.layers is None else self.layers) * self.active_per_layer


def _mlp_shapes(arch: Architecture) -> dict[Projection, tuple[MatrixShape, ...]]:
    """The MLP matrices by layer type: a dense model's one MLP of width ``d_ff`` in every layer; a
    mixture's ``first_k_dense`` dense layers with one MLP of width ``d_ff_dense`` and no experts, and
    its other layers with ``n_experts`` routed experts of width ``d_ff`` (``experts_per_token``
    active) and ``n_shared_experts`` always-active shared experts of width ``d_ff_shared``
    (DeepSeekMoE, Dai et al. 2024 §3; DeepSeek-V3 §2.1.2). The shared experts are one linear layer
    each of gate, up and down, ``n_shared_experts * d_ff_shared`` wide, as DeepSeek's modelling code
    and ``transformers`` build them (``DeepseekV2MoE.shared_experts``): the same weights as separate
    experts, but one adapter of ``r * (h + n * d_ff_shared)`` rather than ``n`` of ``r * (h + d_ff_shared)``.
    The router is not a projection. A model with recurrent layers has an MLP in ``mlp_layers`` of
    them (none in a pure Mamba model; RWKV's channel mixing is its own)."""
    h = arch.d_model
    names = (Projection.GATE, Projection.UP, Projection.DOWN) if arch.ffn is Ffn.SWIGLU else (Projection.UP, Projection.DOWN)
    kinds: list[tuple[int, int, int, int, str]] = []  # (width, layers, per_layer, active_per_layer, module prefix)
    if not arch.is_moe:
        kinds.append((arch.d_ff, arch.mlp_layers, 1, 1, "mlp"))
    else:
        if arch.dense_mlp_layers:
            kinds.append((arch.d_ff_dense or arch.d_ff, arch.dense_mlp_layers, 1, 1, "mlp"))
        kinds.append((arch.d_ff, arch.moe_layers, arch.n_experts, arch.experts_per_token, "mlp.experts.*"))
        if arch.n_shared_experts:  # DeepSeek's code builds them as one MLP n_shared_experts times as wide
            kinds.append((arch.n_shared_experts * (arch.d_ff_shared or arch.d_ff), arch.moe_layers, 1, 1, "mlp.shared_experts"))
    shapes: dict[Projection, tuple[MatrixShape, ...]] = {}
    for p in names:
        shapes[p] = tuple(
            MatrixShape(rows_in=f if p is Projection.DOWN else h, cols_out=h if p is Projection.DOWN else f,
                        per_layer=copies, active_per_layer=active, layers=layers, module=f"{prefix}.{p.value}_proj")
            for f, layers, copies, active, prefix in kinds
            if layers
        )  # fmt: skip
    return shapes


def _attention_shapes(arch: Architecture) -> dict[Projection, MatrixShape]:
    """Attention's linear projections: Q ``h x a*d_head``, K and V ``h x k*d_head`` (GQA/MQA shrink
    them; Ainslie et al. 2023), O ``a*d_head x h``. Multi-head latent attention (DeepSeek-V2,
    Liu et al. 2024, §2.1.2-2.1.3, eqs. 9-19; ``DeepseekV3Attention`` in ``transformers``), with
    ``d_qk = qk_nope_head_dim + qk_rope_head_dim``: ``q_a_proj`` ``h x q_lora_rank`` and ``q_b_proj``
    ``q_lora_rank x a*d_qk`` (or ``q_proj`` ``h x a*d_qk`` without a query rank);
    ``kv_a_proj_with_mqa`` ``h x (kv_lora_rank + qk_rope_head_dim)`` (the latent and the shared
    rotary key); ``kv_b_proj`` ``kv_lora_rank x a*(qk_nope_head_dim + v_head_dim)``; ``o_proj``
    ``a*v_head_dim x h``. The RMSNorms on the two latents are not linear layers."""
    h, a = arch.d_model, arch.n_heads
    layers = arch.attention_layers if arch.recurrent_layers else None  # a hybrid's attention layers only

    def one(rows_in: int, cols_out: int, module: str) -> MatrixShape:
        return MatrixShape(rows_in=rows_in, cols_out=cols_out, per_layer=1, active_per_layer=1, layers=layers,
                           module=f"self_attn.{module}")  # fmt: skip

    if not arch.is_mla:
        h_in = arch.attention_input_width  # 2h into Zamba's shared block
        return {
            Projection.Q: one(h_in, arch.q_proj_width, "q_proj"),  # with its output gate's half (Qwen3-Next)
            Projection.K: one(h_in, arch.kv_dim, "k_proj"),
            Projection.V: one(h_in, arch.kv_dim, "v_proj"),
            Projection.O: one(arch.q_dim, h, "o_proj"),
        }
    nope, rope, d_v = arch.qk_nope_head_dim or 0, arch.qk_rope_head_dim or 0, arch.v_head_dim or 0
    d_c = arch.kv_lora_rank or 0
    shapes: dict[Projection, MatrixShape] = {}
    if arch.q_lora_rank:
        shapes[Projection.Q_A] = one(h, arch.q_lora_rank, "q_a_proj")
        shapes[Projection.Q_B] = one(arch.q_lora_rank, a * (nope + rope), "q_b_proj")
    else:
        shapes[Projection.Q] = one(h, a * (nope + rope), "q_proj")
    shapes[Projection.KV_A] = one(h, d_c + rope, "kv_a_proj_with_mqa")
    shapes[Projection.KV_B] = one(d_c, a * (nope + d_v), "kv_b_proj")
    shapes[Projection.O] = one(a * d_v, h, "o_proj")
    return shapes


def projection_shapes(arch: Architecture) -> dict[Projection, tuple[MatrixShape, ...]]:
    """The block's linear projections (every one a LoRA adapter may target) and their shapes by
    layer type: attention's (:func:`_attention_shapes`) in every layer; the MLP's
    (:func:`_mlp_shapes`) — SwiGLU gate and up ``h x f`` and down ``f x h`` (Shazeer 2020), a
    2-matrix MLP up and down only — once per dense layer, once per routed expert (every expert has
    its own) and once for an expert layer's shared experts (one wider MLP)."""
    shapes = {p: (m,) for p, m in _attention_shapes(arch).items()} if arch.attention_layers else {}
    shapes.update({p: m for p, m in _mlp_shapes(arch).items() if m})
    return shapes


# the generic names on multi-head latent attention: the query path, and the joint key-value latent
MLA_ALIASES = {Projection.K: (Projection.KV_A, Projection.KV_B), Projection.V: (Projection.KV_A, Projection.KV_B)}


def resolve_targets(arch: Architecture, targets: tuple[Projection, ...] | None) -> tuple[Projection, ...]:
    """The adapted projections: the request's, or every linear projection the block has.

    On multi-head latent attention the generic names are mapped onto its projections: ``q`` is the
    query path (``q_proj``, or ``q_a_proj`` and ``q_b_proj`` with a query rank), ``k`` and ``v``
    both the joint key-value path (``kv_a_proj_with_mqa`` and ``kv_b_proj``: keys and values come
    from one latent, so neither can be adapted alone); ``o`` is ``o_proj``. The MLA names
    (``q_a``, ``q_b``, ``kv_a``, ``kv_b``) select one matrix each."""
    shapes = projection_shapes(arch)
    if not shapes:
        raise InvalidSpecError(
            "finetune.target_modules",
            "this model has no attention or MLP projection (only recurrent layers); adapters on the Mamba/RWKV "
            "projections are not modelled",
        )
    if targets is None:
        return tuple(shapes)
    aliases = dict(MLA_ALIASES) if arch.is_mla else {}
    if arch.is_mla and arch.q_lora_rank:
        aliases[Projection.Q] = (Projection.Q_A, Projection.Q_B)
    resolved = [a for t in targets for a in aliases.get(t, (t,))]
    missing = [t.value for t in resolved if t not in shapes]
    if missing:
        attention = "multi-head latent attention" if arch.is_mla else "standard attention"
        raise InvalidSpecError(
            "finetune.target_modules",
            f"{', '.join(dict.fromkeys(missing))}: this model ({attention}, ffn={arch.ffn.value}) has no such projection; "
            "it has " + ", ".join(shapes),
        )
    return tuple(dict.fromkeys(resolved))  # keep order, drop repeats


ATTENTION_PROJECTIONS = (Projection.Q, Projection.K, Projection.V, Projection.O, Projection.Q_A, Projection.Q_B,
                         Projection.KV_A, Projection.KV_B)  # fmt: skip


def stored_shape(arch: Architecture, m: MatrixShape) -> MatrixShape:
    """``m`` in the blocks that store it: a shared attention block's attention and MLP matrices once a
    block (Zamba: ``attention_weight_layers``, ``dense_mlp_weight_layers``), not once a use; as stored, a
    module holds one adapter (PEFT wraps each module once), however many layers call it."""
    if not arch.shared_attention_layers:
        return m
    stored = {"self_attn": arch.attention_weight_layers, "mlp": arch.dense_mlp_weight_layers}
    return replace(m, layers=stored.get(m.module.split(".")[0], m.layers))


def adapted_layers(arch: Architecture, targets: tuple[Projection, ...]) -> int:
    """Layers that hold at least one adapted matrix: the attention layers when an attention projection
    is targeted, the layers with an MLP when an MLP's is (:meth:`Architecture.layer_parts`); a hybrid's
    mixer-only layers (Mamba, Nemotron-H's) hold none, nor, with attention targets alone, its layers
    without attention."""
    attention = any(t in ATTENTION_PROJECTIONS for t in targets)
    mlp = any(t not in ATTENTION_PROJECTIONS for t in targets)
    return sum(1 for a, m in arch.layer_parts() if (attention and a) or (mlp and m))


def adapter_params(arch: Architecture, rank: int, targets: tuple[Projection, ...]) -> dict[Projection, int]:
    """Trainable parameters per targeted projection, all layers: ``copies * r * (in + out)`` summed
    over the layer types (Hu et al. 2021 §4.1; §5.1's ``2 * L_LoRA * d_model * r`` for square
    matrices); a shared block's once a block (:func:`stored_shape`)."""
    shapes = projection_shapes(arch)
    return {t: sum(stored_shape(arch, m).copies(arch.n_layers) * rank * (m.rows_in + m.cols_out) for m in shapes[t])
            for t in targets}  # fmt: skip


def active_adapter_params(arch: Architecture, rank: int, targets: tuple[Projection, ...]) -> int:
    """Adapter parameters one token passes through (``experts_per_token`` routed experts' adapters,
    every shared expert's, each layer type's own)."""
    shapes = projection_shapes(arch)
    return sum(m.active_copies(arch.n_layers) * rank * (m.rows_in + m.cols_out) for t in targets for m in shapes[t])


def adapter_params_split(arch: Architecture, rank: int, targets: tuple[Projection, ...]) -> tuple[int, int]:
    """(adapter parameters outside the routed experts, the routed experts'): the routed experts'
    adapters are split over expert-parallel ranks with their experts, the rest like the layers."""
    shapes = projection_shapes(arch)
    routed = sum(stored_shape(arch, m).copies(arch.n_layers) * rank * (m.rows_in + m.cols_out)
                 for t in targets for m in shapes[t] if m.per_layer > 1)  # fmt: skip
    return sum(adapter_params(arch, rank, targets).values()) - routed, routed
