"""Canonical JSON and digests: the one byte representation that is hashed and compared.

Canonical JSON is sorted keys, no whitespace, UTF-8 (DESIGN §3.5). Only JSON-native
types are accepted, so a float or a NumPy scalar sneaking into something that is
hashed fails loudly instead of hashing differently on another machine.
"""

from __future__ import annotations

import hashlib
import json
from json.encoder import c_make_encoder, encode_basestring
from typing import Any


def _reject_unknown(value: Any) -> Any:
    raise TypeError(f"not canonical JSON: {type(value).__name__} {value!r}")


# The canonical settings. Their encode() would build CPython's C encoder on every call (most of
# the cost of a small document such as a ledger memo), so _C_ENCODE is that encoder, built once.
# It keeps no markers for circular references: a value reaches it only after `_assert_no_float`
# has walked it whole.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                            default=_reject_unknown)
assert c_make_encoder is not None, "canonical JSON needs CPython's json accelerator (_json)"
_C_ENCODE = c_make_encoder(None, _ENCODER.default, encode_basestring, _ENCODER.indent, _ENCODER.key_separator,
                           _ENCODER.item_separator, _ENCODER.sort_keys, _ENCODER.skipkeys, _ENCODER.allow_nan)
_CONTAINERS = (dict, list, tuple)
_JSON_SCALARS = frozenset({int, str, bool, type(None)})  # exact types: a float subclass is not among them


def canonical_json(value: Any) -> bytes:
    """Serialize to canonical JSON bytes; floats are refused (money and outputs are integers)."""
    _assert_no_float(value)
    return "".join(_C_ENCODE(value, 0)).encode("utf-8")


def _assert_no_float(value: Any) -> None:
    """Iterative, and it skips scalars in one type test: this runs on every ledger memo posted.
    A container of JSON scalars only (a shard's list of losses) is passed by one set of types."""
    pending = [value]
    while pending:
        item = pending.pop()
        children = item.values() if type(item) is dict else item if isinstance(item, (list, tuple)) else (item,)
        if set(map(type, children)) <= _JSON_SCALARS:
            continue
        for child in children:
            kind = type(child)
            if kind is float:
                raise TypeError(f"floats are never hashed: {child!r}")
            if kind in _CONTAINERS or isinstance(child, _CONTAINERS):
                pending.append(child)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest(value: Any) -> str:
    """sha256 of the canonical JSON of `value`."""
    return sha256_hex(canonical_json(value))
