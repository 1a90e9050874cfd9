"""How much the ledger's safety costs: posting through `post_transactions` (validation,
idempotency check, hash chain, one locked batch) against sqlite3's own executemany of the
very same finished rows into a table with the same schema, on temporary SQLite files,
in the same run.

    PYTHONPATH=. python -c "from benchmarks.ledger import bench_posting; print(bench_posting(100_000))"
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from pathlib import Path

from sqlalchemy.schema import CreateIndex, CreateTable

from forge_pipeline.ledger.ledger import Transaction, entries, post_transactions
from forge_pipeline.storage.database import ledger_entries, open_engine


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
