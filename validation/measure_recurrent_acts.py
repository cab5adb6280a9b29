"""Measure the activation bytes a Mamba, Mamba-2 or RWKV-4 layer keeps for backward on the CPU.

transformers runs these layers on the CPU through its reference torch code (the fused CUDA kernels,
``mamba_ssm``'s and RWKV's WKV kernel, are not loaded there): ``MambaMixer.forward`` with
``mamba_selective_scan``'s sequential loop, ``Mamba2Mixer.forward`` with ``mamba2_chunk_scan``'s
chunked SSD in plain torch, ``RwkvSelfAttention`` with ``rwkv_linear_attention_cpu``'s loop. Each
layer is measured as ``validation/measure.py`` measures a transformer layer: every tensor autograd
saves in one training forward pass, seen through ``torch.autograd.graph.saved_tensors_hooks``, counted
once per storage (a view keeps its whole storage alive), parameters excluded; a layer's share is the
difference between the same model with three layers and with two (the embedding, the final norm, the
output layer and RWKV's ``pre_ln`` on the first block cancel). bf16 and fp32 weights and activations, no autocast, ``use_cache=False``.

Every record carries the model's ``config.json`` keys (``hf_config``): ``validation/accuracy.py``
maps them with the service's own importer and computes the estimate on the CPU convention without
torch. Writes ``validation/measurements/recurrent_activations.json``.

Run: ``.venv-validation/bin/python validation/measure_recurrent_acts.py`` (``make measure-recurrent-acts``;
``--explain`` prints each case's saved storages by the line of transformers that first saved them, and
names given, e.g. ``"mamba2 h64"``, measure only the configs they begin, writing nothing).
"""

from __future__ import annotations

import json
import platform
import sys
import traceback
from collections import defaultdict
from pathlib import Path

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM

OUT = Path(__file__).resolve().parent / "measurements" / "recurrent_activations.json"
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}

# small configs of each family at two widths (Mamba2Config's default chunk of 256 tokens is kept: the
# estimator takes it, config.json files rarely set it)
CONFIGS: dict[str, dict] = {
    "mamba h64": {"model_type": "mamba", "hidden_size": 64, "vocab_size": 256, "state_size": 16, "expand": 2,
                  "conv_kernel": 4},
    "mamba h128": {"model_type": "mamba", "hidden_size": 128, "vocab_size": 256, "state_size": 8, "expand": 2,
                   "conv_kernel": 4, "time_step_rank": 16},
    "mamba2 h64": {"model_type": "mamba2", "hidden_size": 64, "vocab_size": 256, "state_size": 16, "expand": 2,
                   "conv_kernel": 4, "num_heads": 8, "head_dim": 16, "n_groups": 2},
    "mamba2 h128": {"model_type": "mamba2", "hidden_size": 128, "vocab_size": 256, "state_size": 128, "expand": 2,
                    "conv_kernel": 4, "num_heads": 4, "head_dim": 64, "n_groups": 1},
    "rwkv h64": {"model_type": "rwkv", "hidden_size": 64, "vocab_size": 256, "attention_hidden_size": 64,
                 "intermediate_size": 256, "context_length": 1024},
    "rwkv h128": {"model_type": "rwkv", "hidden_size": 128, "vocab_size": 256, "attention_hidden_size": 128,
                  "intermediate_size": 448, "context_length": 1024},
}  # fmt: skip
POINTS = ((128, 2), (256, 1), (384, 1), (512, 2))
"""(seq_len, micro_batch_size): below, at and across Mamba-2's 256-token chunk."""


def build(raw: dict, n_layers: int, dtype: torch.dtype) -> torch.nn.Module:
    kwargs = {k: v for k, v in raw.items() if k != "model_type"} | {"num_hidden_layers": n_layers}
    config = AutoConfig.for_model(raw["model_type"], **kwargs)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, dtype=dtype)


def _where() -> str:
    """The innermost transformers line on the stack (for ``--explain``)."""
    for frame in reversed(traceback.extract_stack()):
        if "transformers/models" in frame.filename:
            return f"{Path(frame.filename).name}:{frame.lineno} {frame.line}"
    return "?"


def saved_bytes(model: torch.nn.Module, ids: torch.Tensor, explain: bool = False) -> tuple[int, dict[str, int]]:
    """Bytes of the unique storages autograd saves in one training forward pass (parameters
    excluded), and with ``explain`` the same bytes by the transformers line that first saved each."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}
    where: dict[int, str] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in params and ptr != 0:
            if explain and ptr not in seen:
                where[ptr] = f"{_where()} [{str(t.dtype)[6:]}]"
            seen[ptr] = max(seen.get(ptr, 0), storage.nbytes())
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(input_ids=ids, use_cache=False)
    out.logits.float().sum().backward()
    lines: dict[str, int] = defaultdict(int)
    for ptr, nbytes in seen.items():
        lines[where.get(ptr, "")] += nbytes
    return sum(seen.values()), dict(lines)


def case(name: str, raw: dict, precision: str, seq_len: int, batch: int, explain: bool = False) -> dict:
    ids = torch.randint(0, raw["vocab_size"], (batch, seq_len))
    totals, lines = [], []
    for n_layers in (2, 3):  # RWKV's initialisation divides by n_layers - 1
        total, by_line = saved_bytes(build(raw, n_layers, DTYPES[precision]), ids, explain)
        totals.append(total)
        lines.append(by_line)
    if explain:
        print(f"--- {name} {precision} s={seq_len} b={batch}: {totals[1] - totals[0]:,} bytes")
        for line in sorted(set(lines[0]) | set(lines[1])):
            if delta := lines[1].get(line, 0) - lines[0].get(line, 0):
                print(f"{delta:>12,}  {line}")
    return {
        "case": f"{name} {precision} s{seq_len} b{batch}", "kind": "recurrent_activations_per_layer",
        "hf_config": raw | {"num_hidden_layers": 1}, "precision": precision, "element_bytes": DTYPES[precision].itemsize,
        "seq_len": seq_len, "micro_batch_size": batch, "measured_bytes": totals[1] - totals[0],
    }  # fmt: skip


def main() -> None:
    explain = "--explain" in sys.argv
    only = [a for a in sys.argv[1:] if not a.startswith("--")]
    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    records = []
    for name, raw in CONFIGS.items():
        if only and not any(name.startswith(o) for o in only):
            continue
        for precision in DTYPES:
            for seq_len, batch in POINTS:
                records.append(case(name, raw, precision, seq_len, batch, explain))
                print(f"{records[-1]['case']:32s} {records[-1]['measured_bytes']:>14,}", file=sys.stderr, flush=True)
    if explain or only:
        return
    env = {"torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
           "device": "cpu", "machine": platform.machine()}  # fmt: skip
    OUT.write_text(json.dumps({"environment": env, "records": records}, indent=1) + "\n")
    print(f"wrote {len(records)} records to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
