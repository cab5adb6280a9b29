"""LoRA on a hybrid model (Nemotron-H, Jamba): the adapters sit in the attention and MLP layers only,
so the frozen inputs a fine-tune drops count those layers, not every layer."""

from __future__ import annotations

import pytest

from service.core.adapters import Projection
from service.core.finetune import finetune_memory
from service.core.finetune_spec import FinetuneMethod, FinetuneSpec
from tests.core.helpers import preset


def test_a_hybrid_drops_the_frozen_inputs_of_its_attention_and_mlp_layers_only() -> None:
    # LoRA on o_proj alone (FlashAttention keeps the output projection's input): the QKV input of the 4
    # attention layers and the MLP's input and down-projection input of the 24 MLP blocks are not kept; the
    # 24 Mamba-2 blocks have neither. Counted on every layer this took 52 x 2 x 4096 x (4096 + 4096 + 21504)
    # = 12.6 GB off 19.8 GB of full training's activations
    arch = preset("nemotron-h-8b")
    spec = FinetuneSpec(method=FinetuneMethod.LORA, rank=16, targets=(Projection.O,))
    lora = finetune_memory(arch, spec, seq_len=4096, flash_attention=True)
    h, f, tokens = arch.d_model, arch.d_ff, 4096
    assert lora.frozen_inputs_not_kept_bytes == pytest.approx(2 * tokens * (4 * h + 24 * (h + f)), abs=arch.n_layers)
    # a transformer's count is unchanged: every layer has attention and an MLP
    llama = preset("llama-3-8b")
    dense = finetune_memory(llama, spec, seq_len=4096, flash_attention=True)
    assert dense.frozen_inputs_not_kept_bytes == 32 * 2 * tokens * (llama.d_model + llama.d_model + llama.d_ff)
