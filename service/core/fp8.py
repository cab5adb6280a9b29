"""FP8 training as Transformer Engine and DeepSeek-V3 run it: which matmuls run at the FP8 peak,
what they cost to cast, and what the FP8 weight copies hold.

- **What runs in FP8**: the linear layers of every transformer block — the Q/K/V (or MLA)
  projections, the attention output projection, the MLP or expert up/gate and down projections —
  forward (Fprop) and both backward GEMMs (Dgrad, Wgrad). The attention core, norms, the router,
  the embedding and the output layer stay in BF16/FP32; weights' master copy, gradients and
  optimizer states keep their mixed-precision formats (Micikevicius et al. 2022, "FP8 Formats for
  Deep Learning" §4; NVIDIA Transformer Engine docs, "Using FP8 with Transformer Engine";
  DeepSeek-AI 2024, DeepSeek-V3 technical report §3.3: "embedding module, the output head, MoE
  gating modules, normalization operators, and attention operators" kept in BF16/FP32).
- **Recipes** (how tensors are scaled):
  ``tensorwise`` — one scale per tensor (Transformer Engine's delayed or current scaling);
  ``blockwise`` — DeepSeek-V3's 1x128 tiles for activations and 128x128 blocks for weights, one
  fp32 scale each (§3.3.1); ``mxfp8`` — OCP Microscaling: one E8M0 (1-byte) scale per 32
  elements (OCP MX specification v1.0 §5; Blackwell's native FP8 format).
- **Casts**: every FP8 GEMM input is quantised from BF16 — the forward input and the backward
  output gradient each read 2 bytes and write 1 byte per element, twice (the row-wise copy and the
  transposed/column-wise one the other GEMM of the pair reads) — memory-bound kernels at the HBM
  rate; weights are cast once per step (cached across micro-batches).
- **Memory**: the BF16 weights stay (the optimizer updates them) and the FP8 row-wise and
  column-wise copies are kept beside them: 2 bytes per matmul weight, plus the recipe's scales;
  under ZeRO-3 the weights are gathered one layer at a time and freed, so no copy persists, the
  matmul weights in FP8 under tensorwise scaling (torchtitan's FSDP2 Float8 all-gather; Megatron's
  --fp8-param-gather) and in BF16 under the others (:func:`zero3_gather_bytes_per_param`). A stage that
  ZeRO-3 keeps gathered through the step (under a pipeline, FSDP2 with
  ``reshard_after_forward=False``) holds the all-gather's output and nothing else of a matmul
  weight (:func:`gathered_weight_bytes_per_param`).
- **Activations**: an FP8 linear layer keeps its input for the weight-gradient GEMM as the
  quantised FP8 tensor (1 byte an element, plus the recipe's activation scales), not in BF16:
  Transformer Engine's ``_Linear.forward`` and ``_LayerNormLinear.forward`` (Megatron-Core, NeMo,
  Megatron-Bridge) quantise the input — the norm's output comes out of the fused norm+cast in FP8
  — and save that tensor (``saved_inputmat = inputmat``); torchao's Float8 linear (torchtitan)
  saves ``input_fp8`` (``manual_float8_matmul_with_args_in_float8.forward``:
  ``ctx.save_for_backward(input_fp8, weight_fp8_t)``); DeepSeek-V3 §3.3.3: "we cache the
  activations in FP8 format for the backward pass of the Linear operator". So the QKV (MLA's
  latent up-projections'), MLP (experts') and down projections' inputs are kept in FP8; a fused
  attention kernel keeps its BF16 output for its own backward (not where selective recompute
  reruns it) and the output projection an FP8 copy of it besides (:func:`linear_input_bytes`,
  :func:`service.core.activations.layer_activation_bytes`).
- **FP8 primary weights of a frozen base** (Transformer Engine's ``fp8_model_init``: modules "hold
  only FP8 copies of its parameters ... especially useful for ... LoRA-like fine-tuning, where the
  main parameters of the model do not change"; NeMo's ``fp8_params``, Megatron-Bridge's
  ``fp8_param_gather``): no BF16 weight. The row-wise FP8 weight and the column-wise (transposed)
  one the input-gradient GEMM reads on Hopper, whose FP8 GEMMs take only the TN layout, are both
  kept: Transformer Engine 2's ``Linear`` forward calls ``update_usage(columnwise_usage=True)`` on
  a quantised weight that needs a gradient through it, and a frozen weight never invalidates that
  copy, so it is made once; MXFP8 quantises each direction on its own (1x32 blocks). Transformer
  Engine 1 with ``disable_parameter_transpose_cache`` (NeMo 24.04) kept the row-wise copy alone
  and transposed it again in every backward (``_Linear.backward``:
  ``weight.transpose_2d(cache=ctx.is_first_microbatch is not None)``): a byte a weight less, a
  memory-bound transpose more per micro-batch, not modelled.
"""

from __future__ import annotations

from enum import StrEnum

from service.core.errors import InvalidSpecError


class Fp8Recipe(StrEnum):
    TENSORWISE = "tensorwise"
    BLOCKWISE = "blockwise"
    MXFP8 = "mxfp8"


FP8_ACTIVATION_BYTES = 1  # one FP8 byte a kept linear-layer input element
FP8_WEIGHT_COPIES = 2  # the row-wise and the column-wise (transposed) FP8 copy of each matmul weight
FP8_CAST_BYTES_PER_ELEMENT = FP8_WEIGHT_COPIES * (2 + 1)  # read BF16, write FP8, for each of the two copies
FP8_GATHERED_WEIGHT_BYTES = 1  # a tensorwise weight FSDP2 gathers in FP8 (gathered_weight_bytes_per_param)
BF16_GATHERED_WEIGHT_BYTES = 2  # a weight of another recipe, gathered in BF16

# Scale bytes per element of each FP8 copy: none per tensor; DeepSeek-V3's one fp32 scale per 128x128
# weight block; MX: one 1-byte E8M0 scale per 32 elements
SCALE_BYTES_PER_WEIGHT = {Fp8Recipe.TENSORWISE: 0.0, Fp8Recipe.BLOCKWISE: 4 / (128 * 128), Fp8Recipe.MXFP8: 1 / 32}
# ...and per activation element (1x128 tiles with an fp32 scale; MX blocks of 32)
SCALE_BYTES_PER_ACTIVATION = {Fp8Recipe.TENSORWISE: 0.0, Fp8Recipe.BLOCKWISE: 4 / 128, Fp8Recipe.MXFP8: 1 / 32}

# Which recipes each GPU generation runs natively: MX scaling is a Blackwell tensor-core format
# (NVIDIA Blackwell architecture technical brief; Transformer Engine's MXFP8BlockScaling needs sm100)
MXFP8_NEEDS = "Blackwell tensor cores (B200, GB200)"

BF16_OPS = "attention core, norms, router, embedding and output layer in BF16/FP32"


def weight_copy_bytes_per_param(recipe: Fp8Recipe) -> float:
    """Bytes of FP8 weight copies (and their scales) per matmul parameter."""
    return FP8_WEIGHT_COPIES * (1 + SCALE_BYTES_PER_WEIGHT[recipe])


def gathered_weight_bytes_per_param(recipe: Fp8Recipe) -> float:
    """Bytes a matmul parameter of a stage that ZeRO-3 keeps gathered through the step holds
    (:class:`service.core.memory.ZeroSharding` ``gathered``: FSDP2 under a pipeline, torchtitan's
    ``apply_fsdp`` with ``reshard_after_forward=False``): FSDP2's all-gather output, the weight's one
    unsharded copy, and no FP8 copies beside it.

    - ``tensorwise``: one FP8 byte (the scale is one fp32 number a tensor). torchtitan's Float8
      handler (``torchtitan/float8.py``, late 2024) turns on ``enable_fsdp_float8_all_gather`` under
      FSDP, and its Llama 3.1 405B config sets it with ``precompute_float8_dynamic_scale_for_fsdp``
      (``train_configs/llama3_405b.toml``, pytorch/torchtitan 37c4b81); torchao's
      ``WeightWithDynamicFloat8CastTensor.fsdp_pre_all_gather`` (``torchao/float8/fsdp_utils.py``)
      casts the fp32 shard to FP8 and all-gathers ``float8_tensor._data``, and
      ``fsdp_post_all_gather`` wraps the gathered bytes as the unsharded ``Float8Tensor(data, scale,
      param_dtype)``, which FSDP2's ``FSDPParam.init_unsharded_param`` makes the unsharded parameter
      (``torch/distributed/_composable/fsdp/_fsdp_param.py``): no BF16 copy of the weight exists.
      ``Float8Linear.forward`` takes it as it is (``cast_weight_to_float8_t``: ``if
      tensor_already_casted_to_fp8(weight): return weight.t()``, torchao v0.8.0), and the backward's
      transposed operand is made for its GEMM and freed.
    - ``blockwise`` and ``mxfp8``: gathered in BF16, 2 bytes, each matmul casting its weight when it
      runs: torchao's FSDP2 Float8 all-gather is the tensorwise weight subclass's (torchtitan's
      Float8 converter refuses ``enable_fsdp_float8_all_gather`` with a ``recipe_name``), and the
      axiswise path (``manual_float8_matmul_with_args_in_hp``) saves the high-precision weight and
      casts it again in the backward."""
    if recipe is Fp8Recipe.TENSORWISE:
        return FP8_GATHERED_WEIGHT_BYTES + SCALE_BYTES_PER_WEIGHT[recipe]
    return BF16_GATHERED_WEIGHT_BYTES


def zero3_gather_bytes_per_param(weight_bytes: float, matmul_share: float, recipe: Fp8Recipe | None) -> float:
    """Bytes ZeRO-3's all-gather moves a parameter of a shard whose ``matmul_share`` are matmul weights
    (:func:`service.core.memory.fp8_copy_params`), per micro-batch and layer or, a stage kept gathered
    under a pipeline, once a step: under FP8 (``recipe``) the matmul weights as FSDP2 gathers them
    (:func:`gathered_weight_bytes_per_param`: tensorwise in FP8, torchtitan's
    ``enable_fsdp_float8_all_gather``, as :func:`service.core.memory.gathered_fp8_weight_bytes` holds
    them; blockwise and MXFP8 in BF16), the embedding, the output layer and the norms, which no
    ``Float8Linear`` wraps, in ``weight_bytes``; ``recipe`` None (not FP8): all in ``weight_bytes``."""
    if recipe is None:
        return weight_bytes
    return weight_bytes - (weight_bytes - gathered_weight_bytes_per_param(recipe)) * matmul_share


def frozen_weight_bytes_per_param(recipe: Fp8Recipe) -> float:
    """Bytes a frozen matmul parameter keeps as an FP8 primary weight (module docstring): its
    row-wise and column-wise FP8 copies and their scales, and no BF16 weight."""
    return weight_copy_bytes_per_param(recipe)


def linear_input_bytes(recipe: Fp8Recipe) -> float:
    """Bytes an FP8 linear layer keeps per element of its input for the weight gradient: the
    quantised copy (1 byte) and its scales (module docstring, "Activations")."""
    return FP8_ACTIVATION_BYTES + SCALE_BYTES_PER_ACTIVATION[recipe]


def cast_bytes_per_element(recipe: Fp8Recipe) -> float:
    """HBM bytes to quantise one BF16 element into both FP8 copies with the recipe's scales."""
    return FP8_CAST_BYTES_PER_ELEMENT + FP8_WEIGHT_COPIES * SCALE_BYTES_PER_ACTIVATION[recipe]


def check_recipe(recipe: Fp8Recipe, *, gpu: str, blackwell: bool, field: str = "fp8_recipe") -> None:
    """MXFP8 needs Blackwell tensor cores; the other recipes run on any GPU with FP8. ``field``
    the request's field a refusal names (a plan over pools: the pool's GPU)."""
    if recipe is Fp8Recipe.MXFP8 and not blackwell:
        raise InvalidSpecError(field, f"mxfp8 needs {MXFP8_NEEDS}; {gpu} runs tensorwise or blockwise scaling")
