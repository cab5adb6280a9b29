"""Measure what fla's RWKV-6 and RWKV-7 layers keep: the per-sequence state and the tensors saved for backward.

The ``tiny-rwkv6`` and ``tiny-rwkv7`` configs of :mod:`recurrent_configs` are built with
flash-linear-attention's own classes (``fla.models.RWKV6ForCausalLM``, ``RWKV7ForCausalLM``) on the CPU
in fp32 and run twice:

- without gradients over ``STATE_TOKENS`` prompt tokens, keeping the cache: the bytes of every tensor
  the returned ``fla.models.cache_utils.Cache`` holds per layer (the WKV matrix state and the two
  token-shift vectors), which ``tests/core/test_rwkv.py`` compares with the core's state;
- in training mode over ``ACTIVATION_TOKENS`` tokens: every tensor autograd saves for the backward pass
  (``torch.autograd.graph.saved_tensors_hooks``: the fused kernels' ``ctx.save_for_backward`` and the
  PyTorch ops' own), attributed to the block whose forward saved it, counted once per storage and
  without the parameters. This is what ``service.core.rwkv.saved_activation_bytes_per_token``
  estimates (ACCURACY.md).

fla's kernels are Triton kernels; on a CPU they run in Triton's interpreter (``TRITON_INTERPRET=1``,
set here before Triton is imported), whose autotuner cannot time configurations: the first
configuration of each kernel is taken (the kernels compute the same values whatever the tiling).
Writes ``validation/measurements/rwkv_layers.json``.

Run: ``PYTHONPATH=. .venv-validation/bin/python validation/measure_rwkv_layers.py`` (needs the
``validation`` extra with flash-linear-attention and triton; minutes on a CPU).
"""

from __future__ import annotations

import os

os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported

import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import triton  # noqa: E402
import triton.runtime.autotuner as autotuner  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure_recurrent import fla_model  # noqa: E402
from recurrent_configs import CONFIGS  # noqa: E402

OUT = Path(__file__).resolve().parent / "measurements" / "rwkv_layers.json"
MEASURED = ("tiny-rwkv7", "tiny-rwkv6")
STATE_TOKENS = (8, 24)
ACTIVATION_TOKENS = (64, 128)  # one and two of fla's 64-token chunks
CHUNKED_TOKENS = 128  # over 64 tokens fla's RWKV-6 runs its chunked kernel (64 or fewer: the fused recurrent one)


def _first_config(self, *args, **kwargs):
    """``Autotuner.run`` without timing: the interpreter has no device to time configurations on."""
    self.nargs = dict(zip(self.arg_names, args, strict=False))
    config = self.configs[0]
    self.best_config = config
    if config.pre_hook is not None:
        config.pre_hook({**self.nargs, **kwargs, **config.all_kwargs()})
    result = self.fn.run(*args, **kwargs, **config.all_kwargs())
    self.nargs = None
    return result


autotuner.Autotuner.run = _first_config


class _LoopIndex(int):
    """A loop variable of fla's kernels under the interpreter: an int (host code uses the same ``range``) that
    also has the tensor method compiled Triton gives it (``i_t.to(tl.int64)``)."""

    def to(self, dtype, **_kwargs):
        from triton.runtime.interpreter import _implicit_cvt

        return _implicit_cvt(int(self)).to(dtype)


def _tensor_range(*args):
    """``range`` in fla's kernel modules, yielding :class:`_LoopIndex`."""
    for i in range(*(int(a.handle.data.item()) if hasattr(a, "handle") else int(a) for a in args)):
        yield _LoopIndex(i)


def _patch_kernel_loops() -> None:
    for name, module in list(sys.modules.items()):
        if name.startswith("fla.ops") and module is not None:
            module.range = _tensor_range


def measure_state(model, vocab: int) -> list[dict]:
    rows = []
    for n in STATE_TOKENS:
        ids = torch.randint(0, vocab, (1, n))
        with torch.no_grad():
            out = model(input_ids=ids, use_cache=True)
        cache = out.past_key_values
        layers = []
        for i in range(len(model.model.layers)):
            held = {k: v for k, v in cache[i].items() if isinstance(v, torch.Tensor)}
            layers.append({k: {"shape": list(v.shape), "dtype": str(v.dtype), "bytes": v.numel() * v.element_size()}
                           for k, v in sorted(held.items())})  # fmt: skip
        total = sum(t["bytes"] for layer in layers for t in layer.values())
        rows.append({"prompt_tokens": n, "bytes": total, "layers": layers})
    return rows


def measure_saved(model, vocab: int, tokens: int) -> dict:
    """Bytes autograd keeps for backward, per block, and the tensors' shapes."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    current: list[int | None] = [None]
    seen: dict[int, tuple[int | None, int, str]] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in params and ptr not in seen and t.device.type == "cpu":
            seen[ptr] = (current[0], storage.nbytes(), f"{tuple(t.shape)} {t.dtype}")
        return t

    for i, block in enumerate(model.model.layers):
        block.register_forward_pre_hook(lambda _m, _a, i=i: current.__setitem__(0, i))
        block.register_forward_hook(lambda *_: current.__setitem__(0, None))
    model.train()
    ids = torch.randint(0, vocab, (1, tokens))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(input_ids=ids)
    out.logits.float().sum().backward()
    per_layer = [sum(b for layer, b, _ in seen.values() if layer == i) for i in range(len(model.model.layers))]
    shapes = [sorted(s for layer, _, s in seen.values() if layer == i) for i in range(len(model.model.layers))]
    return {"tokens": tokens, "bytes_per_layer": per_layer, "saved_per_layer": shapes}


def architecture(raw: dict) -> dict:
    """The estimator's fields of an fla RWKV config (what ``service.core.hf_config`` maps it to)."""
    h, v7 = raw["hidden_size"], raw["model_type"] == "rwkv7"
    head = raw["head_dim"] if v7 else h // raw["num_heads"]
    ratio = 4 if v7 else 3.5
    ranks = ({"rwkv_decay_lora_rank": raw["decay_low_rank_dim"], "rwkv_a_lora_rank": raw["a_low_rank_dim"],
              "rwkv_value_lora_rank": raw["v_low_rank_dim"], "rwkv_gate_lora_rank": raw["gate_low_rank_dim"]} if v7 else
             {"rwkv_mix_lora_rank": raw["proj_low_rank_dim"], "rwkv_decay_lora_rank": raw["gate_low_rank_dim"]})  # fmt: skip
    return {"n_layers": raw["num_hidden_layers"], "d_model": h, "n_heads": h // head, "vocab_size": raw["vocab_size"],
            "d_ff": raw.get("intermediate_size") or 32 * -(-int(h * ratio) // 32), "norm": "layernorm",
            "embedding_norm": True, "layer_types": ["rwkv"], "rwkv_version": 7 if v7 else 6, "rwkv_head_size": head,
            **ranks}  # fmt: skip


def records(models: dict) -> list[dict]:
    """ACCURACY.md's rows: the second block's saved bytes (the first also keeps the embedding's LayerNorm and,
    in RWKV-7, has no value residual) at a length that runs the chunked kernels."""
    rows = []
    for name, entry in models.items():
        saved = next(s for s in entry["saved"] if s["tokens"] == CHUNKED_TOKENS)
        rows.append({"case": f"{name} (fla 0.6.0 chunked kernels, second block)", "kind": "activations_per_layer",
                     "architecture": architecture(entry["config"]), "family": entry["config"]["model_type"],
                     "implementation": {"attention": "sdpa", "dropout": False}, "seq_len": CHUNKED_TOKENS,
                     "micro_batch_size": 1, "element_bytes": 4, "measured_bytes": saved["bytes_per_layer"][1]})  # fmt: skip
    return rows


def main() -> None:
    import fla
    import fla.models  # noqa: F401  (imports the kernels' modules)

    _patch_kernel_loops()

    models = {}
    for name in MEASURED:
        raw = CONFIGS[name]
        torch.manual_seed(0)
        model = fla_model(raw, device="cpu").float().eval()
        entry = {"config": raw, "state": measure_state(model, raw["vocab_size"])}
        entry["saved"] = [measure_saved(model, raw["vocab_size"], n) for n in ACTIVATION_TOKENS]
        models[name] = entry
        print(name, [s["bytes_per_layer"] for s in entry["saved"]], flush=True)
    import platform

    import transformers

    document = {
        "what": "fla's RWKV-6/RWKV-7 on the CPU in fp32 (Triton interpreter): state = the tensors of the cache after "
        "prompt_tokens (batch 1); saved = the bytes autograd keeps for backward per block over `tokens` tokens "
        "(batch 1), each storage once, parameters not counted; records = the second block at 128 tokens for "
        "ACCURACY.md",
        "environment": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "flash-linear-attention": fla.__version__,
            "triton": triton.__version__,
            "python": platform.python_version(),
            "device": "cpu",
            "machine": platform.machine(),
        },
        "records": records(models),
        "models": models,
    }
    OUT.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
