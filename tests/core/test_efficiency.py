"""Kernel efficiencies (service.core.efficiency) and their catalog
(service/catalog/kernel_efficiency.json): the attention curves reproduce the published rates at the
measured points, overrides are checked, and every catalog value is a sourced fraction."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from service.catalog import loader
from service.core.efficiency import (
    DEFAULT_ATTENTION_RATIO,
    DEFAULT_COLLECTIVE_EFFICIENCY,
    DEFAULT_MATMUL_EFFICIENCY,
    DEFAULT_MEMORY_BANDWIDTH_EFFICIENCY,
    DEFAULT_SUSTAINED_FRACTION_OF_MAMF,
    MAX_BANDWIDTH_BYTES_PER_S,
    AttentionCurve,
    KernelEfficiency,
    check_bandwidth,
    check_fraction,
    default_efficiency,
    with_overrides,
)
from service.core.errors import InvalidSpecError
from service.services.efficiency import FRACTIONS, attention_curve, gpu_efficiency

H100_PEAK_TFLOPS = 989.0  # the dense BF16 peak FlashAttention-3's figures were measured against
TABLE = loader.kernel_efficiency()

# --- the attention curves at their measured points -----------------------------------------------


@pytest.mark.parametrize(
    ("implementation", "head_dim", "seq_len", "tflops"),
    [
        # Shah et al. 2024 (FlashAttention-3, arXiv 2407.08608) §4.1 Figure 5: BF16 causal forward, H100 SXM5
        ("flash3", 128, 16384, 616),
        ("flash3", 128, 512, 292),
        ("flash3", 64, 2048, 371),
        ("flash3", 256, 8192, 628),
        # the same figure's FlashAttention-2 and cuDNN bars
        ("flash2", 128, 16384, 335),
        ("cudnn", 128, 4096, 518),
    ],
)
def test_hopper_curves_are_exact_at_the_measured_points(implementation: str, head_dim: int, seq_len: int, tflops: float) -> None:
    forward, _ = attention_curve("hopper", implementation).fractions(seq_len, head_dim)
    assert float(forward) == pytest.approx(tflops / H100_PEAK_TFLOPS, rel=1e-12)


def test_hopper_backward_is_the_forward_times_the_measured_backward_ratio() -> None:
    # Shah et al. 2024 Figure 6 / Figure 5 (non-causal), head dim 128 at 16k: FlashAttention-3
    # backward 561 against forward 648
    _, backward = attention_curve("hopper", "flash3").fractions(16384, 128)
    assert float(backward) == pytest.approx(616 / H100_PEAK_TFLOPS * 561 / 648, rel=1e-12)


def test_ampere_flash2_runs_both_passes_at_the_forward_backward_rate() -> None:
    # Dao 2023 (FlashAttention-2, arXiv 2307.08691) §4.1 Figure 4(c): A100, causal, head dim 64,
    # forward + backward 171 TFLOP/s at 16k of the 312 peak
    forward, backward = attention_curve("ampere", "flash2").fractions(16384, 64)
    assert float(forward) == float(backward) == pytest.approx(171 / 312, rel=1e-12)


def test_curves_hold_flat_beyond_the_measured_ends() -> None:
    curve = attention_curve("hopper", "flash3")
    shortest, longest = (float(curve.fractions(s, 128)[0]) for s in (512, 16384))
    assert float(curve.fractions(128, 128)[0]) == shortest == pytest.approx(292 / H100_PEAK_TFLOPS, rel=1e-12)
    assert float(curve.fractions(1, 128)[0]) == shortest
    assert float(curve.fractions(131072, 128)[0]) == longest == pytest.approx(616 / H100_PEAK_TFLOPS, rel=1e-12)
    # head dimensions outside 64..256 take the nearest measured one
    assert float(curve.fractions(16384, 32)[0]) == pytest.approx(473 / H100_PEAK_TFLOPS, rel=1e-12)
    assert float(curve.fractions(16384, 512)[0]) == pytest.approx(642 / H100_PEAK_TFLOPS, rel=1e-12)


def test_curves_interpolate_in_log2_of_length_and_head_dim() -> None:
    curve = attention_curve("hopper", "flash3")
    # half-way (in log2) between 8k and 16k: the mean of 602 and 616
    mid_len = float(curve.fractions(8192 * math.sqrt(2), 128)[0])
    assert mid_len == pytest.approx((602 + 616) / 2 / H100_PEAK_TFLOPS, rel=1e-12)
    # head dim 64 * sqrt(2) is half-way (in log2) between 64 and 128: the mean of 473 and 616 at 16k
    mid_dim = float(curve.fractions(16384, 64 * math.sqrt(2))[0])
    assert mid_dim == pytest.approx((473 + 616) / 2 / H100_PEAK_TFLOPS, rel=1e-12)
    # a quarter of the way from 128 to 256: 3/4 of 616 + 1/4 of 642
    quarter = float(curve.fractions(16384, 128 * 2**0.25)[0])
    assert quarter == pytest.approx((0.75 * 616 + 0.25 * 642) / H100_PEAK_TFLOPS, rel=1e-12)


def test_curves_take_arrays_of_lengths() -> None:
    curve = attention_curve("hopper", "flash3")
    forward, backward = curve.fractions(np.array([512, 2048, 16384]), 128)
    assert forward == pytest.approx(np.array([292, 521, 616]) / H100_PEAK_TFLOPS, rel=1e-12)
    assert backward.shape == (3,) and np.all(backward < forward)  # FlashAttention-3's backward is the slower pass


def test_a_curve_with_one_head_dim() -> None:
    curve = AttentionCurve(name="toy", seq_lens=(1024.0, 4096.0), head_dims=(128.0,), forward=((0.2, 0.6),),
                           backward=((0.1, 0.3),))  # fmt: skip
    forward, backward = curve.fractions(2048, 64)  # log2 half-way; any head dim reads the one row
    assert (float(forward), float(backward)) == pytest.approx((0.4, 0.2), rel=1e-12)


# --- KernelEfficiency, its defaults and its overrides --------------------------------------------


def test_attention_fractions_without_a_curve_or_with_an_override() -> None:
    plain = KernelEfficiency(matmul=0.6)
    assert plain.attention_fractions(4096, 128) == (0.6 * DEFAULT_ATTENTION_RATIO, 0.6 * DEFAULT_ATTENTION_RATIO)
    flat = KernelEfficiency(matmul=0.6, attention=attention_curve("hopper", "flash3"), attention_override=0.5)
    assert flat.attention_fractions(512, 64) == (0.5, 0.5)


def test_default_efficiency_for_a_gpu_with_no_values() -> None:
    # MAMF x the A100-fitted 0.75, or the default MAMF 0.75 x 0.75 without one
    assert default_efficiency(0.8).matmul == pytest.approx(0.8 * DEFAULT_SUSTAINED_FRACTION_OF_MAMF, rel=1e-12)
    generic = default_efficiency(None)
    assert generic.matmul == pytest.approx(DEFAULT_MATMUL_EFFICIENCY * DEFAULT_SUSTAINED_FRACTION_OF_MAMF, rel=1e-12)
    assert generic.memory_bandwidth == DEFAULT_MEMORY_BANDWIDTH_EFFICIENCY
    assert generic.intra_node_collective == generic.inter_node_collective == DEFAULT_COLLECTIVE_EFFICIENCY
    assert generic.attention is None and generic.matmul_fp8 is None


def test_a_gpu_not_in_the_table_takes_the_generic_efficiencies_and_says_so() -> None:
    assert "l40s" in loader.gpus() and "l40s" not in TABLE["gpus"]
    efficiency, notes = gpu_efficiency("l40s", None)
    # every GPU takes the table's grouped-GEMM and MoE host terms (service.core.steptime_moe)
    moe = {"grouped_gemm_fixed_k": TABLE["grouped_gemm"]["fixed_k_bf16"], "grouped_gemm_fixed_k_fp8": TABLE["grouped_gemm"]["fixed_k_fp8"],
           "moe_layer_host_seconds": TABLE["moe_host"]["layer_seconds"],
           "adapter_layer_host_seconds": TABLE["adapter_host"]["layer_seconds"]}  # fmt: skip
    assert efficiency == dataclasses.replace(default_efficiency(None), **moe)
    assert notes["l40s.efficiency.moe_layer_host_seconds_source"].startswith("fitted")
    assert notes["l40s.efficiency.adapter_layer_host_seconds_source"].startswith("fitted")
    assert notes["l40s.family"] == "not listed (generic efficiencies)"
    assert notes["l40s.attention_kernel"].startswith("no measured curve")
    assert "no per-GPU value" in notes["l40s.efficiency.matmul_source"]
    with_mamf, _ = gpu_efficiency("l40s", 0.9)
    assert with_mamf.matmul == pytest.approx(0.9 * DEFAULT_SUSTAINED_FRACTION_OF_MAMF, rel=1e-12)


def test_a_listed_gpu_takes_its_values_and_its_familys_default_curve() -> None:
    efficiency, notes = gpu_efficiency("h100-sxm", 0.8)
    row = TABLE["gpus"]["h100-sxm"]
    for name in ("matmul", "matmul_fp8", "memory_bandwidth", "intra_node_collective", "inter_node_collective"):
        assert getattr(efficiency, name) == row[name], name
    assert efficiency.attention == attention_curve("hopper", TABLE["attention"]["hopper"]["default"])
    assert notes["h100-sxm.attention_kernel"] == "cudnn"
    chosen, _ = gpu_efficiency("h100-sxm", 0.8, attention_kernel="flash3")
    assert chosen.attention is not None and chosen.attention.name == "flash3"


def test_overrides_replace_only_what_they_name() -> None:
    base = KernelEfficiency(matmul=0.6, matmul_fp8=0.5, attention=attention_curve("hopper", "flash3"))
    assert with_overrides(base) is base
    assert with_overrides(base, matmul=None) is base
    changed = with_overrides(base, matmul=0.3, attention_override=1.0)
    assert (changed.matmul, changed.attention_override, changed.matmul_fp8) == (0.3, 1.0, 0.5)
    assert changed.attention is base.attention
    assert base.matmul == 0.6  # frozen: the base is not touched


@pytest.mark.parametrize("value", [0.0, -0.1, 1.5, math.nan, math.inf])
@pytest.mark.parametrize(("name", "field"), [("matmul", "efficiency.matmul"), ("attention_override", "efficiency.attention_core"),
                                             ("inter_node_collective", "efficiency.inter_node_collective")])  # fmt: skip
def test_an_override_outside_0_1_is_refused_naming_the_field(name: str, field: str, value: float) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        with_overrides(KernelEfficiency(matmul=0.6), **{name: value})
    assert caught.value.field == field and "[0.001, 1]" in caught.value.reason


def test_an_unknown_override_is_refused() -> None:
    with pytest.raises(InvalidSpecError) as caught:
        with_overrides(KernelEfficiency(matmul=0.6), attention=0.5)
    assert caught.value.field == "efficiency.attention"


def test_the_service_names_request_overrides_as_such() -> None:
    overrides = {"matmul": 0.3, "attention_core": 0.4, "memory_bandwidth": None}
    efficiency, notes = gpu_efficiency("h100-sxm", 0.8, overrides=overrides)
    assert (efficiency.matmul, efficiency.attention_override) == (0.3, 0.4)
    assert efficiency.memory_bandwidth == TABLE["gpus"]["h100-sxm"]["memory_bandwidth"]
    assert notes["h100-sxm.efficiency.matmul"] == 0.3 and notes["h100-sxm.efficiency.matmul_source"] == "request"
    assert notes["h100-sxm.efficiency.attention_core_source"] == "request"
    assert notes["h100-sxm.efficiency.memory_bandwidth_source"] != "request"


def test_fraction_and_bandwidth_checks() -> None:
    check_fraction("x", 1.0)
    check_fraction("x", None)
    with pytest.raises(InvalidSpecError):
        check_fraction("x", 0.0)
    check_bandwidth("intra", MAX_BANDWIDTH_BYTES_PER_S)
    for bad in (0.0, -1.0, MAX_BANDWIDTH_BYTES_PER_S * 1.01, math.inf, math.nan):
        with pytest.raises(InvalidSpecError) as caught:
            check_bandwidth("intra", bad)
        assert caught.value.field == "intra"


# --- the catalog ---------------------------------------------------------------------------------


def test_every_gpu_in_the_table_is_in_the_gpu_catalog() -> None:
    assert set(TABLE["gpus"]) <= set(loader.gpus())


def test_every_family_and_implementation_named_exists() -> None:
    families = TABLE["attention"]
    for gpu, row in TABLE["gpus"].items():
        assert row["family"] in families, gpu
    for family, table in families.items():
        assert table["default"] in table["implementations"], family
        assert table["default_source"], family
        assert table["measured_peak_tflops"] > 0
        assert table["seq_lens"] == sorted(table["seq_lens"])
        for name, entry in table["implementations"].items():
            assert entry["source"], (family, name)
            for dim, row in entry["head_dims"].items():
                for series in row.values():
                    assert len(series) == len(table["seq_lens"]), (family, name, dim)
            curve = attention_curve(family, name)  # every curve builds
            assert curve.head_dims == tuple(sorted(curve.head_dims))


def test_every_fraction_is_in_0_1_and_every_measured_value_has_a_source() -> None:
    for gpu, row in TABLE["gpus"].items():
        for name in FRACTIONS:
            if name in row:
                assert 0 < row[name] <= 1, (gpu, name)
                assert isinstance(row.get(f"{name}_source"), str) and row[f"{name}_source"].strip(), (gpu, name)
        assert not {k for k in row if k.endswith("_source")} - {f"{n}_source" for n in FRACTIONS}, gpu
    for family, table in TABLE["attention"].items():
        for name in table["implementations"]:
            curve = attention_curve(family, name)
            for rows in (curve.forward, curve.backward):
                for fractions in rows:
                    assert all(0 < f <= 1 for f in fractions), (family, name)


def test_every_gpu_in_the_catalog_has_a_kernel_efficiency() -> None:
    for gpu_id, row in loader.gpus().items():
        efficiency, notes = gpu_efficiency(gpu_id, row.get("matmul_efficiency"))
        for name in ("matmul", "memory_bandwidth", "intra_node_collective", "inter_node_collective"):
            assert 0 < getattr(efficiency, name) <= 1, (gpu_id, name)
        forward, backward = efficiency.attention_fractions(np.array([512, 8192]), 128)
        assert np.all((np.asarray(forward) > 0) & (np.asarray(forward) <= 1)), gpu_id
        assert np.all((np.asarray(backward) > 0) & (np.asarray(backward) <= 1)), gpu_id
        assert notes[f"{gpu_id}.attention_kernel"]
