"""Count the LoRA parameters Hugging Face PEFT creates, the reference for the core's adapter shapes.

Each config below (from :mod:`hf_configs`) is built with ``AutoModelForCausalLM.from_config`` on the
meta device (no weights allocated, nothing downloaded) and wrapped with ``peft.get_peft_model`` for a
few ``target_modules`` sets at one rank; the parameters PEFT adds (every ``lora_A``/``lora_B`` weight)
are counted, in total and by the module name they adapt. ``tests/core/test_lora_reference.py``
compares ``service.core.finetune.adapter_params`` with these counts without importing torch.

Routed experts: ``transformers`` 5 stores a mixture's routed experts fused, as 3-D parameters
(``gate_up_proj``, ``down_proj``), which ``target_modules`` does not reach. The published DeepSeek-V2/V3
modelling code, ``transformers`` 4 and vLLM's LoRA keep one ``nn.Linear`` per expert and per
projection (``experts.N.gate_proj``...), the layout the core models; before PEFT is applied each fused
experts module is replaced by that per-expert layout, with the shapes read from its fused parameters.

Run: ``make measure-lora`` (needs the ``validation`` extra: torch, transformers and peft).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import peft
import peft.utils.transformers_weight_conversion as peft_conversion
import torch
import transformers
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hf_configs import CONFIGS  # noqa: E402

OUT = Path(__file__).resolve().parent / "measurements" / "lora_params.json"
RANK = 8
MLA = ["q_proj", "q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj"]
MLP = ["gate_proj", "up_proj", "down_proj"]
STANDARD = ["q_proj", "k_proj", "v_proj", "o_proj"]
# config name -> target_modules sets (PEFT's names); each is matched by module-name suffix
CASES: dict[str, list[list[str]]] = {
    "llama-2-7b": [STANDARD + MLP, ["q_proj", "v_proj"]],
    "tiny-llama-bias": [STANDARD + MLP, ["o_proj", "down_proj"]],
    "mixtral-8x7b": [STANDARD + MLP, ["k_proj", "up_proj"]],
    "tiny-qwen2-moe-dense-layers": [STANDARD + MLP, ["gate_proj", "up_proj", "down_proj"]],
    "tiny-deepseek-v3": [MLA + MLP, ["q_a_proj", "q_b_proj"], ["kv_a_proj_with_mqa", "kv_b_proj"], ["o_proj", "down_proj"], MLP],
    "tiny-deepseek-v2-no-q-rank": [MLA + MLP, ["q_proj", "kv_b_proj"], MLP],
    "deepseek-v2-lite": [MLA + MLP, ["q_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj"]],
    "deepseek-v3": [MLA + MLP, ["kv_b_proj", "o_proj"]],
}


class ExpertMlp(nn.Module):
    """One routed expert as ``nn.Linear`` layers (the published DeepSeek and ``transformers`` 4 layout)."""

    def __init__(self, hidden: int, width: int, gated: bool) -> None:
        super().__init__()
        if gated:
            self.gate_proj = nn.Linear(hidden, width, bias=False)
        self.up_proj = nn.Linear(hidden, width, bias=False)
        self.down_proj = nn.Linear(width, hidden, bias=False)


def unfuse_experts(model: nn.Module) -> int:
    """Replace each fused experts module (3-D ``gate_up_proj`` ``E x 2f x h``, ``down_proj``
    ``E x h x f``) by ``E`` per-expert MLPs; returns how many modules were replaced."""
    replaced = 0
    for name, module in list(model.named_modules()):
        params = dict(module.named_parameters(recurse=False))
        down = params.get("down_proj")
        if down is None or down.dim() != 3:
            continue
        n_experts, hidden, width = down.shape
        gated = "gate_up_proj" in params
        parent_name, _, child = name.rpartition(".")
        experts = nn.ModuleList(ExpertMlp(hidden, width, gated) for _ in range(n_experts))
        setattr(model.get_submodule(parent_name), child, experts)
        replaced += 1
    return replaced


def build(raw: dict) -> nn.Module:
    config = AutoConfig.for_model(raw["model_type"], **{k: v for k, v in raw.items() if k != "model_type"})
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
        unfuse_experts(model)
    return model


def keep_per_expert_targets(peft_config, model, conversions) -> None:
    """PEFT (on ``transformers`` 5) rewrites ``gate_proj``/``up_proj``/``down_proj`` of known MoE model
    types into ``target_parameters`` on the fused experts; the experts are per-expert layers here, so the
    names are kept as given."""


def lora_counts(raw: dict, targets: list[str]) -> dict:
    model = build(raw)
    present = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    chosen = [t for t in targets if t in present]
    with torch.device("meta"):
        wrapped = peft.get_peft_model(model, peft.LoraConfig(r=RANK, lora_alpha=2 * RANK, target_modules=chosen))
    by_module: dict[str, int] = {}
    for name, p in wrapped.named_parameters():
        if ".lora_A." in name or ".lora_B." in name:
            module = name.split(".lora_")[0].rsplit(".", 1)[-1]
            by_module[module] = by_module.get(module, 0) + p.numel()
    return {"target_modules": chosen, "lora_params": sum(by_module.values()), "by_module": by_module}


def main() -> None:
    peft_conversion.convert_peft_config_for_transformers = keep_per_expert_targets
    models = {}
    for name, sets in CASES.items():
        rows = [lora_counts(CONFIGS[name], targets) for targets in sets]
        models[name] = {"config": CONFIGS[name], "cases": rows}
        for row in rows:
            print(f"{name:28s} {','.join(row['target_modules']):70s} {row['lora_params']:>14,d}", flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "what": f"LoRA parameters (lora_A and lora_B weights) that peft.get_peft_model adds at rank {RANK} for each "
        "target_modules set, in total and by adapted module name; models built by AutoModelForCausalLM.from_config on "
        "the meta device, fused routed experts replaced by one nn.Linear per expert and projection",
        "rank": RANK,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "torch": torch.__version__,
        "models": models,
    }
    OUT.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
