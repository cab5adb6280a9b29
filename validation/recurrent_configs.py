"""Hand-written ``config.json`` contents of the recurrent and hybrid families (Mamba, Mamba-2,
Falcon-Mamba, RWKV-4, RWKV-6 and RWKV-7 (flash-linear-attention's ``rwkv6``/``rwkv7`` configs), Jamba,
the Mamba-2 hybrids Bamba, Nemotron-H, Falcon-H1 and Granite 4.0-H, Qwen3-Next's Gated DeltaNet hybrid,
LFM2's short-convolution hybrids and Zamba's shared-attention hybrids), one or more per ``model_type``.

Full-size entries copy the shape keys of the published configs (the model card named in the
comment); ``tiny-*`` entries keep a family's structure at a size that runs a forward pass on a CPU
in milliseconds, for the state measurement. Nothing here is downloaded. Plain data, importable
without torch (tests read the same dicts).
"""

from __future__ import annotations

from typing import Any

# LFM2 350M, 700M and 1.2B: attention at 2, 5, 8, 10, 12 and 14 of 16 layers (full_attn_idxs of their config.json)
_LFM2_16 = [2, 5, 8, 10, 12, 14]
# LFM2-2.6B's 30 layers (layer_types of its config.json): attention at 2, 5, 9, 13, 17, 21, 24 and 27
_LFM2_30 = ["full_attention" if i in (2, 5, 9, 13, 17, 21, 24, 27) else "conv" for i in range(30)]
# LFM2-8B-A1B's 24 layers, 6 attention (its model card: "24 (18 conv + 6 attn)"); the positions do not change a count
_LFM2_24 = ["full_attention" if i in (2, 6, 10, 14, 18, 21) else "conv" for i in range(24)]


# Zamba2's layers_block_type: hybrid (a shared attention block, then Mamba-2) at the indices given, mamba elsewhere
def _zamba2_layers(n: int, hybrid: tuple[int, ...]) -> list[str]:
    return ["hybrid" if i in hybrid else "mamba" for i in range(n)]


# Granite 4.0-H's 40 layers: attention at 5, 15, 25 and 35
_GRANITE_40 = ["mamba"] * 5 + ["attention"] + (["mamba"] * 9 + ["attention"]) * 3 + ["mamba"] * 4

CONFIGS: dict[str, dict[str, Any]] = {
    # state-spaces/mamba-130m-hf and mamba-2.8b-hf (Gu & Dao 2023, Table 3)
    "mamba-130m": {"model_type": "mamba", "hidden_size": 768, "num_hidden_layers": 24, "vocab_size": 50280,
                   "state_size": 16, "expand": 2, "conv_kernel": 4, "time_step_rank": 48, "use_bias": False,
                   "use_conv_bias": True, "tie_word_embeddings": True},
    "mamba-2.8b": {"model_type": "mamba", "hidden_size": 2560, "num_hidden_layers": 64, "vocab_size": 50280,
                   "state_size": 16, "expand": 2, "conv_kernel": 4, "time_step_rank": 160, "use_bias": False,
                   "use_conv_bias": True, "tie_word_embeddings": True},
    # tiiuae/falcon-mamba-7b (Zuo et al. 2024, "Falcon Mamba: the first competitive attention-free 7B"): an
    # inner width of 8192 (expand 2 over 4096), dt rank 256, untied
    "falcon-mamba-7b": {"model_type": "falcon_mamba", "hidden_size": 4096, "num_hidden_layers": 64, "vocab_size": 65024,
                        "state_size": 16, "expand": 2, "conv_kernel": 4, "time_step_rank": 256, "use_bias": False,
                        "use_conv_bias": True, "tie_word_embeddings": False, "mixer_rms_eps": 1e-6},
    # state-spaces/mamba2-2.7b (Dao & Gu 2024): d_model 2560, 64 layers, headdim 64, one group, d_state 128,
    # the 50,277-token vocabulary padded to a multiple of 16, tied
    "mamba2-2.7b": {"model_type": "mamba2", "hidden_size": 2560, "num_hidden_layers": 64, "vocab_size": 50288,
                    "state_size": 128, "expand": 2, "conv_kernel": 4, "num_heads": 80, "head_dim": 64, "n_groups": 1,
                    "use_bias": False, "use_conv_bias": True, "tie_word_embeddings": True},
    # mistralai/Mamba-Codestral-7B-v0.1
    "mamba-codestral-7b": {"model_type": "mamba2", "hidden_size": 4096, "num_hidden_layers": 64, "vocab_size": 32768,
                           "state_size": 128, "expand": 2, "conv_kernel": 4, "num_heads": 128, "head_dim": 64,
                           "n_groups": 8, "use_bias": False, "use_conv_bias": True, "tie_word_embeddings": False},
    # RWKV/rwkv-4-169m-pile and RWKV/rwkv-raven-7b (Peng et al. 2023, Table 1)
    "rwkv-4-169m": {"model_type": "rwkv", "hidden_size": 768, "num_hidden_layers": 12, "vocab_size": 50277,
                    "context_length": 1024, "attention_hidden_size": 768, "intermediate_size": 3072,
                    "tie_word_embeddings": False},
    "rwkv-4-7b": {"model_type": "rwkv", "hidden_size": 4096, "num_hidden_layers": 32, "vocab_size": 50277,
                  "context_length": 4096, "attention_hidden_size": 4096, "intermediate_size": 16384,
                  "tie_word_embeddings": False},
    # RWKV-7 "Goose" World (Peng et al. 2025, "RWKV-7 Goose with Expressive Dynamic State Evolution": four
    # models of 0.19B to 2.9B on the 3.1T-token World v3 corpus), in flash-linear-attention's config format (the
    # fla-hub / RWKV "RWKV7-Goose-World3-*-HF" conversions): BlinkDL/rwkv-7-world RWKV-x070-World-0.1B-v2.8,
    # 0.4B-v2.9, 1.5B-v3 and 2.9B-v3 (ctx4096): L12-D768, L24-D1024, L24-D2048, L32-D2560, heads of 64, the
    # 65,536-token World vocabulary, channel mixing 4*D, untied. LoRA ranks (decay, a, v, gate) are those of the
    # checkpoints' w1, a1, v1 and g1 matrices: 64/64/32/128 at D 768 and 1024, 96/96/64/256 at 2048 and
    # 96/96/64/320 at 2560 (RWKV/RWKV7-Goose-World3-1.5B-HF's config.json; RWKV-LM's RWKV-v7 training code)
    "rwkv7-world-0.1b": {"model_type": "rwkv7", "hidden_size": 768, "num_hidden_layers": 12, "head_dim": 64,
                         "vocab_size": 65536, "intermediate_size": 3072, "decay_low_rank_dim": 64,
                         "a_low_rank_dim": 64, "v_low_rank_dim": 32, "gate_low_rank_dim": 128,
                         "max_position_embeddings": 4096, "tie_word_embeddings": False},
    "rwkv7-world-0.4b": {"model_type": "rwkv7", "hidden_size": 1024, "num_hidden_layers": 24, "head_dim": 64,
                         "vocab_size": 65536, "intermediate_size": 4096, "decay_low_rank_dim": 64,
                         "a_low_rank_dim": 64, "v_low_rank_dim": 32, "gate_low_rank_dim": 128,
                         "max_position_embeddings": 4096, "tie_word_embeddings": False},
    "rwkv7-world-1.5b": {"model_type": "rwkv7", "hidden_size": 2048, "num_hidden_layers": 24, "head_dim": 64,
                         "vocab_size": 65536, "intermediate_size": 8192, "decay_low_rank_dim": 96,
                         "a_low_rank_dim": 96, "v_low_rank_dim": 64, "gate_low_rank_dim": 256,
                         "max_position_embeddings": 4096, "tie_word_embeddings": False},
    "rwkv7-world-2.9b": {"model_type": "rwkv7", "hidden_size": 2560, "num_hidden_layers": 32, "head_dim": 64,
                         "vocab_size": 65536, "intermediate_size": 10240, "decay_low_rank_dim": 96,
                         "a_low_rank_dim": 96, "v_low_rank_dim": 64, "gate_low_rank_dim": 320,
                         "max_position_embeddings": 4096, "tie_word_embeddings": False},
    # RWKV-6 "Finch" World v2.1 (Peng et al. 2024, "Eagle and Finch: RWKV with Matrix-Valued States and Dynamic
    # Recurrence": Finch 1.6B, 3B and 7B), BlinkDL/rwkv-6-world, in fla's config format: heads of
    # 64 (num_heads = D/64), key and value as wide as the model (expand_k = expand_v = 1), channel mixing
    # int(3.5*D) rounded to 32; the data-dependent token-shift LoRA of rank 32 and the decay LoRA of rank 64, both
    # doubled at D 4096 (RWKV-LM's RWKV-v5/src/model.py, RWKV_Tmix_x060: D_MIX_LORA, D_DECAY_LORA)
    "rwkv6-world-1.6b": {"model_type": "rwkv6", "hidden_size": 2048, "num_hidden_layers": 24, "num_heads": 32,
                         "expand_k": 1, "expand_v": 1, "vocab_size": 65536, "intermediate_size": 7168,
                         "proj_low_rank_dim": 32, "gate_low_rank_dim": 64, "max_position_embeddings": 4096,
                         "tie_word_embeddings": False},
    "rwkv6-world-3b": {"model_type": "rwkv6", "hidden_size": 2560, "num_hidden_layers": 32, "num_heads": 40,
                       "expand_k": 1, "expand_v": 1, "vocab_size": 65536, "intermediate_size": 8960,
                       "proj_low_rank_dim": 32, "gate_low_rank_dim": 64, "max_position_embeddings": 4096,
                       "tie_word_embeddings": False},
    "rwkv6-world-7b": {"model_type": "rwkv6", "hidden_size": 4096, "num_hidden_layers": 32, "num_heads": 64,
                       "expand_k": 1, "expand_v": 1, "vocab_size": 65536, "intermediate_size": 14336,
                       "proj_low_rank_dim": 64, "gate_low_rank_dim": 128, "max_position_embeddings": 4096,
                       "tie_word_embeddings": False},
    # the defaults of fla's classes: absent keys take RWKV7Config's ranks and hidden_ratio, null ranks
    # RWKV7Attention's own formula of hidden_size and head_dim (a head of 128 doubles the decay, a and v ranks)
    "rwkv7-fla-defaults": {"model_type": "rwkv7", "hidden_size": 1024, "num_hidden_layers": 4, "vocab_size": 1000},
    "rwkv7-fla-null-ranks": {"model_type": "rwkv7", "hidden_size": 1536, "num_hidden_layers": 4, "vocab_size": 1000,
                             "head_dim": 128, "decay_low_rank_dim": None, "a_low_rank_dim": None,
                             "v_low_rank_dim": None, "gate_low_rank_dim": None},
    # tiny fla models: channel mixing from the configs' default hidden_ratio (4 for RWKV-7, 3.5 for RWKV-6, rounded up
    # to a multiple of 32)
    "tiny-rwkv7": {"model_type": "rwkv7", "hidden_size": 64, "num_hidden_layers": 2, "head_dim": 16, "vocab_size": 256,
                   "decay_low_rank_dim": 8, "a_low_rank_dim": 8, "v_low_rank_dim": 8, "gate_low_rank_dim": 16},
    "tiny-rwkv6": {"model_type": "rwkv6", "hidden_size": 64, "num_hidden_layers": 2, "num_heads": 4, "expand_k": 1,
                   "expand_v": 1, "vocab_size": 256, "proj_low_rank_dim": 8, "gate_low_rank_dim": 16},
    # ai21labs/AI21-Jamba-1.5-Mini (Jamba Team 2024, "Jamba-1.5", Table 1: 12B active of 52B)
    "jamba-1.5-mini": {"model_type": "jamba", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                       "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 65536, "num_experts": 16,
                       "num_experts_per_tok": 2, "expert_layer_period": 2, "expert_layer_offset": 1,
                       "attn_layer_period": 8, "attn_layer_offset": 4, "mamba_d_state": 16, "mamba_d_conv": 4,
                       "mamba_expand": 2, "mamba_dt_rank": 256, "mamba_conv_bias": True, "mamba_proj_bias": False,
                       "max_position_embeddings": 262144, "tie_word_embeddings": False},
    # ibm-ai-platform/Bamba-9B (IBM et al. 2024): 32 layers, attention at 9, 18 and 27, Mamba-2 of 128 heads of 64,
    # one group, state 128; the Llama-3 vocabulary of 128,256; untied. The shape keys the public sources show
    # (hidden, layers, heads, state, attention indices) with BambaConfig's defaults, which are this model's
    "bamba-9b": {"model_type": "bamba", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                 "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
                 "attn_layer_indices": [9, 18, 27], "mamba_n_heads": 128, "mamba_d_head": 64, "mamba_n_groups": 1,
                 "mamba_d_state": 128, "mamba_d_conv": 4, "mamba_expand": 2, "mamba_conv_bias": True,
                 "mamba_proj_bias": False, "max_position_embeddings": 4096, "tie_word_embeddings": False},
    # nvidia/Nemotron-H-8B-Base-8K (NVIDIA 2025, "Nemotron-H", Table 1): 52 blocks, 24 Mamba-2, 4 attention, 24 MLP
    "nemotron-h-8b": {"model_type": "nemotron_h", "hidden_size": 4096, "intermediate_size": 21504,
                      "num_hidden_layers": 52, "num_attention_heads": 32, "num_key_value_heads": 8,
                      "attention_head_dim": 128, "vocab_size": 131072,
                      "hybrid_override_pattern": "M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M-",
                      "mamba_num_heads": 128, "mamba_head_dim": 64, "n_groups": 8, "ssm_state_size": 128,
                      "conv_kernel": 4, "expand": 2, "use_conv_bias": True, "use_bias": False, "mlp_bias": False,
                      "mlp_hidden_act": "relu2", "attention_bias": False, "max_position_embeddings": 8192,
                      "tie_word_embeddings": False},
    # nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16, config.json (NVIDIA 2025, the model card's "31.6B total parameters,
    # approximately 3.2B active (3.6B including embeddings)"): 52 blocks, 23 Mamba-2, 23 mixture-of-experts (E), 6
    # attention; 128 squared-ReLU experts of 1856, 6 routed, one shared MLP of 3712. The shape keys are the ones
    # transformers' Nemotron3_5TranscribeConfig gives its nemotron_h text model (this backbone); the rest are
    # NemotronHConfig's defaults, as in the model's config.json
    "nemotron-3-nano-30b-a3b": {"model_type": "nemotron_h", "hidden_size": 2688, "intermediate_size": 1856,
                                "num_hidden_layers": 52, "num_attention_heads": 32, "num_key_value_heads": 2,
                                "head_dim": 128, "vocab_size": 131072,
                                "hybrid_override_pattern": "MEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEMEM*EMEMEMEME",
                                "mamba_num_heads": 64, "mamba_head_dim": 64, "n_groups": 8, "ssm_state_size": 128,
                                "conv_kernel": 4, "use_conv_bias": True, "use_bias": False, "mlp_bias": False,
                                "mlp_hidden_act": "relu2", "attention_bias": False, "n_routed_experts": 128,
                                "num_experts_per_tok": 6, "moe_intermediate_size": 1856,
                                "moe_shared_expert_intermediate_size": 3712, "n_shared_experts": 1,
                                "routed_scaling_factor": 2.5, "n_group": 1, "topk_group": 1, "norm_topk_prob": True,
                                "max_position_embeddings": 262144, "tie_word_embeddings": False},
    # tiiuae/Falcon-H1-3B-Base and tiiuae/Falcon-H1-7B-Base (TII 2025, "Falcon-H1"): attention and Mamba-2 side by side
    # in every layer; the Mamba width mamba_d_ssm is not expand * hidden_size
    "falcon-h1-3b": {"model_type": "falcon_h1", "hidden_size": 2560, "intermediate_size": 6144, "num_hidden_layers": 32,
                     "num_attention_heads": 10, "num_key_value_heads": 2, "head_dim": 128, "vocab_size": 65536,
                     "mamba_d_ssm": 4096, "mamba_n_heads": 32, "mamba_d_head": 128, "mamba_n_groups": 1,
                     "mamba_d_state": 256, "mamba_d_conv": 4, "mamba_expand": 2, "max_position_embeddings": 131072,
                     "tie_word_embeddings": False},
    "falcon-h1-7b": {"model_type": "falcon_h1", "hidden_size": 3072, "intermediate_size": 12288, "num_hidden_layers": 44,
                     "num_attention_heads": 12, "num_key_value_heads": 2, "head_dim": 128, "vocab_size": 130048,
                     "mamba_d_ssm": 3072, "mamba_n_heads": 24, "mamba_d_head": 128, "mamba_n_groups": 1,
                     "mamba_d_state": 256, "mamba_d_conv": 4, "mamba_expand": 2, "max_position_embeddings": 262144,
                     "tie_word_embeddings": False},
    # ibm-granite/granite-4.0-h-tiny and granite-4.0-h-small (IBM 2025, "Granite 4.0"): 40 layers, attention at 5, 15,
    # 25 and 35, Mamba-2 of 48 (Tiny) heads of 64, a mixture with a shared expert on every layer, tied
    "granite-4.0-h-tiny": {"model_type": "granitemoehybrid", "hidden_size": 1536, "intermediate_size": 512,
                           "shared_intermediate_size": 1024, "num_local_experts": 64, "num_experts_per_tok": 6,
                           "num_hidden_layers": 40, "num_attention_heads": 12, "num_key_value_heads": 4,
                           "vocab_size": 100352, "layer_types": _GRANITE_40, "mamba_n_heads": 48, "mamba_d_head": 64,
                           "mamba_n_groups": 1, "mamba_d_state": 128, "mamba_d_conv": 4, "mamba_expand": 2,
                           "max_position_embeddings": 131072, "position_embedding_type": "nope",
                           "tie_word_embeddings": True},
    "granite-4.0-h-1b": {"model_type": "granitemoehybrid", "hidden_size": 1536, "intermediate_size": 4096,
                         "shared_intermediate_size": 4096, "num_local_experts": 0, "num_experts_per_tok": 0,
                         "num_hidden_layers": 40, "num_attention_heads": 12, "num_key_value_heads": 4,
                         "vocab_size": 100352, "layer_types": _GRANITE_40, "mamba_n_heads": 48, "mamba_d_head": 64,
                         "mamba_n_groups": 1, "mamba_d_state": 128, "mamba_d_conv": 4, "mamba_expand": 2,
                         "max_position_embeddings": 131072, "position_embedding_type": "nope",
                         "tie_word_embeddings": True},
    "tiny-bamba": {"model_type": "bamba", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4,
                   "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256, "attn_layer_indices": [2],
                   "mamba_n_heads": 8, "mamba_d_head": 16, "mamba_n_groups": 2, "mamba_d_state": 16,
                   "mamba_chunk_size": 16},
    "tiny-nemotron-h": {"model_type": "nemotron_h", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 5,
                        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 256,
                        "hybrid_override_pattern": "M-*-M", "mamba_num_heads": 6, "mamba_head_dim": 16, "n_groups": 2,
                        "ssm_state_size": 16, "chunk_size": 16},
    # Nemotron-H's mixture-of-experts blocks, listed the newer way (layers_block_type), 4 groups of routed experts
    "tiny-nemotron-h-moe": {"model_type": "nemotron_h", "hidden_size": 64, "intermediate_size": 32,
                            "num_hidden_layers": 5, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
                            "vocab_size": 256, "layers_block_type": ["linear_attention", "moe", "full_attention", "moe",
                                                                     "linear_attention"],
                            "mamba_num_heads": 6, "mamba_head_dim": 16, "n_groups": 2, "ssm_state_size": 16,
                            "chunk_size": 16, "n_routed_experts": 8, "num_experts_per_tok": 2, "n_group": 4,
                            "topk_group": 2, "moe_intermediate_size": 24, "moe_shared_expert_intermediate_size": 40},
    "tiny-falcon-h1": {"model_type": "falcon_h1", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                       "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 256,
                       "mamba_d_ssm": 96, "mamba_n_heads": 6, "mamba_d_head": 16, "mamba_n_groups": 2,
                       "mamba_d_state": 16, "mamba_chunk_size": 16, "mamba_rms_norm": True},
    "tiny-granite-h": {"model_type": "granitemoehybrid", "hidden_size": 64, "intermediate_size": 32,
                       "shared_intermediate_size": 48, "num_local_experts": 4, "num_experts_per_tok": 2,
                       "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256,
                       "layer_types": ["mamba", "attention", "mamba", "mamba"], "mamba_n_heads": 8, "mamba_d_head": 16,
                       "mamba_n_groups": 2, "mamba_d_state": 16, "mamba_chunk_size": 16},
    # Qwen/Qwen3-Next-80B-A3B-Instruct (and -Thinking, the same shape), config.json: 48 layers of 2048, attention in
    # every fourth (16 query heads of 256, 2 KV heads), Gated DeltaNet in the others (16 key heads and 32 value heads of
    # 128, convolution of 4), 512 experts of 512 with 10 routed and one gated shared expert of 512, the 151,936-token
    # vocabulary, untied; the model card's "80B in total and 3B activated"
    "qwen3-next-80b-a3b": {"model_type": "qwen3_next", "hidden_size": 2048, "intermediate_size": 5120,
                           "num_hidden_layers": 48, "num_attention_heads": 16, "num_key_value_heads": 2, "head_dim": 256,
                           "vocab_size": 151936, "full_attention_interval": 4, "linear_num_key_heads": 16,
                           "linear_num_value_heads": 32, "linear_key_head_dim": 128, "linear_value_head_dim": 128,
                           "linear_conv_kernel_dim": 4, "num_experts": 512, "num_experts_per_tok": 10,
                           "moe_intermediate_size": 512, "shared_expert_intermediate_size": 512, "decoder_sparse_step": 1,
                           "mlp_only_layers": [], "attention_bias": False, "max_position_embeddings": 262144,
                           "tie_word_embeddings": False},
    # value heads twice the key heads (repeated), a dense layer among the sparse ones, attention biases
    "tiny-qwen3-next": {"model_type": "qwen3_next", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 4,
                        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 256,
                        "layer_types": ["linear_attention", "linear_attention", "full_attention", "linear_attention"],
                        "linear_num_key_heads": 2, "linear_num_value_heads": 4, "linear_key_head_dim": 16,
                        "linear_value_head_dim": 8, "linear_conv_kernel_dim": 4, "num_experts": 4,
                        "num_experts_per_tok": 2, "moe_intermediate_size": 32, "shared_expert_intermediate_size": 48,
                        "mlp_only_layers": [1], "attention_bias": True},
    # LiquidAI/LFM2-350M, LFM2-700M, LFM2-1.2B (config.json: block_ff_dim resized by block_auto_adjust_ff_dim to 4608,
    # 6912 and 8192) and LFM2-2.6B (block_ff_dim 10752 as it is: block_auto_adjust_ff_dim false); 65,536-token
    # vocabulary, tied; the model cards' 354M, 742M, 1.17B and 2.57B parameters
    "lfm2-350m": {"model_type": "lfm2", "hidden_size": 1024, "num_hidden_layers": 16, "num_attention_heads": 16,
                  "num_key_value_heads": 8, "block_ff_dim": 6656, "block_auto_adjust_ff_dim": True,
                  "block_ffn_dim_multiplier": 1.0, "block_multiple_of": 256, "full_attn_idxs": _LFM2_16,
                  "conv_L_cache": 3, "conv_bias": False, "vocab_size": 65536, "max_position_embeddings": 128000,
                  "tie_embedding": True},
    "lfm2-700m": {"model_type": "lfm2", "hidden_size": 1536, "num_hidden_layers": 16, "num_attention_heads": 24,
                  "num_key_value_heads": 8, "block_ff_dim": 10240, "block_auto_adjust_ff_dim": True,
                  "block_ffn_dim_multiplier": 1.0, "block_multiple_of": 256, "full_attn_idxs": _LFM2_16,
                  "conv_L_cache": 3, "conv_bias": False, "vocab_size": 65536, "max_position_embeddings": 128000},
    "lfm2-1.2b": {"model_type": "lfm2", "hidden_size": 2048, "num_hidden_layers": 16, "num_attention_heads": 32,
                  "num_key_value_heads": 8, "block_ff_dim": 12288, "block_auto_adjust_ff_dim": True,
                  "block_ffn_dim_multiplier": 1.0, "block_multiple_of": 256, "full_attn_idxs": _LFM2_16,
                  "conv_L_cache": 3, "conv_bias": False, "vocab_size": 65536, "max_position_embeddings": 128000},
    "lfm2-2.6b": {"model_type": "lfm2", "hidden_size": 2048, "num_hidden_layers": 30, "num_attention_heads": 32,
                  "num_key_value_heads": 8, "block_ff_dim": 10752, "intermediate_size": 10752,
                  "block_auto_adjust_ff_dim": False, "layer_types": _LFM2_30, "conv_L_cache": 3, "conv_bias": False,
                  "vocab_size": 65536, "max_position_embeddings": 128000},
    # LiquidAI/LFM2-8B-A1B (model card: 8.3B total, 1.5B active; 24 layers; 32 experts of 1792, 4 active, the first
    # two layers dense of 7168: Lfm2MoeConfig's defaults, which the transformers docs give as this model's)
    "lfm2-8b-a1b": {"model_type": "lfm2_moe", "hidden_size": 2048, "num_hidden_layers": 24, "num_attention_heads": 32,
                    "num_key_value_heads": 8, "intermediate_size": 7168, "moe_intermediate_size": 1792,
                    "num_experts": 32, "num_experts_per_tok": 4, "num_dense_layers": 2, "layer_types": _LFM2_24,
                    "conv_L_cache": 3, "conv_bias": False, "vocab_size": 65536, "max_position_embeddings": 128000,
                    "tie_word_embeddings": True},
    # Zyphra/Zamba-7B-v1 (config.json; Glorioso et al. 2024, "Zamba", a 7B model): 76 Mamba layers of 3712, two mamba
    # heads, the shared block every 6 layers from 4 (13 uses), 16 heads of 464 over 2 x 3712, MLP 14848, tied
    "zamba-7b": {"model_type": "zamba", "hidden_size": 3712, "intermediate_size": 14848, "num_hidden_layers": 76,
                 "num_attention_heads": 16, "num_key_value_heads": 16, "n_mamba_heads": 2, "mamba_d_state": 16,
                 "mamba_d_conv": 4, "mamba_expand": 2, "mamba_dt_rank": 232, "mamba_conv_bias": True,
                 "mamba_proj_bias": False, "attn_layer_period": 6, "attn_layer_offset": 4, "vocab_size": 32000,
                 "max_position_embeddings": 4096, "hidden_act": "gelu"},
    # Zyphra/Zamba2-1.2B, Zamba2-2.7B and Zamba2-7B (their config.json; Glorioso et al. 2024, "The Zamba2 Suite": 1.2B,
    # 2.7B and 7.4B parameters): Mamba-2 heads of 64; one shared block with q/k/v adapters (1.2B), two without (2.7B),
    # two with (7B); rank-128 adapters; tied. Zamba2-7B's mamba_ngroups of 2 is taken from its transformers-format
    # config.json as recalled (the original-format config does not give it)
    "zamba2-1.2b": {"model_type": "zamba2", "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 38,
                    "num_attention_heads": 32, "num_key_value_heads": 32, "n_mamba_heads": 64, "mamba_d_state": 128,
                    "mamba_d_conv": 4, "mamba_expand": 2, "mamba_ngroups": 1, "num_mem_blocks": 1,
                    "use_shared_attention_adapter": True, "adapter_rank": 128, "use_mem_rope": True,
                    "layers_block_type": _zamba2_layers(38, (5, 11, 17, 23, 29, 35)), "vocab_size": 32000,
                    "max_position_embeddings": 4096},
    "zamba2-2.7b": {"model_type": "zamba2", "hidden_size": 2560, "intermediate_size": 10240, "num_hidden_layers": 54,
                    "num_attention_heads": 32, "num_key_value_heads": 32, "n_mamba_heads": 80, "mamba_d_state": 64,
                    "mamba_d_conv": 4, "mamba_expand": 2, "mamba_ngroups": 1, "num_mem_blocks": 2,
                    "use_shared_attention_adapter": False, "adapter_rank": 128, "use_mem_rope": False,
                    "layers_block_type": _zamba2_layers(54, (6, 12, 18, 24, 30, 36, 42, 47, 51)), "vocab_size": 32000,
                    "max_position_embeddings": 4096},
    "zamba2-7b": {"model_type": "zamba2", "hidden_size": 3584, "intermediate_size": 14336, "num_hidden_layers": 81,
                  "num_attention_heads": 32, "num_key_value_heads": 32, "n_mamba_heads": 112, "mamba_d_state": 64,
                  "mamba_d_conv": 4, "mamba_expand": 2, "mamba_ngroups": 2, "num_mem_blocks": 2,
                  "use_shared_attention_adapter": True, "adapter_rank": 128, "use_mem_rope": True,
                  "layers_block_type": _zamba2_layers(81, (6, 11, 17, 23, 29, 35, 41, 47, 53, 59, 65, 71, 77)),
                  "vocab_size": 32000, "max_position_embeddings": 4096},
    # a convolution bias, a sliding-free attention pair, every state kept
    "tiny-lfm2": {"model_type": "lfm2", "hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4,
                  "num_key_value_heads": 2, "intermediate_size": 192, "layer_types": ["conv", "full_attention", "conv",
                  "conv"], "conv_L_cache": 3, "conv_bias": True, "vocab_size": 256},
    "tiny-lfm2-moe": {"model_type": "lfm2_moe", "hidden_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
                      "num_key_value_heads": 2, "intermediate_size": 128, "moe_intermediate_size": 32, "num_experts": 4,
                      "num_experts_per_tok": 2, "num_dense_layers": 1, "layer_types": ["conv", "full_attention", "conv"],
                      "conv_L_cache": 4, "vocab_size": 256},
    "tiny-zamba": {"model_type": "zamba", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 5,
                   "num_attention_heads": 4, "num_key_value_heads": 2, "n_mamba_heads": 2, "mamba_d_state": 8,
                   "mamba_dt_rank": 8, "attn_layer_period": 2, "attn_layer_offset": 0, "vocab_size": 256},
    # two blocks, three uses: adapters on q, k and v and on the MLP, each use its own
    "tiny-zamba2": {"model_type": "zamba2", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 6,
                    "num_attention_heads": 4, "num_key_value_heads": 4, "n_mamba_heads": 8, "mamba_d_state": 16,
                    "mamba_ngroups": 2, "num_mem_blocks": 2, "use_shared_attention_adapter": True, "adapter_rank": 8,
                    "layers_block_type": ["mamba", "hybrid", "mamba", "hybrid", "mamba", "hybrid"], "chunk_size": 16,
                    "vocab_size": 256},
    "tiny-mamba": {"model_type": "mamba", "hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 256,
                   "state_size": 8, "expand": 2, "conv_kernel": 4},
    "tiny-mamba2": {"model_type": "mamba2", "hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 256,
                    "state_size": 16, "expand": 2, "conv_kernel": 4, "num_heads": 8, "head_dim": 16, "n_groups": 2,
                    "chunk_size": 16},
    "tiny-rwkv": {"model_type": "rwkv", "hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 256,
                  "context_length": 256},
    "tiny-jamba": {"model_type": "jamba", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4,
                   "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256, "num_experts": 4,
                   "num_experts_per_tok": 2, "attn_layer_period": 4, "attn_layer_offset": 2, "mamba_d_state": 8,
                   "use_mamba_kernels": False},
}  # fmt: skip

STATE_MEASURED = (
    "tiny-mamba",
    "tiny-mamba2",
    "tiny-rwkv",
    "tiny-jamba",
    "tiny-bamba",
    "tiny-nemotron-h",
    "tiny-nemotron-h-moe",
    "tiny-falcon-h1",
    "tiny-granite-h",
    "tiny-qwen3-next",
    "tiny-lfm2",
    "tiny-lfm2-moe",
    "tiny-zamba",
    "tiny-zamba2",
)
STATE_TOKENS = (8, 24)
