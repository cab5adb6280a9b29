"""Tensor-parallel communication overlapped collective by collective (service.core.steptime
``tp_comm_layer_seconds``): each all-gather or reduce-scatter under the GEMM it feeds or follows
(Wang et al. 2023 §3), an all-reduce without sequence parallelism under the GEMM before it."""

from __future__ import annotations

import dataclasses

import pytest

from service.core.hardware import INTRA_NODE_LATENCY_SECONDS, ring_all_reduce_seconds
from service.core.steptime import OVERLAP_INTERFERENCE, Layout, Workload, group_link, step_time
from tests.core.helpers import hardware, preset

H100 = hardware("h100-sxm")


def _tp_seconds(arch, *, overlap: bool, sp: bool, tokens: int = 8192, tp: int = 8, frozen: bool = False) -> float:  # noqa: ANN001
    work = Workload(seq_len=tokens, global_batch_size=8, tp_comm_overlap=overlap)
    lay = Layout(tp=tp, pp=1, dp=1, cp=1, ep=1, zero_stage=1, offload_optimizer=False, micro_batch_size=1, recompute=0,
                 sequence_parallel=sp, virtual_stages=1, params_per_gpu=1e9)  # fmt: skip
    return float(step_time(arch, H100, work, lay).tp_comm_seconds)


def test_overlap_hides_at_most_what_the_collectives_cost_and_never_adds() -> None:
    for model in ("llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b"):
        arch = preset(model)
        for sp in (True, False):
            exposed, bare = _tp_seconds(arch, overlap=True, sp=sp), _tp_seconds(arch, overlap=False, sp=sp)
            assert OVERLAP_INTERFERENCE * bare <= exposed + 1e-12 and exposed < bare


def test_a_wide_model_hides_its_collectives_and_a_thin_projection_exposes_them() -> None:
    # 405B's projections are wide enough at tp 8 that only the interference of hidden communication remains for
    # its MLP; 8B at tp 8 has GEMMs shorter than its all-gathers and reduce-scatters, which stay partly exposed
    big, small = preset("llama-3.1-405b"), preset("llama-3.1-8b")
    ratio_big = _tp_seconds(big, overlap=True, sp=True) / _tp_seconds(big, overlap=False, sp=True)
    ratio_small = _tp_seconds(small, overlap=True, sp=True) / _tp_seconds(small, overlap=False, sp=True)
    assert OVERLAP_INTERFERENCE <= ratio_big < ratio_small < 1


def test_without_sequence_parallelism_two_all_reduces_hide_under_fewer_gemms() -> None:
    # a thin model (h 1024 at tp 8): the collectives are longer than their GEMMs; without sequence parallelism an
    # all-reduce after the output and the down projections has only those two to hide under, where the all-gathers
    # and reduce-scatters of sequence parallelism have all four: more of it stays exposed
    arch = dataclasses.replace(preset("llama-3.1-8b"), d_model=1024, n_heads=8, n_kv_heads=8, d_head=128, d_ff=4096)
    bare = _tp_seconds(arch, overlap=False, sp=False, tokens=4096)
    bandwidth, latency = group_link(H100, 8)
    one = float(ring_all_reduce_seconds(2 * 4096 * 1024, 8, bandwidth, latency))
    micro_batches = 8  # global batch 8 over dp 1 at micro-batch 1
    assert latency == INTRA_NODE_LATENCY_SECONDS and bare == pytest.approx(micro_batches * 4 * one * arch.n_layers, rel=1e-9)
    exposed = _tp_seconds(arch, overlap=True, sp=False, tokens=4096)
    assert OVERLAP_INTERFERENCE * bare < exposed < bare
    assert exposed > _tp_seconds(arch, overlap=True, sp=True, tokens=4096)
