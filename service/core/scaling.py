"""Scaling laws: compute-optimal parameters and tokens for a compute budget, and predicted loss.

The parametric loss ``L(N, D) = E + A/N^alpha + B/D^beta`` (Hoffmann et al. 2022, "Training
Compute-Optimal Large Language Models", §3.3, Approach 3) is in nats per token on the fit's own
training distribution (MassiveText for Hoffmann; the same data, re-extracted from the paper's
figures, for Besiroglu et al.). It is comparable between models only on that data, and it is an
extrapolation outside the fitted range (about 70M–16B parameters, 5B–500B tokens).

Under ``C = 6*N*D`` the loss is minimised at (Hoffmann et al. 2022, Appendix D.2)
``N_opt = G * (C/6)^(beta/(alpha+beta))``, ``D_opt = (C/6) / N_opt``,
``G = (alpha*A / (beta*B))^(1/(alpha+beta))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from service.core.errors import InvalidSpecError
from service.core.limits import check_flops


class ScalingLaw(StrEnum):
    CHINCHILLA_20 = "chinchilla_20"
    HOFFMANN2022 = "hoffmann2022"
    BESIROGLU2024 = "besiroglu2024"


@dataclass(frozen=True, kw_only=True, slots=True)
class LossFit:
    """``L(N, D) = E + A/N^alpha + B/D^beta`` with its source."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    source: str

    def loss(self, n_params: float, tokens: float) -> float:
        return self.E + self.A / n_params**self.alpha + self.B / tokens**self.beta

    @property
    def G(self) -> float:
        return (self.alpha * self.A / (self.beta * self.B)) ** (1 / (self.alpha + self.beta))


HOFFMANN_2022 = LossFit(
    E=1.6934,
    A=406.4,
    B=410.7,
    alpha=0.3392,
    beta=0.2849,
    source=(
        "Hoffmann et al. 2022 §3.3 (Approach 3): A 406.4, B 410.7 as printed; E 1.6934, alpha 0.3392, "
        "beta 0.2849 unrounded as reported by Besiroglu et al. 2024 (the printed E 1.69, alpha 0.34, "
        "beta 0.28 move the optimum at Gopher's budget from ~40B to ~32B parameters)"
    ),
)
BESIROGLU_2024 = LossFit(
    E=1.8172,
    A=482.01,
    B=2085.43,
    alpha=0.3478,
    beta=0.3658,
    source="Besiroglu et al. 2024, 'Chinchilla Scaling: A replication attempt', Table 1 (Approach 3 refit)",
)
CHINCHILLA_TOKENS_PER_PARAM = 20.0  # Hoffmann et al. 2022 Table 3: ~20 tokens per parameter

FITS = {
    ScalingLaw.CHINCHILLA_20: HOFFMANN_2022,  # the rule fixes the shape; loss from the Hoffmann fit
    ScalingLaw.HOFFMANN2022: HOFFMANN_2022,
    ScalingLaw.BESIROGLU2024: BESIROGLU_2024,
}


@dataclass(frozen=True, kw_only=True, slots=True)
class TrainingShape:
    """A model size and a token count for a compute budget, and the loss the fit predicts."""

    compute_flops: float
    params: float
    tokens: float
    tokens_per_param: float
    predicted_loss: float
    optimal_params: float
    optimal_tokens: float
    optimal_loss: float
    law: ScalingLaw
    formulas: tuple[str, ...]

    @property
    def loss_gap(self) -> float:
        """How much loss this shape gives up against the law's optimum for the same compute."""
        return self.predicted_loss - self.optimal_loss


def optimal_shape(compute_flops: float, law: ScalingLaw) -> tuple[float, float]:
    """(N_opt, D_opt) for ``compute_flops`` under ``law``.

    ``chinchilla_20``: ``D = 20*N`` so ``C = 120*N^2``, ``N = sqrt(C/120)`` (Hoffmann et al.
    2022 Table 3; Transformers Math 101). Fits: the closed form in the module docstring.
    """
    if law is ScalingLaw.CHINCHILLA_20:
        n = math.sqrt(compute_flops / (6 * CHINCHILLA_TOKENS_PER_PARAM))
        return n, CHINCHILLA_TOKENS_PER_PARAM * n
    fit = FITS[law]
    n = fit.G * (compute_flops / 6) ** (fit.beta / (fit.alpha + fit.beta))
    return n, (compute_flops / (6 * n) if n > 0 else 0.0)


def shape_for_budget(
    compute_flops: float,
    law: ScalingLaw,
    *,
    n_params: float | None = None,
    tokens_per_param: float | None = None,
    budget_field: str = "compute_flops",
) -> TrainingShape:
    """The training shape for ``compute_flops``: the law's optimum, or a fixed model size
    (``n_params``: D = C/(6N)), or a fixed ratio (``tokens_per_param`` r: N = sqrt(C/(6r))),
    with the loss each gives and the loss at the optimum for comparison."""
    check_flops("compute_flops", compute_flops)
    if n_params is not None and tokens_per_param is not None:
        raise InvalidSpecError("n_params", "give n_params or tokens_per_param, not both")
    fit = FITS[law]
    n_opt, d_opt = optimal_shape(compute_flops, law)
    if not (n_opt >= 1 and d_opt >= 1):
        raise InvalidSpecError(budget_field, f"the budget buys {compute_flops:.3g} FLOPs: under one parameter or one token")
    formulas = [
        "C = 6*N*D (Kaplan et al. 2020 §2.1)",
        "N = sqrt(C/120), D = 20*N (Hoffmann et al. 2022 Table 3)"
        if law is ScalingLaw.CHINCHILLA_20
        else "N_opt = G*(C/6)^(beta/(alpha+beta)), G = (alpha*A/(beta*B))^(1/(alpha+beta)) (Hoffmann et al. 2022 App. D.2)",
        f"L(N, D) = E + A/N^alpha + B/D^beta: {fit.source}",
    ]
    if n_params is not None:
        n = n_params
        d = compute_flops / (6 * n)
    elif tokens_per_param is not None:
        n = math.sqrt(compute_flops / (6 * tokens_per_param))
        d = tokens_per_param * n
    else:
        n, d = n_opt, d_opt
    if not (n >= 1 and d >= 1):
        raise InvalidSpecError(budget_field, f"the budget buys {compute_flops:.3g} FLOPs: under one parameter or one token")
    if not (math.isfinite(n) and math.isfinite(d)):
        raise InvalidSpecError("tokens_per_param", "the shape overflows; choose a ratio nearer 20")
    return TrainingShape(
        compute_flops=compute_flops,
        params=n,
        tokens=d,
        tokens_per_param=d / n,
        predicted_loss=fit.loss(n, d),
        optimal_params=n_opt,
        optimal_tokens=d_opt,
        optimal_loss=fit.loss(n_opt, d_opt),
        law=law,
        formulas=tuple(formulas),
    )


def compute_for_loss(target_loss: float, law: ScalingLaw) -> TrainingShape:
    """The smallest compute whose optimal run reaches ``target_loss`` (the inverse of
    :func:`shape_for_budget`).

    Fits: on the optimal path ``alpha*A/N^alpha = beta*B/D^beta`` (the Lagrange condition of
    minimising L under C = 6ND), so ``L - E = (A/N^alpha)*(1 + alpha/beta)``, giving N and then
    D in closed form. ``chinchilla_20`` (D = 20N): the loss is monotone in N; solved by
    bisection on log N. A target at or below the irreducible loss E is unreachable.
    """
    fit = FITS[law]
    if not math.isfinite(target_loss) or target_loss <= fit.E:
        raise InvalidSpecError("target_loss", f"{target_loss:g} is at or below the law's irreducible loss E = {fit.E} nats/token")
    if law is ScalingLaw.CHINCHILLA_20:
        lo, hi = 0.0, math.log(1e30)  # log N
        for _ in range(200):
            mid = (lo + hi) / 2
            n = math.exp(mid)
            if fit.loss(n, CHINCHILLA_TOKENS_PER_PARAM * n) > target_loss:
                lo = mid
            else:
                hi = mid
        n = math.exp(hi)
        d = CHINCHILLA_TOKENS_PER_PARAM * n
    else:
        a_term = (target_loss - fit.E) / (1 + fit.alpha / fit.beta)  # = A / N^alpha
        n = (fit.A / a_term) ** (1 / fit.alpha)
        b_term = fit.alpha * a_term / fit.beta  # = B / D^beta
        d = (fit.B / b_term) ** (1 / fit.beta)
    compute = 6 * n * d
    if not math.isfinite(compute) or compute > 1e40:
        raise InvalidSpecError("target_loss", f"{target_loss:g} needs more than 1e40 FLOPs; choose a higher target")
    return shape_for_budget(compute, law, budget_field="target_loss")


@dataclass(frozen=True, kw_only=True, slots=True)
class LifetimeOptimum:
    """Sardana et al. 2023: the size that minimises training plus inference FLOPs for a loss."""

    target_loss: float
    params: float
    tokens: float
    training_flops: float
    inference_flops: float
    total_flops: float
    chinchilla_params: float
    chinchilla_tokens: float
    chinchilla_total_flops: float
    formulas: tuple[str, ...]


def smallest_params_for_loss(target_loss: float, law: ScalingLaw) -> float:
    """The size below which ``target_loss`` is unreachable with any data: ``(A / (L - E))^(1/alpha)``
    (the loss at infinite tokens, Hoffmann et al. 2022 eq. 2)."""
    fit = FITS[law]
    return (fit.A / (target_loss - fit.E)) ** (1 / fit.alpha)


def tokens_for_loss(n_params: float, target_loss: float, law: ScalingLaw) -> float:
    """The tokens a model of ``n_params`` needs to reach ``target_loss``: ``D = (B / (L - E - A/N^alpha))^(1/beta)``
    (Hoffmann et al. 2022 eq. 2 solved for D); infinite at or below :func:`smallest_params_for_loss`."""
    fit = FITS[law]
    gap = target_loss - fit.E - fit.A / n_params**fit.alpha
    return math.inf if gap <= 0 else (fit.B / gap) ** (1 / fit.beta)


def lifetime_optimal(target_loss: float, inference_tokens: float, law: ScalingLaw) -> LifetimeOptimum:
    """Minimise ``6*N*D(N) + 2*N*D_inf`` over N subject to ``L(N, D(N)) = target_loss``
    (Sardana, Portes, Doubov & Frankle 2023, "Beyond Chinchilla-Optimal: Accounting for Inference
    in Language Model Scaling Laws", §2), where ``D(N) = (B / (L - E - A/N^alpha))^(1/beta)``.
    Serving many tokens favours a smaller model trained on more data. The cost is convex in log N
    here; solved by golden-section search."""
    if law is ScalingLaw.CHINCHILLA_20:
        law = ScalingLaw.HOFFMANN2022  # the 20x rule has no loss model of its own
    fit = FITS[law]
    chinchilla = compute_for_loss(target_loss, law)
    n_min = smallest_params_for_loss(target_loss, law)

    def tokens_for(n: float) -> float:
        return tokens_for_loss(n, target_loss, law)

    def cost(log_n: float) -> float:
        n = math.exp(log_n)
        return 6 * n * tokens_for(n) + 2 * n * inference_tokens

    lo, hi = math.log(n_min) + 1e-9, math.log(chinchilla.params) + 1e-9
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(200):
        a = hi - ratio * (hi - lo)
        b = lo + ratio * (hi - lo)
        if cost(a) <= cost(b):
            hi = b
        else:
            lo = a
    n = math.exp((lo + hi) / 2)
    d = tokens_for(n)
    return LifetimeOptimum(
        target_loss=target_loss,
        params=n,
        tokens=d,
        training_flops=6 * n * d,
        inference_flops=2 * n * inference_tokens,
        total_flops=6 * n * d + 2 * n * inference_tokens,
        chinchilla_params=chinchilla.params,
        chinchilla_tokens=chinchilla.tokens,
        chinchilla_total_flops=chinchilla.compute_flops + 2 * chinchilla.params * inference_tokens,
        formulas=(
            "minimise 6*N*D + 2*N*D_inf subject to L(N, D) = target (Sardana et al. 2023 §2)",
            f"L(N, D) = E + A/N^alpha + B/D^beta: {fit.source}",
        ),
    )
