"""LoRA adapter counts against Hugging Face PEFT, the reference implementation.

``validation/measurements/lora_params.json`` holds the ``lora_A``/``lora_B`` parameters that
``peft.get_peft_model`` adds to models built by ``transformers`` from the hand-written configs of
``validation/hf_configs.py`` (``make measure-lora`` re-measures; torch is not imported here): a
Llama (MHA and GQA, with and without biases), Mixtral (routed experts), Qwen2-MoE (a shared expert
with its gate, dense first layers), DeepSeek-V2 (multi-head latent attention without a query rank,
shared experts, a dense first layer) and DeepSeek-V3 (MLA with a query rank, 256 routed experts, 3
dense layers). The core's counts must be exact, in total and per adapted module.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.core.finetune import Projection, adapter_params, resolve_targets
from service.core.hf_config import architecture_from_hf_config

MEASURED = json.loads((Path(__file__).resolve().parents[2] / "validation" / "measurements" / "lora_params.json").read_text())
CASES = [(name, case) for name, model in MEASURED["models"].items() for case in model["cases"]]
# PEFT's module names -> the core's projections (q_proj is the query of standard attention and of MLA without a rank)
MODULES = {"kv_a_proj_with_mqa": Projection.KV_A} | {f"{p.value}_proj": p for p in Projection}


@pytest.mark.parametrize(("name", "case"), CASES, ids=[f"{n}-{'+'.join(c['target_modules'])}" for n, c in CASES])
def test_adapter_params_equal_what_peft_creates(name: str, case: dict) -> None:
    arch = architecture_from_hf_config(MEASURED["models"][name]["config"])
    targets = tuple(MODULES[m] for m in case["target_modules"])
    ours = adapter_params(arch, MEASURED["rank"], targets)
    assert {p.value: n for p, n in ours.items()} == {MODULES[m].value: n for m, n in case["by_module"].items()}
    assert sum(ours.values()) == case["lora_params"]


@pytest.mark.parametrize("name", list(MEASURED["models"]))
def test_default_targets_are_every_linear_projection_peft_adapts(name: str) -> None:
    """The default (every linear projection of the blocks, the router left out) is the first
    measured set of each model: all its linear layer names but the router's."""
    model = MEASURED["models"][name]
    arch = architecture_from_hf_config(model["config"])
    everything = model["cases"][0]
    targets = resolve_targets(arch, None)
    assert {p.value for p in targets} == {MODULES[m].value for m in everything["target_modules"]}
    assert sum(adapter_params(arch, MEASURED["rank"], targets).values()) == everything["lora_params"]
