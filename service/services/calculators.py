"""Calculator use cases: resolve the request's references, call the core, shape the answer."""

from __future__ import annotations

from service.core import compute, finetune, memory, serving
from service.core.architecture import Architecture
from service.core.dtypes import Dtype
from service.core.errors import InvalidSpecError
from service.core.gradients import grad_dtype_assumption
from service.core.kernels import AttentionKernel, DeviceConvention, Framework, Kernels, resolve_kernels
from service.core.params import count_params
from service.schemas import calculators as s
from service.services.catalog_reader import CatalogReader
from service.services.models import (
    model_assumptions,
    model_training_seq_len,
    norm_weight_fp32_default,
    resolve_gpu,
    resolve_model,
)

GIB = 2**30


def _parallelism(p: s.ParallelismSpec) -> memory.Parallelism:
    return memory.Parallelism(
        dp=p.dp,
        tp=p.tp,
        pp=p.pp,
        cp=p.cp,
        ep=p.ep,
        virtual_stages=p.virtual_stages,
        sequence_parallel=p.sequence_parallel,
        zero_stage=p.zero_stage,
        offload_optimizer=p.offload_optimizer,
        pipeline_schedule=p.pipeline_schedule,
    )


def params(req: s.ParamsRequest, catalog: CatalogReader) -> s.ParamsResponse:
    model = resolve_model(req.model, catalog)
    b_arch = compute.require_architecture(model, "a parameter breakdown")
    b = count_params(b_arch)
    return s.ParamsResponse(
        total=b.total,
        active=b.active,
        embedding=b.embedding,
        attention=b.attention,
        mlp=b.mlp,
        norm=b.norm,
        lm_head=b.lm_head,
        non_embedding=b.non_embedding,
        formulas=[
            "P = V*h (+ positions) + L*(attention + n_experts*MLP + router + norms) + final norm "
            "+ LM head unless tied (exact module count; Transformers Math 101)"
        ]
        + (
            ["MLA attention: query/KV down- and up-projections, their RMSNorms and the output (DeepSeek-V2 §2.1)"]
            if b_arch.is_mla
            else []
        )
        + (
            ["first_k_dense dense layers, then routed + shared experts and the router (DeepSeekMoE §3)"]
            if b_arch.is_moe and (b_arch.first_k_dense or b_arch.n_shared_experts)
            else []
        ),
        assumptions=model_assumptions(model, req.model) | {"tied_embeddings_counted_once": True},
    )


def training_compute(req: s.TrainingComputeRequest, catalog: CatalogReader) -> s.TrainingComputeResponse:
    model = resolve_model(req.model, catalog)
    ft = req.finetune if req.finetune and req.finetune.is_adapter else None
    seq, seq_source = model_training_seq_len(model, req.seq_len)
    options = dict(recompute=req.recompute, include_attention=req.include_attention, attention_formula=req.attention_formula,
                   seq_len=seq, causal=req.causal_attention)  # fmt: skip
    if ft is None:
        r, ft_detail = compute.training_flops(model, req.tokens, **options), None  # type: ignore[arg-type]
    else:
        r, ft_compute = finetune.finetune_training_flops(model, req.tokens, ft.spec(), **options)  # type: ignore[arg-type]
        ft_detail = finetune_compute_detail(ft_compute)
    assumptions = model_assumptions(model, req.model, req.seq_len) | {
        "recompute": req.recompute.value,
        "include_attention": req.include_attention,
        "params_counted": "active parameters, embedding table included (all for a dense model)"
        if not req.include_attention
        else {
            compute.AttentionFormula.KAPLAN: "active non-embedding parameters (Kaplan's N)",
        }.get(req.attention_formula, "active matmul weights: layers and the V*h logit projection, embedding lookup free"),
    }
    if req.include_attention:
        assumptions |= {
            "attention_formula": req.attention_formula.value,
            "causal_attention": req.causal_attention,
            "seq_len": seq,
            "seq_len_source": seq_source,
        }
    if ft_detail is not None:
        assumptions |= finetune_assumptions(ft_compute.spec, ft_compute.targets)
    return s.TrainingComputeResponse(
        total_flops=r.model_flops,
        flops_per_token=r.model_flops_per_token,
        hardware_flops=r.hardware_flops,
        hardware_flops_per_token=r.hardware_flops_per_token,
        forward_flops_per_token=r.forward_flops_per_token,
        backward_flops_per_token=r.backward_flops_per_token,
        params=r.params_used,
        tokens=req.tokens,
        formulas=[r.formula],
        assumptions=assumptions,
        finetune=ft_detail,
    )


def finetune_compute_detail(r: finetune.FinetuneCompute) -> s.FinetuneComputeDetail:
    """The adapters' share of a LoRA/QLoRA answer's FLOPs."""
    return s.FinetuneComputeDetail(
        method=r.spec.method, rank=r.spec.rank, target_modules=[t.value for t in r.targets], trainable_params=r.trainable_params,
        active_adapter_params=r.active_adapter_params, adapter_flops_per_token=r.adapter_flops_per_token,
        full_training_flops_per_token=r.full_training_flops_per_token, flops_saved_fraction=r.flops_saved_fraction,
    )  # fmt: skip


def finetune_assumptions(
    spec: finetune.FinetuneSpec, targets: tuple[finetune.Projection, ...]
) -> dict[str, str | float | int | bool | None]:
    """What every LoRA/QLoRA answer assumed."""
    return {
        "finetune": spec.method.value,
        "lora_rank": spec.rank,
        "lora_targets": ", ".join(targets),
        "frozen_base": "no weight gradients or optimizer states for the base; activation gradients still flow through it",
    }


def inference_compute(req: s.InferenceComputeRequest, catalog: CatalogReader) -> s.InferenceComputeResponse:
    model = resolve_model(req.model, catalog)
    r = compute.inference_flops(
        model,
        prompt_tokens=req.prompt_tokens,
        output_tokens=req.output_tokens,
        batch_size=req.batch_size,
        include_attention=req.include_attention,
    )
    return s.InferenceComputeResponse(
        flops_per_token=r.flops_per_token,
        flops_per_token_weights=r.flops_per_token_weights,
        prefill_flops=r.prefill_flops,
        decode_flops=r.decode_flops,
        total_flops=r.total_flops,
        formulas=[r.formula],
        assumptions=model_assumptions(model, req.model, req.prompt_tokens + req.output_tokens, field="output_tokens")
        | {"include_attention": req.include_attention, "kv_cache": True, "batch_size": req.batch_size},
    )


_DROPOUT_CONVENTIONS = {
    DeviceConvention.CUDA: "cuda: dropout keeps a 1-byte mask an element (native_dropout); SDPA's fused kernels regenerate "
    "theirs; Mamba, Mamba-2 and RWKV-4 layers keep what their fused kernels save",
    DeviceConvention.CPU: "cpu: dropout keeps a noise tensor of the dropped tensor's dtype; SDPA with dropout runs the fp32 "
    "math path (fp32 Q, K, V, scores, noise and dropped scores); Mamba, Mamba-2 and RWKV-4 layers keep what transformers' "
    "reference torch code saves",
}


def _kernels(req: s.TrainingMemoryRequest, catalog: CatalogReader) -> Kernels:
    """The request's implementation. ``flash_attention`` (the older input) keeps its meaning: true
    is FlashAttention, false given explicitly is eager attention with the scores kept;
    ``fp32_norm_weight`` unset follows the model's family (Gemma, OLMo 2) in transformers' code; Megatron's
    fused RMSNorm (Transformer Engine) keeps its 16-bit input and an fp32 scalar a token whatever the family."""
    attention = req.attention_implementation
    if req.flash_attention and attention not in (None, AttentionKernel.FLASH):
        raise InvalidSpecError("attention_implementation", f"'{attention.value}' contradicts flash_attention=true")
    if attention is None and not req.flash_attention and "flash_attention" in req.model_fields_set:
        attention = AttentionKernel.EAGER
    return Kernels(
        framework=req.framework,
        attention=attention,
        fp32_softmax=req.fp32_softmax,
        fp32_norms=req.fp32_norms,
        fused_activation=req.fused_activation,
        residual_dropout=req.residual_dropout,
        fp32_norm_weight=(norm_weight_fp32_default(req.model, catalog) and req.framework is Framework.HUGGINGFACE)
        if req.fp32_norm_weight is None
        else req.fp32_norm_weight,
        device=req.device_convention,
        cross_entropy=req.cross_entropy,
    )


def training_memory(req: s.TrainingMemoryRequest, catalog: CatalogReader) -> s.TrainingMemoryResponse:
    model = resolve_model(req.model, catalog)
    kernels = _kernels(req, catalog)
    gpu_row, gpu_bytes = resolve_gpu(req.gpu, req.gpu_memory_bytes, catalog)
    par = _parallelism(req.parallelism)
    seq, seq_source = model_training_seq_len(model, req.seq_len)
    options = dict(
        precision=req.precision, optimizer=req.optimizer, parallelism=par, micro_batch_size=req.micro_batch_size,
        seq_len=seq, recompute=req.recompute, flash_attention=req.flash_attention, dropout=req.dropout,
        include_activations=req.include_activations, microbatches=req.gradient_accumulation_steps, kernels=kernels,
        fp8_recipe=req.fp8_recipe, grad_reduce_dtype=req.grad_reduce_dtype,
    )  # fmt: skip
    ft = finetune.finetune_memory(model, req.finetune.spec(), **options) if req.finetune and req.finetune.is_adapter else None  # type: ignore[arg-type]
    r = ft.memory if ft else memory.training_memory(model, **options)  # type: ignore[arg-type]
    act = r.activations
    assumptions = model_assumptions(model, req.model, req.seq_len) | {
        "precision": req.precision.value,
        "optimizer": req.optimizer.value,
        "weight_bytes_per_param": r.bytes_per_param["weights"],
        "gradient_bytes_per_param": r.bytes_per_param["gradients"],
        "grad_reduce_dtype": grad_dtype_assumption(req.precision, req.grad_reduce_dtype),
        "optimizer_bytes_per_param": r.bytes_per_param["optimizer"],
        "seq_len": seq,
        "seq_len_source": seq_source,
        "pipeline_schedule": "1F1B, first stage holds pp micro-batches",
        "framework": req.framework.value,
        "cuda_context_bytes": req.cuda_context_bytes,
        "excluded": "allocator fragmentation, framework workspaces and communication buffers (the CUDA context is in device_total_bytes)",
    }
    if act is not None and isinstance(model, Architecture):
        k = resolve_kernels(kernels, model, flash_attention=req.flash_attention)
        assumptions |= {"attention_implementation": k.attention.value, "fp32_softmax": k.fp32_softmax, "fp32_norms": k.fp32_norms,
                        "fused_activation": k.fused_activation, "eager_repeats_kv": k.repeat_kv,
                        "cross_entropy": f"{k.cross_entropy.value}: {k.logit_bytes(par.tp)} bytes a logit at the loss's peak"}  # fmt: skip
    recurrent = isinstance(model, Architecture) and bool(model.recurrent_layers)
    if req.dropout or recurrent or (req.finetune is not None and (req.finetune.dropout or 0) > 0):
        assumptions["device_convention"] = _DROPOUT_CONVENTIONS[req.device_convention]
    if ft is not None:
        assumptions |= finetune_assumptions(ft.spec, ft.targets) | {
            "bytes_per_param_basis": "weights per base parameter (constants included); gradients and optimizer per adapter parameter",
            "base_format": ft.base_format.value,
            "paged_optimizer": "counted on the GPU in total_bytes; finetune.total_if_paged_bytes if it all paged to the host"
            if ft.paged_optimizer else "off",
        }  # fmt: skip
    for i, note in enumerate(r.notes):
        assumptions[f"note_{i + 1}"] = note
    device_total = memory.device_total_bytes(r.total_bytes, req.cuda_context_bytes)
    # one validation pass over the whole answer (nested parts as dicts), not one per model
    return s.TrainingMemoryResponse.model_validate(
        {
            "per_gpu": {
                "weights_bytes": r.weights_bytes,
                "gradients_bytes": r.gradients_bytes,
                "optimizer_bytes": r.optimizer_bytes,
                "activations_bytes": r.activations_bytes,
                "total_bytes": r.total_bytes,
                "total_gib": r.total_bytes / GIB,
                "cuda_context_bytes": req.cuda_context_bytes,
                "device_total_bytes": device_total,
            },
            "cpu_offload_bytes": r.cpu_offload_bytes,
            "params_per_gpu": r.resident_params_per_gpu,
            "params_per_gpu_before_zero": r.params_per_gpu,
            "n_gpus": par.n_gpus,
            "activations": None
            if act is None
            else {
                "per_layer_bytes": act.per_layer_bytes,
                "layers_per_stage": act.layers_per_stage,
                "in_flight_microbatches": act.in_flight_microbatches,
                "first_stage_bytes": act.first_stage_bytes,
                "last_stage_bytes": act.last_stage_bytes,
                "recompute_working_bytes": act.recompute_working_bytes,
            },
            "gpu": gpu_row.id if gpu_row else None,
            "gpu_memory_bytes": gpu_bytes,
            "fits": None if gpu_bytes is None else memory.memory_fits(device_total, gpu_bytes),
            "formulas": [
                *r.formulas,
                "device_total_bytes = total_bytes + the CUDA context (about 400 MiB with lazy kernel loading; PyTorch issue 109888)",
            ],
            "assumptions": assumptions,
            "finetune": None if ft is None else _finetune_memory_detail(ft, gpu_bytes, req.cuda_context_bytes),
        }
    )


def _finetune_memory_detail(ft: finetune.FinetuneMemory, gpu_bytes: int | None, cuda_context_bytes: int) -> dict[str, object]:
    return {
        "method": ft.spec.method, "rank": ft.spec.rank, "alpha": ft.spec.alpha, "target_modules": [t.value for t in ft.targets],
        "trainable_params": ft.trainable_params, "total_params": ft.total_params,
        "trainable_fraction": ft.trainable_params / ft.total_params,
        "adapter_params_by_module": {t.value: n for t, n in ft.adapter_params_by_target.items()},
        "base_format": ft.base_format, "kept_dtype": ft.kept_dtype, "fp8_params": ft.fp8_params,
        "base_weights_bytes": ft.base_weights_bytes,
        "quantization_constants_bytes": ft.base.constants_bytes,
        "dequantization_buffer_bytes": ft.base.dequantization_buffer_bytes,
        "adapter_weights_bytes": ft.adapter_weights_bytes, "adapter_gradients_bytes": ft.adapter_gradients_bytes,
        "adapter_optimizer_bytes": ft.adapter_optimizer_bytes, "adapter_activations_bytes": ft.adapter_activations_bytes,
        "base_activations_bytes": ft.memory.activations_bytes - ft.adapter_activations_bytes,
        "frozen_inputs_not_kept_bytes": ft.frozen_inputs_not_kept_bytes,
        "adapter_checkpoint_bytes": ft.adapter_checkpoint_bytes, "paged_optimizer": ft.paged_optimizer,
        "pageable_bytes": ft.pageable_bytes, "total_if_paged_bytes": ft.total_if_paged_bytes,
        "fits_if_paged": None if gpu_bytes is None else memory.memory_fits(memory.device_total_bytes(ft.total_if_paged_bytes, cuda_context_bytes), gpu_bytes),
    }  # fmt: skip


def inference_memory(req: s.InferenceMemoryRequest, catalog: CatalogReader) -> s.InferenceMemoryResponse:
    model = resolve_model(req.model, catalog)
    gpu_row, gpu_bytes = resolve_gpu(req.gpu, req.gpu_memory_bytes, catalog)
    kv_dtype = req.kv_dtype or Dtype.BF16
    arch = model if isinstance(model, Architecture) else None
    weights = serving.weight_bytes(arch, req.dtype) if arch is not None else None
    r = memory.inference_memory(
        model,
        dtype=req.dtype,
        kv_dtype=kv_dtype,
        batch_size=req.batch_size,
        seq_len=req.seq_len,
        gpu_memory_bytes=gpu_bytes,
        weights_bytes=weights.total_bytes if weights else None,
    )
    gpus_needed, rule = r.gpus_needed, "ceil(total / GPU memory), weights sharded by tensor parallelism"
    if arch is not None and gpu_bytes is not None and weights is not None:
        # the serving model's rule: the smallest tensor-parallel degree (dividing the heads) whose
        # usable memory (vLLM's 0.9, less a runtime reserve) holds the weights and the KV cache
        seq = req.seq_len if req.seq_len is not None else arch.max_seq_len
        node = (gpu_row.gpus_per_node if gpu_row else None) or 8
        gpus_needed = serving.smallest_fitting_tp(arch, memory_bytes=gpu_bytes, gpus_per_node=node, weights_bytes=weights.total_bytes,
                                                  kv_dtype=kv_dtype, seq_len=seq, batch_size=req.batch_size,
                                                  state_dtype=memory.recurrent_state_dtype(req.dtype))  # fmt: skip
        rule = (f"smallest tensor-parallel degree dividing the heads whose {serving.GPU_MEMORY_UTILIZATION:.0%} of memory, less "
                f"{serving.RUNTIME_RESERVE_BYTES / GIB:.0f} GiB per GPU, holds the weights and the KV cache; null: none within a node of {node}")  # fmt: skip
    return s.InferenceMemoryResponse(
        weights_bytes=r.weights_bytes,
        kv_cache_bytes=r.kv_cache_bytes,
        kv_cache_bytes_per_token=r.kv_cache_bytes_per_token,
        overhead_bytes=r.overhead_bytes,
        total_bytes=r.total_bytes,
        total_gib=r.total_bytes / GIB,
        gpu=gpu_row.id if gpu_row else None,
        gpu_memory_bytes=gpu_bytes,
        gpus_needed=gpus_needed,
        state_cache_bytes_per_sequence=r.state_cache_bytes_per_sequence or None,
        state_cache_bytes=r.state_cache_bytes if r.state_cache_bytes_per_sequence else None,
        formulas=list(r.formulas) + ([serving_formula] if weights and weights.scale_bytes else []),
        assumptions=model_assumptions(model, req.model, req.seq_len)
        | {
            "dtype": req.dtype.value,
            "kv_dtype": kv_dtype.value,
            "kv_dtype_source": "request" if req.kv_dtype else "default bf16 (not the weights' format)",
            "overhead_fraction": memory.INFERENCE_OVERHEAD_FRACTION,
            "seq_len": req.seq_len if req.seq_len is not None else getattr(model, "max_seq_len", None),
            "gpus_needed_rule": rule,
            "quantisation_scale_bytes": weights.scale_bytes if weights else 0,
        },
    )


serving_formula = ("quantised weights count their scales: int8 an fp16 scale per output channel, int4 an fp16 scale and 4-bit "
                   "zero per group of 128 (GPTQ, Frantar et al. 2023; AWQ, Lin et al. 2024), embeddings and head in 16 bits")  # fmt: skip
