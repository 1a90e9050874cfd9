"""How much the ledger's safety costs, on temporary SQLite files, measured side by side in one run.

- Posting through `post_transactions` (validation, idempotency check, hash chain, the Merkle
  frontier, one Ed25519 signature per write, one locked batch) against sqlite3's own
  executemany of the very same finished rows into a table with the same schema.
- `verify_ledger` with signatures and a checkpoint against reading the same rows alone.
- Inclusion proofs: microseconds per proof from the tree of 10^4 and of 10^6 entries.

    PYTHONPATH=. python -c "from benchmarks.ledger import bench_posting; print(bench_posting(100_000))"
    PYTHONPATH=. python -c "from benchmarks.ledger import bench_verify_and_prove; print(bench_verify_and_prove(10**6))"
"""

from __future__ import annotations

import os
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.schema import CreateIndex, CreateTable

from forge_pipeline.ledger.integrity import entry_hashes, issue_checkpoint, trust_from_files
from forge_pipeline.ledger.ledger import (VERIFY_ROWS_PER_FETCH, Transaction, entries, post_transactions,
                                          verify_ledger)
from forge_pipeline.merkle import MerkleTree, verify_inclusion
from forge_pipeline.storage.database import dispose_engines, ledger_entries, open_engine

PROOFS_TIMED = 10_000
POSTING_BATCH = 100_000  # transactions per write when building the ledger to verify


def bench_posting(n_entries: int = 100_000) -> dict:
    """Entries per second both ways and ledger_to_raw_ratio (1.0: the ledger costs nothing extra)."""
    if n_entries < 2 or n_entries % 2:
        raise ValueError(f"n_entries must be an even number ≥ 2 (two entries per transaction), got {n_entries}")
    transactions = [_settlement(index) for index in range(n_entries // 2)]
    with tempfile.TemporaryDirectory() as directory:
        engine = open_engine(f"sqlite:///{Path(directory) / 'ledger.db'}")
        try:
            started = time.perf_counter()
            post_transactions(engine, transactions)
            ledger_seconds = time.perf_counter() - started
            rows = entries(engine)
        finally:
            engine.dispose()  # the temporary directory goes away with its database
        raw_seconds = _raw_insert_seconds(Path(directory) / "raw.db", engine.dialect, rows)
    ledger_rate, raw_rate = n_entries / ledger_seconds, n_entries / raw_seconds
    return {"entries": n_entries, "ledger_entries_per_second": round(ledger_rate),
            "raw_entries_per_second": round(raw_rate), "ledger_to_raw_ratio": round(ledger_rate / raw_rate, 3)}


def bench_verify_and_prove(n_entries: int = 1_000_000) -> dict:
    """`verify_ledger` (chain, signatures, Merkle root, one checkpoint at the end) of `n_entries` against reading
    the same rows alone and against the chain alone; then microseconds per inclusion proof (and per verification)
    at 10^4 and n_entries."""
    with tempfile.TemporaryDirectory() as directory:
        previous_home = os.environ.get("FORGE_HOME")
        os.environ["FORGE_HOME"] = directory  # its own signing key and checkpoint log
        try:
            engine = open_engine(f"sqlite:///{Path(directory) / 'ledger.db'}")
            transactions = [_settlement(index) for index in range(n_entries // 2)]
            for start in range(0, len(transactions), POSTING_BATCH):
                post_transactions(engine, transactions[start:start + POSTING_BATCH])
            del transactions
            issue_checkpoint(verify_ledger(engine, trust_from_files()))
            query = select(*ledger_entries.columns).order_by(ledger_entries.c.sequence)
            started = time.perf_counter()
            with engine.connect() as connection:
                read = sum(1 for _ in connection.execution_options(yield_per=VERIFY_ROWS_PER_FETCH).execute(query))
            read_s = time.perf_counter() - started
            started = time.perf_counter()
            chain_only = verify_ledger(engine, None)
            chain_s = time.perf_counter() - started
            started = time.perf_counter()
            result = verify_ledger(engine, trust_from_files())
            verify_s = time.perf_counter() - started
            assert result.ok and chain_only.ok and result.entries_checked == read == n_entries, result
            leaves = entry_hashes(engine, n_entries)
        finally:
            dispose_engines()
            if previous_home is None:
                os.environ.pop("FORGE_HOME")
            else:
                os.environ["FORGE_HOME"] = previous_home
    proofs = {size: _proof_timing(leaves[:size]) for size in sorted({10_000, n_entries})}
    return {"entries": n_entries, "verify_s": verify_s, "chain_only_s": chain_s, "read_s": read_s,
            "verify_to_read_ratio": verify_s / read_s, "proofs": proofs}


def _proof_timing(leaves: list[bytes]) -> dict:
    started = time.perf_counter()
    tree = MerkleTree(leaves)
    build_s = time.perf_counter() - started
    root, indices = tree.root(None), random.Random(11).choices(range(len(leaves)), k=PROOFS_TIMED)
    started = time.perf_counter()
    paths = [tree.inclusion_proof(index) for index in indices]
    prove_s = time.perf_counter() - started
    started = time.perf_counter()
    for index, path in zip(indices, paths, strict=True):
        verify_inclusion(leaves[index], index, len(leaves), path, root)
    check_s = time.perf_counter() - started
    return {"tree_build_s": build_s, "prove_us": prove_s / PROOFS_TIMED * 1e6,
            "verify_us": check_s / PROOFS_TIMED * 1e6, "path_length": len(paths[0])}


def _settlement(index: int) -> Transaction:
    """Two entries, shaped like a workload's settlement: the customer pays, the provider earns."""
    workload_id, charge_ucr = f"w{index:031d}", 1_000 + index
    return Transaction(f"bench:{index}", "settlement", [
        {"account": "customer:bench/risk/prod", "amount_ucr": -charge_ucr, "workload_id": workload_id,
         "cycle": "2026-11-25", "organization": "bench", "project": "risk", "workspace": "prod",
         "memo": {"work_units": index}},
        {"account": "provider:northwind", "amount_ucr": charge_ucr, "workload_id": workload_id,
         "cycle": "2026-11-25", "provider_id": "northwind"},
    ])


def _raw_insert_seconds(path: Path, dialect, rows: list[dict]) -> float:
    """sqlite3 executemany of finished rows in one transaction, same schema and pragmas as the ledger's."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(str(CreateTable(ledger_entries).compile(dialect=dialect)))
        for index in ledger_entries.indexes:
            connection.execute(str(CreateIndex(index).compile(dialect=dialect)))
        columns = [column.name for column in ledger_entries.columns]
        values = [tuple(row[name] for name in columns) for row in rows]
        statement = f"INSERT INTO ledger_entries ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        started = time.perf_counter()
        connection.executemany(statement, values)
        connection.commit()
        return time.perf_counter() - started
    finally:
        connection.close()
