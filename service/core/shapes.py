"""Representative architectures: a parameter count becomes the decoder a current open family
would build at that size, so that answers which know only a count (budgets, lifetimes) can be
timed by the planner and the serving model.

Each family is its published configurations (``config.json`` of the released checkpoints, the
anchors below). A count ``N`` becomes a shape by the family's rules:

- **depth**: ``n_layers`` interpolated linearly in ``log N`` against ``log n_layers`` between the
  two anchors around ``N`` (extrapolated along the nearest segment outside them);
- **width**: ``d_model`` the multiple of the family's head width (128 in all three) whose exact
  count at that depth is nearest ``N``; ``n_heads = d_model / d_head``;
- **MLP**: SwiGLU with ``d_ff / d_model`` interpolated like the depth, rounded to the family's
  multiple;
- **GQA, vocabulary, tied embeddings, biases, norms**: the nearest anchor's (``n_kv_heads``
  lowered to a divisor of ``n_heads`` where needed).

At an anchor's exact count the rules give the anchor back (tests/core/test_shapes.py).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from service.core.architecture import Architecture
from service.core.errors import InvalidSpecError
from service.core.params import count_params
from service.core.spec import make_architecture


class ShapeFamily(StrEnum):
    LLAMA3 = "llama3"
    QWEN25 = "qwen2.5"
    OLMO2 = "olmo2"


@dataclass(frozen=True, kw_only=True, slots=True)
class Anchor:
    """One released configuration of a family (its ``config.json``)."""

    name: str
    n_layers: int
    d_model: int
    n_kv_heads: int
    d_ff: int
    vocab_size: int
    tied_embeddings: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class FamilyRules:
    family: ShapeFamily
    anchors: tuple[Anchor, ...]  # ascending in size
    d_head: int
    d_ff_multiple: int  # d_ff is rounded to this
    max_seq_len: int  # the pre-training sequence length, the planner's default
    source: str
    qkv_bias: bool = False
    qk_norm: bool = False
    qk_norm_full_width: bool = False

    def architecture(self, *, n_layers: int, d_model: int, d_ff: int, like: Anchor, n_kv_heads: int) -> Architecture:
        n_heads, kv = d_model // self.d_head, n_kv_heads
        return make_architecture(
            n_layers=n_layers, d_model=d_model, n_heads=n_heads, n_kv_heads=kv, d_head=self.d_head, d_ff=d_ff,
            vocab_size=like.vocab_size, ffn="swiglu", norm="rmsnorm", tied_embeddings=like.tied_embeddings,
            qkv_bias=self.qkv_bias, qk_norm=self.qk_norm, qk_norm_full_width=self.qk_norm_full_width,
            max_seq_len=self.max_seq_len,
        )  # fmt: skip

    def anchor_architecture(self, anchor: Anchor) -> Architecture:
        return self.architecture(n_layers=anchor.n_layers, d_model=anchor.d_model, d_ff=anchor.d_ff, like=anchor,
                                 n_kv_heads=anchor.n_kv_heads)  # fmt: skip


FAMILIES: dict[ShapeFamily, FamilyRules] = {
    ShapeFamily.LLAMA3: FamilyRules(
        family=ShapeFamily.LLAMA3,
        anchors=(
            Anchor(
                name="Llama 3.2 3B", n_layers=28, d_model=3072, n_kv_heads=8, d_ff=8192, vocab_size=128256, tied_embeddings=True
            ),
            Anchor(name="Llama 3.1 8B", n_layers=32, d_model=4096, n_kv_heads=8, d_ff=14336, vocab_size=128256),
            Anchor(name="Llama 3.1 70B", n_layers=80, d_model=8192, n_kv_heads=8, d_ff=28672, vocab_size=128256),
            Anchor(name="Llama 3.1 405B", n_layers=126, d_model=16384, n_kv_heads=8, d_ff=53248, vocab_size=128256),
        ),  # fmt: skip
        d_head=128,
        d_ff_multiple=256,  # Llama 3 rounds to 1,024 (multiple_of in meta-llama/llama3 model.py); 256 lets counts land closer
        max_seq_len=8192,  # pre-trained on 8K-token sequences (Dubey et al. 2024 §3.4)
        source="config.json of meta-llama/Llama-3.2-3B, Llama-3.1-8B, -70B, -405B (Dubey et al. 2024 Table 3)",
    ),
    ShapeFamily.QWEN25: FamilyRules(
        family=ShapeFamily.QWEN25,
        anchors=(
            Anchor(
                name="Qwen2.5 1.5B", n_layers=28, d_model=1536, n_kv_heads=2, d_ff=8960, vocab_size=151936, tied_embeddings=True
            ),
            Anchor(
                name="Qwen2.5 3B", n_layers=36, d_model=2048, n_kv_heads=2, d_ff=11008, vocab_size=151936, tied_embeddings=True
            ),
            Anchor(name="Qwen2.5 7B", n_layers=28, d_model=3584, n_kv_heads=4, d_ff=18944, vocab_size=152064),
            Anchor(name="Qwen2.5 14B", n_layers=48, d_model=5120, n_kv_heads=8, d_ff=13824, vocab_size=152064),
            Anchor(name="Qwen2.5 32B", n_layers=64, d_model=5120, n_kv_heads=8, d_ff=27392, vocab_size=152064),
            Anchor(name="Qwen2.5 72B", n_layers=80, d_model=8192, n_kv_heads=8, d_ff=29568, vocab_size=152064),
        ),  # fmt: skip
        d_head=128,
        d_ff_multiple=128,
        max_seq_len=4096,  # pre-trained at 4,096 tokens before the long-context stage (Qwen2.5 report, 2024 §3.3)
        qkv_bias=True,
        source="config.json of Qwen/Qwen2.5-1.5B, -3B, -7B, -14B, -32B, -72B (Qwen2.5 technical report, 2024 Table 1)",
    ),
    ShapeFamily.OLMO2: FamilyRules(
        family=ShapeFamily.OLMO2,
        anchors=(
            Anchor(name="OLMo 2 7B", n_layers=32, d_model=4096, n_kv_heads=32, d_ff=11008, vocab_size=100352),
            Anchor(name="OLMo 2 13B", n_layers=40, d_model=5120, n_kv_heads=40, d_ff=13824, vocab_size=100352),
            Anchor(name="OLMo 2 32B", n_layers=64, d_model=5120, n_kv_heads=8, d_ff=27648, vocab_size=100352),
        ),
        d_head=128,
        d_ff_multiple=128,
        max_seq_len=4096,  # OLMo 2 pre-training context (OLMo et al. 2024, "2 OLMo 2 Furious" §2)
        qk_norm_full_width=True,  # RMSNorm over the whole q and k projections (Olmo2Attention.q_norm)
        source="config.json of allenai/OLMo-2-1124-7B, -13B and OLMo-2-0325-32B (OLMo et al. 2024 Table 1)",
    ),
}


def _inside(n_params: float, points: list[tuple[float, float]]) -> float:
    """Linear in log-log through ``(count, value)`` points ascending in count, for a count
    inside them."""
    x = math.log(n_params)
    logs = [(math.log(n), math.log(v)) for n, v in points]
    i = next((k for k in range(1, len(logs)) if x <= logs[k][0]), len(logs) - 1)
    (x0, y0), (x1, y1) = logs[i - 1], logs[i]
    return math.exp(y0 + (y1 - y0) * (x - x0) / (x1 - x0))


@functools.cache
def anchor_counts(rules: FamilyRules) -> tuple[tuple[Anchor, int], ...]:
    """Each anchor with its exact parameter count."""
    return tuple((a, count_params(rules.anchor_architecture(a)).total) for a in rules.anchors)


MAX_WIDTH_HEADS = 1024  # d_model up to 131,072: beyond any released dense model


def depth_and_ratio(n_params: float, rules: FamilyRules) -> tuple[int, float, Anchor]:
    """The layer count and ``d_ff / d_model`` of the family at ``n_params``, and the anchor whose
    GQA, vocabulary and embedding tying it takes. Inside the anchors: interpolated in log-log.
    Outside them: the end anchor's aspect ratio ``d_model / n_layers`` and MLP ratio held, so
    depth and width both grow as ``N^(1/3)`` (Kaplan et al. 2020 §3.1 and Fig. 5: the loss is
    nearly flat in the aspect ratio over a wide range)."""
    counted = anchor_counts(rules)
    (first, n_first), (last, n_last) = counted[0], counted[-1]
    like = min(counted, key=lambda item: abs(math.log(item[1]) - math.log(n_params)))[0]
    if n_params <= n_first or n_params >= n_last:
        end, n_end = (first, n_first) if n_params <= n_first else (last, n_last)
        return max(1, round(end.n_layers * (n_params / n_end) ** (1 / 3))), end.d_ff / end.d_model, like
    layers = round(_inside(n_params, [(n, a.n_layers) for a, n in counted]))
    ratio = _inside(n_params, [(n, a.d_ff / a.d_model) for a, n in counted])
    return layers, ratio, like


def representative_architecture(n_params: float, family: ShapeFamily = ShapeFamily.LLAMA3) -> Architecture:
    """The decoder ``family`` builds at about ``n_params`` parameters (module docstring's rules).

    The width is a multiple of ``d_head`` times the anchor's KV-head count (so the heads group
    evenly, as in every released GQA model), either side of the width whose count at the family's
    depth and MLP ratio is ``n_params``. That step is coarse (1,024 wide for Llama 3), so the depth
    (within a quarter of the rule's) and then ``d_ff`` (a multiple of the family's rounding, within
    a quarter of the ratio's) take up what it leaves: the count is linear in each."""
    if not (math.isfinite(n_params) and n_params >= 1):
        raise InvalidSpecError("n_params", f"{n_params:g} is not a parameter count")
    rules = FAMILIES[family]
    layers, ratio, like = depth_and_ratio(n_params, rules)
    group = like.n_kv_heads if like.n_kv_heads * rules.d_head < like.d_model else 1  # GQA: heads come in KV groups

    def build(heads: int, *, n_layers: int = layers, d_ff: int | None = None) -> Architecture:
        d_model = heads * rules.d_head
        return rules.architecture(n_layers=n_layers, d_model=d_model, d_ff=d_ff or max(1, round(ratio * d_model)),
                                  like=like, n_kv_heads=math.gcd(group, heads) if group > 1 else heads)  # fmt: skip

    lo, hi = 1, MAX_WIDTH_HEADS  # the count grows with the width: bisect for the first at or above n_params
    while lo < hi:
        mid = (lo + hi) // 2
        if count_params(build(mid)).total < n_params:
            lo = mid + 1
        else:
            hi = mid
    widths = {max(group, (lo - 1) // group * group), max(group, -(-lo // group) * group)}
    candidates = [_fit(build, heads, layers, rules, ratio, n_params) for heads in sorted(widths) if heads <= MAX_WIDTH_HEADS]
    return min(candidates, key=lambda arch: abs(count_params(arch).total - n_params))


Build = Callable[..., Architecture]


def _nearest_step(build: Build, n_params: float, value: Callable[[int], dict[str, int]], low: int, high: int) -> int:
    """The step k in [low, high] whose count is nearest ``n_params``, for a count linear in k."""
    one, two = (count_params(build(**value(k))).total for k in (1, 2))
    k = round((n_params - one) / (two - one)) + 1 if two != one else low
    return min(max(k, low), max(low, high))


def _fit(build: Build, heads: int, layers: int, rules: FamilyRules, ratio: float, n_params: float) -> Architecture:
    """At ``heads`` heads: the depth, then the ``d_ff``, whose counts are nearest ``n_params``."""
    m, d_model = rules.d_ff_multiple, heads * rules.d_head
    depth = _nearest_step(lambda **kw: build(heads, **kw), n_params, lambda k: {"n_layers": k},
                          max(1, round(0.75 * layers)), max(1, round(1.33 * layers)))  # fmt: skip
    low, high = max(1, math.ceil(0.75 * ratio * d_model / m)), max(1, math.floor(1.33 * ratio * d_model / m))
    steps = _nearest_step(lambda **kw: build(heads, n_layers=depth, **kw), n_params, lambda k: {"d_ff": k * m}, low, high)
    return build(heads, n_layers=depth, d_ff=steps * m)


def describe(arch: Architecture, family: ShapeFamily) -> str:
    """The shape in one line, for ``assumptions``."""
    gqa = f", {arch.n_kv_heads} KV heads" if arch.n_kv_heads != arch.n_heads else ""
    return (
        f"{family.value}: {arch.n_layers} layers, d_model {arch.d_model}, {arch.n_heads} heads of {arch.d_head}{gqa}, "
        f"SwiGLU d_ff {arch.d_ff}, vocabulary {arch.vocab_size:,}{', tied embeddings' if arch.tied_embeddings else ''}"
    )
