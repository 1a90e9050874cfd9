"""The database: one SQLAlchemy Core schema for workloads, their events, shard attempts,
usage records and the ledger, on SQLite by default and PostgreSQL in production.

Timestamps are UTC ISO-8601 text (`2026-11-25T22:19:42.123456Z`): they sort, compare and
hash identically on every database. The seed is a uint64, which no signed BIGINT
holds, so it is stored as decimal text.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from sqlalchemy import (BigInteger, Column, Engine, ForeignKey, Index, Integer, MetaData, String, Table, Text,
                        UniqueConstraint, create_engine, event)

metadata = MetaData()

workloads = Table(
    "workloads", metadata,
    Column("workload_id", String(32), primary_key=True),
    Column("request_id", String(128), nullable=False),
    Column("organization", String(128), nullable=False),
    Column("project", String(128), nullable=False),
    Column("workspace", String(128), nullable=False),
    Column("adapter", String(128), nullable=False),
    Column("primitive", String(128), nullable=False),
    Column("profile", String(64), nullable=False),
    Column("request_json", Text, nullable=False),
    Column("seed", String(20), nullable=False),
    Column("state", String(16), nullable=False),
    Column("state_reason", Text, nullable=False, default=""),
    Column("submitted_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    UniqueConstraint("organization", "request_id", name="uq_workloads_request"),
)
Index("ix_workloads_state", workloads.c.state)

workload_events = Table(
    "workload_events", metadata,
    Column("event_id", Integer, primary_key=True, autoincrement=True),
    Column("workload_id", String(32), ForeignKey("workloads.workload_id"), nullable=False, index=True),
    Column("from_state", String(16)),
    Column("to_state", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", String(32), nullable=False),
)

shard_attempts = Table(
    "shard_attempts", metadata,
    Column("attempt_id", Integer, primary_key=True, autoincrement=True),
    Column("workload_id", String(32), ForeignKey("workloads.workload_id"), nullable=False),
    Column("shard_index", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("agent_id", String(128), nullable=False),
    Column("provider_id", String(128), nullable=False),
    Column("backend", String(16), nullable=False),
    Column("device", String(128), nullable=False),
    Column("status", String(16), nullable=False),  # completed | crashed | timed_out
    Column("verdict", String(16), nullable=False),  # pending | accepted | verified | rejected | failed
    Column("digest", String(64)),
    Column("work_units", BigInteger, nullable=False),
    Column("wall_ms", Integer, nullable=False),
    Column("detail", Text, nullable=False, default=""),
    Column("at", String(32), nullable=False),
    UniqueConstraint("workload_id", "shard_index", "attempt", name="uq_shard_attempts_attempt"),
)

usage_records = Table(
    "usage_records", metadata,
    Column("workload_id", String(32), ForeignKey("workloads.workload_id"), primary_key=True),
    Column("organization", String(128), nullable=False),
    Column("project", String(128), nullable=False),
    Column("workspace", String(128), nullable=False),
    Column("adapter", String(128), nullable=False),
    Column("primitive", String(128), nullable=False),
    Column("profile", String(64), nullable=False),
    Column("work_units", BigInteger, nullable=False),
    Column("seed", String(20), nullable=False),
    Column("plan_digest", String(64), nullable=False),
    Column("output_digest", String(64), nullable=False),
    Column("merkle_root", String(64), nullable=False),
    Column("evidence_digest", String(64), nullable=False),
    Column("evidence_path", Text, nullable=False),
    Column("kernel_digest", String(64), nullable=False),
    Column("rate_card_version", String(32)),  # set once money is priced (null before the money issue)
    Column("charge_ucr", BigInteger),
    Column("record_json", Text, nullable=False),
    Column("finalized_at", String(32), nullable=False),
)


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def forge_home() -> Path:
    return Path(os.environ.get("FORGE_HOME", ".forge")).resolve()


def database_url() -> str:
    return os.environ.get("FORGE_DATABASE_URL") or f"sqlite:///{forge_home() / 'forge.db'}"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets Dagster's step processes read while one writes; the busy timeout makes
    # writers queue instead of failing under the multiprocess executor.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


_ENGINES: dict[str, Engine] = {}


def open_engine(url: str | None = None) -> Engine:
    """One engine per URL per process, with the schema created (migrations come with the ledger)."""
    url = url or database_url()
    if url not in _ENGINES:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, future=True)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        metadata.create_all(engine)
        _ENGINES[url] = engine
    return _ENGINES[url]
