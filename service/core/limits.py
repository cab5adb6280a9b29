"""Bounds that keep every estimate finite and representable.

The bounds are generous (a thousand times beyond the largest models trained so far) but finite, so a
request for 1e30 parameters is rejected as a typo rather than answered with a number no client can
hold. Byte counts must fit a signed 64-bit integer, because OpenAPI-generated clients decode
``integer`` as int64.
"""

from __future__ import annotations

import math

from service.core.errors import InvalidSpecError

MAX_PARAMS = 1e16  # 10 quadrillion: ~10,000x Llama-3.1-405B
MAX_TOKENS = 1e18  # ~60,000x Llama-3's 15T training tokens
MAX_DIM = 1_000_000  # d_model, d_ff, vocabulary, heads
MAX_LAYERS = 100_000
MAX_SEQ_LEN = 100_000_000
MAX_BATCH = 10_000_000
MAX_INT64 = 2**63 - 1


def check_positive_int(field: str, value: int, *, maximum: int) -> int:
    """Reject a non-integer, a value below 1 or above ``maximum`` with a message naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSpecError(field, f"must be an integer, got {value!r}")
    if value < 1:
        raise InvalidSpecError(field, f"must be at least 1, got {value}")
    if value > maximum:
        raise InvalidSpecError(field, f"must be at most {maximum:g}, got {_short(value)}")
    return value


def _short(value: float) -> str:
    """``value`` for a message: ``%g``, or its digit count when it is too large for a float."""
    try:
        return f"{value:g}"
    except OverflowError:
        return f"an integer of {len(str(abs(int(value))))} digits"


def check_positive_number(field: str, value: float, *, maximum: float) -> float:
    """Reject NaN, infinities, values <= 0 or above ``maximum`` with a message naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidSpecError(field, f"must be a number, got {value!r}")
    if isinstance(value, int) and value > maximum:  # before any float conversion: 10**400 overflows one
        raise InvalidSpecError(field, f"must be at most {maximum:g}, got {_short(value)}")
    if not math.isfinite(value):
        raise InvalidSpecError(field, "must be a finite number")
    if value <= 0:
        raise InvalidSpecError(field, f"must be greater than 0, got {_short(value)}")
    if value > maximum:
        raise InvalidSpecError(field, f"must be at most {maximum:g}, got {_short(value)}")
    return value


def check_bytes(name: str, value: int, *, field: str = "model") -> int:
    """Reject an estimate whose byte count ``name`` does not fit a signed 64-bit integer; the
    error names the request ``field`` that made it so large."""
    if value > MAX_INT64:
        raise InvalidSpecError(
            field,
            f"the estimate's {name} ({value:.3e} bytes) exceeds what a 64-bit integer holds; "
            "reduce the model, seq_len or batch size",
        )
    return value


def check_flops(field: str, value: float) -> float:
    """Reject a FLOP count that is not a finite float."""
    if not math.isfinite(value) or value > 1e300:
        raise InvalidSpecError(field, "the result overflows a double; reduce the inputs")
    return value
