"""Integer arithmetic for money: amounts are whole micro-credits, never floats (DESIGN §3.4)."""

from __future__ import annotations

from forge_pipeline.intake.problems import INT64_MAX

BPS_WHOLE = 10_000  # basis points in one whole


def require_count(name: str, value: object, maximum: int = INT64_MAX) -> None:
    """An int in [0, maximum] (a bool is not a count); the ledger holds signed 64-bit amounts."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise ValueError(f"{name} must be an integer in [0, {maximum}], got {value!r}")


def ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)
