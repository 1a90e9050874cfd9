"""The entry hash is byte-for-byte the documented formula, however it is computed.

chain.py writes an entry's canonical JSON from a template, and canonical_json uses the
json module's C encoder directly: both for speed. Every hash must still be exactly
sha256(prev_hash ‖ canonical JSON of the hashed fields), computed here the plain way.
"""

import enum
import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ledger_helpers import reference_entry_hash, settlement
from sqlalchemy import text

from forge_pipeline.canonical import canonical_json
from forge_pipeline.ledger.chain import GENESIS_HASH, HASHED_FIELDS, entry_hash, hash_values
from forge_pipeline.ledger.ledger import Transaction, entries, post_transactions, verify_chain

INTEGERS = ("sequence", "amount_ucr")
NULLABLE = ("workload_id", "cycle", "organization", "project", "workspace", "provider_id")
prev_hashes = st.text(st.characters(max_codepoint=127))
# Values of the columns' types (any Unicode text, any 64-bit int, None where nullable): what the ledger writes.
column_typed = st.fixed_dictionaries({
    name: st.integers(-(2**63), 2**63 - 1) if name in INTEGERS else st.none() | st.text() if name in NULLABLE
    else prev_hashes if name == "prev_hash" else st.text() for name in HASHED_FIELDS})
# Any JSON scalar in any field but prev_hash: what a row edited behind the ledger's back may hold.
json_typed = st.fixed_dictionaries({
    name: prev_hashes if name == "prev_hash" else st.none() | st.booleans() | st.integers() | st.text()
    for name in HASHED_FIELDS})


class Color(enum.IntEnum):
    RED = 1


class Label(str):
    pass


def an_entry(**changes) -> dict:
    entry = {"sequence": 7, "transaction_id": "settle:wl_ü", "idempotency_key": "settle:wl_ü#0", "kind": "settlement",
             "account": 'customer:acme/"risk"\\prod\n', "amount_ucr": -(2**63) + 1, "workload_id": "wl_ü",
             "cycle": "2026-11-25", "organization": "acme", "project": None, "workspace": "prod\u2028",
             "provider_id": None, "memo": '{"note":"日本","work_units":1000}',
             "recorded_at": "2026-11-25T22:19:42.123456Z", "prev_hash": GENESIS_HASH}
    return {**entry, **changes}


@given(column_typed | json_typed)
def test_entry_hash_equals_the_formula_for_any_json_values(entry):
    """Entries of the columns' types, and any mix of ints, texts (any Unicode), bools and None, hash exactly as the
    formula."""
    expected = reference_entry_hash(entry)
    assert entry_hash(entry) == expected
    assert hash_values([entry[name] for name in HASHED_FIELDS]) == expected


def test_entry_hash_is_pinned():
    """One entry's hash, as the code before the template computed it: a stored chain keeps verifying."""
    assert entry_hash(an_entry()) == "816e82f45051edbf2f5ef5f1e44717a5067ff361fb4e9958d5074a19cca28b48"


@pytest.mark.parametrize("changes", [
    {"amount_ucr": True}, {"sequence": False}, {"account": None}, {"memo": None}, {"account": 5},
    {"amount_ucr": Color.RED}, {"account": Label("customer:a")}, {"cycle": Label("2026-11")}, {"kind": ""},
], ids=repr)
def test_values_of_other_types_hash_as_the_formula(changes):
    """A bool, an int or str subclass, a None or an int where the column says otherwise: the formula's bytes."""
    entry = an_entry(**changes)
    assert entry_hash(entry) == reference_entry_hash(entry)


@pytest.mark.parametrize("changes", [{"amount_ucr": 2.5}, {"cycle": 1.0}, {"memo": float("nan")}, {"project": [0.5]},
                                     {"workspace": {1, 2}}])
def test_floats_and_foreign_types_are_refused(changes):
    """A float or a set anywhere is refused (TypeError), as canonical JSON refuses it, never hashed."""
    with pytest.raises(TypeError):
        entry_hash(an_entry(**changes))


def test_non_ascii_prev_hash_is_refused():
    """prev_hash enters as ASCII: anything else is an error, not another encoding."""
    with pytest.raises(UnicodeEncodeError):
        entry_hash(an_entry(prev_hash="é" * 64))


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                    lambda children: st.lists(children) | st.dictionaries(st.text(), children), max_leaves=20))
def test_canonical_json_is_sorted_compact_utf8_json(document):
    """canonical_json (memos, output digests) is exactly json.dumps with sorted keys, no whitespace, UTF-8."""
    assert canonical_json(document) == json.dumps(document, sort_keys=True, separators=(",", ":"),
                                                  ensure_ascii=False).encode("utf-8")


def test_a_large_batch_is_chained_as_the_formula(engine):
    """A batch of several thousand entries (several multi-row INSERTs), with NULLs and non-ASCII text, posted after
    an earlier one: every stored hash is the formula over the stored row, linked to the one before, and verifies."""
    post_transactions(engine, [settlement(index) for index in range(3)])
    odd = Transaction("odd:ü", "correction", [
        {"account": 'customer:"quoted"\\ü', "amount_ucr": -5, "memo": {"reason": "日本\u2028\n"}},
        {"account": "provider:p", "amount_ucr": 5, "workload_id": "wl", "cycle": "2026-11"}])
    batch = [settlement(index) for index in range(3, 1_500)] + [odd]
    assert all(post_transactions(engine, batch))
    rows = entries(engine)
    assert len(rows) == 3 * 1_500 + 2
    assert [row["sequence"] for row in rows] == list(range(1, len(rows) + 1))
    assert [row["prev_hash"] for row in rows] == [GENESIS_HASH] + [row["entry_hash"] for row in rows[:-1]]
    assert all(row["entry_hash"] == reference_entry_hash(row) for row in rows)
    result = verify_chain(engine)
    assert (result.ok, result.entries_checked, result.head_hash) == (True, len(rows), rows[-1]["entry_hash"])


def test_verify_recomputes_hashes_of_rows_as_stored(engine):
    """verify_chain hashes what the database returns: a memo edited to another valid text is found at its entry."""
    post_transactions(engine, [settlement(index) for index in range(2)])
    with engine.begin() as connection:
        connection.execute(text("UPDATE ledger_entries SET memo = :memo WHERE sequence = 4"), {"memo": '{"ü":1}'})
    result = verify_chain(engine)
    assert (result.ok, result.first_bad_sequence) == (False, 4)
    stored = entries(engine)[3]
    assert result.reason.endswith(f"hashes to {reference_entry_hash(stored)}, stored {stored['entry_hash']!r}")


def test_reference_is_sha256_of_prev_hash_and_sorted_json():
    """The tests' own reference, checked once against a body written out key by key."""
    entry = an_entry()
    body = "{" + ",".join(f"{json.dumps(name)}:{json.dumps(entry[name], ensure_ascii=False)}"
                          for name in sorted(HASHED_FIELDS)) + "}"
    assert reference_entry_hash(entry) == hashlib.sha256((GENESIS_HASH + body).encode("utf-8")).hexdigest()
