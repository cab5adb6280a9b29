"""The transformer architecture that every formula reads.

:class:`Architecture` describes a decoder-only transformer the way the papers' model cards do;
:func:`service.core.spec.make_architecture` validates it (every rule names its field). A model known only by its
parameter count is a :class:`ParamsOnly`; formulas that need the shape raise
:class:`~service.core.errors.MissingArchitectureError` for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from service.core.fields import ArchField, Stored, declare, declared_fields, keep_hash, kept_hash, restore_hashed
from service.core.limits import MAX_DIM, MAX_LAYERS, MAX_SEQ_LEN

ALWAYS, NULLABLE = Stored.ALWAYS, Stored.NULLABLE


class Ffn(StrEnum):
    """MLP kind. ``gelu`` (also any 2-matrix MLP such as OPT's ReLU): up and down projections;
    ``swiglu``: gate, up and down (Shazeer 2020, "GLU Variants Improve Transformer")."""

    GELU = "gelu"
    SWIGLU = "swiglu"


class Norm(StrEnum):
    """``layernorm`` has a weight and a bias (Ba et al. 2016); ``rmsnorm`` a weight only
    (Zhang & Sennrich 2019)."""

    LAYERNORM = "layernorm"
    RMSNORM = "rmsnorm"


class LayerType(StrEnum):
    """The mixer of one layer. ``attention``: softmax attention over every earlier token (a KV cache
    growing with the context); ``sliding_attention``: attention over the last ``sliding_window``
    tokens; ``mamba``: Mamba's selective scan (Gu & Dao 2023, "Mamba", §3); ``mamba2``: Mamba-2's
    state-space duality layer (Dao & Gu 2024, "Transformers are SSMs", §7); ``rwkv``: RWKV's time
    mixing, its recurrent WKV, with channel mixing as the layer's MLP (Peng et al. 2023, "RWKV", §3;
    RWKV-6 and RWKV-7 by ``rwkv_version``: Peng et al. 2024, "Eagle and Finch"; Peng et al. 2025, "RWKV-7 Goose").
    The last three keep a fixed-size state per sequence instead of a KV cache. ``attention_mamba2``:
    attention and a Mamba-2 mixer side by side on the same normed input, their outputs summed, then
    the MLP (Falcon-H1, TII 2025, "Falcon-H1: A Family of Hybrid-Head Language Models", §2.1;
    ``FalconH1DecoderLayer``): it counts as an attention layer and as a Mamba-2 layer. ``mlp``: a block
    with an MLP and no token mixer (Nemotron-H's ``-`` blocks, NVIDIA 2025, "Nemotron-H", §2.1); a
    model with such blocks has mixer-only attention and Mamba blocks (``mixer_mlp`` false).
    ``gated_deltanet``: Gated DeltaNet's linear attention, a ``d_k x d_v`` matrix state per value head
    updated by the gated delta rule, then the layer's MLP (Yang, Kautz & Hatamizadeh 2024, "Gated Delta
    Networks: Improving Mamba2 with Delta Rule", §3; Qwen3-Next's ``linear_attention`` layers,
    ``Qwen3NextGatedDeltaNet``). ``short_conv``: a gated short convolution, ``in_proj`` to three
    ``h``-wide gates B, C, x, a depthwise causal convolution of ``short_conv_kernel`` taps over ``B*x``,
    ``C`` times its output, ``out_proj``, then the layer's MLP; it keeps the convolution's last inputs
    (Liquid AI 2025, LFM2's ``conv`` layers, ``Lfm2ShortConv``; the double-gated convolution of Poli et
    al. 2023, "Hyena Hierarchy", §3). ``shared_attention_mamba`` / ``shared_attention_mamba2``: a Mamba /
    Mamba-2 layer before whose mixer a shared attention block runs on the residual stream concatenated
    with the token embeddings (``2h`` wide), its MLP and a per-layer ``h x h`` projection added to the
    mixer's input (Glorioso et al. 2024, "Zamba: A Compact 7B SSM Hybrid Model", §2 and Figure 2,
    ``ZambaHybridLayer``; Glorioso et al. 2024, "The Zamba2 Suite", §2, ``Zamba2HybridLayer``): the
    ``shared_attention_blocks`` blocks' weights are stored once and used in turn, each use keeping its
    own KV cache."""

    ATTENTION = "attention"
    SLIDING_ATTENTION = "sliding_attention"
    MAMBA = "mamba"
    MAMBA2 = "mamba2"
    RWKV = "rwkv"
    ATTENTION_MAMBA2 = "attention_mamba2"
    MLP = "mlp"
    GATED_DELTANET = "gated_deltanet"
    SHORT_CONV = "short_conv"
    SHARED_ATTENTION_MAMBA = "shared_attention_mamba"
    SHARED_ATTENTION_MAMBA2 = "shared_attention_mamba2"


ATTENTION_TYPES = (LayerType.ATTENTION, LayerType.SLIDING_ATTENTION)
STATE_SPACE_TYPES = (LayerType.MAMBA, LayerType.MAMBA2)
SHARED_ATTENTION_TYPES = (LayerType.SHARED_ATTENTION_MAMBA, LayerType.SHARED_ATTENTION_MAMBA2)
# what a layer of two parts counts as: a parallel attention + Mamba-2 layer (Falcon-H1), a shared
# attention block before a Mamba or Mamba-2 mixer (Zamba, Zamba2)
_BOTH = {
    LayerType.ATTENTION_MAMBA2: (LayerType.ATTENTION, LayerType.MAMBA2),
    LayerType.SHARED_ATTENTION_MAMBA: (LayerType.ATTENTION, LayerType.MAMBA),
    LayerType.SHARED_ATTENTION_MAMBA2: (LayerType.ATTENTION, LayerType.MAMBA2),
}


class Position(StrEnum):
    """Position encoding. Only ``learned`` adds parameters (a ``rows x d_model`` table)."""

    LEARNED = "learned"
    ROTARY = "rotary"
    ALIBI = "alibi"
    RELATIVE = "relative"


@dataclass(frozen=True, kw_only=True, slots=True)
class Architecture:
    """A decoder-only transformer.

    Symbols follow the formula sheet: L ``n_layers``, h ``d_model``, a ``n_heads``,
    k ``n_kv_heads`` (GQA/MQA when k < a), ``d_head``, f ``d_ff`` (per expert for MoE),
    V ``vocab_size`` (the padded row count of the embedding matrix).

    This class is the one declaration of the architecture's fields: each carries, besides its type
    and default, a :func:`~service.core.fields.declare` with its request description and bounds,
    whether preset rows store it and its usual ``config.json`` key. The spec builder, the request and
    preset schemas, the preset columns and the config mappers' key names follow from
    :data:`ARCHITECTURE_FIELDS`. A new field is a line here (and its formula where it counts).
    """

    n_layers: int = field(metadata=declare(ge=1, le=MAX_LAYERS, stored=ALWAYS, hf_key="num_hidden_layers"))
    d_model: int = field(metadata=declare(ge=1, le=MAX_DIM, stored=ALWAYS, hf_key="hidden_size"))
    n_heads: int = field(metadata=declare(ge=1, le=MAX_DIM, stored=ALWAYS, hf_key="num_attention_heads"))
    n_kv_heads: int = field(
        metadata=declare("KV heads (GQA/MQA); default n_heads.", ge=1, le=MAX_DIM, stored=ALWAYS, derived=True,
            preset_doc="Default n_heads.", hf_key="num_key_value_heads"),
    )  # fmt: skip
    d_head: int = field(
        metadata=declare("Head width; default d_model / n_heads.", ge=1, le=MAX_DIM, stored=ALWAYS, derived=True,
            preset_doc="Default d_model / n_heads.", hf_key="head_dim"),
    )  # fmt: skip
    d_ff: int = field(
        metadata=declare("MLP width (per expert).", ge=1, le=MAX_DIM * 8, stored=ALWAYS, hf_key="intermediate_size")
    )
    vocab_size: int = field(metadata=declare(ge=1, le=MAX_DIM * 10, stored=ALWAYS))
    ffn: Ffn = field(default=Ffn.GELU, metadata=declare(stored=ALWAYS))
    norm: Norm = field(default=Norm.LAYERNORM, metadata=declare(stored=ALWAYS))
    bias: bool = field(default=False, metadata=declare("Biases on every linear layer.", stored=ALWAYS))
    qkv_bias: bool = field(default=False, metadata=declare("Biases on the Q, K, V projections only (Qwen2).", stored=ALWAYS))
    tied_embeddings: bool = field(default=False, metadata=declare(stored=ALWAYS))
    position: Position = field(default=Position.ROTARY, metadata=declare(stored=ALWAYS))
    max_seq_len: int = field(
        default=2048, metadata=declare(ge=1, le=MAX_SEQ_LEN, stored=ALWAYS, hf_key="max_position_embeddings")
    )
    position_embedding_rows: int | None = field(
        default=None,
        metadata=declare("Learned position rows if not max_seq_len (OPT: +2).", ge=1, le=MAX_SEQ_LEN, stored=ALWAYS),
    )
    n_experts: int = field(default=1, metadata=declare(ge=1, le=100_000, stored=ALWAYS, hf_key="num_experts"))
    experts_per_token: int = field(default=1, metadata=declare(ge=1, le=100_000, stored=ALWAYS, hf_key="num_experts_per_tok"))
    parallel_attention: bool = field(default=False, metadata=declare("GPT-J/NeoX-style parallel block.", stored=ALWAYS))
    norms_per_layer: int = field(
        default=2,
        metadata=declare("Norm modules per block: 2, or 1 where one feeds both branches.", ge=1, le=8, stored=ALWAYS),
    )
    embedding_norm: bool = field(default=False, metadata=declare("A norm after the embedding (BLOOM).", stored=ALWAYS))
    # multi-head latent attention (DeepSeek-V2 §2.1), used when kv_lora_rank is set: queries through
    # an optional rank-q_lora_rank bottleneck, keys and values from one rank-kv_lora_rank latent plus
    # a shared qk_rope_head_dim rotary key; heads of qk_nope_head_dim + qk_rope_head_dim (Q, K) and
    # v_head_dim (V)
    q_lora_rank: int | None = field(
        default=None, metadata=declare("MLA: rank of the query bottleneck (none: a full query projection).", ge=1, le=MAX_DIM,
            stored=NULLABLE, preset_doc="MLA query rank (DeepSeek-V2/V3)."),
    )  # fmt: skip
    kv_lora_rank: int | None = field(
        default=None,
        metadata=declare(
            "MLA (DeepSeek-V2/V3): rank of the compressed KV latent; setting it selects multi-head latent attention.",
            ge=1, le=MAX_DIM, stored=NULLABLE, preset_doc="MLA compressed KV rank; selects MLA."),
    )  # fmt: skip
    qk_nope_head_dim: int | None = field(
        default=None,
        metadata=declare("MLA: per-head query/key width without rotary.", ge=0, le=MAX_DIM, stored=NULLABLE),
    )
    qk_rope_head_dim: int | None = field(
        default=None,
        metadata=declare("MLA: rotary query/key width (one shared rotary key).", ge=1, le=MAX_DIM, stored=NULLABLE),
    )
    v_head_dim: int | None = field(
        default=None, metadata=declare("MLA: per-head value width.", ge=1, le=MAX_DIM, stored=NULLABLE)
    )
    # sliding-window attention (Beltagy et al. 2020; Mistral 7B): sliding_window_layers of the
    # n_layers layers (all when None) attend to the last sliding_window tokens only
    sliding_window: int | None = field(
        default=None, metadata=declare("Tokens a sliding-window layer attends to (and caches).", ge=1, le=MAX_SEQ_LEN,
            stored=NULLABLE, preset_doc="Sliding-window attention span."),
    )  # fmt: skip
    sliding_window_layers: int | None = field(
        default=None, metadata=declare("Layers using the window (Gemma 2: half); default all.", ge=0, le=MAX_LAYERS,
            stored=NULLABLE, preset_doc="Layers using it; default all."),
    )  # fmt: skip
    # shared + routed experts (DeepSeekMoE, Dai et al. 2024 §3): n_shared_experts always-active MLPs
    # of width d_ff_shared (default d_ff) beside the routed ones; the first first_k_dense layers have
    # one dense MLP of width d_ff_dense (default d_ff) instead of experts
    n_shared_experts: int = field(
        default=0, metadata=declare("Always-active shared experts per MoE layer.", ge=0, le=1_000, stored=NULLABLE)
    )
    d_ff_shared: int | None = field(
        default=None, metadata=declare("Width of each shared expert; default d_ff.", ge=1, le=MAX_DIM * 8, stored=NULLABLE,
            hf_key="shared_expert_intermediate_size"),
    )  # fmt: skip
    shared_expert_gate: bool = field(
        default=False, metadata=declare("A sigmoid gate on the shared experts (Qwen2-MoE).", stored=NULLABLE)
    )
    first_k_dense: int = field(
        default=0, metadata=declare("Leading layers with one dense MLP instead of experts.", ge=0, le=MAX_LAYERS,
            stored=NULLABLE, hf_key="first_k_dense_replace"),
    )  # fmt: skip
    d_ff_dense: int | None = field(
        default=None, metadata=declare("MLP width of those dense layers; default d_ff.", ge=1, le=MAX_DIM * 8,
            stored=NULLABLE, hf_key="intermediate_size"),
    )  # fmt: skip
    router_bias: bool = field(
        default=False,
        metadata=declare("A per-expert router bias (DeepSeek-V3's load-balancing bias).", stored=NULLABLE),
    )
    qk_norm: bool = field(
        default=False, metadata=declare("RMSNorm on each head's query and key (Qwen3, Gemma 3).", stored=NULLABLE)
    )
    # one learned attention-sink logit per head and layer (gpt-oss: ``GptOssAttention.sinks``, a
    # softmax term that takes no value: "a learned bias in the denominator of the softmax", OpenAI's
    # gpt-oss-120b & gpt-oss-20b model card, 2025, Architecture)
    attention_sinks: bool = field(
        default=False, metadata=declare("One learned attention-sink logit per head and layer (gpt-oss).")
    )
    # one RMSNorm over the whole query projection (a*d_head) and one over the whole key projection
    # (k*d_head), not per head (OLMo 2: ``Olmo2Attention.q_norm``/``k_norm``; "2 OLMo 2 Furious", OLMo et al.
    # 2024, arXiv 2501.00656, QK-norm); excludes ``qk_norm``
    qk_norm_full_width: bool = field(
        default=False,
        metadata=declare("RMSNorm over the whole query and the whole key projection, not per head (OLMo 2); excludes qk_norm."),
    )
    # biases on the four attention projections, Q, K, V and output, but not on the MLP (Phi-3.5-MoE's
    # ``attention_bias``: ``PhimoeAttention.q_proj``...``o_proj``); ``bias`` has them too, ``qkv_bias`` not the output's
    attention_bias: bool = field(
        default=False,
        metadata=declare(
            "Biases on the Q, K, V and output projections but not the MLP (Phi-3.5-MoE); with kv_lora_rank, on MLA's "
            "down- and output projections (DeepSeek's attention_bias); bias implies them."
        ),
    )
    # a bias on the LM head, ``V`` values, kept when the weight is tied (Phi-1/1.5/2: ``PhiForCausalLM.lm_head``
    # is ``nn.Linear(h, V, bias=True)``; Phi-3.5-MoE's ``lm_head_bias``)
    lm_head_bias: bool = field(
        default=False, metadata=declare("A bias on the LM head, V values, kept when tied (Phi-2, Phi-3.5-MoE).")
    )
    # layers other than attention (API.md, "Beyond transformers"): a list per layer, or a pattern
    # repeated over the n_layers layers; None: every layer attends
    layer_types: tuple[LayerType, ...] | None = field(
        default=None,
        metadata=declare("Mixer of each layer, or a pattern repeated over n_layers (its length divides n_layers): "
            "attention, sliding_attention, mamba, mamba2, rwkv, attention_mamba2 (both side by side, Falcon-H1), "
            "mlp (an MLP-only block, Nemotron-H), gated_deltanet (Gated DeltaNet, Qwen3-Next), short_conv (a gated "
            "short convolution, LFM2), shared_attention_mamba / shared_attention_mamba2 (a shared attention block "
            "before a Mamba / Mamba-2 mixer, Zamba / Zamba2); default every layer attention.", stored=NULLABLE,
            preset_doc="Mixer of each layer, or a repeating pattern; default all attention."),
    )  # fmt: skip
    mixer_mlp: bool = field(
        default=True, metadata=declare("Mamba/Mamba-2 layers carry an MLP after the mixer (Jamba, Bamba); false for "
            "mixer-only blocks (Mamba, Mamba-2, Falcon-Mamba; with mlp layers, Nemotron-H, attention blocks too).",
            stored=NULLABLE),
    )  # fmt: skip
    # state-space layers (Mamba: Gu & Dao 2023 §3.4; Mamba-2: Dao & Gu 2024 §7): inner width
    # ssm_expand * d_model, a depthwise causal convolution of ssm_conv_kernel taps, a state of
    # ssm_state_size per channel (Mamba) or per head (Mamba-2: ssm_n_heads heads of ssm_head_dim,
    # B and C shared by ssm_n_groups groups)
    ssm_state_size: int | None = field(
        default=None, metadata=declare("State size N of a Mamba/Mamba-2 layer (d_state).", ge=1, le=MAX_DIM,
            stored=NULLABLE, hf_key="state_size"),
    )  # fmt: skip
    ssm_conv_kernel: int | None = field(
        default=None, metadata=declare("Taps of the depthwise causal convolution (d_conv); default 4.", ge=1, le=64,
            stored=NULLABLE, hf_key="conv_kernel"),
    )  # fmt: skip
    ssm_expand: int | None = field(
        default=None, metadata=declare("Inner width over d_model (expand); default 2.", ge=1, le=64, stored=NULLABLE,
            hf_key="expand"),
    )  # fmt: skip
    ssm_n_heads: int | None = field(
        default=None, metadata=declare("Mamba-2 heads; default ssm_expand * d_model / ssm_head_dim.", ge=1, le=MAX_DIM,
            stored=NULLABLE, hf_key="num_heads"),
    )  # fmt: skip
    ssm_head_dim: int | None = field(
        default=None, metadata=declare("Mamba-2 head width (headdim); default 64.", ge=1, le=MAX_DIM, stored=NULLABLE)
    )
    ssm_n_groups: int | None = field(
        default=None, metadata=declare("Mamba-2 groups sharing B and C (ngroups); default 1.", ge=1, le=MAX_DIM,
            stored=NULLABLE, hf_key="n_groups"),
    )  # fmt: skip
    ssm_dt_rank: int | None = field(
        default=None, metadata=declare("Mamba rank of the step-size projection (dt_rank); default ceil(d_model / 16).",
            ge=1, le=MAX_DIM, stored=NULLABLE, hf_key="time_step_rank"),
    )  # fmt: skip
    ssm_conv_bias: bool = field(
        default=True, metadata=declare("A bias on the convolution (use_conv_bias); default true.", stored=NULLABLE)
    )
    ssm_proj_bias: bool = field(
        default=False, metadata=declare("Biases on the input and output projections (use_bias).", stored=NULLABLE)
    )
    ssm_inner_size: int | None = field(
        default=None, metadata=declare("Inner width I of the state-space layers when not ssm_expand * d_model "
            "(Falcon-H1's mamba_d_ssm; Nemotron-H's heads * head_dim).", ge=1, le=MAX_DIM * 8, stored=NULLABLE,
            hf_key="mamba_d_ssm"),
    )  # fmt: skip
    ssm_gated_norm: bool = field(
        default=True, metadata=declare("Mamba-2's gated RMSNorm before out_proj (I weights); false: Falcon-H1 without "
            "mamba_rms_norm.", stored=NULLABLE),
    )  # fmt: skip
    ssm_inner_norms: bool = field(
        default=False, metadata=declare("Mamba RMSNorms with weights on the step size, B and C (Jamba).", stored=NULLABLE)
    )
    # a sigmoid gate on each attention head's output, computed by a query projection twice as wide
    # (Qiu et al. 2025, "Gated Attention for Large Language Models", §2, G1; Qwen3NextAttention.q_proj is
    # h x 2*a*d_head, its second half the gate)
    attention_output_gate: bool = field(
        default=False, metadata=declare("A sigmoid gate on each attention head's output from a query projection "
            "twice as wide (Qwen3-Next).", stored=NULLABLE),
    )  # fmt: skip
    # Gated DeltaNet layers (Yang et al. 2024 §3.3; Qwen3NextGatedDeltaNet): linear_n_key_heads query/key
    # heads of linear_key_head_dim, linear_n_value_heads value heads of linear_value_head_dim (query and key
    # heads repeated to the value heads), a depthwise causal convolution of linear_conv_kernel taps on q, k, v
    linear_n_key_heads: int | None = field(
        default=None, metadata=declare("Gated DeltaNet query/key heads.", ge=1, le=MAX_DIM, stored=NULLABLE,
            hf_key="linear_num_key_heads"),
    )  # fmt: skip
    linear_n_value_heads: int | None = field(
        default=None, metadata=declare("Gated DeltaNet value heads (a state each); default linear_n_key_heads.", ge=1,
            le=MAX_DIM, stored=NULLABLE, hf_key="linear_num_value_heads"),
    )  # fmt: skip
    linear_key_head_dim: int | None = field(
        default=None, metadata=declare("Gated DeltaNet query/key head width.", ge=1, le=MAX_DIM, stored=NULLABLE)
    )
    linear_value_head_dim: int | None = field(
        default=None, metadata=declare("Gated DeltaNet value head width; default linear_key_head_dim.", ge=1,
            le=MAX_DIM, stored=NULLABLE),
    )  # fmt: skip
    linear_conv_kernel: int | None = field(
        default=None, metadata=declare("Taps of Gated DeltaNet's short convolution; default 4.", ge=1, le=64,
            stored=NULLABLE, hf_key="linear_conv_kernel_dim"),
    )  # fmt: skip
    # LFM2's gated short convolution (Lfm2ShortConv): a depthwise causal convolution of short_conv_kernel
    # taps ("conv_L_cache"), biases on it and on both projections with short_conv_bias ("conv_bias")
    short_conv_kernel: int | None = field(
        default=None, metadata=declare("Taps of the short_conv layers' convolution (L_cache); default 3.", ge=1, le=64,
            stored=NULLABLE, hf_key="conv_L_cache"),
    )  # fmt: skip
    short_conv_bias: bool = field(
        default=False, metadata=declare("Biases on the short_conv layers' convolution and projections.", stored=NULLABLE,
            hf_key="conv_bias"),
    )  # fmt: skip
    # Zamba's shared attention blocks (Glorioso et al. 2024 §2): shared_attention_blocks distinct blocks
    # (attention over the 2h-wide concatenation of the residual stream and the embeddings, heads of d_head,
    # and an MLP of d_ff), used in turn by the shared_attention_* layers; Zamba2's per-use LoRA adapters of
    # rank shared_adapter_rank on the MLP's gate and up projection (and on q, k and v with
    # shared_attention_adapters)
    shared_attention_blocks: int | None = field(
        default=None, metadata=declare("Distinct shared attention blocks the shared_attention_* layers use in turn "
            "(Zamba2's num_mem_blocks); default 1.", ge=1, le=MAX_LAYERS, stored=NULLABLE, hf_key="num_mem_blocks"),
    )  # fmt: skip
    shared_adapter_rank: int | None = field(
        default=None, metadata=declare("Rank of the per-use LoRA adapters on the shared block's MLP (Zamba2's "
            "adapter_rank); none: no adapters (Zamba).", ge=1, le=MAX_DIM, stored=NULLABLE, hf_key="adapter_rank"),
    )  # fmt: skip
    shared_attention_adapters: bool = field(
        default=False, metadata=declare("Per-use LoRA adapters on the shared block's q, k and v too (Zamba2's "
            "use_shared_attention_adapter).", stored=NULLABLE, hf_key="use_shared_attention_adapter"),
    )  # fmt: skip
    # RWKV: version 4 (Peng et al. 2023) is transformers' RwkvForCausalLM; 6, Finch (Peng et al. 2024, "Eagle and
    # Finch"), and 7, Goose (Peng et al. 2025, "RWKV-7 Goose"), flash-linear-attention's RWKV6/RWKV7ForCausalLM:
    # heads of rwkv_head_size, each a head-size-squared WKV state, and low-rank (LoRA-style) projections that make
    # the token shift (v6), the decay (v6, v7), the in-context learning rate, the value residual and the output
    # gate (v7) depend on the input (service.core.rwkv)
    rwkv_version: int | None = field(
        default=None, metadata=declare("RWKV generation of the rwkv layers: 4, 6 (Finch) or 7 (Goose); default 4.",
            ge=4, le=7, stored=NULLABLE),
    )  # fmt: skip
    rwkv_head_size: int | None = field(
        default=None, metadata=declare("RWKV-6/7 head width (head_size_a); d_model / rwkv_head_size heads; default 64.",
            ge=1, le=MAX_DIM, stored=NULLABLE),
    )  # fmt: skip
    rwkv_mix_lora_rank: int | None = field(
        default=None, metadata=declare("RWKV-6: rank of the data-dependent token-shift LoRA (time_maa_w1, fla's "
            "proj_low_rank_dim); default 32, 64 at d_model 4096.", ge=1, le=MAX_DIM, stored=NULLABLE),
    )  # fmt: skip
    rwkv_decay_lora_rank: int | None = field(
        default=None, metadata=declare("RWKV-6/7: rank of the decay LoRA (time_decay_w1 / w1); RWKV-6 default 64 (128 "
            "at d_model 4096), RWKV-7 max(32, 1.8*sqrt(d_model) rounded to 32).", ge=1, le=MAX_DIM, stored=NULLABLE),
    )  # fmt: skip
    rwkv_a_lora_rank: int | None = field(
        default=None, metadata=declare("RWKV-7: rank of the in-context learning rate LoRA (a1); default max(32, "
            "1.8*sqrt(d_model) rounded to 32).", ge=1, le=MAX_DIM, stored=NULLABLE),
    )  # fmt: skip
    rwkv_value_lora_rank: int | None = field(
        default=None, metadata=declare("RWKV-7: rank of the value-residual LoRA (v1), on every layer but the first; "
            "default max(32, 1.3*sqrt(d_model) rounded to 32).", ge=1, le=MAX_DIM, stored=NULLABLE),
    )  # fmt: skip
    rwkv_gate_lora_rank: int | None = field(
        default=None, metadata=declare("RWKV-7: rank of the output gate LoRA (g1); default max(32, 0.6*d_model^0.8 "
            "rounded to 32).", ge=1, le=MAX_DIM, stored=NULLABLE),
    )  # fmt: skip
    # where fields were defaulted or inferred (e.g. from a config.json); not part of the shape
    assumptions: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    # hashed once (every cached formula hashes its architecture): service.core.fields.keep_hash
    __post_init__, __hash__, __setstate__ = keep_hash, kept_hash, restore_hashed

    @property
    def is_moe(self) -> bool:
        return self.n_experts > 1

    @property
    def q_dim(self) -> int:
        """Width of all query heads together, ``a * d_head``."""
        return self.n_heads * self.d_head

    @property
    def q_proj_width(self) -> int:
        """Outputs of the query projection: ``a * d_head``, twice that with ``attention_output_gate`` (the
        gate's half, ``Qwen3NextAttention.q_proj``)."""
        return self.q_dim * (2 if self.attention_output_gate else 1)

    @property
    def kv_dim(self) -> int:
        """Width of all key (or value) heads together, ``k * d_head``."""
        return self.n_kv_heads * self.d_head

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank is not None

    @property
    def mlp_layers(self) -> int:
        """Layers with an MLP: all of a transformer; not RWKV's (its channel mixing is counted apart)
        nor mixer-only Mamba blocks (``mixer_mlp`` false); a shared attention layer's MLP is the shared
        block's, one use a layer (Zamba)."""
        without = self.layers_of(LayerType.RWKV)
        if not self.mixer_mlp:
            without += self.layers_of(*STATE_SPACE_TYPES) - self.shared_attention_layers
        if self.layer_types is not None and LayerType.MLP in self.layer_types:
            without += self.attention_layers  # single-operator blocks: the MLPs are layers of their own
        return self.n_layers - without

    def layer_parts(self) -> tuple[tuple[bool, bool], ...]:
        """(softmax attention, an MLP) of each of the ``n_layers`` layers, as :attr:`attention_layers`
        and :attr:`mlp_layers` count them."""
        parts = []
        for kind in self.layer_kinds:
            attention = kind in ATTENTION_TYPES or LayerType.ATTENTION in _BOTH.get(kind, ())
            mixer = kind in STATE_SPACE_TYPES or any(k in STATE_SPACE_TYPES for k in _BOTH.get(kind, ()))
            mlp = kind is LayerType.MLP or not (
                kind is LayerType.RWKV
                or (attention and LayerType.MLP in (self.layer_types or ()))
                or (mixer and not self.mixer_mlp and kind not in SHARED_ATTENTION_TYPES)
            )
            parts.append((attention, mlp))
        return tuple(parts)

    @property
    def shared_attention_layers(self) -> int:
        """Uses of a shared attention block: the ``shared_attention_*`` layers (0 without them)."""
        return self.layers_of(*SHARED_ATTENTION_TYPES)

    @property
    def shared_blocks(self) -> int:
        """Shared attention blocks that hold weights: ``shared_attention_blocks`` (1 when not given), at
        most one a use; 0 without shared attention layers."""
        uses = self.shared_attention_layers
        return min(uses, self.shared_attention_blocks or 1) if uses else 0

    @property
    def attention_weight_layers(self) -> int:
        """Attention layers that hold their own weights: every attention layer, a shared block's uses once
        a block (:attr:`shared_blocks`)."""
        return self.attention_layers - self.shared_attention_layers + self.shared_blocks

    @property
    def attention_input_width(self) -> int:
        """Width of the attention projections' input: ``h``, or ``2h`` for a shared block reading the
        residual stream concatenated with the embeddings (``ZambaAttention``: ``attention_hidden_size =
        2 * hidden_size``)."""
        return 2 * self.d_model if self.shared_attention_layers else self.d_model

    @property
    def moe_layers(self) -> int:
        """Layers with routed experts (all MLP layers but the ``first_k_dense`` dense ones; 0 when dense)."""
        return self.mlp_layers - self.first_k_dense if self.is_moe else 0

    @property
    def shared_expert_width(self) -> int:
        """Width of a MoE layer's shared experts taken together, ``n_shared * d_ff_shared`` (0 without
        them). They see the same input and their outputs are summed, so they are one MLP that wide:
        the reference implementations build them so (``DeepseekV3MoE.shared_experts`` is one MLP of
        ``moe_intermediate_size * n_shared_experts``; Qwen2-MoE's one ``shared_expert``)."""
        if not self.is_moe or not self.n_shared_experts:
            return 0
        return self.n_shared_experts * (self.d_ff_shared or self.d_ff)

    @property
    def dense_mlp_layers(self) -> int:
        """Layers with one dense MLP (a shared block's MLP once a use)."""
        return self.mlp_layers - self.moe_layers

    @property
    def dense_mlp_weight_layers(self) -> int:
        """Dense MLPs that hold their own weights: a shared block's once a block."""
        return self.dense_mlp_layers - self.shared_attention_layers + self.shared_blocks

    @property
    def layer_kinds(self) -> tuple[LayerType, ...]:
        """The mixer of each of the ``n_layers`` layers: ``layer_types`` repeated (a list per layer is
        a pattern of its own length); every layer ``attention`` without them."""
        if self.layer_types is None:
            return (LayerType.ATTENTION,) * self.n_layers
        return self.layer_types * (self.n_layers // len(self.layer_types))

    def layers_of(self, *kinds: LayerType) -> int:
        """How many layers have one of ``kinds`` as their mixer (an ``attention_mamba2`` layer has both
        attention and Mamba-2)."""
        if self.layer_types is None:
            return self.n_layers if LayerType.ATTENTION in kinds else 0
        per_pattern = sum(1 for t in self.layer_types if t in kinds or any(k in kinds for k in _BOTH.get(t, ())))
        return per_pattern * (self.n_layers // len(self.layer_types))

    @property
    def attention_layers(self) -> int:
        """Layers with softmax attention, full or sliding-window (all without ``layer_types``)."""
        return self.layers_of(*ATTENTION_TYPES)

    @property
    def recurrent_layers(self) -> int:
        """Layers with a fixed-size state (Mamba, Mamba-2, RWKV, Gated DeltaNet, a short convolution; a
        layer of attention and a mixer keeps both)."""
        return self.layers_of(*STATE_SPACE_TYPES, LayerType.RWKV, LayerType.GATED_DELTANET, LayerType.SHORT_CONV)

    @property
    def local_layers(self) -> int:
        """Layers that attend through the sliding window (0 without one): the ``sliding_attention``
        layers of ``layer_types`` where it names them, else ``sliding_window_layers`` (default all
        attention layers)."""
        if self.sliding_window is None:
            return 0
        if self.layer_types is not None and LayerType.SLIDING_ATTENTION in self.layer_types:
            return self.layers_of(LayerType.SLIDING_ATTENTION)
        return self.attention_layers if self.sliding_window_layers is None else self.sliding_window_layers

    @property
    def global_layers(self) -> int:
        """Attention layers over the whole context (no window)."""
        return self.attention_layers - self.local_layers

    @property
    def learned_position_rows(self) -> int:
        """Rows of the learned position table (0 without learned positions)."""
        if self.position is not Position.LEARNED:
            return 0
        return self.position_embedding_rows or self.max_seq_len


ARCHITECTURE_FIELDS: tuple[ArchField, ...] = declared_fields(Architecture)
"""The declared fields of :class:`Architecture`, in order (``assumptions`` is not one)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ParamsOnly:
    """A model known only by its parameter count (``{"n_params": 7e9}``)."""

    n_params: float

    @property
    def active(self) -> float:
        """A bare count is taken as a dense model: every parameter is active."""
        return self.n_params


ModelShape = Architecture | ParamsOnly
"""What a formula receives: a full architecture, or only a parameter count."""
