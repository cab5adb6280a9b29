"""LoRA on a hybrid model (Nemotron-H, Jamba): the adapters sit in the attention and MLP layers only,
so the frozen inputs a fine-tune drops and the eager host floor of its adapted layers count those
layers, not every layer."""

from __future__ import annotations

from dataclasses import replace

import pytest

from service.catalog import loader
from service.core.adapters import Projection, adapted_layers, resolve_targets
from service.core.finetune import finetune_memory, finetune_training_flops
from service.core.finetune_spec import FinetuneMethod, FinetuneSpec
from service.core.plan import PlanSpec, plan
from tests.core.helpers import hardware, preset

ATTENTION = (Projection.Q, Projection.K, Projection.V, Projection.O)
H100 = hardware("h100-sxm")
FLOOR = H100.kernels.adapter_layer_host_seconds


def test_layer_parts_count_what_the_architecture_counts() -> None:
    for model_id in loader.model_presets():
        arch = preset(model_id)
        parts = arch.layer_parts()
        assert len(parts) == arch.n_layers
        assert sum(a for a, _ in parts) == arch.attention_layers, model_id
        assert sum(m for _, m in parts) == arch.mlp_layers, model_id


def test_adapted_layers_are_those_holding_a_targeted_matrix() -> None:
    nemotron, jamba, llama = preset("nemotron-h-8b"), preset("jamba-1.5-mini"), preset("llama-3-8b")
    # Nemotron-H-8B: 52 single-operator blocks, 24 Mamba-2, 4 attention and 24 MLP
    assert adapted_layers(nemotron, ATTENTION) == 4
    assert adapted_layers(nemotron, (Projection.UP, Projection.DOWN)) == 24
    assert adapted_layers(nemotron, resolve_targets(nemotron, None)) == 28  # the Mamba-2 blocks hold none
    # Jamba: an MLP in every layer, attention in 4 of 32
    assert adapted_layers(jamba, (Projection.Q, Projection.V)) == 4
    assert adapted_layers(jamba, resolve_targets(jamba, None)) == 32
    assert adapted_layers(llama, (Projection.Q, Projection.V)) == 32


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


def test_the_eager_host_floor_holds_the_adapted_layers_only() -> None:
    # LoRA on Nemotron-H-8B's attention: 4 adapted layers of 52, two 2,048-token micro-batches a rank at tp 2
    arch = preset("nemotron-h-8b")
    spec = PlanSpec(n_gpus=64, seq_len=2048, global_batch_size=64, top_k=1,
                    finetune=FinetuneSpec(method=FinetuneMethod.LORA, rank=16, targets=ATTENTION),
                    fixed={"tp": 2, "pp": 1, "cp": 1, "dp": 32, "micro_batch_size": 1, "recompute": "none"})  # fmt: skip
    eager = plan(arch, H100, spec).plans[0]
    assert eager.gradient_accumulation_steps == 2
    # at most the floor of 4 layers a micro-batch (was 52 layers' worth: 0.69 s against 0.14 s of GPU compute)
    assert 0 < eager.step["host_seconds"] <= 2 * 4 * FLOOR
    everything = plan(arch, H100, replace(spec, finetune=FinetuneSpec(method=FinetuneMethod.LORA, rank=16)))
    assert eager.step["host_seconds"] < everything.plans[0].step["host_seconds"] <= 2 * 28 * FLOOR


def test_a_shared_attention_block_holds_one_adapter_per_matrix_whatever_its_uses() -> None:
    # Zamba-7B calls its one shared attention block (attention on the 2h-wide concatenation, then its MLP) from 13
    # layers; PEFT wraps each of its modules once, so each adapted matrix has one adapter, as the 4-bit base stores
    # the block once (it counted 13: 23.2M trainable parameters for 1.8M)
    arch, r = preset("zamba-7b"), 16
    h, h2, f = arch.d_model, arch.attention_input_width, arch.d_ff
    one_block = r * ((h2 + arch.q_proj_width) + 2 * (h2 + arch.kv_dim) + (arch.q_dim + h) + 2 * (h + f) + (f + h))
    lora = finetune_memory(arch, FinetuneSpec(method=FinetuneMethod.LORA, rank=r), seq_len=2048)
    assert (arch.shared_blocks, arch.shared_attention_layers) == (1, 13)
    assert lora.trainable_params == one_block
    # every use runs the adapters: their FLOPs and kept x*A count each of the 13 uses
    assert finetune_training_flops(arch, 1.0, lora.spec)[1].active_adapter_params == 13 * one_block
