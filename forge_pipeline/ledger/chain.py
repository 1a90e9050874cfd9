"""The hash chain over ledger entries (DESIGN §3.5).

    entry_hash = sha256(prev_hash ‖ canonical_json({field: entry[field] for field in HASHED_FIELDS}))

`prev_hash` enters as its 64 ASCII hex characters; canonical JSON is sorted keys, no
whitespace, UTF-8 (forge_pipeline.canonical). The hashed fields are every column of
`ledger_entries` except `entry_hash` itself, sequence and prev_hash included, with
NULL as JSON null and `memo` as its stored text. The first entry's prev_hash is 64
zeros. So changing any field of any entry, or moving, removing or inserting an entry,
breaks the hash of that entry or the prev_hash link of the next.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from forge_pipeline.canonical import canonical_json, sha256_hex

GENESIS_HASH = "0" * 64

# Spelled out rather than read from the table: adding a column must be a deliberate
# change to what is hashed, not a silent one that breaks every stored hash.
HASHED_FIELDS = (
    "sequence", "transaction_id", "idempotency_key", "kind", "account", "amount_ucr", "workload_id", "cycle",
    "organization", "project", "workspace", "provider_id", "memo", "recorded_at", "prev_hash",
)


def entry_hash(entry: Mapping[str, Any]) -> str:
    """The hash an entry must carry; TypeError when a field holds a float or another non-JSON value."""
    body = {field: entry[field] for field in HASHED_FIELDS}
    return sha256_hex(entry["prev_hash"].encode("ascii") + canonical_json(body))
