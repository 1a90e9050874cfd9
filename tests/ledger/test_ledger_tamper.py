"""Each way of changing the ledger behind its back, found by verify_chain at the first bad entry.

The ledger holds four settlements of three entries: transactions at 1-3, 4-6, 7-9, 10-12.
"""

import pytest
from ledger_helpers import settlement
from sqlalchemy import insert, text, update

from forge_pipeline.canonical import canonical_json
from forge_pipeline.ledger.chain import entry_hash
from forge_pipeline.ledger.ledger import ChainProblem, LedgerCorrupt, entries, post_transactions, verify_chain
from forge_pipeline.storage.database import ledger_entries, utc_now


@pytest.fixture
def ledger(engine):
    post_transactions(engine, [settlement(index) for index in range(4)])
    assert verify_chain(engine).ok
    return engine


def execute(engine, statement, **parameters):
    with engine.begin() as connection:
        connection.execute(text(statement) if isinstance(statement, str) else statement, parameters)


def forged_row(sequence, prev_hash, amount_ucr=0, transaction_id="forged"):
    """A row whose entry_hash is computed correctly over its (forged) content."""
    row = {"sequence": sequence, "transaction_id": transaction_id, "idempotency_key": f"{transaction_id}#{sequence}",
           "kind": "settlement", "account": "provider:mallory", "amount_ucr": amount_ucr, "workload_id": None,
           "cycle": None, "organization": None, "project": None, "workspace": None, "provider_id": "mallory",
           "memo": canonical_json({}).decode(), "recorded_at": utc_now(), "prev_hash": prev_hash}
    return {**row, "entry_hash": entry_hash(row)}


def assert_broken(engine, sequence, problem):
    result = verify_chain(engine)
    assert (result.ok, result.first_bad_sequence, result.problem) == (False, sequence, problem), result
    assert result.reason.startswith(problem.value)


def test_changed_amount_is_found(ledger):
    """An amount changed by a raw UPDATE breaks that entry's hash."""
    execute(ledger, "UPDATE ledger_entries SET amount_ucr = amount_ucr - 1 WHERE sequence = 5")
    assert_broken(ledger, 5, ChainProblem.HASH_MISMATCH)
    assert verify_chain(ledger).entries_checked == 4


def test_changed_amounts_that_still_balance_are_found(ledger):
    """Moving money between two entries of one transaction keeps it balanced but still breaks the first one's hash."""
    execute(ledger, "UPDATE ledger_entries SET amount_ucr = amount_ucr + 1000 WHERE sequence = 5")
    execute(ledger, "UPDATE ledger_entries SET amount_ucr = amount_ucr - 1000 WHERE sequence = 6")
    assert_broken(ledger, 5, ChainProblem.HASH_MISMATCH)


def test_changed_memo_is_found(ledger):
    """Editing the memo (the usage details) of an entry breaks its hash."""
    execute(ledger, "UPDATE ledger_entries SET memo = :memo WHERE sequence = 7", memo='{"work_units":1}')
    assert_broken(ledger, 7, ChainProblem.HASH_MISMATCH)


def test_float_amount_written_behind_the_ledgers_back_is_found(ledger):
    """A fractional amount stored by raw SQL is reported as a broken entry, not a crash; reading it refuses it
    where the database kept the fraction (SQLite; PostgreSQL rounds it into the BIGINT)."""
    execute(ledger, "UPDATE ledger_entries SET amount_ucr = 2.5 WHERE sequence = 2")
    assert_broken(ledger, 2, ChainProblem.HASH_MISMATCH)
    if ledger.dialect.name == "sqlite":
        with pytest.raises(LedgerCorrupt, match="entry 2"):
            entries(ledger)


def test_deleted_row_is_found(ledger):
    """A row deleted from the middle leaves a gap at its sequence number."""
    execute(ledger, "DELETE FROM ledger_entries WHERE sequence = 5")
    assert_broken(ledger, 5, ChainProblem.SEQUENCE_GAP)


def test_deleted_last_row_is_found(ledger):
    """Deleting the newest entry leaves its transaction unbalanced, named by the transaction's first entry."""
    execute(ledger, "DELETE FROM ledger_entries WHERE sequence = 12")
    assert_broken(ledger, 10, ChainProblem.UNBALANCED)


def test_truncated_whole_transactions_change_the_head_hash(ledger):
    """Removing whole trailing transactions leaves a valid shorter chain: only a recorded head hash exposes it."""
    recorded = verify_chain(ledger)
    execute(ledger, "DELETE FROM ledger_entries WHERE sequence > 9")
    result = verify_chain(ledger)
    assert result.ok and result.entries_checked == 9
    assert result.head_hash != recorded.head_hash


def test_row_inserted_in_the_middle_is_found(ledger):
    """A correctly hashed, balanced row slipped in after entry 6 (later rows renumbered) breaks the link of the next."""
    execute(ledger, "UPDATE ledger_entries SET sequence = sequence + 1000 WHERE sequence > 6")
    execute(ledger, "UPDATE ledger_entries SET sequence = sequence - 999 WHERE sequence > 1000")
    sixth = next(row for row in entries(ledger) if row["sequence"] == 6)
    execute(ledger, insert(ledger_entries).values(**forged_row(7, sixth["entry_hash"])))
    assert_broken(ledger, 8, ChainProblem.PREV_HASH_MISMATCH)


def test_row_appended_with_wrong_prev_hash_is_found(ledger):
    """A balanced, self-consistently hashed row appended after the head but linked to an older entry is found."""
    eleventh = entries(ledger)[10]
    execute(ledger, insert(ledger_entries).values(**forged_row(13, eleventh["entry_hash"])))
    assert_broken(ledger, 13, ChainProblem.PREV_HASH_MISMATCH)


def test_row_appended_out_of_sequence_is_found(ledger):
    """A row appended with a sequence number past the next one leaves a gap."""
    head = entries(ledger)[-1]
    execute(ledger, insert(ledger_entries).values(**forged_row(20, head["entry_hash"])))
    assert_broken(ledger, 13, ChainProblem.SEQUENCE_GAP)


def test_perfectly_chained_unbalanced_append_is_found(ledger):
    """A row appended with the right sequence, prev_hash and hash still fails when it creates money from nothing."""
    head = entries(ledger)[-1]
    execute(ledger, insert(ledger_entries).values(**forged_row(13, head["entry_hash"], amount_ucr=5_000_000)))
    assert_broken(ledger, 13, ChainProblem.UNBALANCED)


def test_swapped_rows_are_found(ledger):
    """Two rows whose contents are swapped (sequence numbers kept) break the link at the first of them."""
    rows = {row["sequence"]: row for row in entries(ledger)}
    content = {sequence: {name: value for name, value in rows[sequence].items() if name != "sequence"}
               for sequence in (4, 5)}
    where = ledger_entries.c.sequence
    execute(ledger, update(ledger_entries).where(where == 4).values(idempotency_key="moving"))
    execute(ledger, update(ledger_entries).where(where == 5).values(**content[4]))
    execute(ledger, update(ledger_entries).where(where == 4).values(**content[5]))
    assert_broken(ledger, 4, ChainProblem.PREV_HASH_MISMATCH)


def test_edited_prev_hash_is_found(ledger):
    """An edited prev_hash no longer matches the previous entry's hash."""
    execute(ledger, "UPDATE ledger_entries SET prev_hash = :forged WHERE sequence = 9", forged="f" * 64)
    assert_broken(ledger, 9, ChainProblem.PREV_HASH_MISMATCH)


def test_rehashed_edit_is_found_at_the_next_transaction(ledger):
    """A balanced edit of entries 2 and 3 with their hashes and link recomputed still breaks entry 4's link:
    a forger must rewrite every later entry, and then the head hash changes."""
    second, third = entries(ledger)[1:3]
    second["amount_ucr"] += 1
    second["entry_hash"] = entry_hash(second)
    third["amount_ucr"] -= 1
    third["prev_hash"] = second["entry_hash"]
    third["entry_hash"] = entry_hash(third)
    for row in (second, third):
        execute(ledger, update(ledger_entries).where(ledger_entries.c.sequence == row["sequence"]).values(**row))
    assert_broken(ledger, 4, ChainProblem.PREV_HASH_MISMATCH)
