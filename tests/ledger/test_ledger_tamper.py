"""Each way of changing the ledger behind its back.

First, what the hash chain alone finds (`verify_chain`, at the first bad entry), on a ledger of four
settlements of three entries: transactions at 1-3, 4-6, 7-9, 10-12. Then (below) the insider who
recomputes hashes: caught by the signatures, the checkpoints and the derived-table checks.
"""

import pytest
from ledger_helpers import settlement
from sqlalchemy import delete, insert, select, text, update

from forge_pipeline.canonical import canonical_json
from forge_pipeline.ledger.chain import entry_hash
from forge_pipeline.ledger.ledger import ChainProblem, LedgerCorrupt, entries, post_transactions, verify_chain
from forge_pipeline.storage.database import ledger_entries, usage_records, utc_now, workloads


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


# ---------------------------------------------------------------------------------------------------------------
# The insider's tampering: signatures, checkpoints outside the database and the derived tables (issue 11).
#
# The audited ledger holds two real workloads (their workload records, usage records and workloads rows, as the
# lifecycle writes them) settled in today's cycle, then four synthetic settlements each posted as a write of its
# own, then a signed checkpoint in the log. Every case below is found by `forge-pool ledger verify` (exit 1,
# naming the first bad entry or the contradicted checkpoint) and stops the next settlement before it posts.

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from dagster import DagsterInstance
from ledger_helpers import settlement as synthetic_settlement

from forge_pipeline.cli import main
from forge_pipeline.definitions import defs
from forge_pipeline.ledger import checkpoints as checkpoint_log
from forge_pipeline.ledger.chain import GENESIS_HASH, HASHED_FIELDS
from forge_pipeline.ledger.integrity import check_ledger, checkpoint_ledger
from forge_pipeline.ledger.ledger import post_transaction, write_signature_message
from forge_pipeline.ledger.signing import Signer, key_id, public_key_path, public_key_pem
from forge_pipeline.settle.settlement import settle_cycle
from forge_pipeline.storage.database import ledger_signatures, open_engine
from tests.money.workloads import finalize, today_cycle


@pytest.fixture
def audited(database_url, forge_home, monkeypatch):
    monkeypatch.setenv("FORGE_DATABASE_URL", database_url)
    engine = open_engine(database_url)
    usage = [finalize(engine, request_id=f"tamper-{index}") for index in range(2)]
    settle_cycle(engine, today_cycle())
    for index in range(4):
        post_transaction(engine, **vars(synthetic_settlement(index)))
    checkpoint = checkpoint_ledger(engine)
    assert check_ledger(engine).ok and checkpoint["size"] == len(entries(engine))
    return engine, usage


def forger_signer() -> Signer:
    """A key of the forger's own: a valid Ed25519 key that is not the ledger's."""
    private_key = Ed25519PrivateKey.generate()
    public_key = private_key.public_key().public_bytes_raw()
    return Signer(private_key, public_key, key_id(public_key))


def transaction_ranges(engine):
    """(transaction_id, first sequence, last sequence) in posting order."""
    ranges = []
    for row in entries(engine):
        if ranges and ranges[-1][0] == row["transaction_id"]:
            ranges[-1][2] = row["sequence"]
        else:
            ranges.append([row["transaction_id"], row["sequence"], row["sequence"]])
    return ranges


def settle_blocked(engine, capsys) -> str:
    """Run the next settlement through Dagster; it must fail before posting. Returns its failure message."""
    size = len(entries(engine))
    result = defs.resolve_job_def("billing_cycle_settlement").execute_in_process(
        partition_key=today_cycle().key, instance=DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success
    assert len(entries(engine)) == size
    return " ".join(event.step_failure_data.error.message for event in result.get_step_failure_events())


def assert_caught(engine, capsys, *fragments):
    """`ledger verify` exits 1 naming the problem, and the next settlement refuses to post."""
    capsys.readouterr()
    assert main(["ledger", "verify"]) == 1
    output = capsys.readouterr().out
    assert output.startswith("ledger NOT intact: "), output
    for fragment in fragments:
        assert fragment in output, output
    assert "nothing posted" in settle_blocked(engine, capsys)
    return output


def edited_text(value: str | None) -> str:
    """Another text of the same length (its last character changed); "x" for NULL."""
    return "x" if value is None else value[:-1] + ("y" if value.endswith("x") else "x")


def named_entry(output: str) -> int:
    """The entry number `ledger verify` names first."""
    return int(output.removeprefix("ledger NOT intact: entry ").partition(":")[0])


def transaction_start(engine, sequence: int) -> int:
    """The first entry of the transaction holding entry `sequence` (where an unbalanced transaction is named)."""
    return next(first for _, first, last in transaction_ranges(engine) if first <= sequence <= last)


def rechain(engine, rows, start):
    """Recompute prev_hash and entry_hash of every row from `start` (a forger with the project's chain code)."""
    prev_hash = GENESIS_HASH if start == 1 else rows[start - 2]["entry_hash"]
    for row in rows[start - 1:]:
        row["prev_hash"] = prev_hash
        row["entry_hash"] = prev_hash = entry_hash(row)
        execute(engine, update(ledger_entries).where(ledger_entries.c.sequence == row["sequence"])
                .values(prev_hash=row["prev_hash"], entry_hash=row["entry_hash"]))


def resign(engine, signer):
    """Rewrite every signed write as the entries now are, signed by `signer` (a forger's own key)."""
    heads = {row["sequence"]: row["entry_hash"] for row in entries(engine)}
    with engine.connect() as connection:
        writes = connection.execute(select(ledger_signatures).order_by(ledger_signatures.c.last_sequence)).all()
    for write in writes:
        head = heads.get(write.last_sequence, write.head_hash)
        message = write_signature_message(write.first_sequence, write.last_sequence, head, signer.key_id,
                                          write.signed_at)
        execute(engine, update(ledger_signatures).where(ledger_signatures.c.last_sequence == write.last_sequence)
                .values(head_hash=head, key_id=signer.key_id, signature=signer.sign(message)))


@pytest.mark.parametrize("column", [*HASHED_FIELDS, "entry_hash"])
def test_any_column_of_an_entry_edited_is_caught(audited, capsys, column):
    """Changing any one column of a middle entry (with a value of its own type) is caught at that entry."""
    engine, _ = audited
    row, start = entries(engine)[4], transaction_start(engine, 5)
    changed = {"sequence": 1000, "amount_ucr": row["amount_ucr"] + 1, "memo": '{"edited":true}',
               "prev_hash": "f" * 64, "entry_hash": "e" * 64}.get(column) or edited_text(row[column])
    execute(engine, update(ledger_entries).where(ledger_entries.c.sequence == 5).values({column: changed}))
    assert named_entry(assert_caught(engine, capsys)) in (start, 5)  # its own hash, or its transaction's balance


@pytest.mark.parametrize("position", ["first", "middle", "last"])
def test_deleted_entry_is_caught(audited, capsys, position):
    """Deleting the first, a middle or the last entry is caught at its place."""
    engine, _ = audited
    size = len(entries(engine))
    sequence = {"first": 1, "middle": size // 2, "last": size}[position]
    start = transaction_start(engine, sequence)
    execute(engine, delete(ledger_entries).where(ledger_entries.c.sequence == sequence))
    assert named_entry(assert_caught(engine, capsys)) in (start, sequence)


@pytest.mark.parametrize("transactions", [1, 2, 3])
def test_truncated_whole_transactions_are_caught_by_the_checkpoint(audited, capsys, transactions):
    """Deleting the last k whole transactions and their signed writes leaves a valid, signed, shorter chain:
    the checkpoint in the log names the removed entries."""
    engine, _ = audited
    first_removed = transaction_ranges(engine)[-transactions][1]
    execute(engine, delete(ledger_entries).where(ledger_entries.c.sequence >= first_removed))
    execute(engine, delete(ledger_signatures).where(ledger_signatures.c.last_sequence >= first_removed))
    assert_caught(engine, capsys, f"entry {first_removed}:", "checkpoint", "were removed")


def test_truncation_is_caught_by_an_auditors_checkpoint_after_the_log_is_deleted(audited, capsys, tmp_path):
    """An insider who also deletes the checkpoint log is caught by the checkpoint an auditor kept (--checkpoint)."""
    engine, _ = audited
    kept = tmp_path / "kept-checkpoint.json"
    assert main(["ledger", "checkpoint", "-o", str(kept)]) == 0
    first_removed = transaction_ranges(engine)[-1][1]
    execute(engine, delete(ledger_entries).where(ledger_entries.c.sequence >= first_removed))
    execute(engine, delete(ledger_signatures).where(ledger_signatures.c.last_sequence >= first_removed))
    checkpoint_log.checkpoint_log_path().unlink()
    capsys.readouterr()
    assert main(["ledger", "verify"]) == 0  # what the log alone can no longer see
    assert main(["ledger", "verify", "--checkpoint", str(kept)]) == 1
    output = capsys.readouterr().out
    assert f"checkpoint {kept}" in output and f"entry {first_removed}:" in output


def test_inserted_entry_is_caught(audited, capsys):
    """A correctly hashed row slipped in after entry 6 (later rows renumbered) is caught."""
    engine, _ = audited
    start = transaction_start(engine, 7)
    execute(engine, "UPDATE ledger_entries SET sequence = sequence + 1000 WHERE sequence > 6")
    execute(engine, "UPDATE ledger_entries SET sequence = sequence - 999 WHERE sequence > 1000")
    sixth = entries(engine)[5]
    execute(engine, insert(ledger_entries).values(**forged_row(7, sixth["entry_hash"])))
    assert named_entry(assert_caught(engine, capsys)) in (start, 7, 8)  # the split transaction, or the link


def test_swapped_entries_are_caught(audited, capsys):
    """Two entries' contents swapped (sequence numbers kept) are caught at the first."""
    engine, _ = audited
    rows = {row["sequence"]: row for row in entries(engine)}
    content = {sequence: {name: value for name, value in rows[sequence].items() if name != "sequence"}
               for sequence in (4, 5)}
    where = ledger_entries.c.sequence
    execute(engine, update(ledger_entries).where(where == 4).values(idempotency_key="moving"))
    execute(engine, update(ledger_entries).where(where == 5).values(**content[4]))
    execute(engine, update(ledger_entries).where(where == 4).values(**content[5]))
    assert_caught(engine, capsys, "entry 4")


def test_reordered_transactions_rechained_are_caught(audited, capsys):
    """Two whole transactions exchanged and every hash after them recomputed: the signed writes no longer match."""
    engine, _ = audited
    (_, a_start, a_end), (_, b_start, b_end) = transaction_ranges(engine)[-2:]
    rows = entries(engine)
    reordered = rows[:a_start - 1] + rows[b_start - 1:b_end] + rows[a_start - 1:a_end]
    for sequence, row in enumerate(reordered, 1):
        row["sequence"] = sequence
    execute(engine, delete(ledger_entries).where(ledger_entries.c.sequence >= a_start))
    prev_hash = reordered[a_start - 2]["entry_hash"]
    for row in reordered[a_start - 1:]:
        row["prev_hash"] = prev_hash
        row["entry_hash"] = prev_hash = entry_hash(row)
        execute(engine, insert(ledger_entries).values(**row))
    assert check_ledger(engine).ledger.first_bad_sequence == a_start
    assert_caught(engine, capsys, f"entry {a_start}:", "signed")


def forged_second_settlement(engine, usage):
    """The issue's forgery: a second settlement of an already settled workload, balanced, hashed with the chain code."""
    rows = entries(engine)
    head = rows[-1]
    workload = usage[0]
    amounts = [("customer:acme/risk/prod", -1_000_000, None), ("provider:northwind", 800_000, "northwind"),
               ("platform:revenue", 200_000, None)]
    prev_hash = head["entry_hash"]
    for offset, (account, amount_ucr, provider) in enumerate(amounts, 1):
        row = {"sequence": head["sequence"] + offset, "transaction_id": f"settle:{workload['workload_id']}-2",
               "idempotency_key": f"settle:{workload['workload_id']}-2#{offset - 1}", "kind": "settlement",
               "account": account, "amount_ucr": amount_ucr, "workload_id": workload["workload_id"],
               "cycle": today_cycle().key, "organization": workload["organization"], "project": workload["project"],
               "workspace": workload["workspace"], "provider_id": provider, "memo": "{}", "recorded_at": utc_now(),
               "prev_hash": prev_hash}
        row["entry_hash"] = prev_hash = entry_hash(row)
        execute(engine, insert(ledger_entries).values(**row))
    return head["sequence"] + 1


def test_forged_balanced_transaction_appended_is_caught(audited, capsys):
    """A balanced second settlement of a settled workload, perfectly chained, is in no signed write; the hub refuses
    to post after it."""
    engine, usage = audited
    first = forged_second_settlement(engine, usage)
    assert verify_chain(engine).ok  # the chain alone is fooled
    assert_caught(engine, capsys, f"entry {first}:", "no signed write")
    with pytest.raises(LedgerCorrupt, match="not covered by the hub's signature"):  # nor does the hub sign over it
        post_transaction(engine, **vars(synthetic_settlement(99)))


def test_forged_transaction_with_a_forged_signature_row_is_caught(audited, capsys):
    """The same forgery with a signed-write row of its own (the right head, the ledger's key id, another key's
    signature)."""
    engine, usage = audited
    first = forged_second_settlement(engine, usage)
    with engine.connect() as connection:
        last = connection.execute(select(ledger_signatures).order_by(ledger_signatures.c.last_sequence.desc())).first()
    execute(engine, insert(ledger_signatures).values(
        last_sequence=first + 2, first_sequence=first, head_hash=entries(engine)[-1]["entry_hash"],
        key_id=last.key_id, signed_at=utc_now(), signature=forger_signer().sign(b"anything")))
    assert_caught(engine, capsys, f"entry {first}:", "not signed by the ledger's key")


def test_money_moved_between_entries_and_rechained_is_caught(audited, capsys):
    """1,000,000 µcr moved from one entry to the next, every later hash recomputed: the signed write is contradicted."""
    engine, _ = audited
    rows = entries(engine)
    start = transaction_ranges(engine)[-3][1]
    rows[start - 1]["amount_ucr"] -= 1_000_000
    rows[start]["amount_ucr"] += 1_000_000
    for row in rows[start - 1:start + 1]:
        execute(engine, update(ledger_entries).where(ledger_entries.c.sequence == row["sequence"])
                .values(amount_ucr=row["amount_ucr"]))
    rechain(engine, rows, start)
    assert verify_chain(engine).ok  # the chain alone is fooled
    assert_caught(engine, capsys, f"entry {start}:", "signed with head")


def test_whole_ledger_rechained_and_resigned_with_another_key_is_caught(audited, capsys):
    """An edit, the whole chain recomputed and every write re-signed by the forger's key: the signatures fail."""
    engine, _ = audited
    rows = entries(engine)
    rows[0]["memo"] = '{"forged":true}'
    execute(engine, update(ledger_entries).where(ledger_entries.c.sequence == 1).values(memo=rows[0]["memo"]))
    rechain(engine, rows, 1)
    resign(engine, forger_signer())
    assert_caught(engine, capsys, "entry 1:", "not signed by the ledger's key")


def test_whole_ledger_rechained_without_signatures_is_caught(audited, capsys):
    """An edit, the whole chain recomputed and every signed write deleted: nothing is signed."""
    engine, _ = audited
    rows = entries(engine)
    rows[2]["amount_ucr"] += 7
    rows[3]["amount_ucr"] -= 7
    for row in rows[2:4]:
        execute(engine, update(ledger_entries).where(ledger_entries.c.sequence == row["sequence"])
                .values(amount_ucr=row["amount_ucr"]))
    rechain(engine, rows, 1)
    execute(engine, delete(ledger_signatures))
    assert_caught(engine, capsys, "entry 1:", "no signed write")


def test_edited_signed_write_is_caught(audited, capsys):
    """A signed write's recorded head hash changed is caught at the write's first entry."""
    engine, _ = audited
    with engine.connect() as connection:
        write = connection.execute(select(ledger_signatures).order_by(ledger_signatures.c.last_sequence)).all()[2]
    execute(engine, update(ledger_signatures).where(ledger_signatures.c.last_sequence == write.last_sequence)
            .values(signature="00" * 64))
    assert_caught(engine, capsys, f"entry {write.first_sequence}:", "not signed")


def test_replaced_public_key_file_is_caught(audited, capsys):
    """The public key file replaced by another key's: the signatures no longer verify against it."""
    engine, _ = audited
    forger = forger_signer()
    public_key_path().write_bytes(public_key_pem(forger.public_key))
    assert_caught(engine, capsys, "entry 1:", "not signed by the ledger's key")


def test_replaced_public_key_with_everything_resigned_is_caught_by_the_checkpoint(audited, capsys):
    """The public key file replaced and every write re-signed with the forger's key: the logged checkpoint,
    signed by the real key, is no longer the ledger's."""
    engine, _ = audited
    forger = forger_signer()
    public_key_path().write_bytes(public_key_pem(forger.public_key))
    resign(engine, forger)
    assert_caught(engine, capsys, "checkpoint", "not the ledger's")


def test_edited_usage_record_is_caught(audited, capsys):
    """A usage record's charge lowered in usage_records (its JSON too) disagrees with the chained record."""
    engine, usage = audited
    workload_id = usage[1]["workload_id"]
    record = {**usage[1], "charge_ucr": 1}
    execute(engine, update(usage_records).where(usage_records.c.workload_id == workload_id)
            .values(charge_ucr=1, record_json=canonical_json(record).decode()))
    assert_caught(engine, capsys, f"usage_records[{workload_id}].record_json")


def test_edited_usage_record_column_is_caught(audited, capsys):
    """A usage record's work_units column changed alone is named by column."""
    engine, usage = audited
    workload_id = usage[0]["workload_id"]
    execute(engine, update(usage_records).where(usage_records.c.workload_id == workload_id).values(work_units=1))
    assert_caught(engine, capsys, f"usage_records[{workload_id}].work_units is 1")


@pytest.mark.parametrize("change", [{"organization": "mallory"}, {"state": "Failed"}, {"seed": "1"}])
def test_edited_workload_row_is_caught(audited, capsys, change):
    """A workloads row's attribution, state or seed edited disagrees with the chained record."""
    engine, usage = audited
    workload_id = usage[0]["workload_id"]
    execute(engine, update(workloads).where(workloads.c.workload_id == workload_id).values(**change))
    assert_caught(engine, capsys, f"workloads[{workload_id}].{next(iter(change))}")


def test_workload_finalized_behind_the_ledgers_back_is_caught(audited, capsys):
    """A workloads row and usage record written as Finalized by raw SQL, never recorded in the ledger, are caught
    (settlement would otherwise bill them)."""
    engine, usage = audited
    with engine.connect() as connection:
        workload = dict(connection.execute(select(workloads).where(
            workloads.c.workload_id == usage[0]["workload_id"])).mappings().one())
    forged_id = "wl_forged000000000000000000000"
    execute(engine, insert(workloads).values({**workload, "workload_id": forged_id, "request_id": "forged"}))
    record = {**usage[0], "workload_id": forged_id, "request_id": "forged"}
    execute(engine, insert(usage_records).values(
        {**{column.name: record.get(column.name) for column in usage_records.columns if column.name != "record_json"},
         "record_json": canonical_json(record).decode()}))
    assert_caught(engine, capsys, f"usage_records[{forged_id}]: no workload record in the ledger")


def test_a_tampered_ledger_is_never_checkpointed_or_exported(audited, capsys, tmp_path):
    """`ledger checkpoint` and `export` refuse (exit 1) a ledger that does not verify, and write nothing."""
    engine, usage = audited
    forged_second_settlement(engine, usage)
    lines = checkpoint_log.checkpoint_log_path().read_text().splitlines()
    assert main(["ledger", "checkpoint"]) == 1
    output = tmp_path / "export.csv"
    assert main(["export", "--cycle", today_cycle().key, "--format", "csv", "-o", str(output)]) == 1
    assert not output.exists()
    assert checkpoint_log.checkpoint_log_path().read_text().splitlines() == lines
