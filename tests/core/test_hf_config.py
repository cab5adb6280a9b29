"""``config.json`` mapping, MLA, sliding windows and shared experts against the reference implementation.

``validation/measurements/hf_models.json`` holds what ``transformers`` builds from each hand-written
config on the meta device (``make measure-hf`` re-measures; torch is not imported here): parameter
counts, and for tiny sliding-window and MLA models the bytes of the library's KV cache after a prompt
and after one decoded token. Every count here is exact.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.core.architecture import Architecture
from service.core.compute import attention_score_flops_per_token, inference_flops
from service.core.dtypes import Dtype
from service.core.errors import InvalidSpecError
from service.core.hf_config import SUPPORTED_MODEL_TYPES, architecture_from_hf_config, map_hf_config
from service.core.memory import kv_cache_bytes, kv_cache_elements_per_token_per_layer
from service.core.params import count_params
from service.core.spec import make_architecture

MEASURED = json.loads((Path(__file__).resolve().parents[2] / "validation" / "measurements" / "hf_models.json").read_text())
MODELS = MEASURED["models"]
# the recurrent and hybrid families' counts (validation/measure_recurrent.py), checked in tests/core/test_recurrent.py
RECURRENT = json.loads(
    (Path(__file__).resolve().parents[2] / "validation" / "measurements" / "recurrent_models.json").read_text()
)


def test_every_mapped_model_type_is_measured():
    measured_types = {m["config"]["model_type"] for m in [*MODELS.values(), *RECURRENT["models"].values()]}
    assert measured_types == set(SUPPORTED_MODEL_TYPES)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_parameter_count_equals_the_reference_implementation(name):
    m = MODELS[name]
    arch = architecture_from_hf_config(m["config"])
    # DeepSeek-V3's router bias is a buffer in transformers, a tensor in the checkpoint: counted by us
    assert count_params(arch).total == m["parameters"] + m["checkpoint_buffers"]


# published totals (model cards / papers), as a check that the hand-written configs are the real ones
PUBLISHED_BILLIONS = {
    "llama-3.1-8b": 8.03, "llama-3.1-70b": 70.6, "llama-3.1-405b": 405.9, "llama-3.2-1b": 1.24, "mixtral-8x7b": 46.7,
    "mixtral-8x22b": 140.6, "qwen2.5-7b": 7.61, "qwen2.5-0.5b": 0.494, "qwen3-8b": 8.19, "gemma-2-9b": 9.24,
    "gemma-2-27b": 27.2, "phi-3-mini-4k": 3.82, "phi-4": 14.7, "deepseek-v2": 236, "deepseek-v2-lite": 15.7,
    "deepseek-v3": 671, "falcon-40b": 41.3, "qwen1.5-moe-a2.7b": 14.3, "qwen3-30b-a3b": 30.5, "qwen3-235b-a22b": 235.1,
    "gpt-oss-20b": 20.9, "gpt-oss-120b": 116.8, "olmoe-1b-7b": 6.92, "granite-3.0-1b-a400m": 1.33, "dbrx-base": 132,
    "phi-2": 2.78, "phi-1.5": 1.42, "phi-3.5-moe": 41.9, "command-r-v01": 35.0, "command-r-plus": 103.8,
    "stablelm-3b-4e1t": 2.8, "starcoder": 15.5, "opt-125m": 0.125, "opt-1.3b": 1.316, "bloom-560m": 0.559,
    "bloom-176b": 176.2, "mpt-7b": 6.65,
}  # fmt: skip


@pytest.mark.parametrize(("name", "billions"), sorted(PUBLISHED_BILLIONS.items()))
def test_hand_written_configs_match_the_published_sizes(name, billions):
    total = count_params(architecture_from_hf_config(MODELS[name]["config"])).total
    assert total / 1e9 == pytest.approx(billions, rel=0.005)


def test_deepseek_v3_is_671b_total_37b_active():
    """DeepSeek-V3 technical report (arXiv 2412.19437) abstract: 671B total, 37B activated per token,
    the 14B multi-token-prediction module excluded (§4.2 counts the main model only)."""
    b = count_params(architecture_from_hf_config(MODELS["deepseek-v3"]["config"]))
    assert b.total == 671_026_419_200  # transformers' 671,026,404,352 parameters + 58 x 256 router biases
    assert b.active == 37_552_297_472
    # DeepSeek's "activated" leaves out the input embedding (a lookup, no FLOPs): 36.6B -> "37B"
    assert round((b.active - b.embedding) / 1e9) == 37


def test_deepseek_v2_active_parameters():
    """DeepSeek-V2 (arXiv 2405.04434) abstract: 236B total, 21B activated; V2-Lite: 15.7B, 2.4B."""
    v2 = count_params(architecture_from_hf_config(MODELS["deepseek-v2"]["config"]))
    lite = count_params(architecture_from_hf_config(MODELS["deepseek-v2-lite"]["config"]))
    # activated parameters without the input embedding, as DeepSeek counts them (see V3 above)
    assert round((v2.active - v2.embedding) / 1e9) == 21
    assert (lite.active - lite.embedding) / 1e9 == pytest.approx(2.4, rel=0.03)  # 2.45


def test_mixtral_active_parameters():
    """Jiang et al. 2024 (Mixtral of Experts) §2: 47B total, 13B active."""
    b = count_params(architecture_from_hf_config(MODELS["mixtral-8x7b"]["config"]))
    assert b.active == 12_879_925_248


CACHED = [(name, row) for name, m in MODELS.items() for row in m.get("kv_cache", [])]


@pytest.mark.parametrize(("name", "row"), CACHED, ids=[f"{n}-{r['prompt_tokens']}" for n, r in CACHED])
def test_kv_cache_bytes_against_the_reference_cache(name, row):
    """The cache transformers returns after a prompt, and after one more decoded token. Its
    sliding-window layers keep ``sliding_window - 1`` tokens between steps and append the new one, so
    a step holds (and attends over) ``sliding_window``: ours counts those, one token per full
    sliding layer more than the cache keeps between steps. MLA caches the latent (kv_lora_rank) and
    the rotary key (qk_rope_head_dim) per token and layer."""
    arch = architecture_from_hf_config(MODELS[name]["config"])
    per_token_layer = tensor_bytes = kv_cache_elements_per_token_per_layer(arch) * 2  # bf16
    for tokens, measured in ((row["prompt_tokens"], row["bytes_after_prompt"]),
                             (row["prompt_tokens"] + 1, row["bytes_after_one_decoded_token"])):  # fmt: skip
        ours = kv_cache_bytes(arch, seq_len=tokens, batch_size=1, kv_dtype=Dtype.BF16)
        full_windows = arch.local_layers if arch.sliding_window and tokens >= arch.sliding_window else 0
        assert ours == measured + full_windows * per_token_layer, (tokens, ours, measured)
    assert tensor_bytes > 0


def test_mla_cache_is_the_latent_not_the_heads():
    """DeepSeek-V2 §2.1.2, Table 1: MLA caches (d_c + d_h^R) = 4.5 d_h elements per token and layer
    (d_c = 4 d_h = 512, d_h^R = 64 for V3): 61 x 576 x 2 bytes = 70,272 bytes per token in bf16, 1/71.1
    of the 128 heads x (192 + 128) keys and values of the decompressed attention."""
    arch = architecture_from_hf_config(MODELS["deepseek-v3"]["config"])
    assert kv_cache_elements_per_token_per_layer(arch) == 576
    assert kv_cache_bytes(arch, seq_len=1, batch_size=1, kv_dtype=Dtype.BF16) == 70_272
    assert kv_cache_bytes(arch, seq_len=32_768, batch_size=1, kv_dtype=Dtype.BF16) == 70_272 * 32_768


def test_mistral_32k_cache_is_capped_at_its_4096_window():
    """Mistral 7B v0.1 (Jiang et al. 2023 §2): a 4,096-token rolling buffer, so a 32K context caches
    4,096 tokens per layer, 1/8 of the uncapped cache."""
    arch = architecture_from_hf_config(MODELS["mistral-7b-v0.1"]["config"])
    capped = kv_cache_bytes(arch, seq_len=32_768, batch_size=1, kv_dtype=Dtype.BF16)
    assert capped == 2 * 32 * 8 * 128 * 4096 * 2
    assert kv_cache_bytes(arch, seq_len=4096, batch_size=1, kv_dtype=Dtype.BF16) == capped


def test_gemma2_alternates_local_and_global_layers():
    arch = architecture_from_hf_config(MODELS["gemma-2-9b"]["config"])
    assert (arch.sliding_window, arch.local_layers) == (4096, 21)
    per_token = 2 * 8 * 256 * 2
    assert kv_cache_bytes(arch, seq_len=8192, batch_size=1, kv_dtype=Dtype.BF16) == per_token * (21 * 8192 + 21 * 4096)


def test_sliding_window_attention_flops_use_the_window():
    """Beltagy et al. 2020 §3.1: a window of w costs O(n*w), not O(n^2)."""
    arch = architecture_from_hf_config(MODELS["mistral-7b-v0.1"]["config"])
    full = make_architecture(**{**_fields(arch), "sliding_window": None})
    assert attention_score_flops_per_token(arch, 32_768, causal=False) * 8 == attention_score_flops_per_token(
        full, 32_768, causal=False
    )
    assert attention_score_flops_per_token(arch, 2048, causal=True) == attention_score_flops_per_token(full, 2048, causal=True)
    # causal average over s = 32768 with w = 4096: w - w^2/(2s) keys per query
    expected = 4.0 * arch.q_dim * arch.n_layers * (4096 - 4096**2 / (2 * 32_768))
    assert attention_score_flops_per_token(arch, 32_768, causal=True) == pytest.approx(expected, rel=1e-12)
    # decoding: the tokens after the window attend to 4,096 keys each
    r = inference_flops(arch, prompt_tokens=0, output_tokens=10_000)
    attention = r.total_flops - r.flops_per_token_weights * 10_000  # the weights part: 2*W per decode step
    keys = sum(min(t, 4096) for t in range(1, 10_001))
    assert attention == pytest.approx(4.0 * arch.q_dim * arch.n_layers * keys, rel=1e-12)


def test_mla_attention_flops_use_its_head_widths():
    """DeepSeek-V2 §2.1: scores over qk_nope + qk_rope = 192 per head, values of 128."""
    arch = architecture_from_hf_config(MODELS["deepseek-v3"]["config"])
    assert attention_score_flops_per_token(arch, 1000, causal=False) == 2.0 * 128 * (192 + 128) * 61 * 1000


def _fields(arch: Architecture) -> dict:
    names = ("n_layers", "d_model", "n_heads", "n_kv_heads", "d_head", "d_ff", "vocab_size", "ffn", "norm",
             "tied_embeddings", "max_seq_len", "sliding_window")  # fmt: skip
    return {n: getattr(arch, n) for n in names}


def test_defaults_and_context_are_reported():
    m = map_hf_config({"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                       "num_attention_heads": 4, "vocab_size": 100})  # fmt: skip
    notes = dict(m.assumptions)
    assert "num_key_value_heads" in notes and "tie_word_embeddings" in notes and "max_position_embeddings" in notes
    yarn = map_hf_config(MODELS["deepseek-v3"]["config"])
    assert yarn.context_tokens == 163_840
    qwen_yarn = dict(MODELS["qwen2.5-7b"]["config"]) | {
        "max_position_embeddings": 32768,
        "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768},
    }
    assert map_hf_config(qwen_yarn).context_tokens == 131_072


@pytest.mark.parametrize(
    ("config", "field", "words"),
    [
        ({"model_type": "bert"}, "hf_config.model_type", "model_type 'bert' is an encoder-only model"),
        ({"model_type": "made_up"}, "hf_config.model_type", "unsupported model_type 'made_up'; supported: llama"),
        ({}, "hf_config.model_type", "missing"),
        ({"model_type": "llama", "hidden_size": 64}, "hf_config.num_hidden_layers",
         "num_hidden_layers, num_attention_heads, intermediate_size, vocab_size (missing)"),
        ({"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
          "num_attention_heads": 5, "vocab_size": 100}, "hf_config.num_attention_heads", "does not divide"),
        ({"model_type": "llama", "hidden_size": "64", "intermediate_size": 128, "num_hidden_layers": 2,
          "num_attention_heads": 4, "vocab_size": 100}, "hf_config.hidden_size", "must be an integer"),
        ({"model_type": "mixtral", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
          "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 100, "num_local_experts": 2,
          "num_experts_per_tok": 3},
         "hf_config.num_experts_per_tok", "exceeds"),
    ],
)  # fmt: skip
def test_bad_configs_name_the_key(config, field, words):
    with pytest.raises(InvalidSpecError) as err:
        architecture_from_hf_config(config)
    assert err.value.field.startswith(field)
    assert words in err.value.reason


def test_a_missing_window_takes_the_library_default_and_says_so():
    """MistralConfig's sliding_window defaults to 4096: a config without the key gets it, noted."""
    config = {k: v for k, v in MODELS["mistral-7b-v0.1"]["config"].items() if k != "sliding_window"}
    m = map_hf_config(config)
    assert dict(m.fields)["sliding_window"] == 4096
    assert "4096" in dict(m.assumptions)["sliding_window"]
    assert "sliding_window" not in dict(map_hf_config(MODELS["mistral-7b-v0.3"]["config"]).fields)  # explicit null


def test_a_multimodal_gemma3_config_is_read_from_its_text_config():
    text = MODELS["gemma-3-27b"]["config"]
    wrapped = {"model_type": "gemma3", "text_config": {k: v for k, v in text.items() if k != "model_type"},
               "vision_config": {"hidden_size": 1152}}  # fmt: skip
    arch = architecture_from_hf_config(wrapped)
    assert count_params(arch).total == MODELS["gemma-3-27b"]["parameters"]
    assert "vision tower and projector are not counted" in dict(arch.assumptions)["text_config"]
    assert (arch.sliding_window, arch.local_layers, arch.max_seq_len) == (1024, 52, 131_072)


# the text_config of google/gemma-3-{4b,12b,27b}-it as the hub publishes it: a nested config is saved
# as its difference from Gemma3TextConfig's defaults, so the 4B names no heads and none names vocab_size
GEMMA3_HUB_TEXT_CONFIGS = {
    "4b": {"hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text", "num_hidden_layers": 34,
           "rope_scaling": {"factor": 8.0, "rope_type": "linear"}, "sliding_window": 1024},
    "12b": {"hidden_size": 3840, "intermediate_size": 15360, "model_type": "gemma3_text", "num_attention_heads": 16,
            "num_hidden_layers": 48, "num_key_value_heads": 8, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
            "sliding_window": 1024},
    "27b": {"head_dim": 128, "hidden_size": 5376, "intermediate_size": 21504, "model_type": "gemma3_text",
            "num_attention_heads": 32, "num_hidden_layers": 62, "num_key_value_heads": 16, "query_pre_attn_scalar": 168,
            "rope_scaling": {"factor": 8.0, "rope_type": "linear"}, "sliding_window": 1024},
}  # fmt: skip
# Gemma 3 Technical Report (arXiv 2503.19786), Table 1: non-embedding parameters of the language model
GEMMA3_NON_EMBEDDING_MILLIONS = {"4b": 3_209, "12b": 10_759, "27b": 25_600}


@pytest.mark.parametrize("size", sorted(GEMMA3_HUB_TEXT_CONFIGS))
def test_published_gemma3_configs_take_the_text_config_class_defaults(size):
    """What the text_config leaves out is Gemma3TextConfig's default (8 heads, 4 KV heads, head_dim 256,
    vocab 262,208), each said; the counts match the report's, and the 27B's the measured full config's."""
    config = {"model_type": "gemma3", "mm_tokens_per_image": 256, "text_config": GEMMA3_HUB_TEXT_CONFIGS[size],
              "vision_config": {"hidden_size": 1152, "model_type": "siglip_vision_model"}}  # fmt: skip
    arch = architecture_from_hf_config(config)
    total = count_params(arch).total
    non_embedding = total - arch.vocab_size * arch.d_model  # tied: one table
    assert non_embedding / 1e6 == pytest.approx(GEMMA3_NON_EMBEDDING_MILLIONS[size], rel=1e-3)
    assert arch.vocab_size == 262_208 and "vocab_size" in dict(arch.assumptions)
    if size == "4b":
        assert (arch.n_heads, arch.n_kv_heads, arch.d_head) == (8, 4, 256)
        assert {"num_attention_heads", "num_key_value_heads"} <= set(dict(arch.assumptions))
    if size == "27b":
        assert total == MODELS["gemma-3-27b"]["parameters"]


def test_gemma3_text_without_kv_heads_or_window_takes_the_class_defaults():
    """Gemma3TextConfig: num_key_value_heads 4 (not the head count), sliding_window 4096."""
    given = MODELS["gemma-3-1b"]["config"] | {"num_attention_heads": 8}
    f = dict(map_hf_config({k: v for k, v in given.items() if k not in ("num_key_value_heads", "sliding_window")}).fields)
    assert (f["n_kv_heads"], f["sliding_window"]) == (4, 4096)


def test_qwen2_moe_dense_layers_and_shared_expert():
    """Qwen1.5-MoE-A2.7B: 60 experts of 1408, 4 active, one shared expert of 5632 with a sigmoid gate;
    14.3B total, 2.7B activated (Qwen blog, 'Qwen1.5-MoE'), exact against transformers above."""
    arch = architecture_from_hf_config(MODELS["qwen1.5-moe-a2.7b"]["config"])
    b = count_params(arch)
    assert (arch.n_shared_experts, arch.d_ff_shared, arch.shared_expert_gate) == (1, 5632, True)
    assert b.active / 1e9 == pytest.approx(2.7, rel=0.01)  # "A2.7B": 2.69B activated
    tiny = architecture_from_hf_config(MODELS["tiny-qwen2-moe-dense-layers"]["config"])
    assert tiny.first_k_dense == 3  # decoder_sparse_step 2 and mlp_only_layers [3]: layers 0, 2, 3 dense


def test_qwen3_moe_module_by_module():
    """Qwen3-30B-A3B (Qwen3 Technical Report, arXiv 2505.09388, Table 2; model card: 30.5B total, 3.3B
    activated): 48 layers, 32 query and 4 KV heads of head_dim 128 (wider than 2048 / 32), q/k RMSNorms,
    128 experts of 768 with 8 routed per token and no shared expert, a bias-free router, untied head."""
    arch = architecture_from_hf_config(MODELS["qwen3-30b-a3b"]["config"])
    b = count_params(arch)
    attention = 2048 * 32 * 128 + 2 * 2048 * 4 * 128 + 32 * 128 * 2048 + 2 * 128  # q, k and v, o; q_norm, k_norm
    experts = 128 * 3 * 2048 * 768 + 128 * 2048  # gate_up and down of each expert; router
    layer = attention + experts + 2 * 2048  # two block norms
    assert b.total == 48 * layer + 2 * 151_936 * 2048 + 2048 == 30_532_122_624 == MODELS["qwen3-30b-a3b"]["parameters"]
    assert (arch.n_shared_experts, arch.first_k_dense, arch.d_head, arch.qk_norm) == (0, 0, 128, True)
    assert round(b.active / 1e9, 1) == 3.4  # 3.35B: the card's "3.3B activated" (3.04B without the input embedding)
    big = count_params(architecture_from_hf_config(MODELS["qwen3-235b-a22b"]["config"]))
    assert (big.total, big.active) == (235_093_634_560, 22_190_763_520)  # "235B total, 22B activated"
    tiny = architecture_from_hf_config(MODELS["tiny-qwen3-moe-dense-layers"]["config"])
    assert (tiny.first_k_dense, tiny.d_ff_dense, tiny.d_ff) == (3, 160, 32)  # layers 0, 2, 3 keep intermediate_size
    notes = dict(map_hf_config(MODELS["qwen3-30b-a3b"]["config"]).assumptions)
    assert "renormalised" in notes["norm_topk_prob"]
    window = architecture_from_hf_config(MODELS["tiny-qwen3-moe-window"]["config"])
    assert (window.sliding_window, window.local_layers) == (16, 3)  # use_sliding_window: every layer


def test_adafactor_factors_every_mla_and_expert_matrix():
    """Shazeer & Stern 2018 §3: only matrices are factored; what is left of DeepSeek-V3 are its vectors:
    61 x 2 block norms + the final norm, the q_a (1536) and kv_a (512) norms, 58 x 256 router biases."""
    from service.core.memory import factored_elements

    arch = architecture_from_hf_config(MODELS["deepseek-v3"]["config"])
    _, matrix_params = factored_elements(arch)
    vectors = 61 * 2 * 7168 + 7168 + 61 * (1536 + 512) + 58 * 256
    assert count_params(arch).total - matrix_params == vectors


def test_step_time_computes_the_mla_and_shared_expert_flops():
    """The planner's step-time compute for DeepSeek-V3 is its matmul FLOPs (MLA projections, 8 routed
    + 1 shared expert, router, logits: 6 x active matmul weights per token) and causal attention at the
    matmul rate and the routed tokens' permutations through HBM, plus the few per cent of elementwise
    traffic (norms, activations, fp32 logits) the model adds for any transformer and the grouped GEMMs'
    shape terms (service.core.steptime_moe: the weight gradients reduce over 1,024 tokens per expert,
    0.86 of the dense rate at K0 = 190); MHA-sized projections or missing shared experts would be ~1.7x."""
    from service.core.memory import Parallelism, params_per_gpu
    from service.core.params import active_matmul_weights
    from service.core.steptime import Layout, Workload, memory_rate, step_time
    from tests.core.helpers import hardware

    arch = architecture_from_hf_config(MODELS["deepseek-v3"]["config"])
    hw = hardware("h100-sxm")
    # one micro-batch of 8 sequences: 1,024 tokens per expert, enough for each expert's GEMM to be
    # compute-bound (at 128 tokens per expert its weights' reads bound it: a small per-expert batch)
    layout = Layout(tp=1, pp=1, dp=1, cp=1, ep=1, zero_stage=1, offload_optimizer=False, micro_batch_size=8, recompute=0,
                    sequence_parallel=False, virtual_stages=1, params_per_gpu=params_per_gpu(arch, Parallelism()))  # fmt: skip
    compute = float(step_time(arch, hw, Workload(seq_len=4096, global_batch_size=8), layout).compute_seconds)
    tokens, rate = 8 * 4096, hw.peak_flops_per_s * hw.kernels.matmul
    matmuls = 6 * active_matmul_weights(arch) * tokens / rate
    forward, backward = hw.kernels.attention_fractions(4096, arch.d_head)  # the kernel's measured rates, backward 2.5x the FLOPs
    attention = (
        tokens * attention_score_flops_per_token(arch, 4096, causal=True) * (1 / forward + 2.5 / backward) / hw.peak_flops_per_s
    )
    # two permutation passes (DeepEP), each reading and writing the 8 routed copies of 7,168 BF16 values, forward and backward
    permutations = 2 * 2 * 2 * 2 * 8 * 7168 * tokens * arch.n_layers / memory_rate(hw)
    assert 1.0 < compute / (matmuls + attention + permutations) < 1.10


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"intermediate_size": 10**400}, "hf_config.intermediate_size"),
        ({"hidden_size": 10**400}, "hf_config.hidden_size"),
        ({"model_type": ["llama"]}, "hf_config.model_type"),
        ({"num_key_value_heads": 0}, "hf_config.num_key_value_heads"),
        (
            {"rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 10**400}},
            "hf_config.rope_scaling.original_max_position_embeddings",
        ),
        (
            {"rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": "8192"}},
            "hf_config.rope_scaling.original_max_position_embeddings",
        ),
    ],
)
def test_hostile_config_values_name_their_key(change: dict, field: str) -> None:
    """Values no real config holds (integers past any float, wrong types, zero heads) are refused
    with the config key, never an overflow or a silent default."""
    base = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
            "intermediate_size": 11008, "vocab_size": 32000}  # fmt: skip
    with pytest.raises(InvalidSpecError) as e:
        architecture_from_hf_config(base | change)
    assert e.value.field == field


def _wrap(model_type: str, text: dict, **top) -> dict:
    return {"model_type": model_type, "text_config": text, "vision_config": {"hidden_size": 32}} | top


def test_multimodal_wrappers_count_their_language_model():
    """Mistral Small 3.1 (mistral3): the measured language model and lm_head; with the measured vision
    tower and projector, the card's 24B. Qwen2.5-VL-7B, flat as published, has Qwen2.5-7B's language
    model exactly (7,615,616,512 both)."""
    small = MODELS["mistral-small-3.1-24b"]
    arch = architecture_from_hf_config(small["config"])
    assert count_params(arch).total == small["parameters"] == 23_572_403_200
    assert round((small["parameters"] + small["vision_parameters"]) / 1e9) == 24
    assert (arch.tied_embeddings, arch.sliding_window, arch.max_seq_len) == (False, None, 131_072)
    assert "mistral language model" in dict(arch.assumptions)["text_config"]
    vl = architecture_from_hf_config(MODELS["qwen2.5-vl-7b"]["config"])
    assert count_params(vl).total == MODELS["qwen2.5-7b"]["parameters"] == MODELS["qwen2.5-vl-7b"]["parameters"]
    assert vl.qkv_bias and map_hf_config(MODELS["qwen2.5-vl-7b"]["config"]).key_prefix == "hf_config"  # flat: top-level keys


def test_a_wrapper_ties_lm_head_as_its_own_config_says():
    """transformers 5 ties a wrapper's lm_head by the wrapper's tie_word_embeddings: Mistral3Config and
    Gemma3Config default to true; LlavaConfig and Qwen2VLConfig forward a true from text_config,
    LlavaNextConfig does not (all measured above)."""
    tiny = map_hf_config(MODELS["tiny-mistral3"]["config"])
    assert dict(tiny.fields)["tied_embeddings"] is True
    assert "mistral3 config class's default" in dict(tiny.assumptions)["tie_word_embeddings"]
    assert dict(map_hf_config(MODELS["tiny-llava"]["config"]).fields)["tied_embeddings"] is True
    assert dict(map_hf_config(MODELS["tiny-llava-next-qwen2"]["config"]).fields)["tied_embeddings"] is False
    assert dict(map_hf_config(MODELS["tiny-qwen2-vl-flat"]["config"]).fields)["tied_embeddings"] is True
    untied = MODELS["tiny-mistral3"]["config"] | {"tie_word_embeddings": False}
    assert dict(map_hf_config(untied).fields)["tied_embeddings"] is False


def test_qwen_vl_text_ignores_head_dim_and_defaults_to_8_kv_heads():
    """Qwen2_5_VLAttention takes head_dim = hidden_size / heads; Qwen2_5_VLTextConfig has 8 KV heads by
    default and windows from max_window_layers on (tiny: layers 2 and 3, measured in its cache)."""
    text = MODELS["tiny-qwen2.5-vl-window"]["config"]["text_config"]
    arch = architecture_from_hf_config(_wrap("qwen2_5_vl", text | {"head_dim": 999}))
    assert (arch.d_head, arch.n_kv_heads, arch.sliding_window, arch.local_layers) == (8, 8, 16, 2)
    assert "8" in dict(arch.assumptions)["num_key_value_heads"]


@pytest.mark.parametrize(
    ("config", "field", "words"),
    [
        (_wrap("mistral3", {"hidden_size": 64}), "hf_config.text_config.num_hidden_layers", "missing"),
        (_wrap("llava", {"model_type": "clip_text_model", "hidden_size": 64}), "hf_config.text_config.model_type",
         "unsupported language model 'clip_text_model'"),
        (_wrap("llava", {"model_type": 7}), "hf_config.text_config.model_type", "must be a string"),
        ({"model_type": "mistral3", "text_config": "mistral"}, "hf_config.text_config", "text_config (a JSON object)"),
        ({"model_type": "gemma3"}, "hf_config.text_config", "text_config"),
        (_wrap("mistral3", {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 5,
                            "vocab_size": 100}), "hf_config.text_config.num_attention_heads", "does not divide"),
        (_wrap("gemma3", {"hidden_size": "64", "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                          "vocab_size": 100}), "hf_config.text_config.hidden_size", "must be an integer"),
        (_wrap("qwen2_5_vl", {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                              "vocab_size": 100, "num_key_value_heads": [2]}), "hf_config.text_config", ""),
    ],
)  # fmt: skip
def test_a_wrappers_422_names_the_text_config_key(config, field, words):
    with pytest.raises(InvalidSpecError) as err:
        architecture_from_hf_config(config)
    assert err.value.field.startswith(field), err.value.field
    assert words in err.value.reason


def test_granite_and_smollm3_are_llama_shaped():
    """Granite 3.0 8B (report, Table 1): the multipliers scale activations and add nothing. SmolLM3:
    4 KV heads and tied embeddings by default; with use_sliding_window the NoPE layers (every 4th)
    use the window."""
    granite = architecture_from_hf_config(MODELS["granite-3.0-8b"]["config"])
    assert count_params(granite).total == 8_170_848_256
    assert "no parameters" in dict(granite.assumptions)["multipliers"]
    tiny = architecture_from_hf_config(MODELS["tiny-granite-bias"]["config"])
    assert tiny.bias  # attention_bias and mlp_bias: every projection
    smol = map_hf_config(MODELS["tiny-smollm3-window"]["config"])
    fields, notes = dict(smol.fields), dict(smol.assumptions)
    assert (fields["n_kv_heads"], fields["tied_embeddings"], fields["sliding_window"], fields["sliding_window_layers"]) == (
        4,
        True,
        16,
        2,
    )
    assert "4" in notes["num_key_value_heads"] and "tie_word_embeddings" in notes
    every_other = MODELS["tiny-smollm3-window"]["config"] | {"no_rope_layers": [1, 0] * 4}
    assert dict(map_hf_config(every_other).fields)["sliding_window_layers"] == 4


def test_starcoder2_module_by_module():
    """StarCoder2 (``modeling_starcoder2.py``): q/k/v/o and c_fc/c_proj with biases, three LayerNorms
    of weight and bias per layer pair plus the final one, 2 KV heads and tied embeddings by default."""
    arch = architecture_from_hf_config(MODELS["tiny-starcoder2-window"]["config"])
    h, f, kv = 64, 256, 2 * 16
    attention = 2 * h * h + 2 * h * kv + (h + 2 * kv + h)  # q, o; k, v; biases
    mlp = 2 * h * f + f + h
    assert (
        count_params(arch).total
        == 3 * (attention + mlp + 2 * 2 * h) + 2 * h + 128 * h
        == MODELS["tiny-starcoder2-window"]["parameters"]
    )
    assert (arch.n_kv_heads, arch.tied_embeddings, arch.sliding_window, arch.local_layers) == (2, True, 16, 3)
    assert not architecture_from_hf_config(MODELS["tiny-starcoder2-no-bias"]["config"]).bias


def test_glm4_moe_shared_experts_dense_layers_and_router_bias():
    """GLM-4.5-Air: 128 routed experts of 1408 (8 active) and one shared, the first layer dense
    (10944), Q/K/V biases, 96 heads of 128 on a 4096 model, the router's e_score_correction_bias
    counted as the checkpoint stores it (45 x 128 = 5,760 beyond transformers' parameters):
    106.85B, the card's "106B total" (the MTP layer is not built)."""
    m = MODELS["glm-4.5-air"]
    arch = architecture_from_hf_config(m["config"])
    assert (arch.n_experts, arch.experts_per_token, arch.first_k_dense, arch.d_ff_dense, arch.shared_expert_width) == (
        128,
        8,
        1,
        10944,
        1408,
    )
    assert arch.qkv_bias and not arch.bias and arch.router_bias and arch.q_dim == 96 * 128
    assert count_params(arch).total == m["parameters"] + 45 * 128 == 106_852_251_264
    assert "not counted" in dict(arch.assumptions)["num_nextn_predict_layers"]
    tiny = architecture_from_hf_config(MODELS["tiny-glm4-moe"]["config"])
    assert (tiny.qk_norm, tiny.first_k_dense, tiny.n_shared_experts, tiny.shared_expert_width) == (True, 2, 2, 64)
    dense = architecture_from_hf_config(MODELS["tiny-glm4-moe"]["config"] | {"first_k_dense_replace": 4})
    assert not dense.is_moe and dense.d_ff == 160


def test_gpt_oss_sinks_biases_and_alternating_windows():
    """gpt-oss model card (OpenAI 2025), Table 1: gpt-oss-20b 20.9B total, 3.6B active; gpt-oss-120b
    116.8B, 5.1B (active without the embedding): q/k/v/o biases, one sink logit per head, experts'
    biases and a biased router; 128-token windows on every other layer."""
    for name, active in (("gpt-oss-20b", 3.6), ("gpt-oss-120b", 5.1)):
        arch = architecture_from_hf_config(MODELS[name]["config"])
        b = count_params(arch)
        assert round((b.active - b.embedding) / 1e9, 1) == active
        assert (arch.attention_sinks, arch.bias, arch.router_bias, arch.sliding_window) == (True, True, True, 128)
        assert arch.local_layers == arch.n_layers // 2
    arch = architecture_from_hf_config(MODELS["tiny-gpt-oss-window"]["config"])
    without_sinks = make_architecture(**{**_fields(arch), "n_kv_heads": 8, "d_head": 64, "bias": True, "n_experts": 4,
                                         "experts_per_token": 2, "router_bias": True})  # fmt: skip
    assert count_params(arch).total - count_params(without_sinks).total == 3 * 8  # 8 heads x 3 layers
    assert (arch.d_head, arch.n_kv_heads, arch.local_layers) == (64, 8, 2)  # class defaults; layers 0 and 2 slide
    notes = dict(map_hf_config(MODELS["tiny-gpt-oss-window"]["config"]).assumptions)
    assert "64" in notes["head_dim"]
    with pytest.raises(InvalidSpecError) as err:
        architecture_from_hf_config(MODELS["tiny-gpt-oss-window"]["config"] | {"attention_bias": False})
    assert err.value.field == "hf_config.attention_bias"


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"model_type": "glm4_moe", "n_routed_experts": "128"}, "hf_config.n_routed_experts"),
        ({"model_type": "glm4_moe", "first_k_dense_replace": -1}, "hf_config.first_k_dense_replace"),
        ({"model_type": "glm4_moe", "n_shared_experts": 10**400}, "hf_config.n_shared_experts"),
        ({"model_type": "gpt_oss", "num_local_experts": 1}, "hf_config.num_local_experts"),
        ({"model_type": "glm4_moe", "moe_intermediate_size": "a"}, "hf_config.moe_intermediate_size"),  # not d_ff's usual key
        ({"model_type": "mixtral", "num_local_experts": 10**9}, "hf_config.num_local_experts"),
        ({"model_type": "smollm3", "use_sliding_window": True, "sliding_window": 16, "no_rope_layer_interval": 0},
         "hf_config.no_rope_layer_interval"),
        ({"model_type": "llava", "text_config": {"model_type": "llama", "hidden_size": 10**400}}, "hf_config.text_config."),
        # a per-layer rule is not walked over 10**15 layers (it hung), nor divided by a zero step or pattern (a 500)
        ({"model_type": "mistral", "num_hidden_layers": 10**15}, "hf_config.num_hidden_layers"),
        ({"model_type": "qwen2_moe", "num_hidden_layers": 10**15}, "hf_config.num_hidden_layers"),
        ({"model_type": "qwen2_moe", "decoder_sparse_step": 0}, "hf_config.decoder_sparse_step"),
        ({"model_type": "gemma3_text", "sliding_window_pattern": 0}, "hf_config.sliding_window_pattern"),
    ],
)  # fmt: skip
def test_hostile_values_of_the_new_types_name_their_key(config: dict, field: str) -> None:
    base = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 100}
    with pytest.raises(InvalidSpecError) as e:
        architecture_from_hf_config(base | config)
    assert e.value.field.startswith(field), e.value.field


def test_llama_shaped_families_take_their_config_classes_defaults():
    """GLM-4 (head_dim 128, 2 KV heads, Q/K/V biases, four norms a layer), ERNIE 4.5 (head_dim 128,
    2 KV heads, tied; use_bias on every projection), Seed-OSS (head_dim 128, 8 KV heads, Q/K/V
    biases), Arcee (a 2-matrix ReLU^2 MLP), Hunyuan and EXAONE 4.0 (per-head q/k norms): each
    measured above; here what was defaulted."""
    glm4 = map_hf_config(MODELS["tiny-glm4"]["config"])
    f, notes = dict(glm4.fields), dict(glm4.assumptions)
    assert (f["d_head"], f["n_kv_heads"], f["qkv_bias"], f["norms_per_layer"]) == (128, 2, True, 4)
    assert {"head_dim", "num_key_value_heads", "attention_bias"} <= set(notes)
    ernie = architecture_from_hf_config(MODELS["tiny-ernie4.5-bias"]["config"])
    assert (ernie.d_head, ernie.n_kv_heads, ernie.tied_embeddings, ernie.bias) == (128, 2, True, True)
    seed = architecture_from_hf_config(MODELS["tiny-seed-oss"]["config"])
    assert (seed.d_head, seed.n_kv_heads, seed.qkv_bias, seed.bias) == (128, 8, True, False)
    assert architecture_from_hf_config(MODELS["tiny-seed-oss-all-biases"]["config"]).bias
    arcee = architecture_from_hf_config(MODELS["tiny-arcee"]["config"])
    assert arcee.ffn.value == "gelu"  # up and down only
    assert architecture_from_hf_config(MODELS["tiny-hunyuan-v1-dense"]["config"]).qk_norm


@pytest.mark.parametrize(
    ("name", "change", "field"),
    [
        ("tiny-seed-oss", {"mlp_bias": True}, "hf_config.mlp_bias"),
        ("tiny-seed-oss", {"attention_bias": False, "attention_out_bias": True}, "hf_config.attention_out_bias"),
        ("tiny-arcee", {"attention_bias": True}, "hf_config.attention_bias"),
        ("tiny-hunyuan-v1-dense", {"head_dim": None}, "hf_config.head_dim"),
        ("tiny-hunyuan-v1-dense", {"attention_bias": True}, "hf_config.attention_bias"),
        ("tiny-exaone4-window", {"sliding_window_pattern": 0}, "hf_config.sliding_window_pattern"),
        ("tiny-exaone4-window", {"sliding_window_pattern": [4]}, "hf_config.sliding_window_pattern"),
    ],
)
def test_unmodelled_combinations_are_refused_naming_the_key(name, change, field):
    with pytest.raises(InvalidSpecError) as err:
        architecture_from_hf_config(MODELS[name]["config"] | change)
    assert err.value.field == field


def test_exaone4_window_patterns():
    """Exaone4Config: an integer pattern p slides every layer but each p-th; a string repeats from
    layer 0 ('LLLG': 3 of every 4); layer_types win; no sliding_window, no windows."""
    tiny = architecture_from_hf_config(MODELS["tiny-exaone4-window"]["config"])
    assert (tiny.sliding_window, tiny.local_layers, tiny.qk_norm, tiny.norms_per_layer) == (16, 4, True, 2)
    lllg = {k: v for k, v in MODELS["tiny-exaone4-lllg"]["config"].items() if k != "layer_types"}
    assert architecture_from_hf_config(lllg).local_layers == 6
    assert architecture_from_hf_config(MODELS["tiny-exaone4-window"]["config"] | {"sliding_window": None}).sliding_window is None
    assert (
        "32"
        in dict(map_hf_config({k: v for k, v in lllg.items() if k != "num_key_value_heads"}).assumptions)["num_key_value_heads"]
    )


def test_llama4_interleaved_moe_shared_expert_and_chunks():
    """Llama 4 (``modeling_llama4.py``; Meta's model cards: Scout 17B active of 109B, Maverick 17B of
    400B, both with the vision encoder). Scout: 16 experts of 8192 and one shared on all 48 layers;
    Maverick: 128 experts on every other layer, the 24 others dense MLPs of 16384. The language
    models are measured exactly; with the measured vision encoder and projector (871,932,416) the
    totals round to the cards'; active = embedding + lm_head + attention + one routed and the
    shared expert per MoE layer (+ the dense MLPs)."""
    scout, maverick = MODELS["llama-4-scout-17b-16e"], MODELS["llama-4-maverick-17b-128e"]
    s, m = architecture_from_hf_config(scout["config"]), architecture_from_hf_config(maverick["config"])
    assert (s.n_experts, s.experts_per_token, s.moe_layers, s.dense_mlp_layers, s.shared_expert_width) == (16, 1, 48, 0, 8192)
    assert (m.n_experts, m.moe_layers, m.dense_mlp_layers, m.d_ff_dense, m.shared_expert_width) == (128, 24, 24, 16384, 8192)
    assert not (s.router_bias or s.shared_expert_gate or s.qk_norm or s.bias or s.tied_embeddings)
    sb, mb = count_params(s), count_params(m)
    assert (sb.total, mb.total) == (scout["parameters"], maverick["parameters"]) == (107_769_861_120, 400_711_848_960)
    assert scout["vision_parameters"] == maverick["vision_parameters"] == 871_932_416
    assert round((sb.total + scout["vision_parameters"]) / 1e9) == 109
    assert (mb.total + maverick["vision_parameters"]) / 1e9 == pytest.approx(400, rel=0.005)  # 401.58
    h, f, attention = 5120, 8192, 2 * 5120 * 5120 + 2 * 5120 * 1024
    head = 2 * 202_048 * h + h  # embedding, lm_head, final norm
    layer_norms = 2 * h
    assert sb.active == head + 48 * (attention + 2 * 3 * h * f + h * 16 + layer_norms) == 17_172_894_720
    assert mb.active == head + 48 * (attention + layer_norms) + 24 * (2 * 3 * h * f + h * 128) + 24 * 3 * h * 16384
    assert round(sb.active / 1e9) == round(mb.active / 1e9) == 17
    # 8192-token chunks on the RoPE layers (3 of every 4), the chunking approximation and the
    # interleaving said
    assert (s.sliding_window, s.local_layers, m.local_layers) == (8192, 36, 36)
    notes = dict(m.assumptions)
    assert "interleaved" in notes["first_k_dense"] and "24 dense layers" in notes["first_k_dense"]
    assert "1 to 8192" in notes["attention_chunk_size"] and "overstated" in notes["attention_chunk_size"]
    assert "no parameters" in dict(s.assumptions)["use_qk_norm"]


def test_llama4_tiny_configs_layer_rules_and_tying():
    """The tiny configs keep the structure: interleave_moe_layer_step 2 (layers 1, 3, 5 MoE), a listed
    moe_layers, an empty one (no MoE layer: a dense model of intermediate_size_mlp), the NoPE layers
    outside the chunks, and lm_head tied by text_config's key alone (Llama4ForCausalLM ties its own)."""
    tiny = architecture_from_hf_config(MODELS["tiny-llama4"]["config"])
    assert (tiny.moe_layers, tiny.first_k_dense, tiny.d_ff_dense, tiny.local_layers) == (3, 3, 96, 5)
    listed = map_hf_config(MODELS["tiny-llama4-moe-layers"]["config"])
    fields = dict(listed.fields)
    assert (fields["first_k_dense"], fields["sliding_window_layers"], fields["tied_embeddings"]) == (2, 2, True)
    assert "not read" in dict(listed.assumptions)["tie_word_embeddings"]
    dense = map_hf_config(MODELS["tiny-llama4-text-dense"]["config"])
    fields, notes = dict(dense.fields), dict(dense.assumptions)
    assert (fields["d_ff"], fields["d_head"], fields["n_kv_heads"], fields.get("n_experts", 1)) == (96, 128, 8, 1)
    assert {"head_dim", "num_key_value_heads", "attention_chunk_size", "moe_layers"} <= set(notes)
    step4 = MODELS["tiny-llama4"]["config"]["text_config"] | {"interleave_moe_layer_step": 4}
    assert architecture_from_hf_config(_wrap("llama4", step4)).moe_layers == 1  # layer 3 only
    unchunked = MODELS["tiny-llama4"]["config"]["text_config"] | {"attention_chunk_size": None}
    assert architecture_from_hf_config(_wrap("llama4", unchunked)).sliding_window is None


_TINY_L4_TEXT = {"hidden_size": 64, "intermediate_size": 32, "num_hidden_layers": 4, "num_attention_heads": 4,
                 "num_key_value_heads": 2, "vocab_size": 128}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"num_local_experts": 1}, "num_local_experts"),
        ({"num_local_experts": "16"}, "num_local_experts"),
        ({"num_experts_per_tok": 17}, "num_experts_per_tok"),  # of the default 16
        ({"intermediate_size_mlp": 0, "interleave_moe_layer_step": 2}, "intermediate_size_mlp"),
        ({"intermediate_size_mlp": 10**400, "moe_layers": []}, "intermediate_size_mlp"),
        ({"interleave_moe_layer_step": 0}, "interleave_moe_layer_step"),
        ({"moe_layers": [0, "1"]}, "moe_layers"),
        ({"moe_layers": 2}, "moe_layers"),
        ({"no_rope_layers": [1, 0]}, "no_rope_layers"),
        ({"no_rope_layer_interval": -4}, "no_rope_layer_interval"),
        ({"attention_chunk_size": 0}, "attention_chunk_size"),
        ({"attention_chunk_size": 10**400}, "attention_chunk_size"),
        ({"attention_bias": True}, "attention_bias"),
        ({"num_hidden_layers": 10**400}, "num_hidden_layers"),
        ({"hidden_size": None}, "hidden_size"),
    ],
)  # fmt: skip
def test_llama4_bad_text_config_is_refused_naming_text_config_key(change, field):
    with pytest.raises(InvalidSpecError) as err:
        architecture_from_hf_config(_wrap("llama4", _TINY_L4_TEXT | change))
    assert err.value.field == f"hf_config.text_config.{field}", (err.value.field, err.value.reason)
    with pytest.raises(InvalidSpecError) as err:  # the text model alone names the top-level key
        architecture_from_hf_config({"model_type": "llama4_text"} | _TINY_L4_TEXT | change)
    assert err.value.field == f"hf_config.{field}", (err.value.field, err.value.reason)


def test_olmo2_full_width_qk_norms_module_by_module():
    """OLMo 2 (``modeling_olmo2.py``): q_norm over a*d_head and k_norm over k*d_head (not 2*d_head per
    head as Qwen3's), two RMSNorms a layer (after attention, after the MLP), no biases."""
    m = MODELS["tiny-olmo2"]
    arch = architecture_from_hf_config(m["config"])
    assert arch.qk_norm_full_width and not arch.qk_norm and arch.norms_per_layer == 2
    h, f, q, kv, vocab = 64, 128, 4 * 16, 2 * 16, 128
    layer = h * q + 2 * h * kv + q * h + (q + kv) + 3 * h * f + 2 * h
    assert count_params(arch).total == 2 * layer + h + 2 * vocab * h == m["parameters"]
    per_head = make_architecture(**{**_fields(arch), "qk_norm_full_width": False, "qk_norm": True})
    assert count_params(arch).total - count_params(per_head).total == 2 * ((q + kv) - 2 * 16)
    wide = architecture_from_hf_config(MODELS["tiny-olmo2-head-dim"]["config"])
    assert (wide.d_head, wide.n_kv_heads, wide.tied_embeddings) == (32, 4, True)  # head_dim given, KV heads = heads
    with pytest.raises(InvalidSpecError) as err:
        architecture_from_hf_config(m["config"] | {"attention_bias": True})
    assert err.value.field == "hf_config.attention_bias"


@pytest.mark.parametrize(
    ("change", "field"),
    [({"qk_norm": True}, "qk_norm_full_width"),
     ({"kv_lora_rank": 16, "qk_nope_head_dim": 8, "qk_rope_head_dim": 8, "v_head_dim": 8}, "qk_norm_full_width")],
)  # fmt: skip
def test_full_width_qk_norm_excludes_per_head_norms_and_mla(change, field):
    arch = architecture_from_hf_config(MODELS["tiny-olmo2"]["config"])
    with pytest.raises(InvalidSpecError) as err:
        make_architecture(**{**_fields(arch), "qk_norm_full_width": True, **change})
    assert err.value.field == f"model.{field}", err.value.reason


def test_olmoe_full_width_qk_norms_and_experts_module_by_module():
    """OLMoE (``modeling_olmoe.py``): q_norm over hidden_size, k_norm over k*d_head (OLMo 2's), 4 SwiGLU
    experts of 32 and a bias-free 64 x 4 router in each layer; the paper's 6.9B total, 1.3B active."""
    m = MODELS["tiny-olmoe"]
    arch = architecture_from_hf_config(m["config"])
    assert arch.qk_norm_full_width and (arch.n_experts, arch.experts_per_token) == (4, 2)
    h, f, q, kv, vocab = 64, 32, 64, 2 * 16, 128
    layer = h * q + 2 * h * kv + q * h + (q + kv) + 4 * 3 * h * f + h * 4 + 2 * h
    assert count_params(arch).total == 2 * layer + h + 2 * vocab * h == m["parameters"]
    assert dict(map_hf_config(m["config"]).key_names)["n_experts"] == "num_local_experts"  # the alias given
    big = count_params(architecture_from_hf_config(MODELS["olmoe-1b-7b"]["config"]))
    assert big.active / 1e9 == pytest.approx(1.28, abs=0.01)  # "1B active" without the embedding's 0.1B lookup


def test_granite_moe_experts_shared_mlp_and_defaults():
    """Granite 3.0 MoE: 8 experts, 2 routed unless given (the config class's), a bias-free router;
    granitemoeshared adds one gated shared MLP of shared_intermediate_size (3*h*s, no output gate)."""
    m = map_hf_config(MODELS["tiny-granitemoe"]["config"])
    f, notes = dict(m.fields), dict(m.assumptions)
    assert (f["n_experts"], f["experts_per_token"]) == (8, 2) and {"num_local_experts", "num_experts_per_tok"} <= set(notes)
    shared = architecture_from_hf_config(MODELS["tiny-granitemoeshared"]["config"])
    assert (shared.n_shared_experts, shared.d_ff_shared, shared.shared_expert_gate) == (1, 48, False)
    without = architecture_from_hf_config(MODELS["tiny-granitemoeshared"]["config"] | {"shared_intermediate_size": 0})
    assert count_params(shared).total - count_params(without).total == 2 * 3 * 64 * 48
    published = count_params(architecture_from_hf_config(MODELS["granite-3.0-1b-a400m"]["config"]))
    assert published.active / 1e9 == pytest.approx(0.43, abs=0.01)  # the card's "400M active"


def test_dbrx_nested_configs_and_bias_free_layernorms():
    """DBRX: keys read from attn_config / ffn_config (their classes' defaults said when absent), a fused
    Wqkv, GLU experts, LayerNorms without bias (h weights); the card's 132B total and 36B active."""
    m = MODELS["tiny-dbrx"]
    arch = architecture_from_hf_config(m["config"])
    assert (arch.n_kv_heads, arch.d_ff, arch.n_experts, arch.experts_per_token) == (2, 32, 4, 2)
    h, kv, vocab = 64, 2 * 16, 128
    layer = h * (h + 2 * kv) + h * h + 4 * 3 * h * 32 + h * 4 + 2 * h
    assert count_params(arch).total == 2 * layer + h + 2 * vocab * h == m["parameters"]
    notes = dict(map_hf_config(MODELS["tiny-dbrx-defaults"]["config"]).assumptions)
    assert {"attn_config.kv_n_heads", "ffn_config", "norm"} <= set(notes)
    b = count_params(architecture_from_hf_config(MODELS["dbrx-base"]["config"]))
    assert round(b.active / 1e9) == 36


_TINY_DBRX = MODELS["tiny-dbrx"]["config"]


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (MODELS["tiny-olmoe"]["config"] | {"head_dim": 32}, "hf_config.head_dim"),
        (MODELS["tiny-olmoe"]["config"] | {"attention_bias": True}, "hf_config.attention_bias"),
        (MODELS["tiny-olmoe"]["config"] | {"num_local_experts": 1}, "hf_config.num_local_experts"),
        (MODELS["tiny-granitemoe"]["config"] | {"attention_bias": True}, "hf_config.attention_bias"),
        (MODELS["tiny-granitemoeshared"]["config"] | {"shared_intermediate_size": -1}, "hf_config.shared_intermediate_size"),
        (_TINY_DBRX | {"tie_word_embeddings": True}, "hf_config.tie_word_embeddings"),
        (_TINY_DBRX | {"attn_config": [2]}, "hf_config.attn_config"),
        (_TINY_DBRX | {"attn_config": {"kv_n_heads": 0}}, "hf_config.attn_config.kv_n_heads"),
        (_TINY_DBRX | {"attn_config": {"kv_n_heads": 3}}, "hf_config.attn_config.kv_n_heads"),
        (_TINY_DBRX | {"ffn_config": {"moe_num_experts": 1}}, "hf_config.ffn_config.moe_num_experts"),
        (_TINY_DBRX | {"ffn_config": {"ffn_hidden_size": 10**400}}, "hf_config.ffn_config.ffn_hidden_size"),
        (_TINY_DBRX | {"ffn_config": {"moe_top_k": 9}}, "hf_config.ffn_config.moe_top_k"),
        (_TINY_DBRX | {"ffn_config": {"ffn_act_fn": "silu"}}, "hf_config.ffn_config.ffn_act_fn"),
        ({k: v for k, v in _TINY_DBRX.items() if k != "d_model"}, "hf_config.d_model"),
        (_TINY_DBRX | {"n_heads": 5}, "hf_config.n_heads"),
    ],
)  # fmt: skip
def test_the_moe_families_name_the_key_they_refuse(config, field):
    with pytest.raises(InvalidSpecError) as err:
        architecture_from_hf_config(config)
    assert err.value.field == field, (err.value.field, err.value.reason)


@pytest.mark.parametrize(
    ("config", "field", "words"),
    [
        ({"model_type": "recurrent_gemma"}, "hf_config.model_type", "Griffin"),
        ({"model_type": "minimax"}, "hf_config.model_type", "lightning linear attention"),
        ({"model_type": "xlstm"}, "hf_config.model_type", "recurrent model"),
        ({"model_type": "t5"}, "hf_config.model_type", "encoder-decoder"),
        ({"model_type": "bert"}, "hf_config.model_type", "encoder-only"),
        ({"model_type": "llava", "text_config": {"model_type": "minimax"}}, "hf_config.text_config.model_type", "hybrid"),
    ],
)  # fmt: skip
def test_models_that_are_not_decoder_only_transformers_say_why(config, field, words):
    """Unmapped hybrids, xLSTM, encoder-decoders and encoders: a 422 that says what the model is, not only
    that the type is unsupported."""
    with pytest.raises(InvalidSpecError) as err:
        architecture_from_hf_config(config)
    assert err.value.field == field
    assert words in err.value.reason and "not a decoder-only transformer" in err.value.reason
    assert "supported:" not in err.value.reason


def test_phi_parallel_block_one_layernorm_biases_and_lm_head_bias():
    """Phi-1/1.5/2 (``modeling_phi.py``): one LayerNorm a layer before attention and MLP side by side,
    biases on q, k, v, dense, fc1 and fc2, and an LM head with a bias that tying leaves in place."""
    m = MODELS["tiny-phi-tied"]
    arch = architecture_from_hf_config(m["config"])
    assert (arch.parallel_attention, arch.norms_per_layer, arch.bias, arch.lm_head_bias, arch.tied_embeddings) == (
        True, 1, True, True, True)  # fmt: skip
    h, f, q, kv, vocab = 64, 256, 64, 2 * 16, 128
    layer = (h * q + 2 * h * kv + q * h + q + 2 * kv + h) + (2 * h * f + f + h) + 2 * h
    b = count_params(arch)
    assert b.total == 2 * layer + 2 * h + vocab * h + vocab == m["parameters"]
    assert b.lm_head == vocab  # the bias alone: the weight is the embedding's
    untied = make_architecture(**{**_fields(arch), "bias": True, "lm_head_bias": False, "tied_embeddings": True,
                                  "parallel_attention": True, "norms_per_layer": 1})  # fmt: skip
    assert b.total - count_params(untied).total == vocab
    with pytest.raises(InvalidSpecError) as err:
        architecture_from_hf_config(m["config"] | {"qk_layernorm": True})
    assert err.value.field == "hf_config.qk_layernorm"


def test_phimoe_attention_biases_lm_head_bias_and_defaults():
    """Phi-3.5-MoE: attention_bias on q, k, v and o (not the experts), lm_head_bias, LayerNorms with
    bias; 16 experts and 2 routed unless given; the card's 42B total and 6.6B active."""
    big = architecture_from_hf_config(MODELS["phi-3.5-moe"]["config"])
    assert (big.attention_bias, big.bias, big.qkv_bias, big.lm_head_bias, big.norm.value) == (
        True,
        False,
        False,
        True,
        "layernorm",
    )
    assert big.sliding_window == 131072 and big.sliding_window_layers is None
    b = count_params(big)
    assert b.active / 1e9 == pytest.approx(6.6, abs=0.05)
    no_bias = make_architecture(**{**_fields(big), "n_experts": 16, "experts_per_token": 2, "lm_head_bias": True})
    assert b.total - count_params(no_bias).total == 32 * (4096 + 2 * 1024 + 4096)  # q, k, v and o biases
    m = map_hf_config(MODELS["tiny-phimoe"]["config"])
    f, notes = dict(m.fields), dict(m.assumptions)
    assert (f["n_experts"], f["experts_per_token"], f["attention_bias"], f["lm_head_bias"]) == (16, 2, False, False)
    assert {"num_local_experts", "num_experts_per_tok", "attention_bias", "lm_head_bias"} <= set(notes)


def test_attention_bias_on_mla_biases_its_down_and_output_projections():
    """On multi-head latent attention ``attention_bias`` is DeepSeek's: ``kv_a_proj_with_mqa``
    (``kv_lora_rank + qk_rope_head_dim`` = 24) and ``o_proj`` (``h`` = 64) a layer, 2 layers; the
    experts keep none."""
    arch = architecture_from_hf_config(MODELS["tiny-phimoe"]["config"])
    mla = {**_fields(arch), "kv_lora_rank": 16, "qk_nope_head_dim": 8, "qk_rope_head_dim": 8, "v_head_dim": 8}
    plain = count_params(make_architecture(**mla))
    biased = count_params(make_architecture(**{**mla, "attention_bias": True}))
    assert biased.total - plain.total == 2 * (16 + 8 + 64)
    assert biased.mlp == plain.mlp


def test_cohere_parallel_block_bias_free_layernorms_and_qk_norms():
    """Command R (``modeling_cohere.py``): one weight-only LayerNorm a layer (h values) before attention
    and the gated MLP side by side, tied by default; use_qk_norm's norms have a weight per head and
    dimension (a*d_head for q, k*d_head for k); attention_bias on q, k, v and o."""
    m = MODELS["tiny-cohere-qk-norm-bias"]
    arch = architecture_from_hf_config(m["config"])
    assert (arch.parallel_attention, arch.norms_per_layer, arch.qk_norm_full_width, arch.attention_bias) == (True, 1, True, True)
    h, f, q, kv, vocab = 64, 128, 64, 2 * 16, 128
    layer = (h * q + 2 * h * kv + q * h) + (q + 2 * kv + h) + (q + kv) + 3 * h * f + h
    assert count_params(arch).total == 2 * layer + h + 2 * vocab * h == m["parameters"]
    untold = {k: v for k, v in MODELS["command-r-v01"]["config"].items() if k != "tie_word_embeddings"}
    assert architecture_from_hf_config(untold).tied_embeddings  # the config class's default
    assert {"norm", "tie_word_embeddings"} <= set(dict(map_hf_config(untold).assumptions))


def test_attention_bias_is_every_attention_projection_and_mistral_ignores_it():
    # LlamaAttention (and Qwen3's, Gemma's, Granite's, SmolLM3's) biases q, k, v and o alike: counted
    # exactly; MistralAttention builds no bias whatever the config says, and the answer says so
    llama = architecture_from_hf_config(MODELS["tiny-llama-attention-bias"]["config"])
    assert llama.attention_bias and not llama.bias and not llama.qkv_bias
    mistral = architecture_from_hf_config(MODELS["tiny-mistral-attention-bias-ignored"]["config"])
    assert not (mistral.attention_bias or mistral.bias or mistral.qkv_bias)
    assert "ignored" in dict(mistral.assumptions)["attention_bias"]
    for name in ("tiny-llama-attention-bias", "tiny-qwen3-attention-bias", "tiny-mistral-attention-bias-ignored"):
        assert count_params(architecture_from_hf_config(MODELS[name]["config"])).total == MODELS[name]["parameters"]


def test_cohere2_windows_three_layers_of_four_and_keeps_command_rs_block():
    """Command R7B (``modeling_cohere2.py``): Command R's parallel block and weight-only norms, no q/k
    norm; sliding_window (4096 unless given) on all but each sliding_window_pattern-th layer (4), or as
    layer_types says; a pattern of 0 is a 422 naming it."""
    arch = architecture_from_hf_config(MODELS["tiny-cohere2-window"]["config"])
    assert (arch.parallel_attention, arch.norms_per_layer, arch.tied_embeddings, arch.qk_norm_full_width) == (
        True,
        1,
        True,
        False,
    )
    assert (arch.sliding_window, arch.local_layers) == (16, 3)
    biased = architecture_from_hf_config(MODELS["tiny-cohere2-bias-pattern"]["config"])
    assert (biased.attention_bias, biased.local_layers, biased.d_head, biased.tied_embeddings) == (True, 2, 8, False)
    base = {k: v for k, v in MODELS["tiny-cohere2-window"]["config"].items() if k != "sliding_window"}
    mapped = map_hf_config(base)
    assert dict(mapped.fields)["sliding_window"] == 4096
    assert {"sliding_window", "sliding_window_pattern", "norm"} <= set(dict(mapped.assumptions))
    typed = architecture_from_hf_config(base | {"layer_types": ["sliding_attention", "full_attention"] * 2})
    assert typed.local_layers == 2
    assert architecture_from_hf_config(base | {"sliding_window": None}).sliding_window is None
    with pytest.raises(InvalidSpecError) as err:
        architecture_from_hf_config(base | {"sliding_window_pattern": 0})
    assert err.value.field == "hf_config.sliding_window_pattern"


def test_stablelm_layernorms_qkv_bias_and_per_head_qk_layernorms():
    """StableLM (``modeling_stablelm.py``): LayerNorms with bias, a gated bias-free MLP, Q/K/V biases
    (use_qkv_bias), per-head bias-free q/k LayerNorms (a*d_head + k*d_head weights), one norm a layer
    with use_parallel_residual; 32 KV heads unless given; a head_dim that is not hidden / heads is refused."""
    m = MODELS["tiny-stablelm-qk-parallel"]
    arch = architecture_from_hf_config(m["config"])
    h, f, q, kv, vocab = 64, 128, 64, 32, 128
    layer = (2 * h * q + 2 * h * kv) + (q + 2 * kv) + (q + kv) + 3 * h * f + 2 * h
    assert count_params(arch).total == 2 * layer + 2 * h + 2 * vocab * h == m["parameters"]
    assert (arch.qkv_bias, arch.bias, arch.parallel_attention, arch.norms_per_layer) == (True, False, True, 1)
    defaults = map_hf_config(MODELS["tiny-stablelm-defaults"]["config"])
    assert dict(defaults.fields)["n_kv_heads"] == 32 and "32" in dict(defaults.assumptions)["num_key_value_heads"]
    with pytest.raises(InvalidSpecError) as err:
        architecture_from_hf_config(m["config"] | {"head_dim": 8})
    assert err.value.field == "hf_config.head_dim"


def test_gpt_bigcode_multi_query_and_learned_positions():
    """StarCoder (``modeling_gpt_bigcode.py``): one KV head with multi_query (the default), a learned
    table of n_positions rows counted as GPT-2's, biases everywhere; add_cross_attention refused; a bad
    n_embd is a 422 naming n_embd, the key the config spells."""
    star = architecture_from_hf_config(MODELS["starcoder"]["config"])
    assert (star.n_kv_heads, star.position, star.learned_position_rows, star.bias) == (1, "learned", 8192, True)
    assert count_params(star).embedding == (49152 + 8192) * 6144
    mha = map_hf_config(MODELS["tiny-gpt-bigcode-mha"]["config"])
    fields, notes = dict(mha.fields), dict(mha.assumptions)
    assert (fields["n_kv_heads"], fields["d_ff"], fields["max_seq_len"]) == (4, 256, 1024)
    assert {"n_inner", "n_positions"} <= set(notes)
    for change, key in (({"add_cross_attention": True}, "add_cross_attention"), ({"n_embd": 10**400}, "n_embd"),
                        ({"n_positions": 0}, "n_positions")):  # fmt: skip
        with pytest.raises(InvalidSpecError) as err:
            architecture_from_hf_config(MODELS["tiny-gpt-bigcode-mqa"]["config"] | change)
        assert err.value.field == f"hf_config.{key}"


def test_opt_positions_are_offset_by_two_rows():
    """OPT (``OPTLearnedPositionalEmbedding``: num_embeddings + 2): 2,050 rows for 2,048 positions, the
    context still 2,048; enable_bias false drops every projection's bias; the shapes not counted are
    refused naming their key."""
    opt = architecture_from_hf_config(MODELS["opt-125m"]["config"])
    assert (opt.max_seq_len, opt.learned_position_rows, opt.bias, opt.tied_embeddings) == (2048, 2050, True, True)
    assert count_params(opt).embedding == (50272 + 2050) * 768
    tiny = architecture_from_hf_config(MODELS["tiny-opt-no-bias"]["config"])
    assert (tiny.learned_position_rows, tiny.bias) == (66, False)
    base = MODELS["opt-125m"]["config"]
    for change, key in (({"word_embed_proj_dim": 512}, "word_embed_proj_dim"),
                        ({"do_layer_norm_before": False}, "do_layer_norm_before"),
                        ({"_remove_final_layer_norm": True}, "_remove_final_layer_norm"),
                        ({"layer_norm_elementwise_affine": False}, "layer_norm_elementwise_affine"),
                        ({"ffn_dim": "3072"}, "ffn_dim"), ({"max_position_embeddings": 0}, "max_position_embeddings")):  # fmt: skip
        with pytest.raises(InvalidSpecError) as err:
            architecture_from_hf_config(base | change)
        assert err.value.field == f"hf_config.{key}", change


def test_bloom_embedding_layernorm_alibi_and_4h_mlp():
    """BLOOM (``modeling_bloom.py``): a LayerNorm after the embedding, ALiBi (no table), an MLP of 4h
    whatever the config, biases everywhere; n_embed (the 176B config's spelling) read as the width."""
    arch = architecture_from_hf_config(MODELS["bloom-176b"]["config"])
    assert (arch.d_model, arch.d_ff, arch.embedding_norm, arch.position, arch.learned_position_rows) == (
        14336, 4 * 14336, True, "alibi", 0)  # fmt: skip
    assert count_params(arch).total == 176_247_271_424 == MODELS["bloom-176b"]["parameters"]
    assert "seq_length" in dict(map_hf_config(MODELS["bloom-560m"]["config"]).assumptions)
    with pytest.raises(InvalidSpecError) as err:
        architecture_from_hf_config(MODELS["bloom-176b"]["config"] | {"n_embed": 0})
    assert err.value.field == "hf_config.n_embed"


def test_mpt_is_built_bias_free_with_alibi_and_refuses_what_transformers_cannot_build():
    """MPT (``modeling_mpt.py``): no biases, LayerNorms with their bias removed (h weights), an MLP of
    4 x d_model, no position table; keys describing a checkpoint transformers' MPT would not load are
    refused naming them (attn_config's with their path)."""
    arch = architecture_from_hf_config(MODELS["mpt-7b"]["config"])
    assert (arch.bias, arch.norm, arch.d_ff, arch.position, arch.tied_embeddings) == (False, "rmsnorm", 16384, "alibi", True)
    notes = dict(map_hf_config(MODELS["tiny-mpt"]["config"]).assumptions)
    assert {"attn_config", "norm", "learned_pos_emb"} <= set(notes)
    base = MODELS["tiny-mpt"]["config"]
    for change, key in (({"expansion_ratio": 2}, "expansion_ratio"), ({"no_bias": False}, "no_bias"),
                        ({"attn_config": {"alibi": False}}, "attn_config.alibi"),
                        ({"attn_config": {"qk_ln": True}}, "attn_config.qk_ln"),
                        ({"attn_config": {"attn_type": "multiquery_attention"}}, "attn_config.attn_type"),
                        ({"attn_config": "x"}, "attn_config"), ({"d_model": -1}, "d_model"), ({"n_layers": 0}, "n_layers")):  # fmt: skip
        with pytest.raises(InvalidSpecError) as err:
            architecture_from_hf_config(base | change)
        assert err.value.field == f"hf_config.{key}", change
