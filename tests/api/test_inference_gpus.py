"""``/v1/memory/inference``'s ``gpus_needed`` counts a sliding-window cache at its window, the
same cache its ``kv_cache_bytes`` reports (Mistral 7B §2: W = 4,096)."""

from __future__ import annotations

from tests.api.test_calculators import ok


def test_mistral_7b_at_32k_needs_the_gpus_of_its_capped_cache(client):
    body = {"model": {"preset": "mistral-7b"}, "seq_len": 32_768, "batch_size": 32, "gpu": "h100-sxm"}
    data = ok(client, "/v1/memory/inference", body)
    assert data["kv_cache_bytes"] == 2 * 32 * 8 * 128 * 2 * 4096 * 32  # 16 GiB: 32 layers x 4,096 slots per sequence
    usable_one_gpu = int(data["gpu_memory_bytes"] * 0.9) - 2 * 2**30
    assert data["weights_bytes"] + data["kv_cache_bytes"] <= usable_one_gpu
    assert data["gpus_needed"] == 1  # was 4: 32 x 32,768 tokens counted on every layer (128 GiB)
    assert "seq_len_warning" in data["assumptions"]  # the paper's context is 8,192
