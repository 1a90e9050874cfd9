import multiprocessing
import threading
import time

import pytest
from ledger_helpers import race, settlement
from sqlalchemy import event, insert, text

from forge_pipeline.canonical import canonical_json
from forge_pipeline.ledger.chain import GENESIS_HASH, entry_hash
from forge_pipeline.ledger.ledger import entries, post_transaction, verify_chain
from forge_pipeline.storage.database import ledger_entries, open_engine, utc_now

RACERS = 8
TRANSACTIONS = 40


def test_eight_processes_posting_the_same_transactions_post_them_once(database_url):
    """Eight processes opening a fresh database and posting the same transactions at once, singly and in batches:
    the schema is migrated once, every transaction is posted by exactly one of them, and the chain verifies."""
    spawn = multiprocessing.get_context("spawn")
    ready, results, go = spawn.Queue(), spawn.Queue(), spawn.Event()
    racers = [spawn.Process(target=race, args=(database_url, TRANSACTIONS, seed, ready, go, results))
              for seed in range(RACERS)]
    for racer in racers:
        racer.start()
    for _ in racers:
        ready.get(timeout=120)
    go.set()
    posted = [results.get(timeout=120) for _ in racers]
    for racer in racers:
        racer.join(timeout=60)
        assert racer.exitcode == 0
    every = [transaction_id for ids in posted for transaction_id in ids]
    assert sorted(every) == sorted(settlement(index).transaction_id for index in range(TRANSACTIONS))
    engine = open_engine(database_url)
    assert len(entries(engine)) == 3 * TRANSACTIONS
    assert verify_chain(engine).ok


@pytest.mark.postgres
def test_insert_racing_past_the_lock_counts_as_already_posted(postgres_server_url):
    """When a writer that ignores the lock commits the same transaction while a post waits on its rows, the post
    returns False: no error, no duplicate, the chain intact."""
    engine = open_engine(postgres_server_url)
    transaction = settlement(0)
    rows, prev_hash = [], GENESIS_HASH
    for index, entry in enumerate(transaction.entries):
        row = {"workload_id": None, "cycle": None, "organization": None, "project": None, "workspace": None,
               "provider_id": None, **entry, "memo": canonical_json(entry.get("memo", {})).decode(),
               "sequence": index + 1, "transaction_id": transaction.transaction_id,
               "idempotency_key": f"{transaction.transaction_id}#{index}", "kind": transaction.kind,
               "recorded_at": utc_now(), "prev_hash": prev_hash}
        prev_hash = row["entry_hash"] = entry_hash(row)
        rows.append(row)
    outcome, errors = [], []
    event.listen(engine, "handle_error", lambda context: errors.append(type(context.sqlalchemy_exception).__name__))
    with engine.connect() as rival:
        rival.begin()
        rival.execute(insert(ledger_entries), rows)
        poster = threading.Thread(target=lambda: outcome.append(post_transaction(engine, **vars(transaction))))
        poster.start()
        deadline = time.monotonic() + 30
        while not waiting_on_a_lock(engine):
            assert time.monotonic() < deadline, "the post never waited on the rival's rows"
            time.sleep(0.02)
        rival.commit()
        poster.join(timeout=30)
    assert errors == ["IntegrityError"]  # the post did collide, and was retried
    assert outcome == [False]
    assert len(entries(engine)) == 3
    assert verify_chain(engine).ok


def waiting_on_a_lock(engine) -> bool:
    # A fresh transaction each time: pg_stat_activity is a snapshot taken once per transaction.
    with engine.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                       "AND wait_event_type = 'Lock'")).scalar() > 0
