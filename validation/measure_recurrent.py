"""Measure parameter counts and per-sequence state of the recurrent and hybrid ``model_type``s.

Every config of :mod:`recurrent_configs` is counted as :mod:`measure_hf_models` counts its own
(``AutoModelForCausalLM.from_config`` on the meta device, tied weights once). The tiny configs in
``STATE_MEASURED`` are also built on the CPU in fp32 and run over ``STATE_TOKENS`` prompt tokens;
the bytes of every tensor the returned cache holds (Mamba's convolution and scan states, RWKV's
five state vectors, a hybrid's attention keys and values) are recorded, with the element count
per sequence, so that the estimator's state (constant in the prompt) and KV cache (growing with it)
can be compared without torch. Writes ``validation/measurements/recurrent_models.json``, which
``tests/core/test_recurrent.py`` reads.

Run: ``.venv-validation/bin/python validation/measure_recurrent.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure_hf_models import build_config, count  # noqa: E402
from recurrent_configs import CONFIGS, STATE_MEASURED, STATE_TOKENS  # noqa: E402

OUT = Path(__file__).resolve().parent / "measurements" / "recurrent_models.json"


def tensors(obj, seen: set[int]) -> list[torch.Tensor]:
    """Every tensor reachable from a cache object (its attributes, lists, tuples and dicts)."""
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for x in obj for t in tensors(x, seen)]
    if isinstance(obj, dict):
        return [t for x in obj.values() for t in tensors(x, seen)]
    if hasattr(obj, "__dict__") and not isinstance(obj, (torch.nn.Module, type)):
        return [t for x in vars(obj).values() for t in tensors(x, seen)]
    return []


def measure_state(raw: dict) -> list[dict]:
    config = build_config(raw)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    rows = []
    for n in STATE_TOKENS:
        ids = torch.randint(0, config.vocab_size, (1, n))
        with torch.no_grad():
            out = model(input_ids=ids, use_cache=True)
        cache = getattr(out, "cache_params", None) or getattr(out, "past_key_values", None) or getattr(out, "state", None)
        held = [t for t in tensors(cache, set()) if t.dim() > 0]  # not the 0-d token counters
        rows.append({"prompt_tokens": n, "cache_class": type(cache).__name__,
                     "elements": sum(t.numel() for t in held),
                     "bytes": sum(t.numel() * t.element_size() for t in held),
                     "shapes": sorted({str(tuple(t.shape)) + " " + str(t.dtype) for t in held})})  # fmt: skip
    return rows


def main() -> None:
    models = {}
    for name, raw in CONFIGS.items():
        entry = {"config": raw} | count(raw)
        if name in STATE_MEASURED:
            entry["state"] = measure_state(raw)
        models[name] = entry
        print(f"{name:24s} {entry['parameters']:>16,d}", flush=True)
    document = {
        "what": "parameter counts (model.parameters(), tied weights once) of AutoModelForCausalLM.from_config on the "
        "meta device; state: every tensor of the cache a forward pass over prompt_tokens returns (fp32, batch 1)",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "models": models,
    }
    OUT.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
