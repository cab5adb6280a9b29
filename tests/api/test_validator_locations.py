"""A model validator's 422 names the field it faults (``loc``), not only the body, with the reason
as ``msg`` — through the API, on the calculators' own parser and on FastAPI's."""

from __future__ import annotations

import pytest

from tests.api.test_calculators import problem

LLAMA = {"preset": "llama-3.1-8b"}
PLAN = {"model": LLAMA, "gpu": "h100-sxm", "n_gpus": 8}
SERVE = {"model": LLAMA, "gpu": "h100-sxm", "concurrent_users": 4}
COST = {"model": LLAMA, "gpu": "h100-sxm", "n_gpus": 8, "tokens": 1e9}
FLEET = {"model": LLAMA, "tokens": 1e12, "deadline_days": 30}
DISAGGREGATED = "prefill_gpu and decode_gpu name the pools of a disaggregated plan: give disaggregated: true"
FLEET_SPOT = "spot capacity is priced in a fleet search (pools carrying max_n_gpus)"

CASES = {
    "memory fp8_recipe": ("/v1/memory/training", {"model": LLAMA, "fp8_recipe": "blockwise"},
                          ["fp8_recipe"], "fp8_recipe applies to precision fp8 only"),
    "memory grad_reduce_dtype": ("/v1/memory/training", {"model": LLAMA, "grad_reduce_dtype": "fp16"},
                                 ["grad_reduce_dtype"], "fp16 gradients do not go with precision mixed_bf16: use fp32 or bf16"),
    "plan fp8_recipe": ("/v1/plan", PLAN | {"fp8_recipe": "blockwise"}, ["fp8_recipe"], "fp8_recipe applies to precision fp8 only"),
    "plan grad_reduce_dtype": ("/v1/plan", PLAN | {"grad_reduce_dtype": "fp16"}, ["grad_reduce_dtype"],
                               "fp16 gradients do not go with precision mixed_bf16: use fp32 or bf16"),
    "plan tp_comm_overlap_rs_dgrad": ("/v1/plan", PLAN | {"tp_comm_overlap_rs_dgrad": True}, ["tp_comm_overlap_rs_dgrad"],
                                      "tp_comm_overlap_rs_dgrad pipelines collectives that only tp_comm_overlap overlaps: set both"),
    "cost fp8_recipe": ("/v1/cost/training", COST | {"fp8_recipe": "blockwise"}, ["fp8_recipe"], "fp8_recipe applies to precision fp8 only"),
    "cost spot": ("/v1/cost/training", COST | {"spot": {}}, ["spot"], "price it at spot (pricing: spot) or give usd_per_gpu_hour"),
    "serving draft_model": ("/v1/plan/serving", SERVE | {"speculative": {"method": "eagle", "tokens": 3, "acceptance_rate": 0.7,
                                                                        "draft_model": LLAMA}},
                            ["speculative", "draft_model"], "give it with method draft, and only then"),
    "serving gpu list": ("/v1/plan/serving", SERVE | {"gpu": []}, ["gpu"], "give 1 to 20 GPU ids"),
    "serving prefill_gpu": ("/v1/plan/serving", SERVE | {"decode_gpu": "h100-sxm"}, ["decode_gpu"], DISAGGREGATED),
    "plan budget_usd": ("/v1/plan", PLAN | {"budget_usd": 1000}, ["budget_usd"],
                        "give it with pools carrying max_n_gpus (POST /v1/budget sizes a model for dollars)"),
    "plan compare_spot": ("/v1/plan", PLAN | {"compare_spot": True}, ["compare_spot"], FLEET_SPOT),
    "plan gpu list": ("/v1/plan", PLAN | {"gpu": []}, ["gpu"], "give 1 to 20 GPU ids"),
    "plan pools with gpu": ("/v1/plan", {"model": LLAMA, "gpu": "h100-sxm", "pools": [{"gpu": "h100-sxm", "n_gpus": 8}]},
                            ["pools"], "give gpu in each pool, not with pools"),
    "plan pools procurement": ("/v1/plan", {"model": LLAMA, "pools": [{"gpu": "h100-sxm", "max_n_gpus": 64}]}, ["pools"],
                               "max_n_gpus needs tokens and one of deadline_days or budget_usd (what to rent for them)"),
    "plan pool interruptions": ("/v1/plan", FLEET | {"pools": [{"gpu": "h100-sxm", "max_n_gpus": 64,
                                                                "interruptions_per_node_hour": 0.01}]},
                                ["pools", 0, "interruptions_per_node_hour"], "a spot pool's (pricing: spot, or compare_spot)"),
    "plan fixed pools pricing": ("/v1/plan", {"model": LLAMA, "pools": [{"gpu": "h100-sxm", "n_gpus": 8, "pricing": "spot"}]},
                                 ["pools"], f"pricing: {FLEET_SPOT}"),
    "plan fixed pools deadline": ("/v1/plan", FLEET | {"pools": [{"gpu": "h100-sxm", "n_gpus": 8}]}, ["deadline_days"],
                                  "with pools, give max_n_gpus in the pools the planner may size"),
    "plan too many pools": ("/v1/plan", {"model": LLAMA, "pools": [{"gpu": "h100-sxm", "n_gpus": 8}] * 5}, ["pools"],
                            "give 1 to 4 pools of fixed counts (more with max_n_gpus)"),
    "plan pools lora": ("/v1/plan", {"model": LLAMA, "pools": [{"gpu": "h100-sxm", "n_gpus": 8}], "lora": {}}, ["pools"],
                        "plans over pools cover pre-training and full fine-tunes, not LoRA/QLoRA"),
    "pool n_gpus over max": ("/v1/plan", FLEET | {"pools": [{"gpu": "h100-sxm", "n_gpus": 16, "max_n_gpus": 8}]},
                             ["pools", 0, "n_gpus"], "n_gpus=16 is more than max_n_gpus=8"),
    "pool whole nodes": ("/v1/plan", {"model": LLAMA, "pools": [{"gpu": "h100-sxm", "n_gpus": 12, "gpus_per_node": 8}]},
                         ["pools", 0, "n_gpus"], "gpus_per_node=8 does not divide n_gpus=12 (whole nodes)"),
    "budget gpu": ("/v1/budget", {"budget_usd": 1000}, ["gpu"], "budget_usd needs a gpu to turn dollars into FLOPs"),
    "lifetime deadline_days": ("/v1/budget/lifetime", {"target_loss": 2.0, "gpu": "h100-sxm", "deadline_days": 30,
                                                       "inference_tokens": 1e12},
                               ["deadline_days"], "the lifetime optimum times each size on n_gpus; give n_gpus instead"),
    "finetune lora field": ("/v1/memory/training", {"model": LLAMA, "finetune": {"method": "full", "r": 8}},
                            ["finetune", "r"], "r: only for method 'lora' or 'qlora'"),
    "lora shorthand": ("/v1/memory/training", {"model": LLAMA, "lora": 3}, ["lora"],
                       'an object such as {"r": 16} (it stands for finetune: {"method": "lora", ...})'),
    "lora shorthand method": ("/v1/compute/training", {"model": LLAMA, "tokens": 1e9, "lora": {"method": "qlora"}},
                              ["lora", "method"], "'qlora' contradicts lora"),
    "storage precision": ("/v1/memory/training", {"model": LLAMA, "precision": "nf4"}, ["precision"],
                          "'nf4' stores a frozen base, it does not train one; keep a training precision (mixed_bf16...) "
                          "and give qlora: {...} for a 4-bit base, or finetune.base_format"),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_a_model_validator_names_its_field(client, case: str) -> None:
    path, body, loc, msg = CASES[case]
    data = problem(client, path, body)
    assert data["errors"] == [{"loc": ["body", *loc], "msg": msg, "type": "value_error"}]
    assert data["detail"] == f"{'.'.join(map(str, ['body', *loc]))}: {msg}"
