"""What a Mamba, Mamba-2 or RWKV-4 mixer keeps for the backward pass on the CPU convention.

On the CPU transformers runs neither ``mamba_ssm``'s fused kernels nor RWKV's WKV kernel: each mixer
falls back to its reference torch code (transformers 5.25, ``modeling_mamba.py``,
``modeling_mamba2.py``, ``modeling_rwkv.py``), and autograd keeps every tensor that code's operations
save: fp32 copies of 16-bit inputs, the discretised state-space tensors, the chunked SSD's
``C x C`` blocks, one fp32 state per token of the sequential scans. Each count below follows the code
tensor by tensor, counted once per storage as ``torch.autograd.graph.saved_tensors_hooks`` sees them
(``validation/measure_recurrent_acts.py``, measured in ``ACCURACY.md``). The ``cuda`` convention keeps
the fused kernels' counts (:mod:`service.core.recurrent_activations`).

What a 16-bit run keeps differs from an fp32 run where the code calls ``.float()`` or ``.to(dtype)``:
on a 16-bit tensor it makes an fp32 copy, which is kept; on an fp32 tensor it returns the tensor
itself, already counted (``up`` below: 4 bytes an element in 16 bits, 0 in fp32). Symbols: ``b``
sequences of ``s`` tokens (``T = b*s``), ``h`` ``d_model``, ``I`` the inner width, ``N`` the state
size, ``R`` Mamba's step-size rank, ``K`` the convolution's taps, ``H`` Mamba-2's heads of ``P``,
``G`` its groups, ``e`` bytes an activation element. The counts exclude the mixer's ``h``-wide
input (the caller's replicated part) and the block's norm. Pure Python.
"""

from __future__ import annotations

from service.core.architecture import Architecture, LayerType
from service.core.recurrent import inner_width

FP32_BYTES = 4
MAMBA2_CHUNK_TOKENS = 256
"""Tokens per chunk of ``mamba2_chunk_scan`` (``Mamba2Config.chunk_size``'s default, and
``chunk_size=256`` of state-spaces/mamba's ``Mamba2``): the sequence is zero-padded to a whole number
of chunks, and the chunked tensors keep the padded length."""


def cpu_mixer_bytes(arch: Architecture, kind: LayerType, *, seq_len: int, micro_batch_size: int, element_bytes: int) -> int:
    """Bytes one ``kind`` mixer keeps on the CPU convention for ``micro_batch_size`` sequences of
    ``seq_len`` tokens, beyond its ``h``-wide input (not divided over tensor-parallel ranks)."""
    s, b, e = seq_len, micro_batch_size, element_bytes
    if kind is LayerType.MAMBA2:
        return _mamba2_cpu(arch, s, b, e)
    if kind is LayerType.MAMBA:
        return _mamba_cpu(arch, s, b, e)
    if kind is LayerType.RWKV:
        return _rwkv4_cpu(arch, s * b, e)
    raise ValueError(f"{kind} has no CPU-path count")


def _up(e: int) -> int:
    """Bytes an element of ``x.float()`` adds: an fp32 copy of a 16-bit tensor, nothing in fp32."""
    return 0 if e == FP32_BYTES else FP32_BYTES


def _mamba_cpu(arch: Architecture, s: int, b: int, e: int) -> int:
    """``MambaMixer.forward`` without ``mamba_inner_fn`` (transformers ``modeling_mamba.py``): the
    ``in_proj`` output ``xz`` (``2I``; the convolution reads it, the gate z is a view of it); the
    convolution's output over ``s + K - 1`` positions (``causal_conv1d_fn``, saved by the SiLU); the
    SiLU's output u (``I``), and ``x_proj``'s contiguous copy of it when ``b > 1`` (a transposed view);
    ``x_proj``'s output (``R + 2N``, read by ``dt_proj`` and as B and C); the step size before and after
    the softplus (``I`` each). ``mamba_selective_scan``'s sequential path then keeps B and u in fp32
    (``up``), ``discrete_A = exp(A*dt)`` and ``discrete_B = dt*B`` (fp32, ``I*N`` a token each), and
    per step the running fp32 state (``ssm_state = discrete_A[..., i] * ssm_state + deltaB_u[..., i]``
    saves the previous one: ``s - 1`` states after the initial zeros in ``e`` bytes) and its cast to
    the input dtype for the output matmul (``e*I*N`` a token; in fp32 the cast is the state itself, and
    the last state adds one); the scan's fp32 output before the gate, ``silu(z)``, D in fp32, A
    (``-exp(A_log)``, computed in ``forward`` and again in ``mamba_scan_forward``, where the ``exp`` keeps
    its output and ``A * dt`` the negated copy: three of ``I*N`` fp32) and ``out_proj``'s input. With Jamba's RMSNorms on the step size, B and C (``ssm_inner_norms``, not
    measured) each keeps its fp32 copy and normalised tensor (``(4 + e)(R + 2N)``)."""
    inner, n, r, k = inner_width(arch), arch.ssm_state_size or 0, arch.ssm_dt_rank or 0, arch.ssm_conv_kernel or 4
    t, up = s * b, _up(e)
    per_token = e * 2 * inner + e * inner + (e * inner if b > 1 else 0) + e * (r + 2 * n) + 2 * e * inner
    per_token += up * (n + inner) + 2 * FP32_BYTES * inner * n + FP32_BYTES * inner + e * inner + e * inner
    if arch.ssm_inner_norms:
        per_token += (FP32_BYTES + e) * (r + 2 * n)
    state = b * inner * n
    states = FP32_BYTES * state * (s - 1) + e * state + (e * t * inner * n if up else FP32_BYTES * state)
    conv = e * b * (s + k - 1) * inner
    constants = up * inner + 3 * FP32_BYTES * inner * n
    return per_token * t + states + conv + constants


def _mamba2_cpu(arch: Architecture, s: int, b: int, e: int) -> int:
    """``Mamba2Mixer.forward`` without ``mamba_split_conv1d_scan_combined`` (transformers
    ``modeling_mamba2.py``): the ``in_proj`` output ``zxbcdt`` (``2I + 2GN + H``; the convolution reads
    it, the gate is a view), the convolution's output over ``s + K - 1`` positions (``I + 2GN``, saved
    by the SiLU), the step size's softplus and clamp inputs (``H`` each), and then ``mamba2_chunk_scan``
    over the sequence padded to ``S`` tokens, ``c = S / C`` chunks of :data:`MAMBA2_CHUNK_TOKENS`:

    - fp32 copies of x and twice of dt in 16 bits (in fp32, the SiLU output and the clamped dt
      themselves); the padded fp32 x of the D skip connection (``I`` a padded token);
    - the ``C x C`` blocks per chunk and head, fp32: ``L = exp(segment_sum(A))``, the scores
      ``G = einsum(C, B)`` (kept by ``M = G * L``) and the contiguous copy of ``M`` that the ``Y_diag``
      einsum's batched matmul reads; ``segment_sum``'s two boolean masks (``C x C``, and
      ``(c + 1)^2`` for the inter-chunk decay);
    - B and C repeated to the heads, fp32: the copies of C and B the ``G`` einsum reads, the chunked B
      ``B_decay = B * decay_states`` keeps, the copy of ``B_decay`` the chunk-state einsum reads and the
      copy of C the ``C_times_states`` einsum reads (five of ``H*N`` a padded token; three for one
      sequence of one chunk, where the ``G`` einsum reads the chunked B and C themselves);
    - the copy of the discretised x the ``Y_diag`` einsum reads, and another for the chunk-state einsum
      when there are two chunks or more (``I`` a padded token each); ``C_times_states`` (``I``);
      ``decay_states`` and ``state_decay_out`` (``H`` each);
    - the chunk states (``(c + 1)*H*P*N`` a sequence after the zero initial state, and the ``c`` that
      ``C_times_states`` reads: a copy, or with one chunk the whole ``new_states``) and the
      inter-chunk decay (``H*(c + 1)^2``).

    ``Mamba2RMSNormGated`` keeps the scan's fp32 output, the gate in fp32 (``up``), ``silu(gate)``, the
    gated product, an fp32 reciprocal RMS per group and the normalised fp32 tensor (without the gated
    norm, ``ssm_gated_norm`` false, not measured: the output, the gate and its SiLU); ``out_proj`` its
    input; A (``-exp(A_log)``, ``H`` fp32) three times, as in Mamba. The einsums' copies are those
    torch 2.13's ``einsum`` makes (seen by the storages the hooks receive)."""
    inner, n, g, k = inner_width(arch), arch.ssm_state_size or 0, arch.ssm_n_groups or 1, arch.ssm_conv_kernel or 4
    heads, state = arch.ssm_n_heads or 1, (arch.ssm_n_heads or 1) * (arch.ssm_head_dim or 1) * n
    c, t, up, f = MAMBA2_CHUNK_TOKENS, s * b, _up(e), FP32_BYTES
    chunks = -(-s // c)
    padded = b * chunks * c  # tokens of the zero-padded chunks
    conv_width = inner + 2 * g * n
    # in_proj's output, the convolution's (s + K - 1 positions), softplus and clamp inputs of dt
    kept = e * t * (2 * inner + 2 * g * n + heads) + e * b * (s + k - 1) * conv_width + 2 * e * t * heads
    kept += t * (f * inner + 2 * f * heads if up else f * conv_width + f * heads)  # x and dt in fp32
    x_copies = 2 if chunks > 1 else 1
    bc_tensors = 3 if b == 1 and chunks == 1 else 5  # one sequence of one chunk: the G einsum reads B and C in place
    # per padded token: D's padded x, the C x C blocks, B and C at the heads, x copies, C_times_states, decays
    kept += f * padded * (inner + 3 * c * heads + bc_tensors * heads * n + x_copies * inner + inner + 2 * heads)
    kept += 2 * c * c + 2 * (chunks + 1) ** 2  # segment_sum's boolean masks
    read_states = chunks if chunks > 1 else chunks + 1
    kept += f * b * (state * (chunks + 1 + read_states) + heads * (chunks + 1) ** 2)  # chunk states, decay_chunk
    if arch.ssm_gated_norm:  # output, gate, silu(gate), product, normalised; rstd per group
        kept += t * (f * inner + up * inner + 3 * f * inner + f * g)
    else:
        kept += t * (f * inner + up * inner + f * inner)
    return kept + e * t * inner + 3 * f * heads  # out_proj's input; A three times


def _rwkv4_cpu(arch: Architecture, tokens: int, e: int) -> int:
    """``RwkvSelfAttention`` and ``RwkvFeedForward`` with ``rwkv_linear_attention_cpu`` (transformers
    ``modeling_rwkv.py``). Time mixing, beyond its ``h``-wide input: the shifted copy, the three mixed
    inputs of key, value and receptance, the receptance's sigmoid, the value (read by the loop), the
    loop's output and the output projection's input (8 of ``h``). The loop keeps per token twelve
    fp32 vectors of ``h``: the running ``max_state``, ``num_state`` and ``den_state`` it reads, ``k + u``
    and ``max_state + w`` (each a ``torch.maximum`` input), the four ``exp`` outputs e1, e2 and their
    state-update twins, the numerator and the denominator of the output, and the key in fp32 (a
    ``.float()`` copy per step in 16 bits, the key itself in fp32). Channel mixing as the fused count:
    its input, shifted copy, two mixed inputs, the receptance's sigmoid and the value's output (6 of
    ``h``), the squared ReLU's input and output (``2f``). Constants: the five ``1 - time_mix`` tensors
    and ``-exp(time_decay)`` (``h`` each)."""
    h, f = arch.d_model, arch.d_ff
    return e * tokens * (8 * h + 6 * h + 2 * f) + 12 * FP32_BYTES * tokens * h + 6 * e * h
