"""Exact decimals: parsed from the text as written, never through a float or a rounding context.

A decimal is written `[+-]digits[.digits][(e|E)[+-]digits]` in ASCII digits only, with at most
`MAX_DECIMAL_DIGITS` mantissa digits and an exponent of at most `MAX_DECIMAL_EXPONENT` in absolute
value, both checked on the text before any arithmetic, and at most `MAX_DECIMAL_DIGITS` digits
written out positionally (leading zeros before the point aside), so its canonical text reads
back as itself. Its canonical text is positional (no
exponent), without a `+`, without leading zeros before the point (one `0` stays), without trailing
zeros after it, without a point when nothing follows it, and `0` for every zero (`-0`, `0.000`,
`0e5`). `Fraction(canonical)` is its exact value, and two decimals are equal exactly when their
canonical texts are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from forge_pipeline.intake.limits import MAX_DECIMAL_DIGITS, MAX_DECIMAL_EXPONENT

# [0-9], not \d: \d also matches the digits of other scripts ("٠.٥").
_DECIMAL = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?")
_EXPONENT_DIGITS_MAX = len(str(MAX_DECIMAL_EXPONENT))


@dataclass(frozen=True)
class DecimalNumber:
    """A number literal with a fraction or exponent as the document wrote it (JSON `0.1`, YAML `0.1`).

    Documents are parsed into this rather than into a float, so `0.1` keeps meaning one tenth
    and 41 significant digits stay 41. Integer fields refuse it, as they refuse a float.
    """

    text: str

    def __str__(self) -> str:
        return self.text


class DecimalRefused(ValueError):
    """The text is not an exact decimal within the limits; the message says why."""


def canonical_decimal(text: str) -> str:
    """The canonical text of the decimal `text` (module docstring); raises DecimalRefused."""
    match = _DECIMAL.fullmatch(text)
    if match is None or not (match.group(2) or match.group(3)):
        raise DecimalRefused("must be a decimal number written with ASCII digits, like 0.25 or 2.5e-3")
    sign, whole, fraction, exponent_text = match.group(1), match.group(2), match.group(3) or "", match.group(4)
    digits = (whole + fraction).lstrip("0")
    if len(whole.lstrip("0")) + len(fraction) > MAX_DECIMAL_DIGITS:
        raise DecimalRefused(f"has more than {MAX_DECIMAL_DIGITS} digits")
    exponent = 0
    if exponent_text is not None:
        if len(exponent_text.lstrip("+-").lstrip("0")) > _EXPONENT_DIGITS_MAX:
            raise DecimalRefused(f"exponent beyond +-{MAX_DECIMAL_EXPONENT}")
        exponent = int(exponent_text)
        if abs(exponent) > MAX_DECIMAL_EXPONENT:
            raise DecimalRefused(f"exponent {exponent} beyond +-{MAX_DECIMAL_EXPONENT}")
    if not digits:
        return "0"
    # value = int(digits) * 10^-scale, then trailing zeros moved into the scale
    scale = len(fraction) - exponent
    stripped = digits.rstrip("0")
    scale -= len(digits) - len(stripped)
    if scale <= 0:
        positional = stripped + "0" * -scale
    else:
        padded = stripped.rjust(scale + 1, "0")
        positional = f"{padded[:-scale]}.{padded[-scale:]}"
    whole_digits, _, fraction_digits = positional.partition(".")
    if len(whole_digits.lstrip("0")) + len(fraction_digits) > MAX_DECIMAL_DIGITS:  # so the canonical text re-reads
        raise DecimalRefused(f"has more than {MAX_DECIMAL_DIGITS} digits when written out without an exponent")
    return ("-" if sign == "-" else "") + positional


def canonical_decimal_of(value: object) -> str:
    """The canonical text of a decimal-valued input: a string, an int, a DecimalNumber, or a float
    by its shortest repr (a document built in Python); raises DecimalRefused for anything else."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float, DecimalNumber)):
        raise DecimalRefused("must be a decimal number")
    if isinstance(value, int) and value.bit_length() > 4 * MAX_DECIMAL_DIGITS:
        raise DecimalRefused(f"has more than {MAX_DECIMAL_DIGITS} digits")  # before str() of a huge int
    return canonical_decimal(repr(value) if isinstance(value, float) else str(value))
