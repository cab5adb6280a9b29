"""LoRA's activation accounting against PyTorch's autograd, the reference implementation.

What a LoRA layer keeps for the backward pass differs from full training only by the inputs that a
frozen weight's gradient would have read (:func:`service.core.finetune.frozen_input_bytes_per_layer`)
and the adapters' own ``x·A`` (:func:`service.core.finetune.adapter_activation_bytes_per_layer`).
This test builds a Llama-style block (eager attention, SwiGLU) in PyTorch, with PEFT's LoRA layout
(``base(x) + B(A(x))``), counts the tensors autograd saves with ``saved_tensors_hooks``, and checks
the difference to full training byte for byte.

Needs torch, which the service does not: ``pip install torch==2.13.0`` (a CPU wheel), then
``pytest tests/reference``. Without torch the test is skipped.
"""

from __future__ import annotations

import pytest

from service.core.finetune import (
    FinetuneSpec,
    Projection,
    adapter_activation_bytes_per_layer,
    frozen_input_bytes_per_layer,
)
from service.core.spec import make_architecture

torch = pytest.importorskip("torch")
nn = torch.nn

TOKENS, D_MODEL, HEADS, D_FF, RANK = 64, 256, 4, 688, 8
ARCH = make_architecture(n_layers=1, d_model=D_MODEL, n_heads=HEADS, d_ff=D_FF, vocab_size=1000, ffn="swiglu", norm="rmsnorm")


class LoraLinear(nn.Module):
    """PEFT's LoRA layer without dropout: ``base(x) + B(A(x))``, the base frozen unless trained."""

    def __init__(self, rows_in: int, cols_out: int, *, train_base: bool, adapted: bool) -> None:
        super().__init__()
        self.base = nn.Linear(rows_in, cols_out, bias=False)
        self.base.weight.requires_grad_(train_base)
        self.adapter = (
            nn.Sequential(nn.Linear(rows_in, RANK, bias=False), nn.Linear(RANK, cols_out, bias=False)) if adapted else None
        )

    def forward(self, x):
        y = self.base(x)
        return y if self.adapter is None else y + self.adapter(x)


class Block(nn.Module):
    """Attention (eager softmax, no FlashAttention) and a SwiGLU MLP; norms left out (LoRA does
    not change what they keep)."""

    def __init__(self, *, train_base: bool, targets: set[Projection]) -> None:
        super().__init__()
        shapes = {"q": (D_MODEL, D_MODEL), "k": (D_MODEL, D_MODEL), "v": (D_MODEL, D_MODEL), "o": (D_MODEL, D_MODEL),
                  "gate": (D_MODEL, D_FF), "up": (D_MODEL, D_FF), "down": (D_FF, D_MODEL)}  # fmt: skip
        self.p = nn.ModuleDict(
            {n: LoraLinear(*shape, train_base=train_base, adapted=Projection(n) in targets) for n, shape in shapes.items()}
        )

    def forward(self, x):
        d_head = D_MODEL // HEADS
        q, k, v = (self.p[n](x).view(TOKENS, HEADS, d_head).transpose(0, 1) for n in ("q", "k", "v"))
        scores = torch.softmax(q @ k.transpose(1, 2) / d_head**0.5, dim=-1)
        h = x + self.p["o"]((scores @ v).transpose(0, 1).reshape(TOKENS, D_MODEL))
        return h + self.p["down"](torch.nn.functional.silu(self.p["gate"](h)) * self.p["up"](h))


def saved_activation_bytes(block: nn.Module) -> int:
    """Bytes autograd saves for the backward pass, weights left out, each tensor once."""
    weights = {p.data_ptr() for p in block.parameters()}
    saved: dict[tuple[int, int], int] = {}

    def pack(t):
        if t.data_ptr() not in weights:
            saved[(t.data_ptr(), t.numel())] = t.numel() * t.element_size()
        return t

    x = torch.randn(TOKENS, D_MODEL, requires_grad=True)  # the layer below needs its gradient
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        block(x)
    return sum(saved.values())


@pytest.mark.parametrize(
    "targets",
    [(), ("q", "v"), ("o",), ("gate", "up"), ("down",), ("q", "k", "v", "o", "gate", "up", "down")],
)
def test_lora_saves_what_the_core_says(targets: tuple[str, ...]) -> None:
    torch.manual_seed(0)
    chosen = tuple(Projection(t) for t in targets)
    full = saved_activation_bytes(Block(train_base=True, targets=set()))
    lora = saved_activation_bytes(Block(train_base=False, targets=set(chosen)))
    spec = FinetuneSpec(rank=RANK, targets=chosen)
    options = dict(tokens=TOKENS, element_bytes=4)  # fp32 on the CPU
    expected = adapter_activation_bytes_per_layer(ARCH, spec, chosen, **options) - frozen_input_bytes_per_layer(
        ARCH, spec, chosen, fused_attention=False, **options
    )
    assert lora - full == expected
