"""Is a sequence length within the context a model was built for?

A rotary or ALiBi model runs past its trained context but its quality is not what was measured
(Press et al. 2022, ALiBi §4; Peng et al. 2023, YaRN §1: RoPE models "fail to generalize past the
context length they were trained on"), so a longer ``seq_len`` is answered with a warning. A learned
position table has no row for a later position (Radford et al. 2019, GPT-2 §2.3: 1,024 positions),
so a longer ``seq_len`` cannot be meant and is rejected.
"""

from __future__ import annotations

from service.core.architecture import Architecture, ModelShape, Position
from service.core.errors import InvalidSpecError


def check_context(model: ModelShape, seq_len: int | None, *, field: str = "seq_len") -> str | None:
    """A warning when ``seq_len`` exceeds the model's context (``max_seq_len``: the trained or
    RoPE-scaled context), None within it or without an architecture; raises
    :class:`InvalidSpecError` naming ``field`` beyond a learned position table."""
    if not isinstance(model, Architecture) or seq_len is None or seq_len <= model.max_seq_len:
        return None
    if model.position is Position.LEARNED:
        rows = model.learned_position_rows
        if seq_len > rows:
            raise InvalidSpecError(
                field,
                f"seq_len={seq_len} exceeds the model's {rows} learned positions (no embedding exists beyond them); "
                "to model a longer table give max_seq_len or position_embedding_rows",
            )
        return None
    return (
        f"seq_len={seq_len} exceeds the model's context of {model.max_seq_len} tokens (max_seq_len); the estimate is "
        "computed, but the model was not trained (or RoPE-scaled) for it"
    )
