"""The calculator endpoints: answers, their formulas and assumptions, and every bad input as a
422 problem document naming the field."""

from __future__ import annotations

import json
import math

import pytest

LLAMA_7B = {"preset": "llama-2-7b"}
LLAMA_7B_FIELDS = {
    "n_layers": 32, "d_model": 4096, "n_heads": 32, "n_kv_heads": 32, "d_head": 128, "d_ff": 11008,
    "vocab_size": 32000, "ffn": "swiglu", "norm": "rmsnorm", "bias": False, "tied_embeddings": False,
    "position": "rotary", "max_seq_len": 4096, "n_experts": 1, "experts_per_token": 1,
}  # fmt: skip


def assert_finite(value: object) -> None:
    """No NaN or infinity anywhere in a response."""
    if isinstance(value, float):
        assert math.isfinite(value)
    elif isinstance(value, dict):
        for v in value.values():
            assert_finite(v)
    elif isinstance(value, list):
        for v in value:
            assert_finite(v)


def ok(client, path: str, body: dict) -> dict:
    r = client.post(path, json=body)
    assert r.status_code == 200, r.text
    data = r.json()
    assert_finite(data)
    assert data["formulas"] and all(isinstance(f, str) and f for f in data["formulas"])
    assert isinstance(data["assumptions"], dict)
    return data


def problem(client, path: str, body: dict | bytes, status: int = 422) -> dict:
    if isinstance(body, bytes):
        r = client.post(path, content=body, headers={"content-type": "application/json"})
    else:
        r = client.post(path, json=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    data = r.json()
    assert {"type", "title", "status", "detail"} <= data.keys()
    assert data["status"] == status
    return data


def locs(data: dict) -> list[list]:
    return [e["loc"] for e in data["errors"]]


def test_healthz(client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_params_of_explicit_llama_2_7b(client) -> None:
    data = ok(client, "/v1/params", {"model": LLAMA_7B_FIELDS})
    assert data["total"] == 6_738_415_616
    assert data["active"] == data["total"]
    for key in ("embedding", "attention", "mlp", "norm", "lm_head"):
        assert isinstance(data[key], int)
    assert data["embedding"] + data["attention"] + data["mlp"] + data["norm"] + data["lm_head"] == data["total"]


def test_explicit_fields_override_a_preset(client) -> None:
    base = ok(client, "/v1/params", {"model": LLAMA_7B})
    gqa = ok(client, "/v1/params", {"model": {"preset": "llama-2-7b", "n_kv_heads": 8}})
    assert base["total"] - gqa["total"] == 32 * 2 * 4096 * (32 - 8) * 128


def test_every_preset_answers_every_calculator(client) -> None:
    from service.catalog import loader

    for model_id in loader.model_presets():
        model = {"preset": model_id}
        ok(client, "/v1/params", {"model": model})
        ok(client, "/v1/compute/training", {"model": model, "tokens": 1e12, "include_attention": True})
        ok(client, "/v1/compute/inference", {"model": model, "prompt_tokens": 512, "output_tokens": 128})
        ok(client, "/v1/memory/training", {"model": model, "seq_len": 1024, "flash_attention": True})
        ok(client, "/v1/memory/inference", {"model": model, "seq_len": 1024, "gpu": "h100-sxm"})


def test_training_compute_gpt3(client) -> None:
    # Brown et al. 2020: 3.14e23 FLOPs for GPT-3 175B on 300B tokens
    data = ok(client, "/v1/compute/training", {"model": {"preset": "gpt-3-175b"}, "tokens": 300e9})
    assert data["total_flops"] == pytest.approx(3.14e23, rel=0.005)
    assert data["flops_per_token"] == pytest.approx(6 * 174_604_259_328)
    assert "6*P*D" in data["formulas"][0]


def test_training_compute_recompute_and_attention(client) -> None:
    body = {"model": LLAMA_7B, "tokens": 2e12, "recompute": "full", "include_attention": True, "attention_formula": "megatron"}
    data = ok(client, "/v1/compute/training", body)
    # full recompute re-runs the layers' forward pass but not the 2*V*h logit layer (Megatron):
    # hardware = model * 4/3 - 2*V*h*D
    assert data["hardware_flops"] == pytest.approx(data["total_flops"] * 4 / 3 - 2 * 32000 * 4096 * 2e12)
    assert data["assumptions"]["attention_formula"] == "megatron"
    assert data["assumptions"]["seq_len"] == 4096


def test_n_params_alone_where_the_answer_needs_the_architecture(client) -> None:
    bare = {"n_params": 7e9}
    assert ok(client, "/v1/compute/training", {"model": bare, "tokens": 1e9})["total_flops"] == 6 * 7e9 * 1e9
    for path, body in [
        ("/v1/compute/training", {"model": bare, "tokens": 1e9, "include_attention": True}),
        ("/v1/memory/training", {"model": bare}),
        ("/v1/memory/inference", {"model": bare}),
        ("/v1/params", {"model": bare}),
    ]:
        data = problem(client, path, body)
        assert ["body", "model"] in locs(data)
        assert "n_layers" in data["detail"]
    # ...and what it can still answer
    assert ok(client, "/v1/memory/training", {"model": bare, "include_activations": False})["per_gpu"]["total_bytes"] == 16 * 7e9
    assert ok(client, "/v1/memory/inference", {"model": bare, "seq_len": 0})["weights_bytes"] == 14e9


def test_memory_training_fields_and_fit(client) -> None:
    body = {
        "model": LLAMA_7B, "seq_len": 4096, "recompute": "selective", "flash_attention": True,
        "parallelism": {"dp": 8, "zero_stage": 3}, "gpu": "a100-80gb-sxm",
    }  # fmt: skip
    data = ok(client, "/v1/memory/training", body)
    per_gpu = data["per_gpu"]
    keys = ("weights_bytes", "gradients_bytes", "optimizer_bytes", "activations_bytes")
    assert sum(per_gpu[k] for k in keys) == per_gpu["total_bytes"]
    assert data["fits"] is True
    assert data["n_gpus"] == 8
    assert data["assumptions"]["optimizer_bytes_per_param"] == 12
    tight = ok(client, "/v1/memory/training", {"model": {"preset": "llama-2-70b"}, "gpu": "a100-80gb-sxm"})
    assert tight["fits"] is False  # an infeasible layout is an answer, not an error


def test_fits_counts_the_cuda_context(client) -> None:
    # the tensors and the process's CUDA context (426 MiB by default, an input) must both fit: a job
    # whose tensors leave less than the context free does not fit, and says what it needs
    body = {"model": LLAMA_7B, "seq_len": 2048, "recompute": "full", "flash_attention": True,
            "parallelism": {"dp": 8, "zero_stage": 3}}  # fmt: skip
    data = ok(client, "/v1/memory/training", body)
    per_gpu = data["per_gpu"]
    assert per_gpu["cuda_context_bytes"] == 426 * 2**20 == data["assumptions"]["cuda_context_bytes"]
    assert per_gpu["device_total_bytes"] == per_gpu["total_bytes"] + per_gpu["cuda_context_bytes"]
    just_the_tensors = per_gpu["total_bytes"] + 2**20  # room for the tensors and 1 MiB more
    short = ok(client, "/v1/memory/training", body | {"gpu_memory_bytes": just_the_tensors})
    assert short["fits"] is False
    enough = ok(client, "/v1/memory/training", body | {"gpu_memory_bytes": per_gpu["device_total_bytes"]})
    assert enough["fits"] is True
    # an eagerly loaded context (1-2 GB, transformers' "Model training anatomy") or none at all
    eager = ok(
        client,
        "/v1/memory/training",
        body | {"gpu_memory_bytes": per_gpu["device_total_bytes"], "cuda_context_bytes": 1_343_000_000},
    )
    assert eager["fits"] is False and eager["per_gpu"]["total_bytes"] == per_gpu["total_bytes"]
    bare = ok(client, "/v1/memory/training", body | {"gpu_memory_bytes": just_the_tensors, "cuda_context_bytes": 0})
    assert bare["fits"] is True
    problem(client, "/v1/memory/training", body | {"cuda_context_bytes": -1})


def test_memory_inference_gpus_needed(client) -> None:
    data = ok(
        client, "/v1/memory/inference", {"model": {"preset": "llama-2-70b"}, "seq_len": 4096, "batch_size": 8, "gpu": "h100-sxm"}
    )
    assert data["kv_cache_bytes"] == 327_680 * 4096 * 8
    assert data["total_bytes"] == data["weights_bytes"] + data["overhead_bytes"] + data["kv_cache_bytes"]
    # the smallest tensor-parallel degree dividing the 64 heads whose usable memory (0.9, less a
    # 2 GiB reserve per GPU) holds the weights and the KV cache: 2, not ceil(1.2 rule / 80 GiB) = 3
    tp = data["gpus_needed"]
    usable = lambda n: n * (int(data["gpu_memory_bytes"] * 0.9) - 2 * 2**30)  # noqa: E731
    assert 64 % tp == 0 and data["weights_bytes"] + data["kv_cache_bytes"] <= usable(tp) and tp == 2
    assert data["weights_bytes"] + data["kv_cache_bytes"] > usable(tp // 2)
    int4 = ok(client, "/v1/memory/inference", {"model": {"preset": "llama-3.1-70b"}, "dtype": "int4", "seq_len": 32768, "batch_size": 16,
                                                 "gpu": "h100-sxm"})  # fmt: skip
    assert int4["assumptions"]["kv_dtype"] == "bf16" and int4["assumptions"]["quantisation_scale_bytes"] > 0
    assert int4["gpus_needed"] in (2, 4, 8)  # never 1 (the measured 79.42 GiB on 80) and never 3


def test_memory_inference_kv_dtype_default_is_documented_as_applied(client) -> None:
    # the KV cache stays bf16 when kv_dtype is not given, whatever the weights' format
    fields = client.get("/openapi.json").json()["components"]["schemas"]["InferenceMemoryRequest"]["properties"]
    data = ok(client, "/v1/memory/inference", {"model": {"preset": "llama-2-7b"}, "dtype": "fp8", "seq_len": 16})
    assert data["assumptions"]["kv_dtype"] == "bf16" and data["kv_cache_bytes_per_token"] == 2 * 32 * 4096 * 2
    assert "bf16" in fields["kv_dtype"]["description"] and "Default: dtype" not in fields["kv_dtype"]["description"]


def test_compute_inference(client) -> None:
    data = ok(client, "/v1/compute/inference", {"model": LLAMA_7B, "prompt_tokens": 1000, "output_tokens": 100})
    assert data["total_flops"] == pytest.approx(data["prefill_flops"] + data["decode_flops"])
    # matmul weights: all parameters but the embedding lookup table and the 65 RMSNorm gains
    assert data["flops_per_token"] > data["flops_per_token_weights"] == 2 * (6_738_415_616 - 32000 * 4096 - 65 * 4096)


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/v1/params", {"model": {**LLAMA_7B_FIELDS, "d_model": -1}}, ["body", "model", "d_model"]),
        ("/v1/params", {"model": {**LLAMA_7B_FIELDS, "n_layers": 0}}, ["body", "model", "n_layers"]),
        # without d_head the heads must divide d_model (a given d_head may differ: GLM-4.5's 96 x 128 on 4096)
        ("/v1/params", {"model": {**LLAMA_7B_FIELDS, "n_heads": 30, "d_head": None}}, ["body", "model", "n_heads"]),
        ("/v1/params", {"model": {**LLAMA_7B_FIELDS, "n_kv_heads": 5}}, ["body", "model", "n_kv_heads"]),
        ("/v1/params", {"model": {**LLAMA_7B_FIELDS, "experts_per_token": 2}}, ["body", "model", "experts_per_token"]),
        ("/v1/params", {"model": {"preset": "gpt-5"}}, ["body", "model", "preset"]),
        ("/v1/params", {"model": {"preset": "llama-2-7b", "typo_field": 1}}, ["body", "model", "typo_field"]),
        ("/v1/params", {"model": {"n_layers": "many", "d_model": 4096}}, ["body", "model", "n_layers"]),
        ("/v1/params", {"model": {**LLAMA_7B_FIELDS, "n_layers": 32.5}}, ["body", "model", "n_layers"]),
        ("/v1/params", {"model": {**LLAMA_7B_FIELDS, "d_model": 10**9, "n_heads": 1}}, ["body", "model", "d_model"]),
        ("/v1/compute/training", {"model": LLAMA_7B, "tokens": 0}, ["body", "tokens"]),
        ("/v1/compute/training", {"model": LLAMA_7B, "tokens": -5}, ["body", "tokens"]),
        ("/v1/compute/training", {"model": LLAMA_7B, "tokens": 1e30}, ["body", "tokens"]),
        ("/v1/compute/training", {"model": {"n_params": 1e30}, "tokens": 1e9}, ["body", "model", "n_params"]),
        ("/v1/compute/training", {"model": {"n_params": 7e9, "n_layers": 3}, "tokens": 1e9}, ["body", "model"]),
        ("/v1/compute/training", {"model": LLAMA_7B, "tokens": 1e9, "recompute": "sometimes"}, ["body", "recompute"]),
        ("/v1/compute/training", {"model": LLAMA_7B}, ["body", "tokens"]),
        ("/v1/compute/inference", {"model": LLAMA_7B, "prompt_tokens": 0, "output_tokens": 0}, ["body", "output_tokens"]),
        ("/v1/compute/inference", {"model": LLAMA_7B, "batch_size": 0}, ["body", "batch_size"]),
        ("/v1/memory/training", {"model": LLAMA_7B, "parallelism": {"tp": 3}}, ["body", "parallelism", "tp"]),
        ("/v1/memory/training", {"model": LLAMA_7B, "parallelism": {"pp": 64}}, ["body", "parallelism", "pp"]),
        ("/v1/memory/training", {"model": LLAMA_7B, "parallelism": {"zero_stage": 4}}, ["body", "parallelism", "zero_stage"]),
        (
            "/v1/memory/training",
            {"model": LLAMA_7B, "parallelism": {"offload_optimizer": True}},
            ["body", "parallelism", "offload_optimizer"],
        ),
        ("/v1/memory/training", {"model": LLAMA_7B, "micro_batch_size": -1}, ["body", "micro_batch_size"]),
        ("/v1/memory/training", {"model": LLAMA_7B, "optimizer": "adam9000"}, ["body", "optimizer"]),
        ("/v1/memory/training", {"model": LLAMA_7B, "gpu": "tpu-v9"}, ["body", "gpu"]),
        ("/v1/memory/inference", {"model": LLAMA_7B, "dtype": "int3"}, ["body", "dtype"]),
        ("/v1/memory/inference", {"model": LLAMA_7B, "gpu": "h100-sxm", "gpu_memory_bytes": 10}, ["body", "gpu"]),
    ],
)
def test_bad_input_is_a_422_naming_the_field(client, path: str, body: dict, loc: list) -> None:
    data = problem(client, path, body)
    assert loc in locs(data), data
    assert all(e["msg"] for e in data["errors"])


def test_unknown_preset_lists_the_known_ones(client) -> None:
    data = problem(client, "/v1/params", {"model": {"preset": "gpt-5"}})
    assert "llama-2-7b" in data["detail"]


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_rejected(client, literal: bytes) -> None:
    body = b'{"model": {"preset": "llama-2-7b"}, "tokens": ' + literal + b"}"
    data = problem(client, "/v1/compute/training", body)
    assert ["body", "tokens"] in locs(data)
    body = b'{"model": {"n_params": ' + literal + b'}, "tokens": 1e9}'
    problem(client, "/v1/compute/training", body)


@pytest.mark.parametrize("raw", [b"{not json", b"[]", b'"text"', b"null", b""])
def test_malformed_bodies(client, raw: bytes) -> None:
    problem(client, "/v1/memory/training", raw)


def test_absurd_but_valid_magnitudes_stay_finite_or_422(client) -> None:
    # the largest accepted inputs must still give finite numbers, or a 422 saying why
    huge = {"n_layers": 100_000, "d_model": 65536, "n_heads": 512, "d_ff": 262144, "vocab_size": 1_000_000}
    r = client.post("/v1/memory/training", json={"model": huge, "seq_len": 100_000_000, "micro_batch_size": 10_000_000})
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    r = client.post("/v1/compute/training", json={"model": {"n_params": 1e16}, "tokens": 1e18})
    assert r.status_code == 200
    assert_finite(r.json())
    json.dumps(r.json(), allow_nan=False)


def test_unknown_route_is_a_problem(client) -> None:
    r = client.get("/v1/nothing")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")


def test_preset_overrides_keep_derived_fields_derived(client) -> None:
    # a wider Llama-2-7B: d_head follows d_model / n_heads (API.md), n_kv_heads follows n_heads
    wider = ok(client, "/v1/params", {"model": {"preset": "llama-2-7b", "d_model": 5120}})
    explicit = ok(client, "/v1/params", {"model": {**LLAMA_7B_FIELDS, "d_model": 5120, "d_head": 160}})
    assert wider["total"] == explicit["total"]
    fewer_heads = ok(client, "/v1/params", {"model": {"preset": "llama-2-7b", "n_heads": 16}})
    assert fewer_heads["total"] == 6_738_415_616  # same widths, d_head 256, still MHA
    gqa = ok(client, "/v1/params", {"model": {"preset": "llama-2-70b", "n_heads": 32}})
    assert gqa["attention"] == 80 * (8192 * 8192 * 2 + 2 * 8192 * 8 * 256)  # keeps its 8 KV heads


def test_kaplan_formula_counts_active_experts_only(client) -> None:
    body = {"model": {"preset": "mixtral-8x7b"}, "tokens": 1.0, "include_attention": True, "seq_len": 4096}
    kaplan = ok(client, "/v1/compute/training", body | {"attention_formula": "kaplan"})
    # N = active non-embedding parameters: 12,879,925,248 - 2 * 32000 * 4096
    n = 12_879_925_248 - 2 * 32000 * 4096
    assert kaplan["flops_per_token"] == pytest.approx(6 * n + 6 * 32 * 4096 * 4096)


def test_a_preset_answer_names_the_preset(client) -> None:
    data = ok(client, "/v1/compute/training", {"model": LLAMA_7B, "tokens": 1e9})
    assert data["assumptions"]["architecture"] == "preset llama-2-7b"
    assert "embedding table included" in data["assumptions"]["params_counted"]
    wider = ok(
        client, "/v1/compute/training", {"model": LLAMA_7B | {"vocab_size": 32064}, "tokens": 1e9, "include_attention": True}
    )
    assert wider["assumptions"]["architecture"] == "preset llama-2-7b with vocab_size overridden"
    assert "lookup free" in wider["assumptions"]["params_counted"]
    explicit = ok(
        client, "/v1/compute/inference", {"model": {"n_layers": 2, "d_model": 64, "n_heads": 2, "d_ff": 256, "vocab_size": 100}}
    )
    assert explicit["assumptions"]["architecture"] == "explicit"


def test_training_memory_kernels(client) -> None:
    # Llama-2-7B, s = 4096, b = 1, no recompute: per layer, in units of s*b*h bytes
    base = {"model": LLAMA_7B, "seq_len": 4096, "include_activations": True}
    sbh, f_over_h, a_s_over_h = 4096 * 4096, 11008 / 4096, 32 * 4096 / 4096
    default = ok(client, "/v1/memory/training", base)
    assert default["assumptions"]["attention_implementation"] == "sdpa" and default["assumptions"]["fp32_norms"] is True
    # transformers + SDPA: 2 upcast RMSNorms (4 + 2 each), QKV and MLP inputs 2 + 2, Q, K, V and
    # the output-projection input 8, unfused SwiGLU 4 * 2 * f/h, fp32 log-sum-exp 4*a*s*b
    lse = 4 * 4096 * 32
    assert default["activations"]["per_layer_bytes"] == 12 * sbh + 4 * sbh + 8 * sbh + 8 * 11008 * 4096 + lse
    eager = ok(client, "/v1/memory/training", base | {"attention_implementation": "eager"})
    # + fp32 probabilities and their 16-bit copy: 6 bytes per score
    assert eager["activations"]["per_layer_bytes"] == default["activations"]["per_layer_bytes"] - lse + 6 * a_s_over_h * sbh
    assert eager == ok(client, "/v1/memory/training", base | {"flash_attention": False})  # the older input: eager
    megatron = ok(client, "/v1/memory/training", base | {"framework": "megatron"})
    # Korthikanti's count for SwiGLU without dropout: 16 + 3*2*f/h, softmax output 2 bytes per score
    assert megatron["activations"]["per_layer_bytes"] == (16 + 6 * f_over_h + 2 * a_s_over_h) * sbh
    assert megatron["assumptions"]["attention_implementation"] == "eager"
    assert any("megatron kernels" in f for f in megatron["formulas"])


def test_training_memory_rejects_contradicting_attention_inputs(client) -> None:
    r = client.post("/v1/memory/training", json={"model": LLAMA_7B, "flash_attention": True, "attention_implementation": "eager"})
    assert r.status_code == 422 and "attention_implementation" in r.text


def test_training_defaults_to_8k_tokens_not_a_long_context_window(client) -> None:
    # Llama 3.1's context is 131,072 tokens, but it was pre-trained at 8,192 (Llama 3 §3.4): a training
    # answer without seq_len takes the context up to 8,192 and says so; 131,072 is used when asked
    body = {"model": {"preset": "llama-3.1-8b"}, "flash_attention": True, "recompute": "full"}
    default = ok(client, "/v1/memory/training", body)
    assert default["assumptions"]["seq_len"] == 8192 and "default" in default["assumptions"]["seq_len_source"]
    asked = ok(client, "/v1/memory/training", body | {"seq_len": 8192})
    assert asked["per_gpu"] == default["per_gpu"] and asked["assumptions"]["seq_len_source"] == "request"
    long = ok(client, "/v1/memory/training", body | {"seq_len": 131_072})
    assert long["per_gpu"]["activations_bytes"] == 16 * default["per_gpu"]["activations_bytes"]
    short_context = ok(client, "/v1/memory/training", {"model": {"preset": "llama-2-7b"}})
    assert short_context["assumptions"]["seq_len"] == 4096  # a context under 8K is taken whole
    compute = ok(client, "/v1/compute/training", {"model": {"preset": "llama-3.1-8b"}, "tokens": 1e12, "include_attention": True})
    assert compute["assumptions"]["seq_len"] == 8192


def test_review_findings_are_422s_or_stated(client) -> None:
    # a CUDA context past 64 GiB is a 422 on that field; MLA with per-head q/k norms or attention sinks
    # (no model pairs them, and the parameter count would not hold them) is refused by name; a bare
    # parameter count has no sequence length to source
    r = client.post("/v1/memory/training", json={"model": {"preset": "llama-2-7b"}, "cuda_context_bytes": 65 * 2**30})
    assert r.status_code == 422 and any(e["loc"][-1] == "cuda_context_bytes" for e in r.json()["errors"])
    for field in ("qk_norm", "attention_sinks"):
        r = client.post("/v1/params", json={"model": {"preset": "deepseek-v2-lite", field: True}})
        assert r.status_code == 422 and field in r.text and "latent" in r.text, r.text
    bare = ok(client, "/v1/memory/training", {"model": {"n_params": 7e9}, "include_activations": False})
    assert bare["assumptions"]["seq_len"] is None and bare["assumptions"]["seq_len_source"] is None


def test_fp8_training_keeps_the_linear_inputs_in_fp8(client) -> None:
    # Transformer Engine, torchao Float8 and DeepSeek-V3 §3.3.3 keep each linear layer's input for the
    # backward in FP8: Llama-3-8B (h = 4096, f = 14336, q_dim = 4096, 32 layers) keeps the QKV, MLP and
    # down inputs at 1 byte instead of 2 and an FP8 copy of the attention output: 2h + f - q_dim = 18,432
    # bytes a token fewer per layer; MXFP8 adds a 1-byte scale per 32 of the h + h + f + q_dim elements
    body = {"model": {"preset": "llama-3-8b"}, "seq_len": 4096, "flash_attention": True}
    bf16 = ok(client, "/v1/memory/training", body)
    fp8 = ok(client, "/v1/memory/training", body | {"precision": "fp8"})
    mx = ok(client, "/v1/memory/training", body | {"precision": "fp8", "fp8_recipe": "mxfp8"})
    assert bf16["per_gpu"]["activations_bytes"] - fp8["per_gpu"]["activations_bytes"] == 32 * 4096 * 18_432
    assert bf16["activations"]["per_layer_bytes"] - fp8["activations"]["per_layer_bytes"] == 4096 * 18_432
    assert mx["per_gpu"]["activations_bytes"] - fp8["per_gpu"]["activations_bytes"] == 32 * 4096 * 26_624 // 32
    assert any("FP8 (tensorwise)" in f and "1 bytes an element" in f for f in fp8["formulas"])
    assert any(
        "inputs for the backward in FP8, 1.03125 bytes" in v for k, v in mx["assumptions"].items() if k.startswith("note_")
    )
    full = {"recompute": "full", "precision": "fp8"}  # full recompute keeps each layer's BF16 input either way
    assert (
        ok(client, "/v1/memory/training", body | full)["per_gpu"]["activations_bytes"]
        == ok(client, "/v1/memory/training", body | {"recompute": "full"})["per_gpu"]["activations_bytes"]
    )


def test_memory_training_names_the_loss_implementation(client) -> None:
    # transformers' eager loss (the default kernels) peaks at 12 bytes a logit, Megatron's fused one at 4:
    # Llama-3-8B, 8,192 tokens, vocabulary 128,256
    body = {"model": {"preset": "llama-3-8b"}, "seq_len": 8192, "micro_batch_size": 1, "recompute": "full"}
    eager = ok(client, "/v1/memory/training", body)
    fused = ok(client, "/v1/memory/training", body | {"cross_entropy": "fused"})
    assert eager["per_gpu"]["activations_bytes"] - fused["per_gpu"]["activations_bytes"] == 8 * 8192 * 128_256
    assert ok(client, "/v1/memory/training", body | {"cross_entropy": "eager"}) == eager
    assert any("cross entropy" in f for f in eager["formulas"]), eager["formulas"]
    data = problem(client, "/v1/memory/training", body | {"cross_entropy": "chunked"})
    assert any(error["loc"][-1] == "cross_entropy" for error in data["errors"]), data


def test_memory_training_states_the_loss_it_priced(client) -> None:
    body = {"model": {"preset": "llama-3-8b"}, "seq_len": 8192, "micro_batch_size": 1}
    assert ok(client, "/v1/memory/training", body)["assumptions"]["cross_entropy"].startswith("eager: 12 bytes a logit")
    megatron = ok(client, "/v1/memory/training", body | {"framework": "megatron"})
    assert megatron["assumptions"]["cross_entropy"].startswith("fused: 4 bytes a logit")


def test_memory_training_lists_the_rebuilt_layer_and_the_loss_parallel_bytes(client) -> None:
    # Llama-3-8B at 8,192 tokens, full recompute, transformers' kernels, 2 tensor ranks without sequence
    # parallelism: the layer rebuilt in its backward keeps its norms' and the QKV and MLP inputs whole (16h a
    # token), Q, the output projection's input, the SwiGLU tensors, K, V and the log-sum-exp halved
    # (tests/core/test_recompute_working.py); the eager loss on vocabulary shards is PyTorch's loss_parallel,
    # 16 bytes a logit
    body = {"model": {"preset": "llama-3-8b"}, "seq_len": 8192, "recompute": "full", "flash_attention": True,
            "parallelism": {"tp": 2}}  # fmt: skip
    data = ok(client, "/v1/memory/training", body)
    per_token = 16 * 4096 + (4 * 4096 + 8 * 14336 + 4 * 1024 + 4 * 32) // 2
    assert data["activations"]["recompute_working_bytes"] == 8192 * per_token == 1_091_043_328
    assert data["assumptions"]["cross_entropy"].startswith("eager: 16 bytes a logit")
    none = ok(client, "/v1/memory/training", body | {"recompute": "none"})
    assert none["activations"]["recompute_working_bytes"] == 0
