"""The database: one SQLAlchemy Core schema for workloads, their events, shard attempts,
usage records and the ledger, on SQLite by default and PostgreSQL in production.

Timestamps are UTC ISO-8601 text (`2026-11-25T22:19:42.123456Z`): they sort, compare and
hash identically on every database. The seed is a uint64, which no signed BIGINT
holds, so it is stored as decimal text. Money is a signed 64-bit integer (`*_ucr`); no
money column is Float or Numeric.

The schema is owned by the Alembic migrations in `storage/migrations` (shipped inside the
package): `open_engine` upgrades a database to the newest revision the first time a
process opens it, and `upgrade_database` is `forge-pool db upgrade`. A change to the
tables below needs a new revision; `tests/ledger/test_ledger_migrations.py` fails until the
migrated schema matches this metadata again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from filelock import FileLock
from sqlalchemy import (BigInteger, Column, Connection, Engine, ForeignKey, Index, Integer, MetaData, String, Table,
                        Text, UniqueConstraint, create_engine, event, exc, func, select)

from forge_pipeline.home import forge_home

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
    # The Dagster run that holds the lifecycle (null while Pending); a dead run's claim is taken over.
    Column("claimed_by", String(64)),
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

# The plan a workload's lifecycle runs by, recorded once at planning: a run that takes over
# from a dead one continues with it (lifecycle.plan_workload).
execution_plans = Table(
    "execution_plans", metadata,
    Column("workload_id", String(32), ForeignKey("workloads.workload_id"), primary_key=True),
    Column("plan_json", Text, nullable=False),
    Column("planned_at", String(32), nullable=False),
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
    # The stage that recorded it: batch (an Agent batch, recorded by collect), retry
    # (collect's retries) or verification (the hub's recomputations). A stage records once.
    Column("origin", String(16), nullable=False),
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

# Append-only and hash-chained: see forge_pipeline/ledger/ledger.py for the meaning of each column.
ledger_entries = Table(
    "ledger_entries", metadata,
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),  # 1, 2, 3... assigned by the ledger
    Column("transaction_id", String(64), nullable=False, index=True),
    Column("idempotency_key", String(255), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("account", String(255), nullable=False),
    Column("amount_ucr", BigInteger, nullable=False),  # signed: credit > 0, debit < 0
    Column("workload_id", String(32), index=True),
    Column("cycle", String(10), index=True),
    Column("organization", String(128)),
    Column("project", String(128)),
    Column("workspace", String(128)),
    Column("provider_id", String(128)),
    Column("memo", Text, nullable=False),
    Column("recorded_at", String(32), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("entry_hash", String(64), nullable=False),
    UniqueConstraint("idempotency_key", name="uq_ledger_entries_idempotency_key"),
)

# One row per write to the ledger (forge_pipeline/ledger/ledger.py): the hub's Ed25519 signature over
# the entries it appended (first..last sequence) and the chain's head hash after them.
ledger_signatures = Table(
    "ledger_signatures", metadata,
    Column("last_sequence", BigInteger, primary_key=True, autoincrement=False),
    Column("first_sequence", BigInteger, nullable=False),
    Column("head_hash", String(64), nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("signed_at", String(32), nullable=False),
    Column("signature", String(128), nullable=False),
)


# Web Core API keys (forge_pipeline/api/keys.py): only a salted hash of each key's secret is kept.
api_keys = Table(
    "api_keys", metadata,
    Column("key_id", String(32), primary_key=True),  # public part of the key, shown by `keys list`
    Column("kind", String(16), nullable=False),  # organization | provider | operator
    Column("owner", String(128), nullable=False),  # the organization or provider id ("" for operator keys)
    Column("scopes", Text, nullable=False),  # space-separated, sorted
    Column("salt", String(64), nullable=False),
    Column("secret_hash", String(64), nullable=False),  # hex HMAC-SHA256(salt, secret)
    Column("created_at", String(32), nullable=False),
    Column("revoked_at", String(32)),
)


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def artifacts_root() -> Path:
    """The artifact store: evidence bundles under evidence/<workload>, statements under settlement/<cycle>."""
    return forge_home() / "artifacts"


def database_url() -> str:
    return os.environ.get("FORGE_DATABASE_URL") or f"sqlite:///{forge_home() / 'forge.db'}"


def database_is_new(url: str | None = None) -> bool:
    """Whether opening `url` would create the database: an SQLite file that does not exist yet."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url or database_url())
    return parsed.get_backend_name() == "sqlite" and bool(parsed.database) and not Path(parsed.database).exists()


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets Dagster's step processes read while one writes; the busy timeout makes
    # writers queue instead of failing under the multiprocess executor. The timeout comes
    # first: switching a fresh file to WAL takes a lock that concurrent first openers wait for.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# PostgreSQL advisory lock keys (any constant bigint, unique to its purpose within this database).
MIGRATION_LOCK_KEY = 0x466F7267654D4947  # "ForgeMIG"
LEDGER_LOCK_KEY = 0x466F7267654C4447  # "ForgeLDG"
WORKLOAD_LOCK_KEY = 0x466F726765574B4C  # "ForgeWKL": state transitions and attempt numbering


@contextmanager
def exclusive_transaction(engine: Engine, lock_key: int) -> Iterator[Connection]:
    """One transaction that holds the database's writer lock from its first statement.

    A writer that reads before it appends (the ledger reads the chain's tail, a migration
    reads the schema version) must not interleave with another such writer, or both
    append after the same tail and the chain forks.

    SQLite: `BEGIN IMMEDIATE` takes the write lock up front (waiting up to busy_timeout).
    pysqlite would otherwise open its own deferred transaction just before the first
    INSERT, after our reads; switching the connection to driver-level AUTOCOMMIT stops it
    from emitting any BEGIN, so the one we emit is the only one, and SQLAlchemy's
    commit/rollback (the DBAPI's) still end it — the SQLAlchemy SQLite docs' recipe,
    applied to this connection only so other code keeps its usual transactions.
    PostgreSQL: a transaction-scoped advisory lock on `lock_key`, released at commit or
    rollback, so a killed writer never leaves it held.
    """
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            connection.execution_options(isolation_level="AUTOCOMMIT")
            with connection.begin():
                connection.exec_driver_sql("BEGIN IMMEDIATE")
                yield connection
        elif engine.dialect.name == "postgresql":
            with connection.begin():
                connection.execute(select(func.pg_advisory_xact_lock(lock_key)))
                yield connection
        else:
            raise NotImplementedError(f"no writer lock for {engine.dialect.name}: use SQLite or PostgreSQL")


def alembic_config(connection: Connection) -> Config:
    """Alembic configuration for the migrations shipped in this package (no alembic.ini):
    migrations run on `connection`, inside the caller's transaction."""
    config = Config()
    config.set_main_option("script_location", "forge_pipeline.storage:migrations")
    config.attributes["connection"] = connection
    return config


_ENGINES: dict[str, Engine] = {}


def upgrade_database(url: str | None = None) -> Engine:
    """Migrate the database at `url` to the newest schema (`forge-pool db upgrade`); returns its engine.

    Concurrent callers (Dagster step processes opening a fresh database) are serialized
    by the writer lock: the first migrates, the others find the schema at head.
    """
    url = url or database_url()
    engine = _ENGINES.get(url) or _new_engine(url)
    # On a fresh SQLite file the first connection switches it to WAL, which concurrent first
    # openers cannot wait for with busy_timeout; a file lock beside it serializes them.
    file = engine.url.database if engine.dialect.name == "sqlite" else None
    lock = FileLock(f"{file}.lock") if file and file != ":memory:" else contextlib.nullcontext()
    try:
        with lock, exclusive_transaction(engine, MIGRATION_LOCK_KEY) as connection:
            command.upgrade(alembic_config(connection), "head")
    except (exc.OperationalError, exc.InterfaceError, OSError) as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()
        raise DatabaseUnreachable(f"cannot open the database: {reason[0] if reason else type(error).__name__}") \
            from error
    _ENGINES[url] = engine
    return engine


class DatabaseUnreachable(ConnectionError):
    """The database cannot be opened (no server, refused login, a file that cannot be created); one line."""


def open_engine(url: str | None = None) -> Engine:
    """One engine per URL per process, its database migrated to the newest schema on first open."""
    url = url or database_url()
    return _ENGINES.get(url) or upgrade_database(url)


def _new_engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def dispose_engines() -> None:
    """Close every pooled connection (tests drop their databases; forked workers start clean)."""
    for engine in _ENGINES.values():
        engine.dispose()
    _ENGINES.clear()


def drop_postgres_database(server_url: str, name: str) -> None:
    """Drop a PostgreSQL database on `server_url` (no database part), ending its sessions first:
    how tests, benchmarks and the local pool clean up after themselves."""
    dispose_engines()
    admin = create_engine(f"{server_url}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                       "WHERE datname = %(name)s AND pid <> pg_backend_pid()", {"name": name})
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        admin.dispose()
