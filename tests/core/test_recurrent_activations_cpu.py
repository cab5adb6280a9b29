"""Training activations of Mamba, Mamba-2 and RWKV-4 layers on the CPU convention: what transformers'
reference torch code keeps (``service.core.recurrent_activations_cpu``), against the bytes measured on
the CPU (``validation/measurements/recurrent_activations.json``, ``validation/measure_recurrent_acts.py``).
No torch: the measurements are data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from service.core.activations import ActivationOptions, layer_activation_bytes
from service.core.architecture import LayerType
from service.core.hf_config import architecture_from_hf_config
from service.core.kernels import DeviceConvention, Kernels
from service.core.recurrent_activations import mixer_activation_bytes
from service.core.recurrent_activations_cpu import MAMBA2_CHUNK_TOKENS, cpu_mixer_bytes
from tests.core.helpers import preset

MEASURED = json.loads((Path(__file__).parents[2] / "validation/measurements/recurrent_activations.json").read_text())
RECORDS = MEASURED["records"]
CPU = Kernels(device=DeviceConvention.CPU)


def per_layer(record: dict, kernels: Kernels) -> int:
    arch = architecture_from_hf_config(record["hf_config"])
    opts = ActivationOptions(seq_len=record["seq_len"], micro_batch_size=record["micro_batch_size"],
                             element_bytes=record["element_bytes"], kernels=kernels)  # fmt: skip
    return layer_activation_bytes(arch, opts).total_bytes


def test_every_family_precision_and_shape_is_measured() -> None:
    assert MEASURED["environment"]["device"] == "cpu"
    assert {r["hf_config"]["model_type"] for r in RECORDS} == {"mamba", "mamba2", "rwkv"}
    assert {r["precision"] for r in RECORDS} == {"bf16", "fp32"}
    for family in ("mamba", "mamba2", "rwkv"):
        rows = [r for r in RECORDS if r["hf_config"]["model_type"] == family]
        assert len({r["hf_config"]["hidden_size"] for r in rows}) >= 2  # two widths
        assert len({(r["seq_len"], r["micro_batch_size"]) for r in rows}) >= 3  # several (s, b)


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r["case"])
def test_cpu_convention_is_within_15_percent_of_the_measured_layer(record) -> None:
    estimate, measured = per_layer(record, CPU), record["measured_bytes"]
    assert abs(estimate - measured) <= 0.15 * measured, f"{estimate:,} vs {measured:,}"


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r["case"])
def test_the_fused_kernels_count_stays_the_cuda_convention(record) -> None:
    # the CUDA kernels keep a small part of what the reference loops keep (RWKV's WKV kernel the least)
    cuda = per_layer(record, Kernels())
    assert cuda == per_layer(record, Kernels(device=DeviceConvention.CUDA))
    assert cuda < 0.75 * record["measured_bytes"]


def test_mamba2_chunks_are_padded_to_whole_chunks() -> None:
    # mamba2_chunk_scan pads the sequence to a multiple of chunk_size: one token more than a whole chunk
    # adds a chunk of C x C blocks (L, G and M's copy, fp32) per head and sequence
    arch = preset("mamba2-2.7b")

    def kept(s: int) -> int:
        return cpu_mixer_bytes(arch, LayerType.MAMBA2, seq_len=s, micro_batch_size=1, element_bytes=2)

    c, heads = MAMBA2_CHUNK_TOKENS, arch.ssm_n_heads
    assert kept(c + 1) - kept(c) > 3 * 4 * c * c * heads
    assert kept(c) - kept(c - 1) < 3 * 4 * c * c * heads / 50


def test_mamba_keeps_an_fp32_state_per_token() -> None:
    # mamba_selective_scan's loop keeps each step's fp32 state (I*N) and its 16-bit cast: doubling the
    # sequence doubles them, far beyond the fused kernel's chunk states
    arch = preset("mamba-2.8b")
    inner, n = 2 * arch.d_model, arch.ssm_state_size

    def kept(s: int) -> int:
        return cpu_mixer_bytes(arch, LayerType.MAMBA, seq_len=s, micro_batch_size=1, element_bytes=2)

    assert kept(2048) - kept(1024) >= 1024 * inner * n * (4 + 2 + 2 * 4)  # state, cast, discrete A and B


def test_tensor_parallel_ranks_split_the_cpu_count() -> None:
    arch = preset("mamba2-2.7b")
    one = mixer_activation_bytes(arch, LayerType.MAMBA2, seq_len=4096, micro_batch_size=1, element_bytes=2,
                                 device=DeviceConvention.CPU)  # fmt: skip
    two = mixer_activation_bytes(arch, LayerType.MAMBA2, seq_len=4096, micro_batch_size=1, element_bytes=2, tp=2,
                                 device=DeviceConvention.CPU)  # fmt: skip
    assert two.sharded_bytes == math.ceil(one.sharded_bytes / 2) and two.replicated_bytes == one.replicated_bytes


def test_gated_deltanet_keeps_its_kernel_count_on_the_cpu() -> None:
    arch = preset("qwen3-next-80b-a3b")
    kwargs = dict(seq_len=4096, micro_batch_size=1, element_bytes=2)
    cuda = mixer_activation_bytes(arch, LayerType.GATED_DELTANET, **kwargs)
    assert cuda == mixer_activation_bytes(arch, LayerType.GATED_DELTANET, device=DeviceConvention.CPU, **kwargs)
    with pytest.raises(ValueError):
        cpu_mixer_bytes(arch, LayerType.GATED_DELTANET, **kwargs)
