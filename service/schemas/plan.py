"""Request and response models of the parallelism planner (``POST /v1/plan``)."""

# PlanItem, PlanMemory and StepTimeParts live in service.schemas.layout (cost answers use them too)

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from service.core.errors import InvalidSpecError
from service.core.limits import MAX_BATCH, MAX_SEQ_LEN, MAX_TOKENS
from service.core.memory import Optimizer
from service.schemas.base import Pricing, Schema
from service.schemas.calculators import Estimate
from service.schemas.cost import GpuId, NGpus, PriceChoice, PriceQuote
from service.schemas.energy import Co2eTonnes, EnergyChoice, EnergyKwh
from service.schemas.finetune import Finetune, lora_shorthand
from service.schemas.layout import Bandwidth, FixedDimensions, PlanItem, Size, StepTimeOptions
from service.schemas.model import ModelSpec
from service.schemas.spot import SpotOptions


class Pool(Schema):
    """GPUs of one type that a plan over pools may use: ``n_gpus`` of them, or (with tokens and
    deadline_days or budget_usd) up to ``max_n_gpus``, as many as the planner chooses to rent."""

    gpu: GpuId
    n_gpus: NGpus | None = Field(
        None, description="GPUs in the pool; with max_n_gpus, the least the fleet holds (say, a contract already signed)."
    )
    max_n_gpus: NGpus | None = Field(
        None,
        description="With tokens and deadline_days (or budget_usd): the most GPUs of this pool the planner may choose; "
        "it picks the fleet (how many of each pool) that meets the deadline at the least cost, or finishes soonest within the budget.",
    )
    usd_per_gpu_hour: float | None = Field(
        None,
        ge=0,
        le=1e6,
        description="This pool's price: 0 for GPUs owned outright, a sunk or contract price; default the catalog's for the GPU "
        "(the request's provider and pricing). A fleet uses a GPU type's cheapest pools first.",
    )
    pricing: Pricing | None = Field(
        None,
        description="With max_n_gpus: how this pool's GPUs are bought (default the request's pricing); its catalog price is "
        "that kind's. Spot GPUs are interruptible: a fleet holding them is priced at its expected hours with checkpoints and "
        "restarts (`spot`), on demand and spot of one GPU are compared, never mixed.",
    )
    interruptions_per_node_hour: float | None = Field(
        None, ge=0, le=10, description="A spot pool's interruptions per node-hour; default `spot.interruptions_per_node_hour`."
    )
    gpus_per_node: Size | None = Field(None, description="Default: the catalog's, else 8; must divide n_gpus beyond a node.")
    intra_node_bandwidth_bytes_per_s: Bandwidth | None = Field(None, description="Default: the catalog's.")
    inter_node_bandwidth_bytes_per_s: Bandwidth | None = Field(None, description="Default: the catalog's.")

    @model_validator(mode="after")
    def _whole_nodes(self) -> Pool:
        if self.n_gpus is None and self.max_n_gpus is None:
            raise ValueError("give n_gpus (or max_n_gpus, with tokens and deadline_days or budget_usd)")
        if self.n_gpus is not None and self.max_n_gpus is not None and self.n_gpus > self.max_n_gpus:
            raise InvalidSpecError("n_gpus", f"n_gpus={self.n_gpus} is more than max_n_gpus={self.max_n_gpus}")
        for name in ("n_gpus", "max_n_gpus"):
            n = getattr(self, name)
            if self.gpus_per_node is not None and n is not None and n > self.gpus_per_node and n % self.gpus_per_node:
                raise InvalidSpecError(name, f"gpus_per_node={self.gpus_per_node} does not divide {name}={n} (whole nodes)")
        return self


MAX_MIXED_POOLS = 4  # pools of fixed counts a pipeline is searched over (service.core.plan_mixed)
MAX_PROCUREMENT_POOLS = 24  # pools a fleet is chosen from (service.core.procure)


class PlanRequest(StepTimeOptions, PriceChoice, EnergyChoice):
    model_config = Schema.model_config | {
        "json_schema_extra": {
            "examples": [
                {"model": {"preset": "llama-3-70b"}, "gpu": "h100-sxm", "n_gpus": 256, "seq_len": 8192,
                 "global_batch_size": 512, "tokens": 15e12, "top_k": 5},
                {"model": {"preset": "llama-3.1-405b"}, "gpu": "h100-sxm", "n_gpus": 16384, "gpus_per_node": 8,
                 "seq_len": 8192, "global_batch_size": 2048, "fixed": {"tp": 8, "pp": 16}, "top_k": 3},
                {"model": {"preset": "llama-2-7b"}, "gpu": ["h100-sxm", "a100-80gb-sxm", "l40s"], "tokens": 2e12,
                 "deadline_days": 30},
                {"model": {"preset": "llama-3-70b"}, "gpu": "h100-sxm", "n_gpus": 8, "seq_len": 4096, "global_batch_size": 32,
                 "finetune": {"method": "lora", "r": 32}, "tokens": 1e9, "top_k": 3},
                {"model": {"preset": "llama-3-8b"}, "gpu": "a100-80gb-sxm", "n_gpus": 2, "seq_len": 2048, "global_batch_size": 16,
                 "qlora": {"r": 64, "dropout": 0.05}, "top_k": 3},
                {"model": {"preset": "llama-3-70b"}, "pools": [{"gpu": "h100-sxm", "n_gpus": 64}, {"gpu": "a100-80gb-sxm", "n_gpus": 256}],
                 "seq_len": 8192, "global_batch_size": 512, "tokens": 15e12, "top_k": 3},
                {"model": {"preset": "llama-3-8b"}, "tokens": 15e12, "deadline_days": 30, "top_k": 3,
                 "pools": [{"gpu": "h100-sxm", "max_n_gpus": 64, "usd_per_gpu_hour": 0}, {"gpu": "h100-sxm", "max_n_gpus": 4096},
                           {"gpu": "a100-80gb-sxm", "max_n_gpus": 4096}]},
            ]
        }
    }  # fmt: skip

    model: ModelSpec
    gpu: GpuId | list[GpuId] | None = Field(
        None, description="A catalog GPU id, or a list of ids to plan each and compare (or `pools` instead)."
    )
    pools: list[Pool] | None = Field(
        None,
        min_length=1,
        max_length=MAX_PROCUREMENT_POOLS,
        description="Several GPU types in one job, instead of gpu and n_gpus: pipeline stages placed on the pools, layers "
        "per stage sized to each type's speed and memory; compared with the best plan on any single pool (best_homogeneous). "
        f"Up to {MAX_MIXED_POOLS} pools of fixed counts; up to {MAX_PROCUREMENT_POOLS} when they carry max_n_gpus (what to rent).",
    )
    budget_usd: float | None = Field(
        None,
        gt=0,
        le=1e12,
        description="With pools carrying max_n_gpus and tokens: the fleet and plan that finish soonest for at most these dollars.",
    )
    spot: SpotOptions | None = Field(
        None,
        description="With pools carrying max_n_gpus: how spot fleets checkpoint and restart (the interruption rate, the "
        "checkpoint's write, the restart, the interval: default Daly's optimum); defaults as POST /v1/cost/training's.",
    )
    compare_spot: bool = Field(
        False,
        description="With pools carrying max_n_gpus: also offer each pool rented at a catalog price (no n_gpus, no "
        "usd_per_gpu_hour) on spot, at the catalog's spot price, and choose the cheapest fleet over both.",
    )
    between_pools_bandwidth_bytes_per_s: Bandwidth | None = Field(
        None,
        description="With pools: the link between two pools per GPU and direction, a cap on the pools' own scale-out links "
        "(a send or reduction across pools moves at the slowest); default the slower pool's scale-out link.",
    )
    n_gpus: NGpus | None = Field(None, description="Cluster size; omit it and give tokens + deadline_days to have it found.")
    gpus_per_node: Size | None = Field(None, description="Default: the catalog's, else 8.")
    intra_node_bandwidth_bytes_per_s: Bandwidth | None = Field(None, description="Default: the catalog's (NVLink, xGMI...).")
    inter_node_bandwidth_bytes_per_s: Bandwidth | None = Field(None, description="Default: the catalog's (InfiniBand, RoCE...).")
    seq_len: int | None = Field(
        None, ge=1, le=MAX_SEQ_LEN, description="Training sequence length; default the model's max_seq_len."
    )
    global_batch_size: int | None = Field(None, ge=1, le=MAX_BATCH, description="Sequences per optimizer step.")
    global_batch_tokens: int | None = Field(
        None, ge=1, le=10**12, description="Tokens per optimizer step instead of sequences; default 4M tokens (Llama 2 §2.2)."
    )
    optimizer: Optimizer = Optimizer.ADAMW
    flash_attention: bool = True
    dropout: bool = False
    fixed: FixedDimensions = Field(default_factory=FixedDimensions)
    top_k: int = Field(10, ge=1, le=100, description="Plans returned per GPU type.")
    tokens: float | None = Field(None, gt=0, le=MAX_TOKENS, description="Training tokens, for hours and dollars.")
    deadline_days: float | None = Field(None, gt=0, le=36_500, description="With tokens and no n_gpus: find the cluster size.")
    usable_memory_fraction: float = Field(
        0.95,
        ge=0.5,
        le=1,
        description="Share of GPU memory a plan may use (the rest: CUDA context, NCCL buffers, fragmentation).",
    )
    effective_time_fraction: float = Field(
        0.9, ge=0.1, le=1, description="Wall-clock share spent training (failures, restarts); Llama 3 §3.3.4 reports > 90 %."
    )
    finetune: Finetune | None = Field(
        None,
        description="Plan a fine-tune (the object POST /v1/memory/training takes): absent or `full` plans full training; "
        "`lora`/`qlora` freeze the base (no gradients or optimizer states for it; ZeRO-3/FSDP still gathers it) and train "
        "adapters split as Megatron-Bridge splits them over tp, pp and ep. A quantised base (QLoRA's nf4) runs under data "
        "parallelism with ZeRO/FSDP only. Top-level `lora: {...}` or `qlora: {...}` are shorthands for it.",
    )

    @model_validator(mode="before")
    @classmethod
    def _lora_shorthand(cls, data: Any) -> Any:
        return lora_shorthand(data)

    @model_validator(mode="after")
    def _cluster(self) -> PlanRequest:
        if self.pools is not None:
            return self._pooled()
        if self.budget_usd is not None:
            raise InvalidSpecError(
                "budget_usd", "give it with pools carrying max_n_gpus (POST /v1/budget sizes a model for dollars)"
            )
        if self.spot is not None or self.compare_spot:
            name = "spot" if self.spot is not None else "compare_spot"
            raise InvalidSpecError(name, "spot capacity is priced in a fleet search (pools carrying max_n_gpus)")
        if self.gpu is None:
            raise ValueError("give gpu (with n_gpus, or tokens and deadline_days), or pools")
        if self.global_batch_size is not None and self.global_batch_tokens is not None:
            raise ValueError("give global_batch_size or global_batch_tokens, not both")
        if self.n_gpus is None and (self.tokens is None or self.deadline_days is None):
            raise ValueError("give n_gpus, or tokens and deadline_days to find the cluster size")
        if self.n_gpus is not None and self.deadline_days is not None:
            raise ValueError("give n_gpus or deadline_days, not both")
        if isinstance(self.gpu, list) and not 1 <= len(self.gpu) <= 20:
            raise InvalidSpecError("gpu", "give 1 to 20 GPU ids")
        return self

    def _pooled(self) -> PlanRequest:
        """A plan over pools: the pools carry the GPUs, their counts and their links; with max_n_gpus,
        what to rent for a deadline or a budget."""
        assert self.pools is not None
        given = [name for name in ("gpu", "n_gpus", "gpus_per_node", "intra_node_bandwidth_bytes_per_s",
                                   "inter_node_bandwidth_bytes_per_s") if getattr(self, name) is not None]  # fmt: skip
        if given:
            raise InvalidSpecError("pools", f"give {', '.join(given)} in each pool, not with pools")
        if self.procurement:
            if self.tokens is None or (self.deadline_days is None) == (self.budget_usd is None):
                raise InvalidSpecError(
                    "pools", "max_n_gpus needs tokens and one of deadline_days or budget_usd (what to rent for them)"
                )
            for i, p in enumerate(self.pools):
                if (
                    p.interruptions_per_node_hour is not None
                    and (p.pricing or self.pricing) is not Pricing.SPOT
                    and not self.compare_spot
                ):
                    raise InvalidSpecError(
                        f"pools.{i}.interruptions_per_node_hour", "a spot pool's (pricing: spot, or compare_spot)"
                    )
        else:
            spot = [
                name for name in ("pricing", "interruptions_per_node_hour") for p in self.pools if getattr(p, name) is not None
            ]
            if self.spot is not None or self.compare_spot or spot:
                name = "spot" if self.spot is not None else "compare_spot" if self.compare_spot else "pools"
                reason = "spot capacity is priced in a fleet search (pools carrying max_n_gpus)"
                raise InvalidSpecError(name, reason if name != "pools" else f"{spot[0]}: {reason}")
            if self.deadline_days is not None or self.budget_usd is not None:
                name = "deadline_days" if self.deadline_days is not None else "budget_usd"
                raise InvalidSpecError(name, "with pools, give max_n_gpus in the pools the planner may size")
            if len(self.pools) > MAX_MIXED_POOLS:
                raise InvalidSpecError("pools", f"give 1 to {MAX_MIXED_POOLS} pools of fixed counts (more with max_n_gpus)")
        if self.global_batch_size is not None and self.global_batch_tokens is not None:
            raise ValueError("give global_batch_size or global_batch_tokens, not both")
        if self.finetune is not None and self.finetune.is_adapter:
            raise InvalidSpecError("pools", "plans over pools cover pre-training and full fine-tunes, not LoRA/QLoRA")
        return self

    @property
    def procurement(self) -> bool:
        """Pools of which the planner chooses how many to use (any pool with ``max_n_gpus``)."""
        return self.pools is not None and any(p.max_n_gpus is not None for p in self.pools)


class SearchStats(Schema):
    considered: int = Field(description="Valid layouts evaluated (never silently fewer than all unless cut).")
    feasible: int = Field(description="Layouts that fit in memory.")
    returned: int
    seconds: float
    cut: bool = Field(description="True when the search hit its time bound; `searched` says what it covered.")
    searched: str


class GpuSummary(Schema):
    """The best plan of one GPU type, or why it has none."""

    gpu: str
    n_gpus: int | None
    fits: bool
    reason: str | None
    tokens_per_second: float | None
    mfu: float | None
    training_hours: float | None
    gpu_hours: float | None
    energy_kwh: EnergyKwh = None
    co2e_tonnes: Co2eTonnes = None
    cost_usd: float | None
    price: PriceQuote | None
    search: SearchStats
    global_batch_size: int | None = Field(None, description="Sequences per step of this GPU type's plans.")
    tried_n_gpus: list[int] | None = Field(None, description="Deadline search: the cluster sizes priced.")
    pricing: Pricing | None = Field(
        None, description="A fleet search: spot when this type's fleets rent spot GPUs (one GPU on demand and on spot is two "
        "types), else the request's pricing; null elsewhere.",
    )  # fmt: skip


class PlanResponse(Estimate):
    plans: list[PlanItem] = Field(description="Best first: the fastest of each GPU type's top plans.")
    search: SearchStats = Field(description="Summed over GPU types (and every cluster size tried in a deadline search).")
    reason: str | None = Field(description="Why no plan fits, when `plans` is empty.")
    gpus: list[GpuSummary]
    best_homogeneous: PlanItem | None = Field(
        None, description="With pools: the fastest plan on any single pool, to see what mixing buys (null without pools)."
    )
    fastest_gpu: str | None
    cheapest_gpu: str | None
    global_batch_size: int = Field(description="Sequences per step (in a deadline search: of the first GPU type's chosen size).")
    seq_len: int
