"""The hash chain over ledger entries (DESIGN §3.5).

    entry_hash = sha256(prev_hash ‖ canonical_json({field: entry[field] for field in HASHED_FIELDS}))

`prev_hash` enters as its 64 ASCII hex characters; canonical JSON is sorted keys, no
whitespace, UTF-8 (forge_pipeline.canonical). The hashed fields are every column of
`ledger_entries` except `entry_hash` itself, sequence and prev_hash included, with
NULL as JSON null and `memo` as its stored text. The first entry's prev_hash is 64
zeros. So changing any field of any entry, or moving, removing or inserting an entry,
breaks the hash of that entry or the prev_hash link of the next.

Encoding that dict took most of the time of posting an entry, so an entry whose fields
have their columns' types (integers, texts, None where the column is nullable) has its
canonical JSON written from a template instead: the keys are fixed, so their sorted order
is too, and each value is written exactly as the encoder writes it inside the object — a
str by the encoder's own string function, an int in decimal, None as null. Any other
value (a bool, a float, a None where the column is not nullable, a foreign type read from
a tampered row) goes through canonical_json itself, which writes it or refuses it.
tests/ledger/test_ledger_chain.py pins the two to each other and to the formula above.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from json.encoder import encode_basestring
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
    return hash_values([entry[field] for field in HASHED_FIELDS])


def hash_values(values: Sequence[Any]) -> str:
    """`entry_hash` of the entry whose HASHED_FIELDS hold `values`, in that order (a ledger row as stored)."""
    (sequence, transaction_id, idempotency_key, kind, account, amount_ucr, workload_id, cycle, organization,
     project, workspace, provider_id, memo, recorded_at, prev_hash) = values
    prefix = prev_hash.encode("ascii")
    if type(sequence) is int and type(amount_ucr) is int:  # not a bool, which JSON writes as true or false
        text = encode_basestring  # TypeError for anything but a str
        try:  # the keys in sorted order; the six attribution fields are nullable
            body = (f'{{"account":{text(account)},"amount_ucr":{amount_ucr},'
                    f'"cycle":{"null" if cycle is None else text(cycle)},"idempotency_key":{text(idempotency_key)},'
                    f'"kind":{text(kind)},"memo":{text(memo)},'
                    f'"organization":{"null" if organization is None else text(organization)},'
                    f'"prev_hash":{text(prev_hash)},"project":{"null" if project is None else text(project)},'
                    f'"provider_id":{"null" if provider_id is None else text(provider_id)},'
                    f'"recorded_at":{text(recorded_at)},"sequence":{sequence},"transaction_id":{text(transaction_id)},'
                    f'"workload_id":{"null" if workload_id is None else text(workload_id)},'
                    f'"workspace":{"null" if workspace is None else text(workspace)}}}')
        except TypeError:
            pass  # a value of another type: canonical_json below writes it or refuses it
        else:
            return sha256_hex(prefix + body.encode("utf-8"))
    return sha256_hex(prefix + canonical_json(dict(zip(HASHED_FIELDS, values, strict=True))))
