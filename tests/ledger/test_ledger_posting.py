import json
import re

import numpy as np
import pytest
from ledger_helpers import CYCLE, balances, reference_entry_hash, settlement
from sqlalchemy import Float, Numeric, event, func, select

from forge_pipeline.ledger.chain import GENESIS_HASH, HASHED_FIELDS
from forge_pipeline.ledger.ledger import (Refusal, Transaction, TransactionRefused, UnknownTransaction, entries,
                                          post_correction, post_transaction, post_transactions, transaction_posted,
                                          verify_chain)
from forge_pipeline.storage.database import ledger_entries, metadata


def entry_count(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(ledger_entries)).scalar_one()


def test_posting_appends_numbered_chained_entries(engine):
    """Posted transactions become entries 1..n, each linked to the previous one's hash, and the chain verifies."""
    assert post_transaction(engine, **vars(settlement(0)))
    assert post_transactions(engine, [settlement(1), settlement(2)]) == [True, True]
    rows = entries(engine)
    assert [row["sequence"] for row in rows] == list(range(1, 10))
    assert [row["prev_hash"] for row in rows] == [GENESIS_HASH] + [row["entry_hash"] for row in rows[:-1]]
    assert [row["idempotency_key"] for row in rows[:3]] == [f"settle:wl00000#{index}" for index in range(3)]
    assert rows[0]["memo"] == '{"work_units":1000}'
    result = verify_chain(engine)
    assert (result.ok, result.entries_checked, result.head_hash) == (True, 9, rows[-1]["entry_hash"])


def test_entry_hash_is_the_documented_formula(engine):
    """entry_hash = sha256(prev_hash ASCII ‖ canonical JSON of every column but entry_hash), recomputed here."""
    post_transactions(engine, [settlement(0), settlement(1)])
    for row in entries(engine):
        assert row["entry_hash"] == reference_entry_hash(row)


def test_hashed_fields_are_every_column_but_entry_hash():
    """The hash covers every ledger column (sequence and prev_hash included) except entry_hash itself."""
    assert set(HASHED_FIELDS) == {column.name for column in ledger_entries.columns} - {"entry_hash"}
    assert len(HASHED_FIELDS) == len(set(HASHED_FIELDS))


def test_money_columns_are_integers():
    """No table holds a Float or Numeric column: money is integer micro-credits everywhere."""
    inexact = [f"{table.name}.{column.name}" for table in metadata.tables.values() for column in table.columns
               if isinstance(column.type, (Float, Numeric))]
    assert inexact == []


def test_reposting_posts_nothing(engine):
    """Posting an already-posted transaction id again, singly or in a batch, returns False and adds no entry."""
    assert post_transaction(engine, **vars(settlement(0)))
    assert not post_transaction(engine, **vars(settlement(0)))
    assert post_transactions(engine, [settlement(0), settlement(1)]) == [False, True]
    assert entry_count(engine) == 6
    assert verify_chain(engine).ok


def test_reposting_different_entries_is_refused(engine):
    """Re-posting a transaction id with different entries is refused, not silently dropped, and writes nothing."""
    post_transaction(engine, **vars(settlement(0)))
    changed = settlement(0)
    changed.entries[0]["amount_ucr"] -= 1
    changed.entries[2]["amount_ucr"] += 1
    with pytest.raises(TransactionRefused) as refused:
        post_transactions(engine, [settlement(1), changed])
    assert refused.value.reason is Refusal.CONFLICTS_WITH_POSTED
    assert entry_count(engine) == 3


@pytest.mark.parametrize(("entries_", "reason"), [
    ([{"account": "customer:a", "amount_ucr": -10}, {"account": "provider:b", "amount_ucr": 9}], Refusal.UNBALANCED),
    ([], Refusal.NO_ENTRIES),
    ([{"account": "customer:a", "amount_ucr": -1.0}, {"account": "provider:b", "amount_ucr": 1.0}],
     Refusal.AMOUNT_NOT_INTEGER),
    ([{"account": "customer:a", "amount_ucr": -1.5}, {"account": "provider:b", "amount_ucr": 1.5}],
     Refusal.AMOUNT_NOT_INTEGER),
    ([{"account": "customer:a", "amount_ucr": True}, {"account": "provider:b", "amount_ucr": -1}],
     Refusal.AMOUNT_NOT_INTEGER),
    ([{"account": "customer:a", "amount_ucr": np.int64(-5)}, {"account": "provider:b", "amount_ucr": np.int64(5)}],
     Refusal.AMOUNT_NOT_INTEGER),
    ([{"account": "customer:a", "amount_ucr": -(2**63)}, {"account": "provider:b", "amount_ucr": 2**63}],
     Refusal.AMOUNT_OUT_OF_RANGE),
    ([{"account": "customer:a", "amount_ucr": 0, "colour": "red"}], Refusal.BAD_FIELD),
    ([{"amount_ucr": 0}], Refusal.BAD_FIELD),
    ([{"account": "", "amount_ucr": 0}], Refusal.BAD_FIELD),
    ([{"account": None, "amount_ucr": 0}], Refusal.BAD_FIELD),
    ([{"account": "x" * 256, "amount_ucr": 0}], Refusal.BAD_FIELD),
    ([{"account": "customer:a", "amount_ucr": 0, "cycle": "25/11/2026"}], Refusal.BAD_FIELD),
    ([{"account": "customer:a", "amount_ucr": 0, "organization": 7}], Refusal.BAD_FIELD),
    ([{"account": "customer:a", "amount_ucr": 0, "memo": {"rate": 0.5}}], Refusal.BAD_FIELD),
    ([{"account": "customer:a", "amount_ucr": 0, "memo": "text"}], Refusal.BAD_FIELD),
    (["customer:a -10"], Refusal.BAD_FIELD),
])
def test_malformed_transaction_is_refused_and_nothing_is_written(engine, entries_, reason):
    """A transaction that does not balance or carries a non-int amount or a bad field is refused with its reason, and
    the whole batch around it is not written."""
    post_transaction(engine, **vars(settlement(0)))
    with pytest.raises(TransactionRefused) as refused:
        post_transactions(engine, [settlement(1), Transaction("bad", "settlement", entries_)])
    assert refused.value.reason is reason
    assert "'bad'" in str(refused.value)
    assert entry_count(engine) == 3
    assert not transaction_posted(engine, "settle:wl00001")
    assert verify_chain(engine).ok


@pytest.mark.parametrize(("transaction", "reason"), [
    (Transaction("t" * 65, "settlement", [{"account": "a:b", "amount_ucr": 0}]), Refusal.BAD_FIELD),
    (Transaction("ok", "", [{"account": "a:b", "amount_ucr": 0}]), Refusal.BAD_FIELD),
    (Transaction("ok", "settlement", [{"account": "a:b", "amount_ucr": 0}] * 10_001), Refusal.TOO_MANY_ENTRIES),
])
def test_malformed_transaction_header_is_refused(engine, transaction, reason):
    """Transaction ids and kinds that do not fit their columns, and oversized transactions, are refused."""
    with pytest.raises(TransactionRefused) as refused:
        post_transactions(engine, [transaction])
    assert refused.value.reason is reason
    assert entry_count(engine) == 0


def test_an_empty_batch_posts_nothing(engine):
    """An empty batch is no error: nothing posted, nothing written, before or after other postings."""
    assert post_transactions(engine, []) == []
    post_transaction(engine, **vars(settlement(0)))
    assert post_transactions(engine, []) == []
    assert entry_count(engine) == 3
    assert verify_chain(engine).ok


def test_same_transaction_twice_in_a_batch_is_refused(engine):
    """A batch naming one transaction id twice is refused whole."""
    with pytest.raises(TransactionRefused) as refused:
        post_transactions(engine, [settlement(0), settlement(1), settlement(0)])
    assert refused.value.reason is Refusal.DUPLICATE_TRANSACTION
    assert entry_count(engine) == 0


def test_correction_negates_the_original_once(engine):
    """A correction posts the original's entries negated under correction:<id>, kind correction, exactly once."""
    post_transactions(engine, [settlement(0), settlement(1)])
    assert post_correction(engine, "settle:wl00000", "provider p0 was not verified")
    assert not post_correction(engine, "settle:wl00000", "provider p0 was not verified")
    original = entries(engine, transaction_id="settle:wl00000")
    correction = entries(engine, transaction_id="correction:settle:wl00000")
    assert [row["kind"] for row in correction] == ["correction"] * 3
    assert [(row["account"], row["amount_ucr"], row["workload_id"], row["cycle"], row["provider_id"])
            for row in correction] == [(row["account"], -row["amount_ucr"], row["workload_id"], row["cycle"],
                                        row["provider_id"]) for row in original]
    assert json.loads(correction[0]["memo"]) == {"corrects": "settle:wl00000", "reason": "provider p0 was not verified"}
    assert balances(entries(engine, workload_id="wl00000")) == {"customer:acme/risk/prod": 0, "provider:p0": 0,
                                                                "platform:revenue": 0}
    assert original == entries(engine, transaction_id="settle:wl00000")  # untouched
    assert verify_chain(engine).ok


def test_correcting_an_unknown_transaction_raises(engine):
    """A correction of a transaction that was never posted is an error, and posts nothing."""
    with pytest.raises(UnknownTransaction):
        post_correction(engine, "settle:nobody", "typo")
    assert entry_count(engine) == 0


def test_ledger_code_never_updates_or_deletes(engine):
    """Posting, re-posting, refusals, corrections and reading issue no UPDATE or DELETE on ledger_entries."""
    statements = []
    event.listen(engine, "before_cursor_execute",
                 lambda connection, cursor, statement, *rest: statements.append(statement))
    post_transactions(engine, [settlement(0), settlement(1)])
    post_transaction(engine, **vars(settlement(0)))
    with pytest.raises(TransactionRefused):
        post_transaction(engine, "settle:wl00001", "settlement", [{"account": "customer:a", "amount_ucr": 0}])
    post_correction(engine, "settle:wl00001", "duplicate")
    entries(engine, cycle=CYCLE)
    transaction_posted(engine, "settle:wl00000")
    verify_chain(engine)
    assert any(statement.lstrip().upper().startswith("INSERT INTO LEDGER_ENTRIES") for statement in statements)
    assert [statement for statement in statements if re.match(r"\s*(UPDATE|DELETE)\b", statement, re.IGNORECASE)] == []


def test_entries_filters_by_equality_and_null(engine):
    """entries() filters on attribution columns, None matching NULL; an unknown filter is an error."""
    post_transactions(engine, [settlement(0), settlement(1), settlement(3)])
    assert [row["account"] for row in entries(engine, provider_id="p0")] == ["provider:p0", "provider:p0"]
    assert len(entries(engine, cycle=CYCLE, organization=None)) == 6
    assert len(entries(engine, workload_id="wl00001")) == 3
    assert entries(engine, cycle="2026-11-26") == []
    assert transaction_posted(engine, "settle:wl00003") and not transaction_posted(engine, "settle:wl00002")
    with pytest.raises(TypeError, match="memo"):
        entries(engine, memo="{}")
