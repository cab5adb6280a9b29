"""Validated construction of model shapes.

Every rule names the field it checks, so the API can turn a :class:`InvalidSpecError` into a 422
that points at the offending field.
"""

from __future__ import annotations

from typing import Any

from service.core.architecture import ARCHITECTURE_FIELDS, Architecture, Ffn, Norm, ParamsOnly, Position
from service.core.errors import InvalidSpecError
from service.core.fields import Stored
from service.core.layer_rules import check_layers
from service.core.limits import (
    MAX_DIM,
    MAX_LAYERS,
    MAX_PARAMS,
    MAX_SEQ_LEN,
    check_positive_int,
    check_positive_number,
)
from service.core.params import count_params


def make_params_only(n_params: float, *, prefix: str = "model") -> ParamsOnly:
    """Validate a bare parameter count (finite, >= 1, at most ``MAX_PARAMS``)."""
    check_positive_number(f"{prefix}.n_params", n_params, maximum=MAX_PARAMS)
    if n_params < 1:
        raise InvalidSpecError(f"{prefix}.n_params", "must be at least 1 parameter")
    return ParamsOnly(n_params=float(n_params))


def make_architecture(*, prefix: str = "model", assumptions: tuple[tuple[str, str], ...] = (), **given: Any) -> Architecture:
    """Build a validated :class:`Architecture` from its fields (:data:`ARCHITECTURE_FIELDS`, by name);
    every rule names the field it checks.

    A field not given takes its declared default: ``n_kv_heads = n_heads`` (multi-head attention),
    ``d_head = d_model / n_heads``, the dataclass's default for the others. A field that preset rows
    store only where a preset uses it, or that they do not store, reads None as its default (a stored
    preset keeps the newer fields null where they do not apply). An unknown or missing required
    field is a ``TypeError``, as for any keyword argument.
    """

    def f(name: str) -> str:
        return f"{prefix}.{name}" if prefix else name

    v = _with_defaults(given)
    _check_attention_options(f, kv_lora_rank=v["kv_lora_rank"], qk_norm=v["qk_norm"], qk_norm_full_width=v["qk_norm_full_width"],
                             attention_sinks=v["attention_sinks"])  # fmt: skip
    v["n_kv_heads"], v["d_head"] = _check_shape(f, **{name: v[name] for name in _SHAPE_FIELDS})
    try:
        v["ffn"], v["norm"], v["position"] = Ffn(v["ffn"]), Norm(v["norm"]), Position(v["position"])
    except ValueError as exc:  # only reachable from library callers; the API validates enums
        raise InvalidSpecError(prefix, str(exc)) from exc
    _check_extensions(f, **{name: v[name] for name in _EXTENSION_FIELDS})
    check_layers(f, v)
    if v["kv_lora_rank"] is not None:  # MLA: the heads' query/key width is nope + rope
        v["d_head"] = (v["qk_nope_head_dim"] or 0) + (v["qk_rope_head_dim"] or 0)
        v["n_kv_heads"] = v["n_heads"]
    rows = v["position_embedding_rows"]
    if rows is not None:
        check_positive_int(f("position_embedding_rows"), rows, maximum=MAX_SEQ_LEN)
        if v["position"] is not Position.LEARNED:
            raise InvalidSpecError(f("position_embedding_rows"), "only applies to position='learned'")
    arch = Architecture(**v, assumptions=tuple(assumptions))
    if count_params(arch).total > MAX_PARAMS:
        raise InvalidSpecError(prefix, f"the architecture has more than {MAX_PARAMS:g} parameters")
    return arch


_FIELDS = {f.name: f for f in ARCHITECTURE_FIELDS}
# the keyword arguments of the rule groups below
_SHAPE_FIELDS = ("n_layers", "d_model", "n_heads", "d_ff", "vocab_size", "max_seq_len", "n_experts", "experts_per_token",
                 "norms_per_layer", "n_kv_heads", "d_head")  # fmt: skip
_EXTENSION_FIELDS = ("n_layers", "n_experts", "q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim",
                     "v_head_dim", "sliding_window", "sliding_window_layers", "n_shared_experts", "d_ff_shared",
                     "shared_expert_gate", "first_k_dense", "d_ff_dense", "router_bias")  # fmt: skip


def _with_defaults(given: dict[str, Any]) -> dict[str, Any]:
    """Every declared field's value: given, else its default; None read as the default where presets
    store the field only where it applies (or not at all), a boolean such field as a bool."""
    unknown = given.keys() - _FIELDS.keys()
    if unknown:
        raise TypeError(f"make_architecture() got unexpected keyword arguments: {', '.join(sorted(unknown))}")
    missing = [name for name, spec in _FIELDS.items() if spec.required and name not in given]
    if missing:
        raise TypeError(f"make_architecture() missing required keyword arguments: {', '.join(missing)}")
    values = {}
    for name, spec in _FIELDS.items():
        value = given.get(name, spec.default)
        if spec.stored is not Stored.ALWAYS and not spec.optional:
            value = spec.default if value is None else value
            value = bool(value) if spec.kind is bool else value
        values[name] = value
    return values


def _check_attention_options(
    f, *, kv_lora_rank: int | None, qk_norm: bool, qk_norm_full_width: bool, attention_sinks: bool
) -> None:
    """Rules of the query/key norms and attention sinks: one kind of query/key norm, and none of them
    on multi-head latent attention (whose ``attention_bias`` biases its down- and output projections)."""
    if qk_norm_full_width and qk_norm:
        raise InvalidSpecError(
            f("qk_norm_full_width"), "give qk_norm (per head) or qk_norm_full_width (whole projection), not both"
        )
    not_for_mla = (("qk_norm_full_width", qk_norm_full_width), ("qk_norm", qk_norm), ("attention_sinks", attention_sinks))
    for name, given in not_for_mla:
        if given and kv_lora_rank is not None:  # MLA's latents carry their own norms; no model pairs them
            raise InvalidSpecError(f(name), "does not apply to multi-head latent attention (kv_lora_rank)")


def _check_shape(
    f,
    *,
    n_layers: int,
    d_model: int,
    n_heads: int,
    d_ff: int,
    vocab_size: int,
    max_seq_len: int,
    n_experts: int,
    experts_per_token: int,
    norms_per_layer: int,
    n_kv_heads: int | None,
    d_head: int | None,
) -> tuple[int, int]:
    """Rules of the sizes: each a positive integer within its limit, the heads dividing ``d_model``
    unless ``d_head`` is given, the KV heads dividing the heads, no more experts per token than
    experts. Returns ``n_kv_heads`` and ``d_head`` with their defaults filled in."""
    check_positive_int(f("n_layers"), n_layers, maximum=MAX_LAYERS)
    check_positive_int(f("d_model"), d_model, maximum=MAX_DIM)
    check_positive_int(f("n_heads"), n_heads, maximum=MAX_DIM)
    check_positive_int(f("d_ff"), d_ff, maximum=MAX_DIM * 8)
    check_positive_int(f("vocab_size"), vocab_size, maximum=MAX_DIM * 10)
    check_positive_int(f("max_seq_len"), max_seq_len, maximum=MAX_SEQ_LEN)
    check_positive_int(f("n_experts"), n_experts, maximum=100_000)
    check_positive_int(f("experts_per_token"), experts_per_token, maximum=100_000)
    check_positive_int(f("norms_per_layer"), norms_per_layer, maximum=8)
    if d_head is None and d_model % n_heads:  # a given d_head need not be d_model / n_heads (GLM-4.5: 96 x 128 on 4096)
        raise InvalidSpecError(f("n_heads"), f"n_heads={n_heads} does not divide d_model={d_model}")
    if n_kv_heads is None:
        n_kv_heads = n_heads
    check_positive_int(f("n_kv_heads"), n_kv_heads, maximum=MAX_DIM)
    if n_kv_heads > n_heads or n_heads % n_kv_heads:
        raise InvalidSpecError(f("n_kv_heads"), f"n_kv_heads={n_kv_heads} does not divide n_heads={n_heads}")
    if d_head is None:
        d_head = d_model // n_heads
    check_positive_int(f("d_head"), d_head, maximum=MAX_DIM)
    if experts_per_token > n_experts:
        raise InvalidSpecError(
            f("experts_per_token"),
            f"experts_per_token={experts_per_token} exceeds n_experts={n_experts}",
        )
    return n_kv_heads, d_head


def _check_extensions(
    f,
    *,
    n_layers: int,
    n_experts: int,
    q_lora_rank: int | None,
    kv_lora_rank: int | None,
    qk_nope_head_dim: int | None,
    qk_rope_head_dim: int | None,
    v_head_dim: int | None,
    sliding_window: int | None,
    sliding_window_layers: int | None,
    n_shared_experts: int,
    d_ff_shared: int | None,
    shared_expert_gate: bool,
    first_k_dense: int,
    d_ff_dense: int | None,
    router_bias: bool,
) -> None:
    """Rules of the multi-head latent attention, sliding-window and shared-expert fields."""
    mla = {"qk_nope_head_dim": qk_nope_head_dim, "qk_rope_head_dim": qk_rope_head_dim, "v_head_dim": v_head_dim}
    if kv_lora_rank is not None:
        check_positive_int(f("kv_lora_rank"), kv_lora_rank, maximum=MAX_DIM)
        for name, value in mla.items():
            if value is None:
                raise InvalidSpecError(f(name), "multi-head latent attention (kv_lora_rank) needs it")
            if name == "qk_nope_head_dim" and value == 0:
                continue
            check_positive_int(f(name), value, maximum=MAX_DIM)
        if q_lora_rank is not None:
            check_positive_int(f("q_lora_rank"), q_lora_rank, maximum=MAX_DIM)
    else:
        for name, value in {**mla, "q_lora_rank": q_lora_rank}.items():
            if value is not None:
                raise InvalidSpecError(f(name), "only applies to multi-head latent attention: set kv_lora_rank")
    if sliding_window is not None:
        check_positive_int(f("sliding_window"), sliding_window, maximum=MAX_SEQ_LEN)
    if sliding_window_layers is not None:
        if sliding_window is None:
            raise InvalidSpecError(f("sliding_window_layers"), "needs sliding_window")
        if not 0 <= sliding_window_layers <= n_layers:
            raise InvalidSpecError(f("sliding_window_layers"), f"must be between 0 and n_layers={n_layers}")
    moe_only = {
        "n_shared_experts": n_shared_experts, "d_ff_shared": d_ff_shared, "shared_expert_gate": shared_expert_gate,
        "first_k_dense": first_k_dense, "d_ff_dense": d_ff_dense, "router_bias": router_bias,
    }  # fmt: skip
    if n_experts == 1:
        for name, value in moe_only.items():
            if value:
                raise InvalidSpecError(f(name), "only applies to a mixture of experts (n_experts > 1)")
        return
    if not 0 <= n_shared_experts <= 1_000:
        raise InvalidSpecError(f("n_shared_experts"), "must be between 0 and 1000")
    if d_ff_shared is not None:
        check_positive_int(f("d_ff_shared"), d_ff_shared, maximum=MAX_DIM * 8)
    if d_ff_dense is not None:
        check_positive_int(f("d_ff_dense"), d_ff_dense, maximum=MAX_DIM * 8)
    if not 0 <= first_k_dense < n_layers:
        raise InvalidSpecError(f("first_k_dense"), f"must be between 0 and n_layers - 1 = {n_layers - 1}")
