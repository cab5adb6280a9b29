"""Fine-tuning through the training endpoints: `finetune` (and the `lora`/`qlora` shorthands) on
/v1/memory/training, /v1/compute/training and /v1/cost/training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.api.test_calculators import ok

LLAMA_7B = {"preset": "llama-2-7b"}
MEASURED_LORA = json.loads((Path(__file__).resolve().parents[2] / "validation" / "measurements" / "lora_params.json").read_text())


def test_lora_shorthand_is_accepted_and_equals_finetune(client) -> None:
    # the shape a user tried first used to be a 422 "Extra inputs are not permitted"
    short = ok(client, "/v1/memory/training", {"model": LLAMA_7B, "lora": {"r": 16}, "seq_len": 1024})
    long = ok(client, "/v1/memory/training", {"model": LLAMA_7B, "finetune": {"method": "lora", "r": 16}, "seq_len": 1024})
    assert short["per_gpu"] == long["per_gpu"]
    ft = short["finetune"]
    assert ft["method"] == "lora" and ft["rank"] == 16
    # every linear projection of Llama-2-7B: 32 layers * 16 * (4*(4096+4096) + 2*(4096+11008) + (11008+4096))
    assert ft["trainable_params"] == 32 * 16 * (4 * 8192 + 3 * 15104)
    assert ft["target_modules"] == ["q", "k", "v", "o", "gate", "up", "down"]
    assert short["assumptions"]["finetune"] == "lora"
    assert any("Hu et al. 2021" in f for f in short["formulas"])


def test_lora_memory_parts_add_up_and_base_has_no_gradients(client) -> None:
    full = ok(client, "/v1/memory/training", {"model": LLAMA_7B, "seq_len": 1024, "flash_attention": True})
    lora = ok(client, "/v1/memory/training",
              {"model": LLAMA_7B, "seq_len": 1024, "flash_attention": True, "finetune": {"r": 8, "target_modules": ["q_proj", "v_proj"]}})  # fmt: skip
    p, ft = lora["per_gpu"], lora["finetune"]
    assert p["total_bytes"] == p["weights_bytes"] + p["gradients_bytes"] + p["optimizer_bytes"] + p["activations_bytes"]
    assert p["gradients_bytes"] == ft["adapter_gradients_bytes"] == 2 * ft["trainable_params"]
    assert p["optimizer_bytes"] == 12 * ft["trainable_params"]  # fp32 master + AdamW m, v for the adapters only
    assert p["weights_bytes"] == 2 * ft["total_params"] + 2 * ft["trainable_params"]  # bf16 frozen base + adapters
    # what LoRA does not save: the frozen layers' activations are kept, less the inputs of the frozen
    # MLP matrices (q, v read the QKV input; FlashAttention keeps the output projection's input)
    dropped = 32 * 1024 * 2 * (4096 + 11008)
    assert ft["frozen_inputs_not_kept_bytes"] == dropped
    assert ft["base_activations_bytes"] == full["per_gpu"]["activations_bytes"] - dropped
    assert p["activations_bytes"] == full["per_gpu"]["activations_bytes"] - dropped + ft["adapter_activations_bytes"]
    assert p["total_bytes"] < full["per_gpu"]["total_bytes"] / 2


def test_qlora_reports_quantisation_paging_and_fit(client) -> None:
    body = {"model": LLAMA_7B, "seq_len": 512, "recompute": "full", "qlora": {"r": 64}, "gpu_memory_bytes": 8 * 2**30}
    d = ok(client, "/v1/memory/training", body)
    ft = d["finetune"]
    assert ft["method"] == "qlora" and ft["base_format"] == "nf4" and ft["kept_dtype"] == "fp32"
    assert ft["quantization_constants_bytes"] > 0 and ft["dequantization_buffer_bytes"] == 2 * 4096 * 11008
    assert ft["paged_optimizer"] is True and ft["pageable_bytes"] == d["per_gpu"]["optimizer_bytes"]
    assert ft["total_if_paged_bytes"] == d["per_gpu"]["total_bytes"] - ft["pageable_bytes"]
    assert d["fits"] is (d["per_gpu"]["total_bytes"] <= 8 * 2**30)
    assert ft["fits_if_paged"] is (ft["total_if_paged_bytes"] <= 8 * 2**30)
    assert any("QLoRA §3" in f for f in d["formulas"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"lora": {"r": 0}}, "r"),
        ({"finetune": {"method": "lora", "target_modules": ["q", "attn"]}}, "target_modules"),
        ({"finetune": {"method": "full", "r": 8}}, "finetune"),
        ({"lora": {"r": 8}, "qlora": {"r": 8}}, "qlora"),
        ({"lora": 16}, "lora"),
        ({"qlora": {"base_format": "bf16"}}, "finetune.base_format"),
        ({"model": {"n_params": 7e9}, "lora": {}, "include_activations": False}, "model"),
        ({"qlora": {}, "parallelism": {"tp": 2}}, "parallelism.tp"),
        ({"lora": {"r": 5000}}, "finetune.r"),
        ({"lora": {"kept_dtype": "bf16"}}, "finetune.kept_dtype"),
        ({"qlora": {"kept_dtype": "nf4"}}, "finetune.kept_dtype"),
        ({"precision": "int4"}, "qlora"),  # a user's first try at a 4-bit base
        ({"model": {"preset": "gpt2"}, "lora": {"target_modules": ["gate"]}}, "finetune.target_modules"),
        ({"lora": {"fp8_params": True}}, "finetune.fp8_params"),  # FP8 primary weights need precision fp8
        ({"qlora": {"fp8_params": True}, "precision": "fp8"}, "finetune.fp8_params"),
    ],
)
def test_bad_finetune_requests_are_422_naming_the_field(client, body: dict, field: str) -> None:
    r = client.post("/v1/memory/training", json={"model": LLAMA_7B} | body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert field in r.text


def test_lora_compute_is_about_four_pd(client) -> None:
    full = ok(client, "/v1/compute/training", {"model": LLAMA_7B, "tokens": 1e9})
    lora = ok(client, "/v1/compute/training", {"model": LLAMA_7B, "tokens": 1e9, "lora": {"r": 16, "target_modules": ["q", "v"]}})
    ft = lora["finetune"]
    p = full["params"]
    assert lora["flops_per_token"] == pytest.approx(4 * p + 6 * ft["active_adapter_params"])
    assert ft["full_training_flops_per_token"] == full["flops_per_token"]
    assert ft["flops_saved_fraction"] == pytest.approx(1 / 3, rel=0.01)
    assert "Hu et al. 2021" in lora["formulas"][0]


def test_lora_cost_uses_lora_flops_timed_by_the_plan_or_at_a_given_mfu(client) -> None:
    body = {"model": LLAMA_7B, "tokens": 1e9, "gpu": "h100-sxm", "n_gpus": 1, "usd_per_gpu_hour": 2.0}
    full = ok(client, "/v1/cost/training", body | {"mfu": 0.4})
    lora = ok(client, "/v1/cost/training", body | {"lora": {"r": 16}})
    assert lora["total_flops"] < full["total_flops"] * 0.7
    assert lora["plan"] is not None and lora["assumptions"]["time_from"].startswith("the planner's best plan")
    assert lora["finetune"]["trainable_params"] > 0
    # same MFU, fewer FLOPs: proportionally fewer GPU-hours
    lora_at_04 = ok(client, "/v1/cost/training", body | {"lora": {"r": 16}, "mfu": 0.4})
    assert lora_at_04["gpu_hours"] / full["gpu_hours"] == pytest.approx(lora["total_flops"] / full["total_flops"])


def test_full_method_is_todays_answer(client) -> None:
    base = {"model": LLAMA_7B, "seq_len": 1024}
    assert (
        ok(client, "/v1/memory/training", base | {"finetune": {"method": "full"}})["per_gpu"]
        == ok(client, "/v1/memory/training", base)["per_gpu"]
    )


def test_qlora_cost_says_whether_the_job_fits(client) -> None:
    # LLaMA-2-70B: QLoRA fits one 80 GB H100, LoRA on a bf16 base (140 GB) does not; on 8 GPUs
    # ZeRO-3 shards the frozen base and LoRA fits too
    body = {"model": {"preset": "llama-2-70b"}, "tokens": 1e8, "gpu": "h100-sxm", "usd_per_gpu_hour": 2.0, "seq_len": 2048}
    q = ok(client, "/v1/cost/training", body | {"n_gpus": 1, "qlora": {"r": 64}})
    assert q["fits"] is True and q["reason"] is None and q["plan"]["zero_stage"] == 0 and q["plan"]["tp"] == 1
    lora = ok(client, "/v1/cost/training", body | {"n_gpus": 1, "lora": {"r": 64}})
    assert lora["fits"] is False and "GiB per GPU" in lora["reason"]
    sharded = ok(client, "/v1/cost/training", body | {"n_gpus": 8, "lora": {"r": 64}})
    assert sharded["fits"] is True and sharded["plan"]["tp"] * sharded["plan"]["pp"] * sharded["plan"]["dp"] == 8


def test_deepseek_v3_lora_and_qlora_answer_with_the_exact_trainable_count(client) -> None:
    """Multi-head latent attention, 256 routed experts, a shared expert and 3 dense first layers:
    the adapters PEFT creates on DeepSeek-V3 (validation/measurements/lora_params.json, rank 8,
    every linear projection of the blocks, the router left out)."""
    measured = MEASURED_LORA["models"]["deepseek-v3"]["cases"][0]
    rank = MEASURED_LORA["rank"]
    v3 = {"model": {"preset": "deepseek-v3"}}
    for method in ("lora", "qlora"):
        mem = ok(client, "/v1/memory/training", v3 | {"seq_len": 1024, method: {"r": rank}})
        ft = mem["finetune"]
        assert ft["trainable_params"] == measured["lora_params"]
        assert ft["target_modules"] == ["q_a", "q_b", "kv_a", "kv_b", "o", "gate", "up", "down"]
        by_module = {m.removesuffix("_with_mqa").removesuffix("_proj"): n for m, n in measured["by_module"].items()}
        assert ft["adapter_params_by_module"] == by_module
        compute = ok(client, "/v1/compute/training", v3 | {"tokens": 1e9, method: {"r": rank}})
        assert compute["finetune"]["trainable_params"] == measured["lora_params"]
        # a token passes 8 of the 256 routed experts' adapters, the shared expert's and the attention's
        assert compute["finetune"]["active_adapter_params"] < measured["lora_params"] / 10
    qlora = ok(client, "/v1/memory/training", v3 | {"seq_len": 1024, "qlora": {"r": rank}, "include_activations": False})
    assert qlora["per_gpu"]["weights_bytes"] < 0.6 * 671e9  # 4-bit MLA, expert and shared-expert matrices
    # the generic names on MLA: q is the query path, k or v the joint key-value path
    qv = ok(client, "/v1/compute/training", v3 | {"tokens": 1e9, "lora": {"r": rank, "target_modules": ["q_proj", "v_proj"]}})
    assert qv["finetune"]["target_modules"] == ["q_a", "q_b", "kv_a", "kv_b"]


def test_mla_module_names_a_model_lacks_are_a_422(client) -> None:
    # DeepSeek-V2-Lite has no query rank: one q_proj, no q_a_proj
    r = client.post("/v1/compute/training", json={"model": {"preset": "deepseek-v2-lite"}, "tokens": 1e9,
                                                  "lora": {"target_modules": ["q_a_proj", "kv_a_proj_with_mqa"]}})  # fmt: skip
    assert r.status_code == 422, r.text
    assert "finetune.target_modules" in r.text and "q_a" in r.json()["detail"]


def test_qlora_is_timed_at_a_16_bit_peak(client) -> None:
    body = {"model": {"preset": "llama-3-8b"}, "tokens": 1e9, "gpu": "h100-sxm", "n_gpus": 1, "finetune": {"method": "qlora"}}
    r = client.post("/v1/cost/training", json=body | {"dtype": "fp8"})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"][-1] == "dtype"
    ok_answer = client.post("/v1/cost/training", json=body).json()
    assumptions = ok_answer["assumptions"]
    assert assumptions["h100-sxm.peak_dtype"] == "bf16" and assumptions["precision"] == "mixed_bf16"


def test_fine_tuning_on_24_and_48_gb_workstation_cards(client) -> None:
    # the cards fine-tuning users hold, in the catalog (migration 0006): QLoRA's 65B on one 48 GB card
    # (Dettmers et al. 2023, abstract) and a Llama-3.1-8B QLoRA on a 24 GB RTX 4090, whose bf16 LoRA at
    # 8K tokens does not fit without more memory
    llama_65b = {"n_layers": 80, "d_model": 8192, "n_heads": 64, "d_ff": 22016, "vocab_size": 32000, "ffn": "swiglu",
                 "norm": "rmsnorm", "max_seq_len": 2048}  # fmt: skip
    guanaco = {"model": llama_65b, "qlora": {"r": 64, "alpha": 16}, "seq_len": 512, "recompute": "full", "flash_attention": True}
    a6000 = ok(client, "/v1/memory/training", guanaco | {"gpu": "rtx-a6000"})
    assert a6000["fits"] is True and a6000["gpu_memory_bytes"] == 48 * 2**30
    assert ok(client, "/v1/memory/training", guanaco | {"gpu": "a100-40gb-sxm"})["fits"] is False
    eight_b = {"model": {"preset": "llama-3.1-8b"}, "recompute": "full", "flash_attention": True, "gpu": "rtx-4090"}
    qlora = ok(client, "/v1/memory/training", eight_b | {"qlora": {"r": 16}, "seq_len": 2048})
    assert qlora["fits"] is True and qlora["per_gpu"]["device_total_bytes"] < 12 * 2**30
    lora_8k = ok(client, "/v1/memory/training", eight_b | {"lora": {"r": 16}, "seq_len": 8192, "recompute": "none"})
    assert lora_8k["fits"] is False and lora_8k["gpu_memory_bytes"] == 24 * 2**30


def test_cost_memory_check_defaults_to_the_planners_sequence_length(client) -> None:
    # Llama 3.1 has a 131,072-token context: checking the fit of a fine-tune at that length unasked said
    # "needs 106.9 GiB" for a QLoRA run that fits a 24 GB card at the planner's default of 8,192
    body = {"model": {"preset": "llama-3.1-8b"}, "qlora": {"r": 16}, "tokens": 1e8, "gpu": "rtx-4090", "n_gpus": 1,
            "usd_per_gpu_hour": 0.5}  # fmt: skip
    data = ok(client, "/v1/cost/training", body)
    assert data["fits"] is True and data["assumptions"]["seq_len"] == 8192
    long = ok(client, "/v1/cost/training", body | {"seq_len": 131_072})
    assert long["fits"] is False and "no layout fits" in long["reason"] and long["assumptions"]["seq_len"] == 131_072


def test_fp8_lora_keeps_the_frozen_base_in_fp8_alone_unless_asked(client) -> None:
    # NeMo's LoRA recipe (fp8_params) and Megatron-Bridge's FP8 recipes (fp8_param_gather): FP8 primary weights,
    # 2 bytes a frozen matmul weight (row- and column-wise) instead of BF16 and both FP8 copies (4)
    body = {"model": LLAMA_7B, "seq_len": 1024, "precision": "fp8", "include_activations": False}
    fp8 = ok(client, "/v1/memory/training", body | {"lora": {"r": 8}})
    bf16 = ok(client, "/v1/memory/training", body | {"lora": {"r": 8, "fp8_params": False}})
    assert (fp8["finetune"]["fp8_params"], bf16["finetune"]["fp8_params"]) == (True, False)
    matmul = 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008)
    assert bf16["per_gpu"]["weights_bytes"] - fp8["per_gpu"]["weights_bytes"] == pytest.approx(2 * matmul, abs=64)
    assert not ok(client, "/v1/memory/training", {"model": LLAMA_7B, "lora": {}})["finetune"]["fp8_params"]


def test_an_fp8_lora_takes_the_request_s_recipe(client) -> None:
    # the recipe reaches a LoRA's base: MXFP8 keeps a 1-byte scale per 32 elements of each FP8 activation
    # (Llama-2-7B, LoRA on every projection: the frozen weights' inputs are all read by adapters, so
    # the QKV, MLP and down inputs and the output projection's FP8 copy stay: 3h + f = 23,296 a token
    # per layer) and of each FP8 primary weight, row- and column-wise
    body = {"model": LLAMA_7B, "seq_len": 1024, "precision": "fp8", "flash_attention": True, "lora": {"r": 8}}
    tensorwise = ok(client, "/v1/memory/training", body)
    mx = ok(client, "/v1/memory/training", body | {"fp8_recipe": "mxfp8"})
    assert mx["per_gpu"]["activations_bytes"] - tensorwise["per_gpu"]["activations_bytes"] == 32 * 1024 * 23_296 // 32
    matmul = 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008)
    assert mx["per_gpu"]["weights_bytes"] - tensorwise["per_gpu"]["weights_bytes"] == pytest.approx(2 * matmul / 32, abs=64)
