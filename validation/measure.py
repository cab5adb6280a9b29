"""Measure real PyTorch implementations on the CPU and write ``validation/measurements/*.json``.

Needs the ``validation`` dependency group (torch CPU and transformers): ``make measure``. Nothing is
downloaded: every model is built from a hand-written config with random weights. What is measured:

- parameter counts of the real modules, built on the meta device;
- activation bytes kept for backward per transformer layer: every tensor autograd saves, seen
  through ``torch.autograd.graph.saved_tensors_hooks``, counted once per storage (a view keeps its
  whole storage alive), parameters excluded, as the CPU keeps them: a dropout mask is a noise tensor
  of the dropped tensor's dtype (CUDA's ``native_dropout`` keeps 1 byte an element: the elements of
  the masks are recorded apart). A layer's share is the difference between the same model with two
  layers and with one, so the embedding, the output layer and the rotary tables shared by every layer
  cancel;
- FLOPs of a forward and of a forward + backward pass, and of ``generate`` (prefill + decode with
  the library's KV cache), counted by ``torch.utils.flop_counter.FlopCounterMode``;
- optimizer-state bytes after one step (AdamW, SGD with momentum);
- KV-cache bytes held by the library's cache object after generating N tokens (MHA and GQA).

Every record carries its config in the estimator's vocabulary (``architecture``) and the
measurement; ``validation/accuracy.py`` computes the estimates and the errors without torch.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import torch
import transformers
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

OUT = Path(__file__).resolve().parent / "measurements"
SEQ_LEN, BATCH = 128, 2

# --- hand-written configs: (transformers config, the same shape in the estimator's vocabulary) ----


def gpt2(n_layers: int, *, dropout: float = 0.0, activation: str = "gelu_new") -> tuple[object, dict, dict]:
    """GPT-2 as transformers' ``modeling_gpt2`` runs it: LayerNorm in 16 bits, an eager softmax in
    the input dtype (no fp32 upcast), residual and attention dropout; ``gelu_new`` is the tanh GELU
    written as separate tensor ops (unfused), ``gelu`` torch's one-kernel GELU."""
    cfg = transformers.GPT2Config(
        n_layer=n_layers,
        n_embd=256,
        n_head=4,
        n_positions=512,
        vocab_size=1024,
        activation_function=activation,
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
        bos_token_id=0,
        eos_token_id=0,
    )
    arch = dict(n_layers=n_layers, d_model=256, n_heads=4, d_ff=1024, vocab_size=1024, ffn="gelu", norm="layernorm",
                bias=True, tied_embeddings=True, position="learned", max_seq_len=512)  # fmt: skip
    return cfg, arch, {"fp32_softmax": False, "fused_activation": activation != "gelu_new"}


def neox(n_layers: int, *, dropout: float = 0.0) -> tuple[object, dict, dict]:
    """GPT-NeoX (Pythia): a parallel block with two LayerNorms reading the same input, partial
    rotary (25 %), the shared eager attention (fp32 softmax), torch's GELU kernel."""
    cfg = transformers.GPTNeoXConfig(
        num_hidden_layers=n_layers,
        hidden_size=256,
        num_attention_heads=4,
        intermediate_size=1024,
        vocab_size=1024,
        max_position_embeddings=512,
        rotary_pct=0.25,
        use_parallel_residual=True,
        hidden_act="gelu",
        attention_dropout=dropout,
        hidden_dropout=dropout,
        tie_word_embeddings=False,
        bos_token_id=0,
        eos_token_id=0,
    )
    arch = dict(n_layers=n_layers, d_model=256, n_heads=4, d_ff=1024, vocab_size=1024, ffn="gelu", norm="layernorm",
                bias=True, tied_embeddings=False, position="rotary", max_seq_len=512, parallel_attention=True)  # fmt: skip
    return cfg, arch, {}


def llama(n_layers: int, *, d_model: int = 256, n_heads: int = 4, n_kv_heads: int | None = None, d_ff: int = 688,
          vocab_size: int = 1024, tied: bool = False, dropout: float = 0.0) -> tuple[object, dict, dict]:  # fmt: skip
    """Llama: RMSNorm that upcasts to fp32, the shared eager attention (fp32 softmax, K and V
    repeated to every query head), SwiGLU as ``act(gate) * up`` (unfused), attention dropout only."""
    n_kv_heads = n_kv_heads or n_heads
    cfg = transformers.LlamaConfig(
        num_hidden_layers=n_layers,
        hidden_size=d_model,
        num_attention_heads=n_heads,
        num_key_value_heads=n_kv_heads,
        intermediate_size=d_ff,
        vocab_size=vocab_size,
        max_position_embeddings=512,
        tie_word_embeddings=tied,
        attention_dropout=dropout,
        bos_token_id=0,
        eos_token_id=0,
    )
    arch = dict(n_layers=n_layers, d_model=d_model, n_heads=n_heads, n_kv_heads=n_kv_heads, d_ff=d_ff,
                vocab_size=vocab_size, ffn="swiglu", norm="rmsnorm", tied_embeddings=tied, position="rotary",
                max_seq_len=512)  # fmt: skip
    return cfg, arch, {"residual_dropout": False}


def qwen3(n_layers: int, *, dropout: float = 0.0) -> tuple[object, dict, dict]:
    """Qwen3: Llama's block with an RMSNorm on each head's query and key (``q_norm``, ``k_norm``),
    head_dim 64 on 4 query and 2 key-value heads."""
    cfg = transformers.Qwen3Config(
        num_hidden_layers=n_layers,
        hidden_size=256,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=64,
        intermediate_size=688,
        vocab_size=1024,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        attention_dropout=dropout,
        bos_token_id=0,
        eos_token_id=0,
    )
    arch = dict(n_layers=n_layers, d_model=256, n_heads=4, n_kv_heads=2, d_head=64, d_ff=688, vocab_size=1024, ffn="swiglu",
                norm="rmsnorm", tied_embeddings=False, position="rotary", max_seq_len=512, qk_norm=True)  # fmt: skip
    return cfg, arch, {"residual_dropout": False}


def olmo2(n_layers: int, *, dropout: float = 0.0) -> tuple[object, dict, dict]:
    """OLMo 2: norms after attention and after the MLP, an RMSNorm over the whole query and key
    projections, and every RMSNorm multiplying by its weight in fp32."""
    cfg = transformers.Olmo2Config(
        num_hidden_layers=n_layers,
        hidden_size=256,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=688,
        vocab_size=1024,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        attention_dropout=dropout,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )
    arch = dict(n_layers=n_layers, d_model=256, n_heads=4, n_kv_heads=2, d_ff=688, vocab_size=1024, ffn="swiglu",
                norm="rmsnorm", tied_embeddings=False, position="rotary", max_seq_len=512, qk_norm_full_width=True)  # fmt: skip
    return cfg, arch, {"residual_dropout": False, "fp32_norm_weight": True}


def build(cfg: object, *, attn: str, dtype: torch.dtype = torch.bfloat16, device: str = "cpu") -> torch.nn.Module:
    cfg._attn_implementation = attn
    with torch.device(device):
        model = transformers.AutoModelForCausalLM.from_config(cfg, torch_dtype=dtype, attn_implementation=attn)
    return model


# --- activations ------------------------------------------------------------------------------------


class DropoutMasks(TorchDispatchMode):
    """Records the storages of dropout masks. On the CPU, ``dropout`` multiplies by a noise tensor
    of the input's dtype (``bernoulli_`` then a scale); CUDA's fused ``native_dropout`` keeps a
    bool mask (1 byte per element)."""

    def __init__(self) -> None:
        super().__init__()
        self.masks: dict[int, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is torch.ops.aten.native_dropout.default:
            self.masks[out[1].untyped_storage().data_ptr()] = out[1].numel()
        elif func.overloadpacket is torch.ops.aten.bernoulli_:
            self.masks[args[0].untyped_storage().data_ptr()] = args[0].numel()
        return out


def saved_bytes(model: torch.nn.Module, input_ids: torch.Tensor) -> tuple[int, int]:
    """Bytes of the unique storages autograd saves for backward in one training forward pass, as the
    CPU keeps them (parameters excluded), and the elements of the dropout masks among them.
    ``use_cache`` is off: a training step needs no KV cache (left on, transformers copies each
    layer's K and V into a cache during training too)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in params and ptr != 0:
            seen[ptr] = max(seen.get(ptr, 0), storage.nbytes())
        return t

    model.train()
    masks = DropoutMasks()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), masks:
        out = model(input_ids=input_ids, use_cache=False)
    out.logits.float().sum().backward()
    mask_elements = sum(numel for ptr, numel in masks.masks.items() if ptr in seen)
    return sum(seen.values()), mask_elements


def activation_case(name: str, family, *, attn: str, dropout: float = 0.0, **shape) -> dict:
    ids = torch.randint(0, 1000, (BATCH, SEQ_LEN))
    totals, masks = [], []
    for n_layers in (1, 2):
        torch.manual_seed(0)
        cfg, arch, implementation = family(n_layers, dropout=dropout, **shape)
        kept, mask_elements = saved_bytes(build(cfg, attn=attn), ids)
        totals.append(kept)
        masks.append(mask_elements)
    arch["n_layers"] = 1
    return {
        "case": name, "kind": "activations_per_layer", "architecture": arch, "family": family.__name__,
        "implementation": {"attention": attn, "dropout": dropout > 0, **implementation},
        "seq_len": SEQ_LEN, "micro_batch_size": BATCH, "element_bytes": 2,
        "measured_bytes": totals[1] - totals[0], "dropout_mask_elements": masks[1] - masks[0],
    }  # fmt: skip


# --- parameters, FLOPs, optimizer, KV cache ---------------------------------------------------------


def param_case(name: str, cfg: object, arch: dict) -> dict:
    model = build(cfg, attn="eager", device="meta")
    seen: dict[int, int] = {}
    for p in model.parameters():  # tied weights are one Parameter: count each once
        seen[id(p)] = p.numel()
    return {"case": name, "kind": "params", "architecture": arch, "measured": sum(seen.values())}


def flop_case(name: str, cfg: object, arch: dict, *, seq_len: int = SEQ_LEN, batch: int = BATCH, device: str = "cpu") -> dict:
    """FLOPs of a forward and a forward + backward pass. On the meta device (shapes only) a full-size
    model costs no memory and no time: the counter reads the shapes."""
    model = build(cfg, attn="eager", dtype=torch.float32, device=device)
    ids = torch.randint(0, 1000, (batch, seq_len), device=device)
    with FlopCounterMode(display=False) as fwd:
        model(input_ids=ids)
    with FlopCounterMode(display=False) as both:
        model(input_ids=ids).logits.sum().backward()
    return {"case": name, "kind": "training_flops", "architecture": arch, "seq_len": seq_len, "tokens": batch * seq_len,
            "measured_forward_flops": float(fwd.get_total_flops()), "measured_flops": float(both.get_total_flops())}  # fmt: skip


def generate(model: torch.nn.Module, prompt: int, new_tokens: int, batch: int):
    ids = torch.randint(0, 1000, (batch, prompt))
    return model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                          min_new_tokens=new_tokens, do_sample=False, use_cache=True, return_dict_in_generate=True,
                          pad_token_id=0)  # fmt: skip


def inference_flop_case(name: str, cfg: object, arch: dict, *, prompt: int, new_tokens: int, batch: int = 1) -> dict:
    model = build(cfg, attn="eager", dtype=torch.float32).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        generate(model, prompt, new_tokens, batch)
    return {"case": name, "kind": "inference_flops", "architecture": arch, "prompt_tokens": prompt,
            "generated_tokens": new_tokens, "batch_size": batch, "measured_flops": float(counter.get_total_flops())}  # fmt: skip


def kv_case(name: str, cfg: object, arch: dict, *, prompt: int, new_tokens: int, batch: int) -> dict:
    model = build(cfg, attn="sdpa").eval()
    with torch.no_grad():
        out = generate(model, prompt, new_tokens, batch)
    cache = out.past_key_values
    tensors = []
    if hasattr(cache, "layers"):
        for layer in cache.layers:
            tensors += [layer.keys, layer.values]
    else:  # older cache objects
        tensors = list(cache.key_cache) + list(cache.value_cache)
    nbytes = sum(t.numel() * t.element_size() for t in tensors)
    return {"case": name, "kind": "kv_cache", "architecture": arch, "prompt_tokens": prompt, "generated_tokens": new_tokens,
            "batch_size": batch, "cached_tokens": int(cache.get_seq_length()), "kv_dtype": "bf16",
            "cache_class": type(cache).__name__, "measured_bytes": nbytes}  # fmt: skip


def optimizer_case(name: str, cfg: object, arch: dict, optimizer: str, dtype: torch.dtype) -> dict:
    model = build(cfg, attn="sdpa", dtype=dtype)
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=1e-4)
    elif optimizer == "adamw_8bit":
        import bitsandbytes  # optional: only where it installs

        opt = bitsandbytes.optim.AdamW8bit(params, lr=1e-4)
    else:
        opt = torch.optim.SGD(params, lr=1e-4, momentum=0.9)
    ids = torch.randint(0, 1000, (1, 16))
    model(input_ids=ids).logits.float().sum().backward()
    opt.step()
    seen: dict[int, tuple[str, int]] = {}  # unique storages: bitsandbytes shares its quantisation maps
    for p in params:
        for key, value in opt.state[p].items():
            if torch.is_tensor(value) and value.numel() > 0:
                ptr = value.untyped_storage().data_ptr()
                part = "step" if key == "step" else ("qmap" if key.startswith("qmap") else
                                                     ("small" if p.numel() < 4096 and optimizer == "adamw_8bit" else "state"))  # fmt: skip
                seen[ptr] = (part, value.numel() * value.element_size())
    parts = {part: sum(n for q, n in seen.values() if q == part) for part in ("state", "small", "qmap", "step")}
    precision = {torch.float32: "fp32", torch.bfloat16: "bf16"}[dtype]
    return {"case": name, "kind": "optimizer_state", "architecture": arch, "optimizer": optimizer,
            "precision": precision, "n_params": sum(p.numel() for p in params),
            "measured_bytes": parts["state"] + parts["small"] + parts["qmap"], "step_counter_bytes": parts["step"],
            "small_tensor_state_bytes": parts["small"], "quantisation_map_bytes": parts["qmap"]}  # fmt: skip


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    records: list[dict] = []
    # activations per layer: GPT-2 with its tanh GELU as separate ops ("gelu_new", its default) and
    # with torch's GELU kernel ("gelu"), NeoX, Llama (MHA and GQA); eager and SDPA; with and without dropout
    records += [
        activation_case("gpt2 eager, gelu_new (unfused)", gpt2, attn="eager"),
        activation_case("gpt2 sdpa, gelu_new (unfused)", gpt2, attn="sdpa"),
        activation_case("gpt2 eager, gelu kernel", gpt2, attn="eager", activation="gelu"),
        activation_case("gpt2 sdpa, gelu kernel", gpt2, attn="sdpa", activation="gelu"),
        activation_case("gpt2 eager, gelu kernel, dropout 0.1", gpt2, attn="eager", activation="gelu", dropout=0.1),
        activation_case("gpt2 sdpa, gelu kernel, dropout 0.1", gpt2, attn="sdpa", activation="gelu", dropout=0.1),
        activation_case("neox eager", neox, attn="eager"),
        activation_case("neox sdpa", neox, attn="sdpa"),
        activation_case("neox eager, dropout 0.1", neox, attn="eager", dropout=0.1),
        activation_case("neox sdpa, dropout 0.1", neox, attn="sdpa", dropout=0.1),
        activation_case("llama eager", llama, attn="eager"),
        activation_case("llama sdpa", llama, attn="sdpa"),
        activation_case("llama eager, attention dropout 0.1", llama, attn="eager", dropout=0.1),
        activation_case("llama gqa eager", llama, attn="eager", n_heads=8, n_kv_heads=2),
        activation_case("llama gqa sdpa", llama, attn="sdpa", n_heads=8, n_kv_heads=2),
        activation_case("llama h512 gqa sdpa", llama, attn="sdpa", d_model=512, n_heads=8, n_kv_heads=2, d_ff=1376),
        activation_case("qwen3 eager (q/k norm per head)", qwen3, attn="eager"),
        activation_case("qwen3 sdpa (q/k norm per head)", qwen3, attn="sdpa"),
        activation_case("olmo2 eager (q/k norm over the projection)", olmo2, attn="eager"),
        activation_case("olmo2 sdpa (q/k norm over the projection)", olmo2, attn="sdpa"),
    ]
    # parameters
    for name, (cfg, arch, _) in {
        "gpt2 tiny": gpt2(4),
        "neox tiny": neox(4),
        "llama tiny": llama(4),
        "llama tiny tied": llama(4, tied=True),
        "llama gqa": llama(4, d_model=512, n_heads=8, n_kv_heads=2, d_ff=1376),
        "llama h512 v4096": llama(4, d_model=512, n_heads=8, d_ff=1376, vocab_size=4096),
        "llama h1024 v4096": llama(4, d_model=1024, n_heads=16, d_ff=2752, vocab_size=4096),
        "llama-3-8b shape": llama(32, d_model=4096, n_heads=32, n_kv_heads=8, d_ff=14336, vocab_size=128256),
    }.items():
        records.append(param_case(name, cfg, arch))
    # FLOPs (fp32 eager: the counter sees every matmul)
    for name, (cfg, arch, _) in {
        "gpt2 tied": gpt2(2),
        "neox": neox(2),
        "llama h512 v4096": llama(2, d_model=512, n_heads=8, d_ff=1376, vocab_size=4096),
        "llama h1024 v4096": llama(2, d_model=1024, n_heads=16, d_ff=2752, vocab_size=4096),
        "llama gqa": llama(2, d_model=512, n_heads=8, n_kv_heads=2, d_ff=1376, vocab_size=4096),
    }.items():
        records.append(flop_case(name, cfg, arch))
    cfg, arch, _ = llama(32, d_model=4096, n_heads=32, n_kv_heads=8, d_ff=14336, vocab_size=128256)
    arch["max_seq_len"] = cfg.max_position_embeddings = 8192
    records.append(flop_case("llama-3-8b shape (meta device)", cfg, arch, seq_len=8192, batch=1, device="meta"))
    for name, (cfg, arch, _) in {
        "llama h512 v4096": llama(2, d_model=512, n_heads=8, d_ff=1376, vocab_size=4096),
        "gpt2 tied": gpt2(2),
    }.items():
        records.append(inference_flop_case(name, cfg, arch, prompt=16, new_tokens=32))
    # KV cache
    for name, (cfg, arch, _) in {
        "llama mha": llama(2),
        "llama gqa": llama(2, d_model=512, n_heads=8, n_kv_heads=2, d_ff=1376),
    }.items():
        records.append(kv_case(name, cfg, arch, prompt=24, new_tokens=40, batch=3))
    # optimizer states
    cfg, arch, _ = llama(2)
    for opt in ("adamw", "sgd_momentum"):
        for dtype in (torch.float32, torch.bfloat16):
            records.append(optimizer_case(f"llama {opt} {dtype}".replace("torch.", ""), cfg, arch, opt, dtype))
    try:
        import bitsandbytes  # noqa: F401 - 8-bit AdamW only where bitsandbytes installs
    except ImportError:
        print("bitsandbytes not installed: 8-bit AdamW not measured", file=sys.stderr)
    else:
        cfg, arch, _ = llama(2, d_model=512, n_heads=8, d_ff=1376, vocab_size=4096)
        records.append(optimizer_case("llama h512 adamw_8bit float32", cfg, arch, "adamw_8bit", torch.float32))
    OUT.mkdir(exist_ok=True)
    env = {"torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
           "device": "cpu", "machine": platform.machine()}  # fmt: skip
    try:
        import bitsandbytes

        env["bitsandbytes"] = bitsandbytes.__version__
    except ImportError:
        pass
    path = OUT / "cpu.json"
    path.write_text(json.dumps({"environment": env, "records": records}, indent=1) + "\n")
    print(f"wrote {len(records)} records to {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
