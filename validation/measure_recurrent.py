"""Measure parameter counts and per-sequence state of the recurrent and hybrid ``model_type``s.

Every config of :mod:`recurrent_configs` is counted as :mod:`measure_hf_models` counts its own
(``AutoModelForCausalLM.from_config`` on the meta device, tied weights once); transformers has no RWKV-6
or RWKV-7, so the ``rwkv6`` and ``rwkv7`` configs are built with flash-linear-attention's own classes
(``fla.models.RWKV6ForCausalLM``, ``RWKV7ForCausalLM``; :func:`fla_model`), the same way. The tiny configs in
``STATE_MEASURED`` are also built on the CPU in fp32 and run over ``STATE_TOKENS`` prompt tokens;
the bytes of every tensor the returned cache holds (Mamba's convolution and scan states, RWKV's
five state vectors, a hybrid's attention keys and values) are recorded, with the element count
per sequence, so that the estimator's state (constant in the prompt) and KV cache (growing with it)
can be compared without torch. For ``tiny-lfm2`` the bytes one gated short convolution
(``Lfm2ShortConv``) saves for the backward pass are recorded too (``mixer_saved``: every tensor autograd
saves, seen through ``saved_tensors_hooks``, once per storage, parameters excluded, fp32 on the CPU, as
``validation/measure.py`` counts a transformer layer's). Writes
``validation/measurements/recurrent_models.json``, which ``tests/core/test_recurrent.py`` reads.

Run: ``.venv-validation/bin/python validation/measure_recurrent.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import transformers
from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recurrent_configs import CONFIGS, STATE_MEASURED, STATE_TOKENS  # noqa: E402

OUT = Path(__file__).resolve().parent / "measurements" / "recurrent_models.json"
# persistent buffers a checkpoint stores, counted as parameters (Nemotron 3 Nano's router bias), as
# measure_hf_models.CHECKPOINT_BUFFERS
CHECKPOINT_BUFFERS = ("e_score_correction_bias",)


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


def build_config(raw: dict):
    """transformers' own config class of a ``model_type`` built from ``raw``; with :func:`causal_lm_class`,
    not whatever another installed package registered with the ``Auto`` classes (flash-linear-attention
    registers its own ``mamba``, ``mamba2`` and RWKV classes when it is imported, as transformers' Qwen3-Next
    kernels import it)."""
    kwargs = {k: v for k, v in raw.items() if k != "model_type"}
    return getattr(transformers, CONFIG_MAPPING_NAMES[raw["model_type"]])(**kwargs)


def causal_lm_class(raw: dict) -> type:
    """transformers' own ``<Type>ForCausalLM`` of a ``model_type`` (see :func:`build_config`)."""
    return getattr(transformers, MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[raw["model_type"]])


def count(raw: dict) -> dict:
    """Parameters of ``raw``'s model built on the meta device (tied weights once, as ``named_parameters``
    yields them), as ``measure_hf_models.count`` counts them, with transformers' own class."""
    config = build_config(raw)
    with torch.device("meta"):
        model = causal_lm_class(raw)._from_config(config)
    buffers = sum(b.numel() for name, b in model.named_buffers() if name.rsplit(".", 1)[-1] in CHECKPOINT_BUFFERS)
    return {"parameters": sum(p.numel() for p in dict(model.named_parameters()).values()), "checkpoint_buffers": buffers,
            "model_class": type(model).__name__}  # fmt: skip


FLA_TYPES = ("rwkv6", "rwkv7")
"""``model_type``s built with flash-linear-attention rather than transformers."""


def fla_model(raw: dict, device: str = "meta"):
    """An fla RWKV model of the config ``raw`` (its classes directly: importing ``fla`` registers its
    model types with transformers' auto classes, which the other configs must not see)."""
    from fla.models import RWKV6Config, RWKV6ForCausalLM, RWKV7Config, RWKV7ForCausalLM

    config_class, model_class = {"rwkv6": (RWKV6Config, RWKV6ForCausalLM), "rwkv7": (RWKV7Config, RWKV7ForCausalLM)}[
        raw["model_type"]
    ]
    config = config_class(**{k: v for k, v in raw.items() if k != "model_type"})
    with torch.device(device):
        return model_class(config)


def count_fla(raw: dict) -> dict:
    import fla

    model = fla_model(raw)
    return {"parameters": sum(p.numel() for p in model.parameters()), "checkpoint_buffers": 0,
            "model_class": type(model).__name__, "reference": f"flash-linear-attention {fla.__version__}"}  # fmt: skip


def measure_state(raw: dict) -> list[dict]:
    config = build_config(raw)
    torch.manual_seed(0)
    model = causal_lm_class(raw)._from_config(config).eval()
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


def _keep(t: torch.Tensor, kept: dict[int, int], weights: set[int]) -> torch.Tensor:
    """A saved tensor's storage, counted once (a view keeps its whole storage), parameters excluded."""
    storage = t.untyped_storage()
    if storage.data_ptr() not in weights:
        kept[storage.data_ptr()] = storage.nbytes()
    return t


def measure_short_conv_saved(raw: dict) -> list[dict]:
    """Bytes the first layer's ``Lfm2ShortConv`` saves for backward over ``batch x tokens`` inputs (fp32)."""
    from transformers.models.lfm2.modeling_lfm2 import Lfm2ShortConv

    config = build_config(raw)
    torch.manual_seed(0)
    mixer = Lfm2ShortConv(config, config.layer_types.index("conv"))
    weights = {p.untyped_storage().data_ptr() for p in mixer.parameters()}
    rows = []
    for batch, tokens in ((2, 16), (1, 64)):
        saved: dict[int, int] = {}
        x = torch.randn(batch, tokens, config.hidden_size, requires_grad=True)
        with torch.autograd.graph.saved_tensors_hooks(lambda t, kept=saved: _keep(t, kept, weights), lambda t: t):
            mixer(x)
        rows.append({"batch": batch, "tokens": tokens, "bytes": sum(saved.values()), "dtype": "fp32"})
    return rows


def main() -> None:
    entries = {}
    # transformers' configs first, with fla hidden: importing fla (transformers' kernel loader tries it for
    # Qwen3-Next) replaces transformers' mamba and mamba2 auto classes with fla's own (build_config and
    # causal_lm_class take transformers' own classes whatever is registered)
    for fla_pass in (False, True):
        if fla_pass:
            del sys.modules["fla"]
        else:
            sys.modules["fla"] = None  # an import of fla raises ImportError
        for name, raw in CONFIGS.items():
            if (raw["model_type"] in FLA_TYPES) is not fla_pass:
                continue
            entry = {"config": raw} | (count_fla(raw) if fla_pass else count(raw))
            if name in STATE_MEASURED:
                entry["state"] = measure_state(raw)
            if name == "tiny-lfm2":
                entry["mixer_saved"] = measure_short_conv_saved(raw)
            entries[name] = entry
            print(f"{name:24s} {entry['parameters']:>16,d}", flush=True)
    models = {name: entries[name] for name in CONFIGS}
    import fla

    document = {
        "what": "parameter counts (model.parameters(), tied weights once) of AutoModelForCausalLM.from_config on the "
        "meta device (checkpoint_buffers: persistent buffers a checkpoint stores, Nemotron 3 Nano's router bias; rwkv6 and rwkv7: flash-linear-attention's RWKV6ForCausalLM / RWKV7ForCausalLM, the "
        "entry's reference); state: every tensor of the cache a forward pass over prompt_tokens returns (fp32, "
        "batch 1); mixer_saved: bytes one short convolution saves for backward (saved_tensors_hooks, once per "
        "storage, fp32)",
        "transformers": transformers.__version__,
        "flash-linear-attention": fla.__version__,
        "torch": torch.__version__,
        "models": models,
    }
    OUT.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
