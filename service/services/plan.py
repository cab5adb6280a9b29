"""Planner use cases: catalog GPUs (with their interconnect) → core planner → ranked plans,
priced when the request gives the run's tokens. Cost and budget answers reuse :func:`best_plan`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from service.core import plan as core
from service.core import procure as fleet_search
from service.core.architecture import Architecture
from service.core.compute import require_architecture
from service.core.context import check_context
from service.core.cost import planned_training_cost
from service.core.efficiency import DEFAULT_MATMUL_EFFICIENCY
from service.core.errors import InvalidSpecError
from service.core.finetune_spec import FinetuneSpec
from service.core.fp8 import BF16_OPS, check_recipe
from service.core.gradients import grad_dtype_assumption
from service.core.kernels import CrossEntropy
from service.core.memory import Optimizer, Precision
from service.core.plan_finetune import data_parallel_only, resolve_finetune
from service.core.steptime import Hardware
from service.errors import Unprocessable
from service.schemas import plan as s
from service.schemas.cost import PriceQuote
from service.schemas.layout import FixedDimensions, PlanItem, PlanMemory, StepTimeOptions, StepTimeParts
from service.services import energy as energy_service
from service.services.answers import not_keepable
from service.services.catalog_reader import CatalogReader, GpuView, HeavyWork, light_work_only
from service.services.efficiency import gpu_efficiency
from service.services.lru import LruCache
from service.services.models import catalog_gpu, resolve_model, training_seq_len
from service.services.pricing import listed_price

DEFAULT_BATCH_TOKENS = 4 * 2**20  # 4M tokens per step: Llama 2 (Touvron et al. 2023 §2.2), LLaMA (§2.3)
DEFAULT_BATCH_TOKENS_PER_GPU = 1024  # Llama 3 405B: 16M tokens per step on 16K GPUs (Dubey et al. 2024 §3.4.1)
DEFAULT_GPUS_PER_NODE = 8  # HGX/DGX servers
DEADLINE_SEARCH_SECONDS = 10.0  # the bound on a deadline search, over all the GPU types of a request
# the peak each precision's MFU is stated against: FP8 training against the dense BF16 peak (its
# attention, norms and output layer run there), with the FP8 peak in the hardware for its matmuls
PEAK_FOR_PRECISION = {Precision.MIXED_BF16: "bf16", Precision.BF16: "bf16", Precision.MIXED_FP16: "fp16", Precision.FP32: "fp32",
                      Precision.FP8: "bf16"}  # fmt: skip


FORMULAS = [
    "step = m*(compute + recompute + exposed tp/cp/ep comm) + bubble (p-1)/v*T_mb + pp sends + exposed dp comm + optimizer "
    "(Narayanan et al. 2021 §2-3; Korthikanti et al. 2022 §4-5; Rajbhandari et al. 2020 §7)",
    "matmul time = max(2mkn / (peak * sustained matmul efficiency), bytes / (HBM efficiency * HBM bandwidth)) "
    "on the per-GPU shape (roofline, Williams et al. 2009); efficiencies per GPU in assumptions (<gpu>.efficiency.*)",
    "attention core = causal FLOPs / (peak * the kernel's measured fraction at the sequence chunk and head dimension), "
    "backward 2.5x the forward FLOPs (FlashAttention-2/3 and cuDNN curves: Dao 2023 §4.1; Shah et al. 2024 §4.1)",
    "ring all-reduce = 2(n-1)/n * S / (collective efficiency * link bandwidth) + latency hops (Patarasuk & Yuan 2009; "
    "efficiencies from nccl-tests per link)",
    "pipeline bubble by schedule: 1F1B (p-1)(F+B), interleaved (p-1)(F+B)/v, ZB-H1 (p-1)(F+B-2W), DualPipe (p/2-1)(F&B+B-3W) "
    "(Narayanan et al. 2021 §2.2; Qi et al. 2023 §3.1; DeepSeek-V3 §3.2.1)",
    "memory per GPU = weights + gradients + optimizer (ZeRO over dp*cp) + busiest stage's activations, the last stage's "
    "with its micro-batch's logits at the loss's peak, 4*s*b*V/t fused or 12*s*b*V/t eager (16 on tp > 1 vocabulary "
    "shards, PyTorch's loss_parallel) (cross_entropy); under recompute the layer whose backward runs rebuilt on top "
    "(Rajbhandari et al. 2020 §5; Korthikanti et al. 2022 §4-5)",
    "MFU = model FLOPs per token (every matmul + the attention core, halved by causal FlashAttention; Narayanan et al. 2021 §5.1) "
    "* tokens/s / (n * peak)",
]


CROSS_ENTROPY_NOTES = {
    CrossEntropy.FUSED: "fused (Megatron's vocab-parallel cross entropy: 4 bytes a logit at the loss's peak, "
    "Korthikanti et al. 2022 §4.3)",
    CrossEntropy.EAGER: "eager (PyTorch's F.cross_entropy on fp32-upcast logits, as torchtitan and transformers call it: "
    "12 bytes a logit at its backward's peak; with tp > 1 PyTorch's loss_parallel on the vocabulary shards, 16)",
}


FINETUNE_FORMULAS = [
    "fine-tune step: forward + adapters' x*A*B; backward through the frozen base dX only (no dW GEMMs: its matmuls once, "
    "not twice) + the adapters' dX and dW (Hu et al. 2021 §4.2); QLoRA dequantises each 4-bit matrix before every forward "
    "and backward matmul, memory-bound (Dettmers et al. 2023 Eq. 6); paged optimizer states cross PCIe twice a step",
    "fine-tune memory per GPU = frozen base (its tp x pp shard; ZeRO-3 shards it, except under a pipeline) + adapters with their gradients and "
    "optimizer states (ZeRO 1-3) + full training's activations less the frozen matmuls' inputs plus the adapters' "
    "(service.core.finetune; Korthikanti et al. 2022 §4)",
    "MFU counts a fine-tune's model FLOPs: (4P + 6P_a) per token + the attention core (Hu et al. 2021 §4.2)",
]


def finetune_assumptions(arch: Architecture, spec: FinetuneSpec, precision: Precision) -> dict[str, Any]:
    """What a planned LoRA/QLoRA fine-tune assumed, for ``assumptions``."""
    ft = resolve_finetune(arch, spec, precision)
    return {
        "finetune": spec.method.value, "finetune_rank": spec.rank, "finetune_target_modules": ", ".join(t.value for t in ft.targets),
        "finetune_trainable_params": ft.adapter_params, "finetune_base_format": ft.base_format.value,
        "finetune_paged_optimizer": spec.paged,
        "finetune_layouts": "tp, pp, cp, ep with a 16/32-bit base (adapters split as Megatron-Bridge's ParallelLinearAdapter); "
        "data parallelism with ZeRO/FSDP only for a quantised base (bitsandbytes has no tensor-parallel 4-bit layer; QLoRA + "
        "FSDP as Answer.AI and torchtune run it)" if not data_parallel_only(ft) else
        "data parallelism with ZeRO/FSDP only: bitsandbytes' 4-bit layers have no tensor-parallel form (QLoRA + FSDP as "
        "Answer.AI and torchtune run it)",
        "finetune_paging": "a plan whose memory exceeds the usable share only by paged optimizer states fits, and pays their "
        "trip over PCIe each step" if spec.paged else "off",
        "finetune_output_layer": "frozen; its weight-gradient GEMM is still timed (under 2 % of a 7B model's step)",
    }  # fmt: skip


@dataclass(frozen=True)
class Cluster:
    """A GPU type as the step-time model sees it, and where each number came from."""

    gpu: GpuView
    hardware: Hardware
    assumptions: dict[str, Any]


def cluster_for(
    gpu: GpuView,
    precision: Precision,
    *,
    gpus_per_node: int | None = None,
    intra_node_bandwidth_bytes_per_s: int | None = None,
    inter_node_bandwidth_bytes_per_s: int | None = None,
    attention_kernel: str | None = None,
    efficiency: dict[str, float | None] | None = None,
    precision_field: str = "precision",
) -> Cluster:
    """The hardware of ``gpu`` for ``precision``: request overrides, else the catalog, else a
    stated default (8 GPUs per node; half the catalog's bidirectional interconnect; 25 GB/s per
    GPU scale-out, one HDR InfiniBand port); the kernel efficiencies of the GPU
    (:func:`service.services.efficiency.gpu_efficiency`) with the request's overrides. FP8
    training computes its matmuls at the dense FP8 peak and needs FP8 tensor cores (a 422 on
    ``precision_field`` where the GPU has none: a pool's GPU in a plan over pools)."""
    peak_key = PEAK_FOR_PRECISION[precision]
    peak = gpu.peak_tflops.get(peak_key)
    if not peak:
        fp16 = peak_key == "bf16" and gpu.peak_tflops.get("fp16")  # V100, T4: no bf16 tensor cores
        hint = ": train in mixed_fp16 there" if fp16 else ""
        raise Unprocessable.for_field("precision", f"the catalog has no dense {peak_key} peak for {gpu.id}{hint}")
    fp8_peak = gpu.peak_tflops.get("fp8")
    if precision is Precision.FP8 and not fp8_peak:
        raise Unprocessable.for_field(
            precision_field, f"{gpu.id} has no FP8 tensor cores (no dense fp8 peak in the catalog): train in mixed_bf16 there"
        )
    notes: dict[str, Any] = {}

    def pick(name: str, given: Any, catalog: Any, default: Any, default_note: str) -> Any:
        if given is not None:
            notes[f"{gpu.id}.{name}_source"] = "request"
            return given
        if catalog is not None:
            notes[f"{gpu.id}.{name}_source"] = "catalog"
            return catalog
        notes[f"{gpu.id}.{name}_source"] = default_note
        return default

    node = pick("gpus_per_node", gpus_per_node, gpu.gpus_per_node, DEFAULT_GPUS_PER_NODE, "default 8")
    half_interconnect = gpu.interconnect_bytes_per_s / 2 if gpu.interconnect_bytes_per_s else 32e9
    intra = pick("intra_node_bandwidth_bytes_per_s", intra_node_bandwidth_bytes_per_s, gpu.intra_node_bandwidth_bytes_per_s,
                 half_interconnect, "half the catalog's bidirectional interconnect")  # fmt: skip
    inter = pick("inter_node_bandwidth_bytes_per_s", inter_node_bandwidth_bytes_per_s, gpu.inter_node_bandwidth_bytes_per_s,
                 25e9, "default 25 GB/s (one 200 Gb/s port per GPU)")  # fmt: skip
    mamf = pick(
        "matmul_efficiency", None, gpu.matmul_efficiency, DEFAULT_MATMUL_EFFICIENCY, f"default {DEFAULT_MATMUL_EFFICIENCY}"
    )
    kernels, kernel_notes = gpu_efficiency(gpu.id, gpu.matmul_efficiency, attention_kernel=attention_kernel, overrides=efficiency)
    notes.update({f"{gpu.id}.gpus_per_node": node, f"{gpu.id}.intra_node_bandwidth_bytes_per_s": float(intra),
                  f"{gpu.id}.inter_node_bandwidth_bytes_per_s": float(inter), f"{gpu.id}.matmul_efficiency": mamf,
                  f"{gpu.id}.peak_tflops": peak, f"{gpu.id}.peak_dtype": peak_key} | kernel_notes)  # fmt: skip
    if precision is Precision.FP8:
        notes[f"{gpu.id}.fp8_peak_tflops"] = fp8_peak
    hardware = Hardware(
        peak_flops_per_s=peak * 1e12,
        matmul_efficiency=mamf,
        memory_bytes=gpu.memory_bytes,
        memory_bandwidth_bytes_per_s=float(gpu.memory_bandwidth_bytes_per_s),
        gpus_per_node=node,
        intra_node_bandwidth_bytes_per_s=float(intra),
        inter_node_bandwidth_bytes_per_s=float(inter),
        efficiency=kernels,
        fp8_peak_flops_per_s=float(fp8_peak) * 1e12 if fp8_peak else None,
    )
    return Cluster(gpu=gpu, hardware=hardware, assumptions=notes)


def batch_size(
    seq_len: int, global_batch_size: int | None, global_batch_tokens: int | None, n_gpus: int | None = None
) -> tuple[int, str]:
    """Sequences per step: given, from tokens, or the default: 4M tokens (LLaMA §2.3 and Llama 2
    §2.2 on 2,048 GPUs) or 1,024 tokens per GPU on larger clusters (Llama 3 405B: 16M-token
    batches on 16K GPUs, Dubey et al. 2024 §3.4.1), whichever is larger; at least one sequence."""
    if global_batch_size is not None:
        return global_batch_size, "request"
    if global_batch_tokens is not None:
        return max(1, round(global_batch_tokens / seq_len)), "request global_batch_tokens"
    tokens = max(DEFAULT_BATCH_TOKENS, DEFAULT_BATCH_TOKENS_PER_GPU * (n_gpus or 0))
    return max(1, round(tokens / seq_len)), "default: max(4M tokens, 1,024 tokens per GPU) (Llama 2 §2.2; Llama 3 §3.4.1)"


PLAN_CACHE_SIZE = 512
PLANS: LruCache[core.PlanResult] = LruCache(PLAN_CACHE_SIZE)  # plans already searched (pure: never stale)


def cached_plan(arch: Architecture, hardware: Hardware, spec: core.PlanSpec) -> core.PlanResult:
    """:func:`service.core.plan.plan`, memoised (the answer is a pure function of its inputs)
    unless the search was cut; for the cost answers, which ask the same plan again and again.

    A search not yet cached is heavy work (milliseconds to seconds): called on the event loop
    (:func:`service.services.catalog_reader.light_work_only`) it raises :class:`HeavyWork`, and
    the route runs the answer again in the thread pool."""
    key = (arch, hardware, *spec_key(spec))
    found = PLANS.get(key)
    if found is not None:
        return found
    if light_work_only():
        raise HeavyWork("plan search")
    result = core.plan(arch, hardware, spec)
    if result.search.cut:  # a search cut by its time bound is not the answer to keep
        not_keepable()
    else:
        PLANS.put(key, result)
    return result


def spec_key(spec: core.PlanSpec) -> tuple[Any, ...]:
    """A plan spec as a hashable key (its fixed dimensions sorted)."""
    fields = tuple((name, getattr(spec, name)) for name in core.PlanSpec.__dataclass_fields__ if name != "fixed")
    return (*fields, ("fixed", tuple(sorted(spec.fixed.items()))))


def best_plan(
    arch: Architecture, cluster: Cluster, *, n_gpus: int, seq_len: int, global_batch_size: int,
    precision: Precision = Precision.MIXED_BF16, optimizer: Optimizer = Optimizer.ADAMW, fixed: dict[str, Any] | None = None,
    options: StepTimeOptions | None = None, finetune: FinetuneSpec | None = None,
) -> core.PlanResult:  # fmt: skip
    """The fastest plan that fits (``top_k`` 1), for the cost and budget answers (a LoRA/QLoRA
    fine-tune's with ``finetune``)."""
    extra = {} if finetune is None else {"finetune": finetune}
    spec = core.PlanSpec(n_gpus=n_gpus, seq_len=seq_len, global_batch_size=global_batch_size, precision=precision,
                         optimizer=optimizer, top_k=1, fixed=fixed or {}, **spec_options(options, cluster), **extra)  # fmt: skip
    return cached_plan(arch, cluster.hardware, spec)


def spec_options(options: StepTimeOptions | None, cluster: Cluster) -> dict[str, Any]:
    """The request's step-time options as :class:`service.core.plan.PlanSpec` fields; an FP8 recipe
    the GPU cannot run is a 422."""
    if options is None:
        return {}
    if options.precision is Precision.FP8:
        check_recipe(options.fp8_recipe, gpu=cluster.gpu.id, blackwell=is_blackwell(cluster))
    return {
        "fp8_recipe": options.fp8_recipe,
        "tp_comm_overlap": options.tp_comm_overlap,
        "tp_comm_overlap_rs_dgrad": options.tp_comm_overlap_rs_dgrad,
        "ep_comm_overlap": options.ep_comm_overlap,
        "moe_max_nodes_per_token": options.moe_max_nodes_per_token,
        "fused_kernels": options.fused_kernels,
        "moe_load_imbalance": options.moe_load_imbalance,
        "expert_tensor_parallel": options.expert_tensor_parallel,
        "moe_dispatcher": options.moe_dispatcher,
        "cross_entropy": options.cross_entropy or CrossEntropy.FUSED,
        "cuda_graphs": options.cuda_graphs,
        "grad_reduce_dtype": options.grad_reduce_dtype,
    }


def is_blackwell(cluster: Cluster) -> bool:
    """Whether the cluster's GPU has Blackwell tensor cores (its kernel family), which MXFP8 needs."""
    return cluster.assumptions.get(f"{cluster.gpu.id}.family") == "blackwell"


def options_assumptions(options: StepTimeOptions) -> dict[str, Any]:
    """What the step-time options assumed, for ``assumptions``."""
    out: dict[str, Any] = {
        "tp_comm_overlap": options.tp_comm_overlap,
        "tp_comm_overlap_rs_dgrad": options.tp_comm_overlap_rs_dgrad,
        "ep_comm_overlap": options.ep_comm_overlap,
        "moe_max_nodes_per_token": options.moe_max_nodes_per_token or "unlimited (uniform routing)",
        "fused_kernels": options.fused_kernels,
        "moe_load_imbalance": options.moe_load_imbalance,
        "expert_tensor_parallel": options.expert_tensor_parallel or "tp (the experts split like the rest)",
        "moe_dispatcher": options.moe_dispatcher.value,
        "cross_entropy": CROSS_ENTROPY_NOTES[options.cross_entropy or CrossEntropy.FUSED],
        "grad_reduce_dtype": grad_dtype_assumption(options.precision, options.grad_reduce_dtype),
        "cuda_graphs": "the layers' kernels captured in CUDA graphs: no host floor on a fine-tune's adapted layers"
        if options.cuda_graphs
        else "eager: a fine-tune's adapted layer takes at least the GPU's adapter_layer_host_seconds per micro-batch",
    }
    if options.precision is Precision.FP8:
        out |= {"fp8_recipe": options.fp8_recipe.value, "fp8_matmuls": "the blocks' Q/K/V, output, MLP and expert projections, "
                "forward and both backward GEMMs, at the dense FP8 peak", "bf16_ops": BF16_OPS,
                "fp8_memory": "BF16 weights + FP8 row- and column-wise copies of the matmul weights; parameters gathered in FP8; "
                "the linear layers' inputs kept in FP8 for the backward (1 byte an element + the recipe's scales)",
                "mfu_peak": "dense BF16 peak"}  # fmt: skip
    return out


def cluster_options(options: StepTimeOptions | None) -> dict[str, Any]:
    """The request's kernel choices for :func:`cluster_for`."""
    if options is None:
        return {}
    overrides = options.efficiency.model_dump() if options.efficiency else None
    return {"attention_kernel": options.attention_kernel, "efficiency": overrides}


def plan_summary(plan: core.Plan) -> str:
    """A plan in one line, for ``assumptions``."""
    return (
        f"tp={plan.tp} pp={plan.pp} dp={plan.dp} cp={plan.cp} ZeRO-{plan.zero_stage} micro-batch {plan.micro_batch_size} "
        f"recompute={plan.recompute.value}{' sp' if plan.sequence_parallel else ''}"
        f"{f' v={plan.virtual_stages}' if plan.virtual_stages > 1 else ''}"
        f"{' optimizer offloaded to the host' if plan.offload_optimizer else ''}"
    )


def fixed_dimensions(fixed_request: FixedDimensions | None) -> dict[str, Any]:
    """A request's fixed dimensions for :class:`service.core.plan.PlanSpec` (enums as their names)."""
    fixed = fixed_request.model_dump(exclude_none=True) if fixed_request else {}
    for name in ("recompute", "pipeline_schedule"):
        if name in fixed:
            fixed[name] = fixed[name].value
    return fixed


def plan_item(
    gpu: str,
    n_gpus: int,
    plan: core.Plan,
    tokens: float | None,
    eff: float,
    price: float | None,
    flops_per_token: float,
    energy: energy_service.GpuEnergy | None = None,
) -> PlanItem:
    """One plan as answers give it; with ``tokens``, the run's hours and dollars (and with
    ``energy``, its energy and CO2e)."""
    run = None
    if tokens is not None:
        run = planned_training_cost(tokens=tokens, model_flops=flops_per_token * tokens, tokens_per_second=plan.tokens_per_second,
                                    n_gpus=n_gpus, effective_time_fraction=eff, usd_per_gpu_hour=price)  # fmt: skip
    mem = plan.memory
    return PlanItem(
        gpu=gpu, n_gpus=n_gpus, tp=plan.tp, pp=plan.pp, dp=plan.dp, cp=plan.cp, ep=plan.ep, zero_stage=plan.zero_stage,
        micro_batch_size=plan.micro_batch_size, gradient_accumulation_steps=plan.gradient_accumulation_steps,
        recompute=plan.recompute, sequence_parallel=plan.sequence_parallel, virtual_stages=plan.virtual_stages,
        offload_optimizer=plan.offload_optimizer, pipeline_schedule=plan.pipeline_schedule, per_gpu_total_bytes=mem.total_bytes,
        per_gpu=PlanMemory(weights_bytes=mem.weights_bytes, gradients_bytes=mem.gradients_bytes,
                             optimizer_bytes=mem.optimizer_bytes, activations_bytes=mem.activations_bytes),
        cpu_offload_bytes=mem.cpu_offload_bytes, step_time_seconds=plan.step_seconds, step_time=StepTimeParts(**plan.step),
        tokens_per_second=plan.tokens_per_second, tflops_per_gpu=plan.tflops_per_gpu, mfu=plan.mfu, hfu=plan.hfu,
        training_hours=run.wall_clock_hours if run else None, gpu_hours=run.gpu_hours if run else None,
        cost_usd=run.cost_usd if run else None,
        **(energy.fields(run.gpu_hours if run else None) if energy else {}),
    )  # fmt: skip


def search_stats(search: core.Search) -> s.SearchStats:
    return s.SearchStats(considered=search.considered, feasible=search.feasible, returned=search.returned,
                         seconds=search.seconds, cut=search.cut, searched=search.searched)  # fmt: skip


def _price(catalog: CatalogReader, gpu_id: str, req: s.PlanRequest, many: bool) -> PriceQuote | None:
    return None if req.tokens is None else listed_price(catalog, gpu_id, req, many=many)


@dataclass
class _Totals:
    """What the searches of one request add up to (the response's ``search``)."""

    considered: int = 0
    feasible: int = 0
    seconds: float = 0.0
    cut: bool = False  # a layout search stopped at its time bound
    deadline_cut: bool = False  # a search over cluster sizes did
    started: float = field(default_factory=time.perf_counter)  # when the request's searches began


@dataclass(frozen=True)
class _Searched:
    """One GPU type's search: its plans (None: no cluster size meets the deadline), the cluster
    size, the sizes a deadline search tried, and whether that search was cut."""

    result: core.PlanResult | None
    n_gpus: int
    tried: list[int] | None
    cut: bool


def _search(
    arch: Architecture,
    cluster: Cluster,
    spec: core.PlanSpec,
    req: s.PlanRequest,
    seq_len: int,
    types: tuple[int, int],
    totals: _Totals,
) -> _Searched:
    """The plans on ``req.n_gpus`` GPUs (cached), or the search over cluster sizes for the least
    cost that meets the deadline (heavy: never on the event loop; not kept when cut). ``types``:
    the request's GPU types, and those not yet searched (this one among them)."""
    if req.n_gpus is not None:
        return _Searched(cached_plan(arch, cluster.hardware, spec), req.n_gpus, None, False)
    assert req.tokens is not None and req.deadline_days is not None
    # one time bound for the whole request, shared by the GPU types: each its share, or more where
    # the types before it left time (the rest over the types left)
    n_types, left = types
    share = max(DEADLINE_SEARCH_SECONDS / n_types, (DEADLINE_SEARCH_SECONDS - (time.perf_counter() - totals.started)) / left)
    budget = core.PlanSpec(**{**core.spec_fields(spec), "time_limit_seconds": share})
    found = deadline_search(
        arch, cluster.hardware, budget, tokens=req.tokens, deadline_days=req.deadline_days,
        effective_time_fraction=req.effective_time_fraction,
        batch_for=lambda n: batch_size(seq_len, req.global_batch_size, req.global_batch_tokens, n)[0],
    )  # fmt: skip
    totals.deadline_cut = totals.deadline_cut or found.cut
    totals.considered, totals.feasible = totals.considered + found.considered, totals.feasible + found.feasible
    return _Searched(found.result, found.n_gpus, [n for n, _ in found.tried], found.cut)


def _cluster(view: GpuView, req: s.PlanRequest, many: bool) -> Cluster | str:
    """The request's hardware for ``view``; with several GPU types, why one cannot run the
    request instead of the 422 it is when asked alone."""
    try:
        return cluster_for(view, req.precision, gpus_per_node=req.gpus_per_node,
                           intra_node_bandwidth_bytes_per_s=req.intra_node_bandwidth_bytes_per_s,
                           inter_node_bandwidth_bytes_per_s=req.inter_node_bandwidth_bytes_per_s, **cluster_options(req))  # fmt: skip
    except Unprocessable as exc:
        if not many:
            raise
        return exc.detail


def deadline_search(
    arch: Architecture, hw: Hardware, spec: core.PlanSpec, *, tokens: float, deadline_days: float,
    effective_time_fraction: float, batch_for: Callable[[int], int],
) -> core.DeadlineResult:  # fmt: skip
    """:func:`service.core.plan.plan_for_deadline` from :func:`deadline_floor` up: heavy work, never
    on the event loop; a search cut by its time bound is not an answer to keep."""
    if light_work_only():
        raise HeavyWork("deadline search")
    floor = fleet_search.deadline_floor(arch, hw, tokens=tokens, deadline_days=deadline_days, precision=spec.precision,
                           effective_time_fraction=effective_time_fraction, adapters=spec.finetune is not None,
                           seq_len=spec.seq_len)  # fmt: skip
    found = core.plan_for_deadline(arch, hw, spec, tokens=tokens, deadline_hours=deadline_days * 24,
                                   effective_time_fraction=effective_time_fraction, batch_for=batch_for,
                                   min_gpus=floor)  # fmt: skip
    if found.cut:
        not_keepable()
    return found


def plan(req: s.PlanRequest, catalog: CatalogReader) -> s.PlanResponse:
    arch = require_architecture(resolve_model(req.model, catalog), "the planner")
    seq_len, seq_source = training_seq_len(arch, req.seq_len)
    batch, batch_source = batch_size(seq_len, req.global_batch_size, req.global_batch_tokens, req.n_gpus)
    assert req.gpu is not None  # the request gives gpu or pools (service.services.plan_pools)
    gpu_ids = req.gpu if isinstance(req.gpu, list) else [req.gpu]
    many = len(gpu_ids) > 1
    fixed = fixed_dimensions(req.fixed)
    items: list[PlanItem] = []
    summaries: list[s.GpuSummary] = []
    totals = _Totals()
    searched: list[str] = []
    energy = energy_service.terms(req)
    views: list[GpuView] = []  # the GPU types planned, for their TDPs
    assumptions: dict[str, Any] = {"seq_len": seq_len, "seq_len_source": seq_source, "global_batch_size": batch,
                                   "global_batch_source": batch_source if req.n_gpus else f"{batch_source}, for each cluster size tried",
                                   "effective_time_fraction": req.effective_time_fraction,
                                   "usable_memory_fraction": req.usable_memory_fraction, "flash_attention": req.flash_attention,
                                   "activation_kernels": "megatron (Megatron-LM's fused kernels, Korthikanti et al. 2022)"}  # fmt: skip
    assumptions |= options_assumptions(req)
    finetune = req.finetune.spec() if req.finetune is not None and req.finetune.is_adapter else None
    if finetune is not None:
        assumptions |= finetune_assumptions(arch, finetune, req.precision)
    elif req.finetune is not None:
        assumptions["finetune"] = "full: every weight trained, planned as training"
    if warning := check_context(arch, seq_len):
        assumptions["seq_len_warning"] = warning
    for i, gpu_id in enumerate(gpu_ids):
        view = catalog_gpu(catalog, gpu_id)
        cluster = _cluster(view, req, many)
        if isinstance(cluster, str):  # a GPU type that cannot run the precision: listed, when several are compared
            summaries.append(unfit_summary(gpu_id, None, cluster, None, None))
            continue
        assumptions.update(cluster.assumptions)
        spec = core.PlanSpec(
            n_gpus=req.n_gpus or cluster.hardware.gpus_per_node, seq_len=seq_len, global_batch_size=batch,
            precision=req.precision, optimizer=req.optimizer, flash_attention=req.flash_attention, dropout=req.dropout,
            fixed=fixed, top_k=req.top_k, usable_memory_fraction=req.usable_memory_fraction, **spec_options(req, cluster),
            **({} if finetune is None else {"finetune": finetune}),
        )  # fmt: skip
        try:
            searched_gpu = _search(arch, cluster, spec, req, seq_len, (len(gpu_ids), len(gpu_ids) - i), totals)
        except InvalidSpecError as exc:
            if not many:
                raise
            summaries.append(unfit_summary(gpu_id, None, f"{exc.field}: {exc.reason}", None, None))
            continue
        result, n_gpus, tried = searched_gpu.result, searched_gpu.n_gpus, searched_gpu.tried
        if result is None:  # deadline search: no cluster size meets it
            stopped = " (the search stopped at its time bound)" if searched_gpu.cut else ""
            summaries.append(unfit_summary(gpu_id, None, f"no cluster of up to {tried[-1] if tried else 0} GPUs trains {req.tokens:g} tokens "
                                                  f"within {req.deadline_days:g} days{stopped}", None, tried))  # fmt: skip
            continue
        if req.n_gpus is not None:  # a deadline search counted every size it tried in _search
            totals.considered, totals.feasible = (
                totals.considered + result.search.considered,
                totals.feasible + result.search.feasible,
            )
        totals.seconds, totals.cut = totals.seconds + result.search.seconds, totals.cut or result.search.cut
        searched.append(f"{gpu_id}: {result.search.searched}")
        price = _price(catalog, view.id, req, many)
        usd = price.usd_per_gpu_hour if price else None
        views.append(view)
        gpu_items = [plan_item(view.id, n_gpus, p, req.tokens, req.effective_time_fraction, usd, result.model_flops_per_token,
                               energy=energy.for_gpu(view)) for p in result.plans]  # fmt: skip
        items.extend(gpu_items)
        if not gpu_items:
            summaries.append(unfit_summary(view.id, n_gpus, result.reason, search_stats(result.search), tried))
            continue
        top = gpu_items[0]
        if req.n_gpus is None and not any(g.fits for g in summaries):
            batch = batch_size(seq_len, req.global_batch_size, req.global_batch_tokens, n_gpus)[0]
        summaries.append(s.GpuSummary(
            gpu=view.id, n_gpus=n_gpus, fits=True, reason=None, tokens_per_second=top.tokens_per_second, mfu=top.mfu,
            training_hours=top.training_hours, gpu_hours=top.gpu_hours, energy_kwh=top.energy_kwh, co2e_tonnes=top.co2e_tonnes,
            cost_usd=top.cost_usd, price=price,
            search=search_stats(result.search), tried_n_gpus=tried,
            global_batch_size=batch_size(seq_len, req.global_batch_size, req.global_batch_tokens, n_gpus)[0],
        ))  # fmt: skip
    if req.n_gpus is not None:  # the same cluster size everywhere: the fastest step first
        items.sort(key=lambda i: (i.step_time_seconds, i.per_gpu_total_bytes))
    else:  # each GPU type's deadline-meeting size: the cheapest run first
        items.sort(key=lambda i: (i.cost_usd is None, i.cost_usd or 0.0, i.gpu_hours or 0.0, i.step_time_seconds))
    fitting = [g for g in summaries if g.fits]
    fastest = max(fitting, key=lambda g: g.tokens_per_second or 0.0).gpu if fitting else None
    priced = [g for g in fitting if g.cost_usd is not None]
    cheapest = min(priced, key=lambda g: g.cost_usd or 0.0).gpu if priced else None
    reasons = [f"{g.gpu}: {g.reason}" for g in summaries if not g.fits]
    if req.tokens is not None and views:  # the answer has GPU-hours
        assumptions |= energy.assumptions(views, per_gpu=True)
    return s.PlanResponse(
        plans=items,
        search=s.SearchStats(considered=totals.considered, feasible=totals.feasible, returned=len(items), seconds=totals.seconds,
                             cut=totals.cut or totals.deadline_cut,
                             searched="; ".join(searched) or "nothing"),
        reason=None if items else "; ".join(reasons),
        gpus=summaries, fastest_gpu=fastest, cheapest_gpu=cheapest, global_batch_size=batch, seq_len=seq_len,
        formulas=FORMULAS + (FINETUNE_FORMULAS if finetune is not None else [])
        + ([energy_service.FORMULA] if req.tokens is not None and views else []), assumptions=assumptions,
    )  # fmt: skip


def unfit_summary(
    gpu: str, n_gpus: int | None, reason: str | None, stats: s.SearchStats | None, tried: list[int] | None
) -> s.GpuSummary:
    empty = s.SearchStats(considered=0, feasible=0, returned=0, seconds=0.0, cut=False, searched="nothing")
    return s.GpuSummary(gpu=gpu, n_gpus=n_gpus, fits=False, reason=reason, tokens_per_second=None, mfu=None, training_hours=None,
                        gpu_hours=None, cost_usd=None, price=None, search=stats or empty, tried_n_gpus=tried)  # fmt: skip
