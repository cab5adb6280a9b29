"""The host floor of a fine-tune's adapted layers (:mod:`service.core.steptime_finetune`): eager
layers no faster than the host issues them, a third more with a recomputed forward, none under CUDA
graphs and none for pre-training."""

from __future__ import annotations

from dataclasses import replace

import pytest

from service.core.compute import RC_FULL
from service.core.finetune_spec import FinetuneMethod, FinetuneSpec
from service.core.memory import Precision
from service.core.plan import PlanSpec, plan, workload_for
from service.core.steptime_finetune import adapter_forward_host_seconds, adapter_host_floor_seconds
from tests.core.helpers import preset
from tests.core.test_plan import hardware

H100 = hardware("h100-sxm")
FLOOR = H100.kernels.adapter_layer_host_seconds
LORA = FinetuneSpec(method=FinetuneMethod.LORA, rank=16)
# MLPerf Training's Llama-2-70B LoRA layout on 1,024 H100: one 8,192-token micro-batch a step per data-parallel rank
SCALE_OUT = PlanSpec(n_gpus=1024, seq_len=8192, global_batch_size=128, finetune=LORA, precision=Precision.FP8,
                     tp_comm_overlap=True, fixed={"tp": 4, "pp": 1, "cp": 2, "micro_batch_size": 1, "recompute": "none"},
                     top_k=1)  # fmt: skip


def test_the_floor_is_the_catalog_value_a_third_more_recomputed_and_none_under_graphs() -> None:
    assert 0.005 < FLOOR < 0.012  # fitted: 8.08 ms (kernel_efficiency.json adapter_host)
    eager, graphs = workload_for(SCALE_OUT), workload_for(replace(SCALE_OUT, cuda_graphs=True))
    assert adapter_host_floor_seconds(H100, eager, 0) == pytest.approx(FLOOR)
    assert adapter_host_floor_seconds(H100, eager, RC_FULL) == pytest.approx(FLOOR * 4 / 3)
    assert adapter_host_floor_seconds(H100, graphs, 0) == 0
    assert adapter_forward_host_seconds(H100, eager, 80) == pytest.approx(80 * FLOOR / 3)
    assert adapter_forward_host_seconds(H100, graphs, 80) == 0


def test_small_micro_batches_run_at_the_host_s_pace() -> None:
    arch = preset("llama-2-70b")
    eager = plan(arch, H100, SCALE_OUT).plans[0]
    graphs = plan(arch, H100, replace(SCALE_OUT, cuda_graphs=True)).plans[0]
    assert graphs.step["host_seconds"] == 0
    # eager: every one of the 80 layers takes the floor, the GPU's 5.7 ms a layer waiting for the host's 8.1 ms;
    # the output layer (in compute_seconds, not a layer) takes none
    layers_gpu = graphs.step["compute_seconds"] + graphs.step["tp_comm_seconds"] + graphs.step["cp_comm_seconds"]
    assert eager.step_seconds == pytest.approx(graphs.step_seconds + eager.step["host_seconds"], rel=1e-9)
    assert 80 * FLOOR <= eager.step["host_seconds"] + layers_gpu <= 80 * FLOOR + 0.01
    assert eager.step["host_seconds"] > 0.15


def test_large_micro_batches_and_pre_training_take_no_floor() -> None:
    arch = preset("llama-2-70b")
    # the same model on 8 GPUs at tp 4: 8,192 tokens a GPU a micro-batch, 10.8 ms a layer on the GPU
    small = replace(SCALE_OUT, n_gpus=8, global_batch_size=8, fixed={"tp": 4, "pp": 1, "cp": 1, "micro_batch_size": 1})
    assert plan(arch, H100, small).plans[0].step["host_seconds"] == 0
    # pre-training at the scale-out layout: no adapters, no floor (the catalog's value is an adapted layer's)
    pre = plan(arch, H100, replace(SCALE_OUT, finetune=None, fixed=SCALE_OUT.fixed | {"recompute": "full"})).plans[0]
    assert pre.step["host_seconds"] == 0
