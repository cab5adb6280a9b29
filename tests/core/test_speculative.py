"""Speculative decoding and prefix caching in the serving model."""

from __future__ import annotations

import pytest

from service.core.serving import ROOFLINE, EngineLimits, prefill_seconds, prompt_prefill_seconds
from service.core.speculative import DraftMethod, cached_prefix_tokens, expected_tokens, oversized_draft, speculation
from tests.core.helpers import hardware, preset

LLAMA_70B = preset("llama-3.1-70b")


@pytest.mark.parametrize(
    ("alpha", "k", "tokens"),
    [
        (0.8, 4, (1 - 0.8**5) / 0.2),  # Leviathan et al. 2023 eq. 1: 3.3616
        (0.0, 5, 1.0),  # nothing accepted: the model's own token only
        (1.0, 3, 4.0),  # everything accepted: k + 1
        (0.875, 1, 1.875),  # DeepSeek-V3's MTP, one drafted token accepted 85-90 % of the time
    ],
)
def test_tokens_a_verification_step_yields(alpha: float, k: int, tokens: float) -> None:
    assert expected_tokens(alpha, k) == pytest.approx(tokens)


def test_eagle_and_mtp_draft_with_one_layer_of_the_target() -> None:
    spec = speculation(DraftMethod.EAGLE, target=LLAMA_70B, tokens=3, acceptance_rate=0.8)
    assert spec.draft.n_layers == 1 and spec.draft.d_model == LLAMA_70B.d_model and spec.tokens_per_step == pytest.approx(2.952)
    with pytest.raises(ValueError):
        speculation(DraftMethod.DRAFT_MODEL, target=LLAMA_70B, tokens=3, acceptance_rate=0.8)


def test_a_cached_prefix_leaves_the_rest_of_the_prefill() -> None:
    h100 = hardware("h100-sxm")
    limits = EngineLimits(prefix_cache_hit_rate=0.563)  # DeepSeek's production hit rate
    cached = cached_prefix_tokens(5000, 0.563)
    assert cached == 2815 and cached_prefix_tokens(10, 1.0) == 9  # the last position is always computed
    rest = prompt_prefill_seconds(LLAMA_70B, h100, tp=4, prompt_tokens=5000, limits=limits)
    full = prefill_seconds(LLAMA_70B, h100, tp=4, prompt_tokens=5000)
    assert rest == pytest.approx(full - prefill_seconds(LLAMA_70B, h100, tp=4, prompt_tokens=2815))
    # later tokens attend over more: the uncached 44 % costs more than 44 % of the prefill
    assert 0.437 * full < rest < full
    assert prompt_prefill_seconds(LLAMA_70B, h100, tp=4, prompt_tokens=5000, limits=ROOFLINE) == full


def test_a_hybrids_one_layer_drafter_is_an_attention_layer() -> None:
    # Jamba 1.5 Mini mixes Mamba and attention layers; EAGLE's and MTP's drafter is one decoder
    # layer with attention, whatever the target's pattern
    jamba = preset("jamba-1.5-mini")
    spec = speculation(DraftMethod.MTP, target=jamba, tokens=1, acceptance_rate=0.8)
    assert (spec.draft.n_layers, spec.draft.attention_layers, spec.draft.layer_types) == (1, 1, None)
    assert jamba.attention_layers == 4


def test_a_draft_models_steps_read_its_own_kv_cache() -> None:
    # Qwen2.5-0.5B caches 2 KV heads of 64 over 24 layers (12,288 bytes a token in bf16); scaled from
    # Llama-3.1-70B's 8 heads of 128 by its layer count it would be 98,304: eight times the read
    from service.core.dtypes import Dtype
    from service.core.memory import kv_cache_bytes
    from service.core.serving import decode_step_seconds, token_step_seconds

    h100, drafter = hardware("h100-sxm"), preset("qwen2.5-0.5b")
    spec = speculation(DraftMethod.DRAFT_MODEL, target=LLAMA_70B, tokens=4, acceptance_rate=0.7, draft_model=drafter)
    per_token = kv_cache_bytes(LLAMA_70B, seq_len=1, batch_size=1, kv_dtype=Dtype.FP8)
    common = {"tp": 4, "batch": 64, "context_tokens": 5000.0, "weights_bytes": 70 * 10**9}
    step, _ = token_step_seconds(LLAMA_70B, h100, kv_bytes_per_token=per_token, limits=EngineLimits(
        layer_overhead_seconds=0.0, host_overhead_seconds=0.0, speculation=spec), **common)  # fmt: skip
    verify, _ = decode_step_seconds(LLAMA_70B, h100, kv_bytes_per_token=per_token, tokens_per_sequence=5, **common)
    share = 494_032_768 / 70_553_706_496  # the drafter's parameters over the target's
    own = kv_cache_bytes(drafter, seq_len=1, batch_size=1, kv_dtype=Dtype.FP8)
    assert own == 6144
    draft, _ = decode_step_seconds(drafter, h100, kv_bytes_per_token=own, **common | {"weights_bytes": round(70e9 * share)})
    assert float(step) == pytest.approx((float(verify) + 4 * float(draft)) / spec.tokens_per_step, rel=1e-6)


def test_a_drafter_takes_memory_beside_the_target() -> None:
    # Llama-3.1-8B drafting for Llama-3.1-70B on 2 H100: its weights sit beside the target's and its
    # KV cache (131,072 bytes a token in bf16) beside the target's (327,680); EAGLE's one layer shares
    # the target's embedding and output layer, so only the layer's weights are added
    from service.core.dtypes import Dtype
    from service.core.params import count_params
    from service.core.serving import replica, replica_kv_cache_bytes, weight_bytes

    h100, drafter = hardware("h100-sxm"), preset("llama-3.1-8b")
    weights = weight_bytes(LLAMA_70B, Dtype.FP8)
    common = {"tp": 2, "weights": weights, "kv_dtype": Dtype.BF16, "prompt_tokens": 4000, "output_tokens": 500}
    plain = replica(LLAMA_70B, h100, **common)
    for spec, added in (
        (speculation(DraftMethod.DRAFT_MODEL, target=LLAMA_70B, tokens=4, acceptance_rate=0.7, draft_model=drafter),
         count_params(drafter).total),
        (speculation(DraftMethod.EAGLE, target=LLAMA_70B, tokens=3, acceptance_rate=0.8), None),
    ):  # fmt: skip
        if added is None:  # its layer and its 2h -> h input projection, whole on each of the 2 GPUs
            added = count_params(spec.draft).non_embedding + 2 * 16384 * 8192
        r = replica(LLAMA_70B, h100, limits=EngineLimits(speculation=spec), **common)
        draft_weights = round(weights.total_bytes * added / count_params(LLAMA_70B).total)
        per_sequence = plain.kv_cache_bytes_per_sequence + replica_kv_cache_bytes(spec.draft, tp=2, seq_len=4500,
                                                                                  kv_dtype=Dtype.BF16)  # fmt: skip
        assert r.kv_cache_bytes_per_sequence == per_sequence
        assert r.max_batch == (plain.usable_memory_bytes - weights.total_bytes - draft_weights) // per_sequence
        assert r.max_batch < plain.max_batch


def test_the_drafter_prefills_the_prompt_after_the_target() -> None:
    # vLLM runs the drafter over the prompt in the step that prefills it, after the target (V0
    # spec_decode_worker._run_no_spec: the scorer, then the proposer, "so that the KV cache is consistent";
    # V1 gpu_model_runner: the drafter takes the step's every scheduled token and the target's hidden states), so
    # the first token waits for both. Llama-3.2-1B drafting for Llama-3.1-70B on 2 H100, 4,000-token prompt: its 16
    # layers' matmul weights, 16 x (2 x 2,048^2 + 2 x 2,048 x 512 + 3 x 2,048 x 8,192) = 973,078,528, take
    # 2 x 4,000 x 973,078,528 / 2 GPUs / (989.5 TFLOP/s x 0.54) = 7.28 ms; its attention core, all-reduces and
    # last-token logits add about 3 ms
    from service.core.dtypes import Dtype
    from service.core.serving import replica, serving_cost, weight_bytes

    h100, drafter = hardware("h100-sxm"), preset("llama-3.2-1b")
    spec = speculation(DraftMethod.DRAFT_MODEL, target=LLAMA_70B, tokens=4, acceptance_rate=0.7, draft_model=drafter)
    common = {"tp": 2, "weights": weight_bytes(LLAMA_70B, Dtype.BF16), "kv_dtype": Dtype.BF16, "prompt_tokens": 4000,
              "output_tokens": 500, "batch": 8}  # fmt: skip
    plain = replica(LLAMA_70B, h100, **common)
    drafted = replica(LLAMA_70B, h100, limits=EngineLimits(speculation=spec), **common)
    target = prefill_seconds(LLAMA_70B, h100, tp=2, prompt_tokens=4000)
    own = prefill_seconds(drafter, h100, tp=2, prompt_tokens=4000)
    assert plain.prefill_seconds == target
    assert drafted.prefill_seconds == pytest.approx(target + own, rel=1e-12)
    matmuls = 2 * 4000 * 973_078_528 / 2 / (989.5e12 * 0.54)
    assert matmuls == pytest.approx(7.2845e-3, rel=1e-4)
    assert matmuls < own < matmuls + 4e-3
    ttft_gain = drafted.time_to_first_token_seconds - drafted.decode_step_seconds
    assert ttft_gain == pytest.approx(target + own, rel=1e-12)
    price = {"usd_per_gpu_hour": 3.0, "prompt_tokens": 4000, "output_tokens": 500}
    inputs = serving_cost(drafted, **price).usd_per_million_input_tokens
    assert inputs == pytest.approx(6.0 / 3600 * (target + own) / 4000 * 1e6, rel=1e-12)


def test_eagle_prefills_its_one_layer_and_a_cached_prefix_spares_both() -> None:
    # EAGLE's head is one decoder layer of the target's width over the prompt's features: its prefill is that
    # layer's and the shared output layer's for the last token, after its 2h -> h input projection (EAGLE §3),
    # whole on each of the 4 GPUs: 2 x 5,000 x 16,384 x 8,192 FLOPs at 989.5 TFLOP/s x 0.54 = 2.512 ms;
    # a prefix-cache hit leaves both models the rest
    h100 = hardware("h100-sxm")
    spec = speculation(DraftMethod.EAGLE, target=LLAMA_70B, tokens=3, acceptance_rate=0.8)
    limits = EngineLimits(speculation=spec)
    one = prefill_seconds(spec.draft, h100, tp=4, prompt_tokens=5000)
    full = prefill_seconds(LLAMA_70B, h100, tp=4, prompt_tokens=5000)
    projection = 2 * 5000 * 16384 * 8192 / (989.5e12 * 0.54)
    assert projection == pytest.approx(2.5119e-3, rel=1e-4)
    assert prompt_prefill_seconds(LLAMA_70B, h100, tp=4, prompt_tokens=5000, limits=limits) == pytest.approx(
        full + one + projection, rel=1e-9
    )
    assert one == pytest.approx(full / 80, rel=0.05)  # one of 80 layers (the last-token logits are small)
    cached = EngineLimits(speculation=spec, prefix_cache_hit_rate=0.563)
    rest = prompt_prefill_seconds(LLAMA_70B, h100, tp=4, prompt_tokens=5000, limits=cached)
    prefix = prefill_seconds(LLAMA_70B, h100, tp=4, prompt_tokens=2815) + prefill_seconds(
        spec.draft, h100, tp=4, prompt_tokens=2815
    )
    assert rest == pytest.approx(full + one + projection * (5000 - 2815) / 5000 - prefix, rel=1e-9)


def test_a_drafter_larger_than_its_target_is_never_faster() -> None:
    # dense: 70.6 B against 8.0 B; a mixture target is compared by all its parameters (Mixtral 8x7B's
    # 46.7 B), a mixture drafter by its parameters a token (what a draft step computes)
    big, small = preset("llama-3.1-70b"), preset("llama-3.1-8b")
    assert oversized_draft(big, small) == (
        "the drafter's 70,553,706,496 parameters a token exceed the target's 8,030,261,248: each draft step costs "
        "more than a target step, so speculative decoding is never faster (Leviathan et al. 2023 §3.4)"
    )
    assert oversized_draft(small, big) is None and oversized_draft(small, small) is None
    mixtral = preset("mixtral-8x7b")
    assert oversized_draft(small, mixtral) is None  # 8.0 B a token against 46.7 B
    assert oversized_draft(mixtral, small) is not None  # 12.9 B a token against 8.0 B


def test_eagle_and_mtp_heads_project_the_feature_and_embedding_to_the_width() -> None:
    # EAGLE (Li et al. 2024 §3) and DeepSeek-V3's MTP (§2.2 eq. 21) project [feature; embedding], 2h values, to h
    # before their layer: 2 x 8,192^2 = 134,217,728 weights for Llama-3.1-70B, whole on every tensor rank. At batch 1
    # the projection is a kernel of its own bound by its read on each GPU (its weights at the target's 70e9 /
    # 70,553,706,496 bytes a parameter, one row in and out in 16 bits) at H100's read rate; 3 draft steps a verification
    import dataclasses

    from service.core.serving import token_step_seconds

    h100 = hardware("h100-sxm")
    for method in (DraftMethod.EAGLE, DraftMethod.MTP):
        spec = speculation(method, target=LLAMA_70B, tokens=3, acceptance_rate=0.8)
        assert (spec.input_projection, spec.projection_params) == ((16384, 8192), 134_217_728)
    assert speculation(DraftMethod.DRAFT_MODEL, target=LLAMA_70B, tokens=3, acceptance_rate=0.8,
                       draft_model=preset("llama-3.2-1b")).input_projection is None  # fmt: skip
    bare = dataclasses.replace(spec, input_projection=None)
    common = {"tp": 4, "batch": 1, "context_tokens": 1000.0, "weights_bytes": 70 * 10**9, "kv_bytes_per_token": 163840}

    def step(s) -> float:
        return float(token_step_seconds(LLAMA_70B, h100, limits=EngineLimits(speculation=s), **common)[0])

    rate = h100.memory_bandwidth_bytes_per_s * h100.kernels.memory_bandwidth
    added = 3 * (134_217_728 * 70e9 / 70_553_706_496 + 2 * 16384 + 2 * 8192) / rate / spec.tokens_per_step
    assert step(spec) - step(bare) == pytest.approx(added, rel=1e-3)
    assert added == pytest.approx(44.90e-6, rel=1e-3)
