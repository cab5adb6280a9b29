"""Measure parameter counts and KV caches of the mapped ``model_type``s with ``transformers``.

Every config of :mod:`hf_configs` is built with ``AutoModelForCausalLM.from_config`` on the meta
device (no weights are allocated, nothing is downloaded) and its parameters are counted once each
(tied weights once, as ``model.parameters()`` yields them); a multimodal config is built with
``AutoModelForImageTextToText`` and only its language model and ``lm_head`` are counted
(``model.language_model`` and ``lm_head``, or Llama 4's ``language_model``, which holds both; the vision
tower and projector are recorded apart as ``vision_parameters``); persistent buffers stored in a checkpoint
(DeepSeek-V3's ``e_score_correction_bias``) are counted apart. The tiny configs in ``CACHE_MEASURED``
are also built on the CPU in bf16 and run over ``CACHE_TOKENS`` prompt tokens and one decoded token;
the bytes of the returned cache (the library's ``DynamicCache`` and its sliding-window layers) are
recorded. Writes ``validation/measurements/hf_models.json``, which ``tests/core/test_hf_config.py``
compares with the core's counts without importing torch.

Run: ``make measure-hf`` (needs the ``validation`` extra: torch and transformers).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hf_configs import CACHE_MEASURED, CACHE_TOKENS, CONFIGS  # noqa: E402

OUT = Path(__file__).resolve().parent / "measurements" / "hf_models.json"
CHECKPOINT_BUFFERS = ("e_score_correction_bias",)
# multimodal configs: ``<Type>ForConditionalGeneration``, of which the language model and lm_head are counted
MULTIMODAL = ("gemma3", "mistral3", "llava", "llava_next", "qwen2_vl", "qwen2_5_vl", "llama4")
LANGUAGE_PARTS = ("model.language_model.", "lm_head.")
# Llama4ForConditionalGeneration holds a whole Llama4ForCausalLM: language_model.model and language_model.lm_head
LANGUAGE_PARTS_OF = {"llama4": ("language_model.",)}


def build_config(raw: dict):
    kwargs = {k: v for k, v in raw.items() if k != "model_type"}
    return AutoConfig.for_model(raw["model_type"], **kwargs)


def model_class(raw: dict):
    return AutoModelForImageTextToText if raw["model_type"] in MULTIMODAL else AutoModelForCausalLM


def count(raw: dict) -> dict:
    config = build_config(raw)
    with torch.device("meta"):
        model = model_class(raw).from_config(config)
    named = dict(model.named_parameters())  # tied weights once
    buffers = sum(b.numel() for name, b in model.named_buffers() if name.rsplit(".", 1)[-1] in CHECKPOINT_BUFFERS)
    if raw["model_type"] not in MULTIMODAL:
        return {"parameters": sum(p.numel() for p in named.values()), "checkpoint_buffers": buffers,
                "model_class": type(model).__name__}  # fmt: skip
    parts = LANGUAGE_PARTS_OF.get(raw["model_type"], LANGUAGE_PARTS)
    language = sum(p.numel() for name, p in named.items() if name.startswith(parts))
    return {"parameters": language, "checkpoint_buffers": buffers, "model_class": type(model).__name__,
            "vision_parameters": sum(p.numel() for p in named.values()) - language,
            "counted": " and ".join(p.rstrip(".") for p in parts)}  # fmt: skip


def cache_bytes(cache) -> tuple[int, list[int]]:
    """Bytes of keys and values held by a cache, and the tokens each layer holds."""
    total, tokens = 0, []
    for layer in cache.layers:
        keys, values = layer.keys, layer.values
        total += keys.numel() * keys.element_size() + values.numel() * values.element_size()
        tokens.append(int(keys.shape[-2]))
    return total, tokens


def measure_cache(raw: dict) -> list[dict]:
    config = build_config(raw)
    torch.manual_seed(0)
    model = model_class(raw).from_config(config, dtype=torch.bfloat16).eval()
    if raw["model_type"] in LANGUAGE_PARTS_OF:
        # transformers 5.24's Llama4ForConditionalGeneration.forward fails without images (it reads
        # outputs.image_outputs from its language model's output); its language model builds the same cache
        model = model.language_model
    vocab = config.get_text_config().vocab_size
    rows = []
    for n in CACHE_TOKENS:
        ids = torch.randint(0, vocab, (1, n))
        with torch.no_grad():
            out = model(input_ids=ids, use_cache=True)
            prefill, prefill_tokens = cache_bytes(out.past_key_values)
            nxt = torch.randint(0, vocab, (1, 1))
            out2 = model(input_ids=nxt, past_key_values=out.past_key_values, use_cache=True)
            decode, decode_tokens = cache_bytes(out2.past_key_values)
        rows.append({"prompt_tokens": n, "bytes_after_prompt": prefill, "tokens_per_layer_after_prompt": prefill_tokens,
                     "bytes_after_one_decoded_token": decode, "tokens_per_layer_after_decode": decode_tokens,
                     "dtype": "bf16"})  # fmt: skip
    return rows


def main() -> None:
    models = {}
    for name, raw in CONFIGS.items():
        entry = {"config": raw} | count(raw)
        if name in CACHE_MEASURED:
            entry["kv_cache"] = measure_cache(raw)
        models[name] = entry
        print(f"{name:32s} {entry['parameters']:>16,d}", flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "what": "parameter counts (model.parameters(), tied weights once) of AutoModelForCausalLM.from_config on the "
        "meta device (of a multimodal config, its language model and lm_head; vision_parameters: the rest); checkpoint_buffers: persistent buffers a checkpoint stores (DeepSeek-V3 router bias); kv_cache: "
        "bytes of the DynamicCache after a prompt and after one decoded token (bf16, batch 1)",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "models": models,
    }
    OUT.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
