"""Validation problems named by field path, collected rather than raised one at a time.

A request is refused with every problem at once (`arguments.obligors[3].pd: must be in
[0, 1]`), so a user fixes a file in one pass. Rejection reasons are values, not
booleans; the exception carries all of them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from forge_pipeline.intake.decimals import DecimalNumber, DecimalRefused, canonical_decimal_of
from forge_pipeline.intake.identifiers import IDENTIFIER, IDENTIFIER_RULE

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

    def within(self, source: str) -> RequestInvalid:
        """The same refusal, each problem's path prefixed by `source` (a file name) once."""
        refused = copy.copy(self)
        refused.problems = [problem if problem.path == source or problem.path.startswith(f"{source}: ")
                            else Problem(f"{source}: {problem.path}", problem.message) for problem in self.problems]
        refused.args = ("\n".join(str(problem) for problem in refused.problems),)
        return refused


class RequestIdConflict(RequestInvalid):
    """A request_id reused for a different canonical document (an idempotency key's conflict);
    `indexes` are the positions in the submitted batch of the requests refused."""

    def __init__(self, problems: list[Problem], indexes: list[int]):
        super().__init__(problems)
        self.indexes = list(indexes)


def join(path: str, key: str | int) -> str:
    """`path.key`, or `path[3]`; a key that is not printable is shown quoted (`tags['team\\n']`), so
    every problem stays one line and no key can pass for another."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if not key.isprintable():
        return f"{path}[{key!r}]"
    return f"{path}.{key}" if path else key


@dataclass
class Problems:
    """A collector: each check returns the value when valid, else records and returns None.

    `input_area` is the one folder whose files the document may name (its organization's input
    area, `forge_pipeline.intake.inputs`); None, and no input file may be named.
    """

    found: list[Problem] = field(default_factory=list)
    input_area: Path | None = None

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

    def identifier(self, value: Any, path: str) -> str | None:
        """An id under the one identifier grammar (`forge_pipeline.intake.identifiers`), whole string."""
        if not isinstance(value, str) or not value:
            self.add(path, f"must be a non-empty string, got {type_name(value)}")
            return None
        if IDENTIFIER.fullmatch(value) is None:
            self.add(path, f"{IDENTIFIER_RULE}, got {value[:140]!r}")
            return None
        return value

    def text(self, value: Any, path: str, max_length: int) -> str | None:
        """Free text: a string of at most `max_length` printable characters (no control characters)."""
        if not isinstance(value, str):
            self.add(path, f"must be a string, got {type_name(value)}")
            return None
        if len(value) > max_length:
            self.add(path, f"must be at most {max_length} characters")
            return None
        if not value.isprintable():
            self.add(path, "must not hold control, format or separator characters (other than the space)")
            return None
        return value

    def decimal(self, value: Any, path: str, low: Fraction, high: Fraction,
                low_open: bool = False, high_open: bool = False) -> str | None:
        """An exact decimal in a range: its canonical text (`forge_pipeline.intake.decimals`), whose
        `Fraction` is exactly the value written (0.1 is one tenth, not the nearest double)."""
        try:
            canonical = canonical_decimal_of(value)
        except DecimalRefused as refused:
            shown = f" {str(value)[:80]!r}" if isinstance(value, (str, DecimalNumber, float)) else ""
            self.add(path, f"{refused}, got {type_name(value)}{shown}")
            return None
        exact = Fraction(canonical)
        too_low = exact <= low if low_open else exact < low
        too_high = exact >= high if high_open else exact > high
        if too_low or too_high:
            left, right = "(" if low_open else "[", ")" if high_open else "]"
            self.add(path, f"must be in {left}{low}, {high}{right}, got {canonical}")
            return None
        return canonical

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


def type_name(value: Any) -> str:
    return {dict: "mapping", list: "list", str: "string", bool: "boolean", int: "integer",
            float: "number", DecimalNumber: "number", type(None): "null"}.get(type(value), type(value).__name__)

