"""How an implementation runs a transformer layer: the kernels that decide which tensors a
training step keeps for backward.

Korthikanti et al. 2022 (§4.1, Table 2) count what Megatron-LM's fused kernels keep: a 16-bit
norm input, a 16-bit softmax output (fused scale-mask-softmax), one tensor per activation input.
The stack most users run — PyTorch with Hugging Face ``transformers`` — keeps more, and each
difference is a property of the implementation, measured tensor by tensor
(``validation/measure.py``, ``ACCURACY.md``):

- **attention**: ``eager`` materialises the ``a*s^2`` scores; ``sdpa``
  (``torch.nn.functional.scaled_dot_product_attention``, transformers' default since 4.36, which
  on a GPU in 16 bits runs the FlashAttention or memory-efficient kernel) and ``flash``
  (FlashAttention 2, Dao 2023) keep only the output and an fp32 log-sum-exp per query and head
  (Dao et al. 2022 §3.1), and drop the scores' dropout mask (the kernel regenerates it).
- **fp32 softmax**: transformers' shared eager attention computes the softmax in fp32
  (``softmax(..., dtype=float32).to(q.dtype)``): it keeps the fp32 probabilities (4 bytes per
  score) and the 16-bit copy the value matmul reads (``e`` more). Megatron's fused kernel and
  GPT-2's own eager code keep one 16-bit tensor.
- **fp32 norms**: an RMSNorm written as transformers' ``LlamaRMSNorm`` (Llama, Mistral, Qwen2 and
  their copies) upcasts its input: it keeps the fp32 copy (4 bytes) and the 16-bit normalised
  tensor its weight multiplies (``e``) instead of the 16-bit input; ``torch.nn.LayerNorm`` in 16 bits
  keeps its 16-bit input and two fp32 scalars per token.
- **fp32 norm weight**: OLMo 2's and Gemma's RMSNorm also multiply by their weight in fp32 before
  casting back (transformers' ``GemmaRMSNorm``, ``Gemma2RMSNorm``, ``Gemma3RMSNorm``:
  ``output * (1.0 + self.weight.float())`` then ``type_as(x)``; ``Olmo2RMSNorm``:
  ``(self.weight * hidden_states).to(input_dtype)`` on the fp32 ``hidden_states``): each keeps the fp32
  input and an fp32 normalised tensor (8 bytes an element, not ``4 + e``). It follows the model's
  family (:func:`family_norm_weight_fp32`: a preset's ``family``, a ``config.json``'s
  ``model_type``); ``fp32_norm_weight`` given explicitly overrides it. OLMoE's and Llama's RMSNorm
  cast back before the weight (``weight * hidden_states.to(input_dtype)``).
- **fused activation**: one kernel (torch's ``gelu``, Megatron's fused bias-GELU / bias-SwiGLU)
  keeps only its input: a GELU MLP keeps the activation input and the down-projection input
  (``2*e*f`` per token), a fused SwiGLU the gate-and-up output and the product (``3*e*f``,
  Megatron recomputes the SiLU). Written as separate tensor ops, SwiGLU ``act(gate) * up`` also
  keeps the SiLU output (``4*e*f``), and a GELU formula (``0.5*x*(1 + tanh(...))`` as GPT-2's
  ``gelu_new``, or the erf form) keeps three intermediates more (``5*e*f``).
- **K/V repeat**: transformers' eager attention repeats the K and V heads to every query head
  (``repeat_kv``) before the matmuls, so with GQA the kept K and V have the query width; SDPA with
  ``enable_gqa`` (no mask, head size up to 256), FlashAttention and Megatron read the shared heads.
- **residual dropout**: dropout on the embedding, the attention output and the MLP output
  (GPT-2, GPT-NeoX, Megatron); Llama's implementation has attention dropout only.
- **device convention**: where the step runs decides two things PyTorch keeps differently. On
  ``cuda`` (the default) ``dropout`` is the fused ``native_dropout``, which keeps a bool mask (1 byte
  an element), and SDPA with dropout runs the FlashAttention or memory-efficient kernel, which
  regenerates its mask. On ``cpu`` (the convention of ``validation/measure.py``) ``dropout`` multiplies
  by a noise tensor of the dropped tensor's dtype (ATen ``Dropout.cpp``, ``_dropout_impl``:
  ``at::empty_like(input).bernoulli_(1 - p)``, kept for the backward pass), and SDPA with dropout falls
  back to the math path (PyTorch's CPU flash kernel takes no dropout: ``sdp_utils_cpp.cpp``,
  ``check_for_dropout``), ``_scaled_dot_product_attention_math``, which upcasts 16-bit Q, K and V to
  fp32 and keeps the fp32 scaled Q and K, V, the fp32 softmax output, its fp32 noise and the fp32
  dropped-out scores (seen op by op under a ``TorchDispatchMode``, torch 2.13). Mamba, Mamba-2 and
  RWKV-4 layers keep their fused CUDA kernels' tensors on ``cuda`` and, on ``cpu``, what transformers'
  reference torch code keeps (:mod:`service.core.recurrent_activations_cpu`).

- **cross entropy**: the loss over the logits ``s*b*V/t`` (``t`` tensor-parallel vocabulary shards)
  peaks at the loss, for the last stage's one micro-batch. ``fused``: Megatron's vocab-parallel
  cross entropy keeps the fp32 softmax and computes its gradient in place, 4 bytes a logit
  (Korthikanti et al. 2022 §4.3). ``eager``: PyTorch's ``F.cross_entropy`` on logits upcast to fp32
  (transformers' ``ForCausalLMLoss``: ``logits = logits.float()``; torchtitan's loss: ``.float()``)
  is ``log_softmax`` then ``nll_loss``; ``log_softmax`` saves its fp32 *output* for the backward
  (PyTorch ``tools/autograd/derivatives.yaml``: ``_log_softmax_backward_data(grad, result, ...)``).
  The forward holds the 16-bit logits, their fp32 copy and the fp32 log-softmax together
  (``e + 8``, 10 bytes in 16 bits); the backward holds the saved log-softmax, ``nll_loss``'s dense
  fp32 gradient and the log-softmax's fp32 input gradient together before the cast back (12 bytes),
  the larger peak. On logits split over ``t > 1`` vocabulary shards the eager loss is PyTorch's loss
  parallel (torchtitan's with tensor parallelism), whose fused backward holds four fp32 tensors, 16
  bytes a logit (:data:`LOSS_PARALLEL_LOGIT_BYTES`).

Unset fields take the framework's value; transformers' values for norms and activations follow
the architecture (RMSNorm upcasts, LayerNorm does not; SwiGLU is unfused, GELU is torch's
kernel).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from service.core.architecture import Architecture, Ffn, Norm


class AttentionKernel(StrEnum):
    """How the attention core runs: ``eager`` (matmuls and a softmax; the scores are kept),
    ``sdpa`` (PyTorch's fused ``scaled_dot_product_attention``) or ``flash`` (FlashAttention)."""

    EAGER = "eager"
    SDPA = "sdpa"
    FLASH = "flash"


class DeviceConvention(StrEnum):
    """Where the training step runs, for the tensors PyTorch keeps differently there (see the module
    docstring): ``cuda`` (1-byte dropout masks, SDPA's fused kernels with dropout, recurrent layers'
    fused kernels) or ``cpu`` (noise tensors in the dropped tensor's dtype, SDPA's fp32 math path with
    dropout, recurrent layers' reference torch code)."""

    CUDA = "cuda"
    CPU = "cpu"


class CrossEntropy(StrEnum):
    """How the loss runs over the logits (module docstring): ``fused`` (Megatron's vocab-parallel
    cross entropy, in place on the fp32 softmax) or ``eager`` (PyTorch's ``F.cross_entropy`` on
    logits upcast to fp32, as transformers and torchtitan call it)."""

    FUSED = "fused"
    EAGER = "eager"


FUSED_CROSS_ENTROPY_LOGIT_BYTES = 4
"""Bytes a logit element takes at the fused loss's peak: the fp32 softmax Megatron's
vocab-parallel cross entropy keeps and turns into its gradient in place (Korthikanti et al. 2022
§4.3: the ``4*s*b*V/t`` of the output layer)."""
EAGER_CROSS_ENTROPY_LOGIT_BYTES = 4 + 4 + 4
"""Bytes a logit element takes at the eager loss's peak, in its backward: the fp32 log-softmax
output ``log_softmax`` saved (PyTorch ``tools/autograd/derivatives.yaml``:
``_log_softmax_backward_data(grad, result, ...)``), ``nll_loss``'s dense fp32 gradient and the
log-softmax's fp32 input gradient, alive together before the cast back to 16 bits. The forward
holds less: the 16-bit logits, the fp32 copy transformers' ``ForCausalLMLoss`` makes
(``logits.float()``) and the fp32 log-softmax, 2 + 4 + 4 = 10 in 16-bit training."""
CROSS_ENTROPY_LOGIT_BYTES = {
    CrossEntropy.FUSED: FUSED_CROSS_ENTROPY_LOGIT_BYTES,
    CrossEntropy.EAGER: EAGER_CROSS_ENTROPY_LOGIT_BYTES,
}
LOSS_PARALLEL_LOGIT_BYTES = 4 + 4 + 4 + 4
"""Bytes a logit element takes at the eager loss's peak on vocab-sharded logits (tensor parallelism):
PyTorch's loss parallel (``torch.distributed.tensor.parallel.loss_parallel``, on in torchtitan whenever
tensor parallelism is, unless ``disable_loss_parallel``) runs ``F.cross_entropy`` on the fp32-upcast
shards through its own handlers. Its backward, ``_nll_loss_and_log_softmax_backward``
(``torch/distributed/tensor/parallel/loss.py``), fuses ``nll_loss``'s and ``log_softmax``'s backward as
``grad_input = torch.zeros_like(x)`` then ``(grad_input + torch.exp(x)) * grad_output``, with ``x`` the
saved fp32 log-softmax: while the sum is formed the saved ``x``, ``grad_input``, ``exp(x)`` and the sum
are alive, and while the product is formed ``x``, ``grad_input``, the sum and the product: four fp32
tensors, 16 bytes a logit (the forward's ``_log_softmax`` holds the 16-bit shard, its fp32 copy, the
shifted logits and their ``exp``: 14)."""


def cross_entropy_logit_bytes(cross_entropy: CrossEntropy, tp: Any = 1) -> Any:
    """Bytes a logit element takes at the loss's peak over logits split into ``tp`` vocabulary shards:
    fused :data:`FUSED_CROSS_ENTROPY_LOGIT_BYTES`; eager :data:`EAGER_CROSS_ENTROPY_LOGIT_BYTES` on whole
    logits, :data:`LOSS_PARALLEL_LOGIT_BYTES` on shards (``tp > 1``). Scalars or NumPy arrays of ``tp``."""
    if cross_entropy is CrossEntropy.FUSED:
        return FUSED_CROSS_ENTROPY_LOGIT_BYTES
    if np.ndim(tp):
        return np.where(np.asarray(tp) > 1, LOSS_PARALLEL_LOGIT_BYTES, EAGER_CROSS_ENTROPY_LOGIT_BYTES)
    return LOSS_PARALLEL_LOGIT_BYTES if tp > 1 else EAGER_CROSS_ENTROPY_LOGIT_BYTES


class Framework(StrEnum):
    """Whose kernels: ``huggingface`` (PyTorch + transformers, the stack most users run) or
    ``megatron`` (Megatron-LM's fused kernels, the setting of Korthikanti et al. 2022)."""

    HUGGINGFACE = "huggingface"
    MEGATRON = "megatron"


@dataclass(frozen=True, kw_only=True, slots=True)
class Kernels:
    """The implementation choices that decide the kept activations; ``None`` takes the framework's
    value (see the module docstring). ``Kernels()`` is transformers with SDPA; :data:`MEGATRON` is
    Korthikanti's count."""

    framework: Framework = Framework.HUGGINGFACE
    attention: AttentionKernel | None = None
    fp32_softmax: bool | None = None
    fp32_norms: bool | None = None
    fused_activation: bool | None = None
    residual_dropout: bool = True
    fp32_norm_weight: bool | None = None
    device: DeviceConvention = DeviceConvention.CUDA
    cross_entropy: CrossEntropy | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ResolvedKernels:
    """:class:`Kernels` with every choice made for one architecture."""

    framework: Framework
    attention: AttentionKernel
    fp32_softmax: bool
    fp32_norms: bool
    fused_activation: bool
    repeat_kv: bool
    residual_dropout: bool
    fp32_norm_weight: bool = False
    device: DeviceConvention = DeviceConvention.CUDA
    cross_entropy: CrossEntropy = CrossEntropy.FUSED

    @property
    def keeps_scores(self) -> bool:
        return self.attention is AttentionKernel.EAGER

    def logit_bytes(self, tp: Any = 1) -> Any:
        """Bytes a logit element takes at the loss's peak over ``tp`` vocabulary shards
        (:func:`cross_entropy_logit_bytes`)."""
        return cross_entropy_logit_bytes(self.cross_entropy, tp)


MEGATRON = Kernels(framework=Framework.MEGATRON)

FP32_NORM_WEIGHT_FAMILIES = frozenset({"gemma", "gemma-2", "gemma-3", "olmo-2"})
"""Preset families whose transformers RMSNorm multiplies by its weight in fp32 (module docstring)."""
FP32_NORM_WEIGHT_MODEL_TYPES = frozenset({"gemma", "gemma2", "gemma3", "gemma3_text", "olmo2"})
"""``config.json`` ``model_type`` values of the same modelling code."""


def family_norm_weight_fp32(*, family: str | None = None, model_type: str | None = None) -> bool:
    """Whether the model's norms multiply by their weight in fp32, from a preset's ``family`` or a
    ``config.json``'s ``model_type`` (Gemma 1-3 and OLMo 2 in transformers; module docstring)."""
    return family in FP32_NORM_WEIGHT_FAMILIES or model_type in FP32_NORM_WEIGHT_MODEL_TYPES


def resolve_kernels(kernels: Kernels, arch: Architecture, *, flash_attention: bool = False) -> ResolvedKernels:
    """Fill the unset choices from the framework and the architecture. ``flash_attention`` (the
    older boolean input) selects ``flash`` when no attention kernel is named."""
    hf = kernels.framework is Framework.HUGGINGFACE
    attention = kernels.attention
    if attention is None:
        if flash_attention:
            attention = AttentionKernel.FLASH
        else:
            attention = AttentionKernel.SDPA if hf else AttentionKernel.EAGER

    def pick(value: bool | None, default: bool) -> bool:
        return default if value is None else value

    return ResolvedKernels(
        framework=kernels.framework,
        attention=attention,
        fp32_softmax=pick(kernels.fp32_softmax, hf),
        fp32_norms=pick(kernels.fp32_norms, hf and arch.norm is Norm.RMSNORM) or bool(kernels.fp32_norm_weight),
        fused_activation=pick(kernels.fused_activation, not hf or arch.ffn is Ffn.GELU),
        repeat_kv=hf,
        residual_dropout=kernels.residual_dropout,
        fp32_norm_weight=bool(kernels.fp32_norm_weight),
        device=kernels.device,
        cross_entropy=kernels.cross_entropy or (CrossEntropy.EAGER if hf else CrossEntropy.FUSED),
    )


def dropout_mask_bytes(k: ResolvedKernels, dropped_bytes: int) -> int:
    """Bytes a dropout keeps per element for its backward pass: CUDA's ``native_dropout`` a bool
    mask (1); the CPU's ``dropout`` a noise tensor of the dropped tensor's dtype (``dropped_bytes``)."""
    return dropped_bytes if k.device is DeviceConvention.CPU else 1


def sdpa_math_fallback(k: ResolvedKernels, *, dropout: bool) -> bool:
    """Whether SDPA runs PyTorch's math path: on the CPU with dropout (module docstring), where it keeps
    fp32 Q, K, V and the fp32 scores, noise and dropped-out scores instead of a log-sum-exp."""
    return dropout and k.attention is AttentionKernel.SDPA and k.device is DeviceConvention.CPU


def norm_kept_bytes(k: ResolvedKernels, element_bytes: int) -> int:
    """Bytes one norm keeps per element of its input: the input (``e``), or with an fp32 upcast
    the fp32 copy and the ``e``-byte normalised tensor (``4 + e``), or with the weight multiplied
    in fp32 too (OLMo 2, Gemma) the fp32 copy and an fp32 normalised tensor (8)."""
    if k.fp32_norms and k.fp32_norm_weight:
        return 8
    return 4 + element_bytes if k.fp32_norms else element_bytes


def mlp_intermediates(k: ResolvedKernels, ffn: Ffn) -> int:
    """``d_ff``-wide tensors one MLP keeps per token: GELU 2 fused / 5 as separate ops, SwiGLU 3
    fused (Megatron recomputes the SiLU) / 4 as ``act(gate) * up``."""
    if ffn is Ffn.SWIGLU:
        return 3 if k.fused_activation else 4
    return 2 if k.fused_activation else 5


def bytes_per_score(k: ResolvedKernels, element_bytes: int, *, dropout: bool) -> int:
    """Bytes an eager attention keeps per attention score: the softmax output (4 in fp32, else
    ``e``), then with dropout its mask (:func:`dropout_mask_bytes`: 1 on CUDA, ``e`` on the CPU) and
    the dropped-out ``e``-byte copy the value matmul reads, or without dropout the ``e``-byte cast of
    fp32 probabilities (none when already ``e``). Megatron's fused softmax on CUDA: 2 without dropout,
    5 with (Korthikanti §4.1). SDPA's math path on the CPU (:func:`sdpa_math_fallback`): 12, all fp32."""
    e = element_bytes
    if sdpa_math_fallback(k, dropout=dropout):
        return 4 + dropout_mask_bytes(k, 4) + 4
    softmax = 4 if k.fp32_softmax else e
    if dropout:
        return softmax + dropout_mask_bytes(k, e) + e
    return softmax + (e if k.fp32_softmax and e < 4 else 0)
