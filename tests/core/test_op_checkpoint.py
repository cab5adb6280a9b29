"""torchtitan's op-level selective activation checkpointing (``recompute="selective_op"``): what its
policy keeps (``torchtitan/models/llama/parallelize_llama.py``, ``_save_list``, every second ``aten.mm``)
counted by hand for a Llama 3.1 8B layer, and what it recomputes between selective and full recompute."""

from __future__ import annotations

import pytest

from service.core.activations import ActivationOptions, layer_activation_bytes
from service.core.compute import AttentionFormula, Recompute, training_flops
from service.core.errors import InvalidSpecError
from service.core.op_checkpoint import block_matmuls
from service.core.steptime import RECOMPUTE_CODES, Layout, Workload, step_time
from tests.core.helpers import preset
from validation.throughput import hardware

# Llama 3.1 8B (Dubey et al. 2024, Table 3): h 4096, 32 query heads and 8 KV heads of 128, FFN 14,336
H, KV, F, HEADS = 4096, 1024, 14336, 32


def test_a_llama_layer_keeps_the_block_input_every_second_matmul_and_sdpa() -> None:
    arch = preset("llama-3.1-8b")
    # forward order wq, wk, wv, wo, w1, w3, w2: the policy's counter saves the 1st, 3rd, 5th and 7th
    assert [name for name, _, _ in block_matmuls(arch)] == ["wq", "wk", "wv", "wo", "w1", "w3", "w2"]
    tokens = 8192 * 2  # torchtitan's rows: seq 8192, local batch 2
    by_hand = 2 * tokens * (H + H + KV + F + H + H) + 4 * tokens * HEADS  # input, wq, wv, w1, w2, SDPA out; fp32 LSE
    opts = ActivationOptions(seq_len=8192, micro_batch_size=2, recompute=Recompute.SELECTIVE_OP, flash_attention=True)
    assert layer_activation_bytes(arch, opts).total_bytes == by_hand
    # between full recompute (the block input only) and Korthikanti's selective recompute
    full = layer_activation_bytes(arch, ActivationOptions(seq_len=8192, micro_batch_size=2, recompute=Recompute.FULL,
                                                          flash_attention=True)).total_bytes  # fmt: skip
    selective = layer_activation_bytes(arch, ActivationOptions(seq_len=8192, micro_batch_size=2, recompute=Recompute.SELECTIVE,
                                                               flash_attention=True)).total_bytes  # fmt: skip
    assert full == 2 * tokens * H < by_hand < selective


def test_tensor_and_sequence_parallel_split_what_is_kept() -> None:
    arch = preset("llama-3.1-8b")
    tokens, t = 4096, 8
    opts = ActivationOptions(seq_len=4096, micro_batch_size=1, tp=t, sequence_parallel=True, recompute=Recompute.SELECTIVE_OP,
                             flash_attention=True)  # fmt: skip
    # block input / t; wq / t, wv over its 8 KV heads, w1 / t; w2's partial sums whole and its reduce-scatter / t;
    # SDPA's output and LSE / t
    by_hand = 2 * tokens * (H // t + H // t + KV // t + F // t + H + H // t + H // t) + 4 * tokens * HEADS // t
    assert layer_activation_bytes(arch, opts).total_bytes == by_hand


def test_the_policy_recomputes_every_second_matmul_in_hardware_flops() -> None:
    arch = preset("llama-3.1-8b")
    kw = dict(include_attention=True, attention_formula=AttentionFormula.MEGATRON, seq_len=8192, causal=True)
    op = training_flops(arch, 1.0, recompute=Recompute.SELECTIVE_OP, **kw)
    assert op.recompute_flops_per_token == 2 * arch.n_layers * (H * KV + H * H + H * F)  # wk, wo, w3
    full = training_flops(arch, 1.0, recompute=Recompute.FULL, **kw)
    assert 0 < op.recompute_flops_per_token < full.recompute_flops_per_token


@pytest.mark.parametrize("fp8", [False, True])
def test_its_recompute_time_lies_between_selective_and_full(fp8: bool) -> None:
    # the torchtitan 8B rows' layout: FSDP over 8 GPUs, local batch 2, seq 8192
    arch = preset("llama-3.1-8b")
    hw = hardware("h100-sxm")
    work = Workload(seq_len=8192, global_batch_size=16, fp8_cast_bytes_per_element=6.0 if fp8 else 0.0)
    seconds = {}
    for name, code in RECOMPUTE_CODES.items():
        lay = Layout(tp=1, pp=1, dp=8, cp=1, ep=1, zero_stage=3, offload_optimizer=False, micro_batch_size=2, recompute=code,
                     sequence_parallel=False, virtual_stages=1, params_per_gpu=8.03e9)  # fmt: skip
        seconds[name] = float(step_time(arch, hw, work, lay).recompute_seconds)
    assert 0 == seconds["none"] < seconds["selective"] < seconds["selective_op"] < seconds["full"]


def test_models_the_policy_does_not_cover_are_refused() -> None:
    opts = ActivationOptions(seq_len=4096, micro_batch_size=1, recompute=Recompute.SELECTIVE_OP, flash_attention=True)
    with pytest.raises(InvalidSpecError) as err:
        layer_activation_bytes(preset("deepseek-v3"), opts)
    assert err.value.field == "recompute"
    no_flash = ActivationOptions(seq_len=4096, micro_batch_size=1, recompute=Recompute.SELECTIVE_OP)
    with pytest.raises(InvalidSpecError, match="flash_attention"):
        layer_activation_bytes(preset("llama-3.1-8b"), no_flash)
