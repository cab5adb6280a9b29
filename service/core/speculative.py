"""Speculative decoding and prefix caching, as a serving engine runs them.

**Speculative decoding** (Leviathan, Kalman & Matias 2023; Chen et al. 2023): a cheap drafter
proposes ``k`` tokens, the target model verifies them in one forward pass over ``k + 1`` positions
per sequence and keeps the accepted prefix plus one token of its own. With each drafted token
accepted independently with probability ``alpha``, a verification step yields
``(1 - alpha^(k+1)) / (1 - alpha)`` tokens on average (Leviathan et al. §3.1, eq. 1). The step
costs the target's pass over ``k + 1`` tokens per sequence (the weights and the KV cache read once,
the FLOPs ``k + 1`` times) plus ``k`` sequential draft steps. The drafter is:

- ``draft``: a separate small model (Leviathan et al.; Chen et al.), its own decode steps;
- ``eagle``: one decoder layer over the target's features, sharing its embedding and output layer
  (Li et al. 2024, "EAGLE", §3);
- ``mtp``: DeepSeek-V3's multi-token-prediction module, one transformer block sharing the
  embedding and output head (DeepSeek-AI 2024, "DeepSeek-V3 Technical Report", §2.2 and §5.4.3:
  the second token accepted 85-90 % of the time, 1.8x the tokens per second).

The last two are drafted as a one-layer model of the target's width, with an **input projection**
before the layer: both concatenate the target's feature with the next token's embedding and
project the ``2h`` values to ``h`` (EAGLE §3: the "FC" layer of its draft head; DeepSeek-V3 §2.2
eq. 21: ``M_k`` of ``d x 2d``), ``2 h^2`` weights read and ``2 * 2 h^2`` FLOPs a drafted token. The
engines keep it whole on every tensor rank (a plain ``torch.nn.Linear`` ``fc`` in vLLM's
``model_executor/models/llama_eagle.py`` and SGLang's ``models/llama_eagle.py``), so each rank
reads and computes all of it.

**Prefix caching** (vLLM's automatic prefix caching; SGLang's RadixAttention, Zheng et al. 2024):
a prompt whose first ``h*P`` tokens are in the cache computes only the rest. In a causal model the
prefix's keys and values do not depend on what follows, so the prefill of the rest costs the
prefill of all ``P`` tokens less the prefill of the cached ``h*P``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from service.core.architecture import Architecture
from service.core.hardware import Hardware, matmul_seconds
from service.core.inference import cached_tokens, kv_cache_elements_per_token_per_layer
from service.core.params import count_params


class DraftMethod(StrEnum):
    DRAFT_MODEL = "draft"
    EAGLE = "eagle"
    MTP = "mtp"


@dataclass(frozen=True, kw_only=True, slots=True)
class Speculation:
    """``tokens`` (k) drafted per step, each accepted with probability ``acceptance_rate``;
    ``draft`` the drafter's architecture (a one-layer model of the target for EAGLE and MTP)."""

    method: DraftMethod
    tokens: int
    acceptance_rate: float
    draft: Architecture
    input_projection: tuple[int, int] | None = None  # (in, out) of EAGLE's and MTP's 2h -> h projection, whole on every rank

    @property
    def projection_params(self) -> int:
        return self.input_projection[0] * self.input_projection[1] if self.input_projection else 0

    @property
    def tokens_per_step(self) -> float:
        return expected_tokens(self.acceptance_rate, self.tokens)


def expected_tokens(acceptance_rate: float, tokens: int) -> float:
    """Tokens one verification step yields on average: ``(1 - a^(k+1)) / (1 - a)`` (Leviathan et
    al. 2023 §3.1, eq. 1), ``k + 1`` when every draft is accepted."""
    if not 0 <= acceptance_rate <= 1 or tokens < 1:
        raise ValueError("acceptance_rate in [0, 1] and tokens >= 1")
    if acceptance_rate == 1:
        return float(tokens + 1)
    return (1 - acceptance_rate ** (tokens + 1)) / (1 - acceptance_rate)


def speculation(
    method: DraftMethod, *, target: Architecture, tokens: int, acceptance_rate: float, draft_model: Architecture | None = None
) -> Speculation:
    """The drafter of ``method`` for ``target``: the given draft model, or one layer of the
    target's width (EAGLE's head, DeepSeek-V3's MTP block) sharing its embedding and output layer,
    after its ``2h -> h`` input projection (module docstring)."""
    if method is DraftMethod.DRAFT_MODEL:
        if draft_model is None:
            raise ValueError("draft_model needs the draft model")
        return Speculation(method=method, tokens=tokens, acceptance_rate=acceptance_rate, draft=draft_model)
    window = None if target.sliding_window_layers is None else min(target.sliding_window_layers, 1)
    # one attention layer, whatever mixers the target's layers have (EAGLE's and MTP's block)
    draft = dataclasses.replace(target, n_layers=1, first_k_dense=0, sliding_window_layers=window, layer_types=None)
    projection = (2 * target.d_model, target.d_model)
    return Speculation(method=method, tokens=tokens, acceptance_rate=acceptance_rate, draft=draft, input_projection=projection)


def oversized_draft(draft: Architecture, target: Architecture) -> str | None:
    """Why ``draft`` can never speed up ``target``, or None: its parameters a token (what a draft
    step computes and at least reads) exceed all of the target's (what a target step at most reads
    and computes), so a draft step costs more than a target step, ``c > 1``. Leviathan et al. 2023
    §3.4 (Theorem 3.8) give the expected speed-up as ``(1 - a^(k+1)) / ((1 - a)(k c + 1))``, at most
    ``(k + 1) / (k c + 1) < 1`` for ``c > 1`` whatever the acceptance rate ``a`` and the ``k``
    drafted tokens (their Corollary 3.9: a speed-up needs ``a > c``)."""
    drafted, verified = count_params(draft).active, count_params(target).total
    if drafted <= verified:
        return None
    return (f"the drafter's {drafted:,} parameters a token exceed the target's {verified:,}: each draft step costs more "
            "than a target step, so speculative decoding is never faster (Leviathan et al. 2023 §3.4)")  # fmt: skip


def draft_kv_bytes_per_token(draft: Architecture, target: Architecture, target_kv_bytes_per_token: int) -> int:
    """The drafter's KV-cache bytes per token over its layers, in the target's KV-cache format: its own
    cached values a token (its attention layers, KV heads and head width, or MLA latent:
    :func:`service.core.inference.kv_cache_elements_per_token_per_layer`) at the target's bytes a
    value; 2 bytes a value (bf16, the KV cache's default) where the target caches none (a recurrent model)."""
    target_values = kv_cache_elements_per_token_per_layer(target) * cached_tokens(target, 1)
    per_value = target_kv_bytes_per_token / target_values if target_values else 2.0
    return math.ceil(kv_cache_elements_per_token_per_layer(draft) * cached_tokens(draft, 1) * per_value)


def draft_memory_share(spec: Speculation, target: Architecture, tp: int = 1) -> float:
    """The weights the drafter adds to a replica of ``tp`` GPUs, as a share of the target's
    parameters (its bytes taken at the target's mean bytes a parameter): a draft model's every
    parameter; EAGLE's and MTP's block without the embedding and output layer they share with the
    target (Li et al. 2024 §3; DeepSeek-V3 §2.2), and their input projection on each of the ``tp``
    GPUs (module docstring). Its KV cache sits beside the target's in the same pool, as vLLM
    allocates the drafter's layers' blocks with the target's."""
    params = count_params(spec.draft)
    added = params.total if spec.method is DraftMethod.DRAFT_MODEL else params.non_embedding
    return (added + tp * spec.projection_params) / count_params(target).total


def projection_seconds(spec: Speculation | None, hw: Hardware, tokens: Any, weight_bytes_per_element: float = 2.0) -> Any:
    """EAGLE's and MTP's input projection over ``tokens`` rows on one GPU (whole on every rank:
    module docstring), a kernel of its own at the matmul roofline
    (:func:`service.core.hardware.matmul_seconds`, its weights at ``weight_bytes_per_element``, the
    activations 16-bit): a prompt's rows in a prefill, a batch's in a draft step; 0 for a draft
    model or no tokens."""
    if spec is None or spec.input_projection is None:
        return 0.0
    k_in, n_out = spec.input_projection
    return matmul_seconds(tokens, k_in, n_out, hw, 2, weight_bytes_per_element=weight_bytes_per_element)


def cached_prefix_tokens(prompt_tokens: int, hit_rate: float) -> int:
    """The prompt tokens found in the prefix cache, at most all but one (the last position is
    always computed: its logits give the first output token)."""
    return min(max(prompt_tokens - 1, 0), round(prompt_tokens * hit_rate))
