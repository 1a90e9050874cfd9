"""Validation problems named by field path, collected rather than raised one at a time.

A request is refused with every problem at once (`arguments.obligors[3].pd: must be in
[0, 1]`), so a user fixes a file in one pass. Rejection reasons are values, not
booleans; the exception carries all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

INT64_MAX = (1 << 63) - 1


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class RequestInvalid(ValueError):
    """Raised with every problem found; `str()` is one line per problem."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


@dataclass
class Problems:
    """A collector: each `require_*` returns the value when valid, else records and returns None."""

    found: list[Problem] = field(default_factory=list)

    def add(self, path: str, message: str) -> None:
        self.found.append(Problem(path, message))

    def raise_if_any(self) -> None:
        if self.found:
            raise RequestInvalid(self.found)

    def mapping(self, value: Any, path: str, required: set[str], optional: set[str]) -> dict | None:
        if not isinstance(value, dict):
            self.add(path or "(document)", f"must be a mapping, got {type_name(value)}")
            return None
        for key in sorted(required - value.keys()):
            self.add(join(path, key), "is required")
        for key in sorted(set(value) - required - optional, key=str):
            self.add(join(path, str(key)), "unknown field")
        return value

    def integer(self, value: Any, path: str, minimum: int | None = None, maximum: int | None = None) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(path, f"must be an integer, got {type_name(value)}")
            return None
        if minimum is not None and value < minimum:
            self.add(path, f"must be >= {minimum}, got {value}")
            return None
        if maximum is not None and value > maximum:
            self.add(path, f"must be <= {maximum}, got {value}")
            return None
        return value

    def string(self, value: Any, path: str, choices: tuple[str, ...] | None = None,
               max_length: int = 200) -> str | None:
        if not isinstance(value, str) or not value:
            self.add(path, f"must be a non-empty string, got {type_name(value)}")
            return None
        if len(value) > max_length:
            self.add(path, f"must be at most {max_length} characters")
            return None
        if choices is not None and value not in choices:
            self.add(path, f"must be one of {', '.join(choices)}, got {value!r}")
            return None
        return value

    def fraction(self, value: Any, path: str, low: Fraction, high: Fraction,
                 low_open: bool = False, high_open: bool = False) -> Fraction | None:
        """An exact probability-like number: a decimal string, an int, or a float read by its shortest repr."""
        exact = exact_fraction(value)
        if exact is None:
            self.add(path, f"must be a decimal number, got {type_name(value)} {value!r}")
            return None
        too_low = exact <= low if low_open else exact < low
        too_high = exact >= high if high_open else exact > high
        if too_low or too_high:
            left, right = "(" if low_open else "[", ")" if high_open else "]"
            self.add(path, f"must be in {left}{low}, {high}{right}, got {value}")
            return None
        return exact

    def list(self, value: Any, path: str, min_items: int, max_items: int) -> list | None:
        if not isinstance(value, list):
            self.add(path, f"must be a list, got {type_name(value)}")
            return None
        if len(value) < min_items:
            self.add(path, "must not be empty" if min_items == 1 else f"must have at least {min_items} items")
            return None
        if len(value) > max_items:
            self.add(path, f"must have at most {max_items} items, got {len(value)}")
            return None
        return value


def exact_fraction(value: Any) -> Fraction | None:
    """Fraction(str(x)) per DESIGN §3.3: 0.1 means one tenth, not the nearest double."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float, str)):
        try:
            decimal = Decimal(str(value).strip())
        except InvalidOperation:
            return None
        if not decimal.is_finite():
            return None
        return Fraction(decimal)
    return None


def type_name(value: Any) -> str:
    return {dict: "mapping", list: "list", str: "string", bool: "boolean", int: "integer",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)


def decimal_text(original: Any) -> str:
    """The canonical text of a decimal the user wrote (`0.1`, `"0.10"` -> `0.1`); Fraction(text) is exact."""
    return format(Decimal(str(original).strip()).normalize(), "f")
