"""Property tests over the core (hypothesis): memory is never negative, grows with batch and
sequence, never grows with a higher ZeRO stage, and more tensor parallelism never raises the
weights held per GPU."""

from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from service.core.compute import Recompute, training_flops
from service.core.memory import Optimizer, Parallelism, Precision, inference_memory, training_memory
from service.core.op_checkpoint import op_checkpoint_problem
from service.core.params import count_params
from service.core.spec import make_architecture

heads = st.sampled_from([1, 2, 4, 8, 16, 32])


@st.composite
def architectures(draw):
    n_heads = draw(heads)
    n_kv = draw(st.sampled_from([k for k in (1, 2, 4, 8, 16, 32) if k <= n_heads and n_heads % k == 0]))
    d_head = draw(st.sampled_from([16, 32, 64, 128]))
    n_experts = draw(st.sampled_from([1, 1, 4, 8]))
    return make_architecture(
        n_layers=draw(st.integers(1, 96)),
        d_model=n_heads * d_head,
        n_heads=n_heads,
        n_kv_heads=n_kv,
        d_ff=draw(st.integers(1, 50_000)),
        vocab_size=draw(st.integers(1, 300_000)),
        ffn=draw(st.sampled_from(["gelu", "swiglu"])),
        norm=draw(st.sampled_from(["layernorm", "rmsnorm"])),
        bias=draw(st.booleans()),
        tied_embeddings=draw(st.booleans()),
        position=draw(st.sampled_from(["learned", "rotary", "alibi"])),
        max_seq_len=draw(st.integers(1, 32_768)),
        n_experts=n_experts,
        experts_per_token=draw(st.integers(1, n_experts)),
    )


options = dict(
    precision=st.sampled_from(list(Precision)),
    optimizer=st.sampled_from(list(Optimizer)),
    recompute=st.sampled_from(list(Recompute)),
    flash=st.booleans(),
    dropout=st.booleans(),
    sp=st.booleans(),
)


def memory(arch, *, batch=1, seq=128, tp=1, pp=1, dp=1, zero=0, **kw):
    if kw.get("recompute") is Recompute.SELECTIVE_OP:  # a 422 where torchtitan's op policy does not apply
        assume(op_checkpoint_problem(arch, flash_attention=kw.get("flash", False)) is None)
    return training_memory(
        arch,
        precision=kw.get("precision", Precision.MIXED_BF16),
        optimizer=kw.get("optimizer", Optimizer.ADAMW),
        recompute=kw.get("recompute", Recompute.NONE),
        flash_attention=kw.get("flash", False),
        dropout=kw.get("dropout", False),
        micro_batch_size=batch,
        seq_len=seq,
        parallelism=Parallelism(dp=dp, tp=tp, pp=pp, zero_stage=zero, sequence_parallel=kw.get("sp", False)),
    )


@settings(max_examples=150, deadline=None)
@given(arch=architectures(), batch=st.integers(1, 64), seq=st.integers(1, 8192), **options)
def test_memory_is_never_negative_and_adds_up(arch, batch, seq, **kw) -> None:
    r = memory(arch, batch=batch, seq=seq, **kw)
    parts = (r.weights_bytes, r.gradients_bytes, r.optimizer_bytes, r.activations_bytes)
    assert all(p >= 0 for p in parts)
    assert sum(parts) == r.total_bytes
    assert r.params_per_gpu == count_params(arch).total


@settings(max_examples=150, deadline=None)
@given(arch=architectures(), batch=st.integers(1, 64), seq=st.integers(1, 8192), **options)
def test_memory_is_monotone_in_batch_and_sequence(arch, batch, seq, **kw) -> None:
    base = memory(arch, batch=batch, seq=seq, **kw).total_bytes
    assert memory(arch, batch=batch + 1, seq=seq, **kw).total_bytes >= base
    assert memory(arch, batch=batch, seq=seq + 1, **kw).total_bytes >= base


@settings(max_examples=150, deadline=None)
@given(arch=architectures(), dp=st.integers(1, 1024), **options)
def test_higher_zero_stage_never_needs_more(arch, dp, **kw) -> None:
    totals = [memory(arch, dp=dp, zero=z, **kw).total_bytes for z in range(4)]
    assert totals == sorted(totals, reverse=True)


@settings(max_examples=150, deadline=None)
@given(arch=architectures(), pp=st.integers(1, 8), **options)
def test_doubling_tp_never_raises_per_gpu_weights(arch, pp, **kw) -> None:
    pp = min(pp, arch.n_layers)
    tp = 1
    while arch.n_heads % (tp * 2) == 0 and (arch.n_kv_heads % (tp * 2) == 0 or (tp * 2) % arch.n_kv_heads == 0):
        narrow = memory(arch, tp=tp, pp=pp, **kw)
        wide = memory(arch, tp=tp * 2, pp=pp, **kw)
        assert wide.weights_bytes <= narrow.weights_bytes
        assert wide.activations_bytes <= narrow.activations_bytes
        tp *= 2


@settings(max_examples=100, deadline=None)
@given(arch=architectures(), batch=st.integers(1, 256), seq=st.integers(0, 100_000))
def test_inference_memory_monotone(arch, batch, seq) -> None:
    r = inference_memory(arch, batch_size=batch, seq_len=seq)
    assert r.total_bytes >= r.weights_bytes > 0
    assert inference_memory(arch, batch_size=batch + 1, seq_len=seq).total_bytes >= r.total_bytes


@settings(max_examples=100, deadline=None)
@given(arch=architectures(), tokens=st.floats(1, 1e15), recompute=st.sampled_from(list(Recompute)))
def test_hardware_flops_never_below_model_flops(arch, tokens, recompute) -> None:
    assume(recompute is not Recompute.SELECTIVE_OP or op_checkpoint_problem(arch, flash_attention=True) is None)
    r = training_flops(arch, tokens, recompute=recompute, include_attention=True)
    assert r.hardware_flops >= r.model_flops > 0
