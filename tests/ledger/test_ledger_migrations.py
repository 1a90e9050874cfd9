from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from ledger_helpers import settlement
from sqlalchemy import inspect

from forge_pipeline.ledger.ledger import entries, post_transactions
from forge_pipeline.storage.database import (MIGRATION_LOCK_KEY, alembic_config, exclusive_transaction, metadata,
                                             open_engine, upgrade_database)


def head_revision(connection) -> str:
    return ScriptDirectory.from_config(alembic_config(connection)).get_current_head()


def test_migrated_schema_matches_the_metadata(engine):
    """After `alembic upgrade head`, autogenerate finds no difference from storage/database.py's tables."""
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
        assert MigrationContext.configure(connection).get_current_revision() == head_revision(connection)
        assert set(inspect(connection).get_table_names()) == set(metadata.tables) | {"alembic_version"}


def test_upgrading_again_changes_nothing(engine, database_url):
    """`forge-pool db upgrade` on a database already at head keeps its revision and its data."""
    post_transactions(engine, [settlement(0)])
    before = entries(engine)
    assert upgrade_database(database_url) is engine
    assert entries(engine) == before


def test_downgrade_and_upgrade_round_trip(engine):
    """The initial revision's downgrade drops every table and its upgrade recreates the same schema."""
    with exclusive_transaction(engine, MIGRATION_LOCK_KEY) as connection:
        command.downgrade(alembic_config(connection), "base")
    with engine.connect() as connection:
        assert set(inspect(connection).get_table_names()) <= {"alembic_version"}
    with exclusive_transaction(engine, MIGRATION_LOCK_KEY) as connection:
        command.upgrade(alembic_config(connection), "head")
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []


def test_open_engine_migrates_a_fresh_database(database_url):
    """open_engine on an empty database creates the whole schema through the migrations."""
    with open_engine(database_url).connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == head_revision(connection)


def test_attempts_recorded_before_origin_get_their_stage(engine):
    """0002 gives rows written by 0001 the stage they came from: hub -> verification, retry -> retry, else batch."""
    with exclusive_transaction(engine, MIGRATION_LOCK_KEY) as connection:
        command.downgrade(alembic_config(connection), "0001_initial_schema")
        connection.exec_driver_sql(
            "INSERT INTO workloads VALUES ('wl_old', 'r', 'o', 'p', 'w', 'sdk', 'x@1', 'standard@1', '{}', '1', "
            "'Finalized', '', '2026-11-25T00:00:00Z', '2026-11-25T00:00:00Z')")
        for attempt, (agent, detail) in enumerate([("a-1", ""), ("b-1", "retry"), ("hub", "replay_sample"),
                                                   ("c-1", "probation; fault: lazy")], start=1):
            connection.exec_driver_sql(
                "INSERT INTO shard_attempts (workload_id, shard_index, attempt, agent_id, provider_id, backend, device, "
                "status, verdict, digest, work_units, wall_ms, detail, at) VALUES "
                f"('wl_old', 0, {attempt}, '{agent}', 'p', 'numpy', 'cpu', 'completed', 'accepted', NULL, 1, 1, "
                f"'{detail}', '2026-11-25T00:00:00Z')")
        command.upgrade(alembic_config(connection), "head")
    with engine.connect() as connection:
        origins = connection.exec_driver_sql("SELECT agent_id, origin FROM shard_attempts ORDER BY attempt").all()
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    assert [tuple(row) for row in origins] == [("a-1", "batch"), ("b-1", "retry"), ("hub", "verification"),
                                               ("c-1", "batch")]
