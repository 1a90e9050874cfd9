"""Canonical JSON and digests: the one byte representation that is hashed and compared.

Canonical JSON is sorted keys, no whitespace, UTF-8 (DESIGN §3.5). Only JSON-native
types are accepted, so a float or a NumPy scalar sneaking into something that is
hashed fails loudly instead of hashing differently on another machine.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def _reject_unknown(value: Any) -> Any:
    raise TypeError(f"not canonical JSON: {type(value).__name__} {value!r}")


def canonical_json(value: Any) -> bytes:
    """Serialize to canonical JSON bytes; floats are refused (money and outputs are integers)."""
    _assert_no_float(value)
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_reject_unknown
    ).encode("utf-8")


def _assert_no_float(value: Any) -> None:
    if isinstance(value, float):
        raise TypeError(f"floats are never hashed: {value!r}")
    if isinstance(value, dict):
        for item in value.values():
            _assert_no_float(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _assert_no_float(item)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest(value: Any) -> str:
    """sha256 of the canonical JSON of `value`."""
    return sha256_hex(canonical_json(value))
