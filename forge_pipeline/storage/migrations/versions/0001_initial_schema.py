"""Initial schema: workloads, workload_events, shard_attempts, usage_records, ledger_entries.

Written out explicitly (not generated at run time from the metadata), so this revision
means the same thing forever; tests/ledger/test_migrations.py checks it against
storage/database.py.

Revision ID: 0001_initial_schema
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_initial_schema"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workloads",
        sa.Column("workload_id", sa.String(32), primary_key=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("organization", sa.String(128), nullable=False),
        sa.Column("project", sa.String(128), nullable=False),
        sa.Column("workspace", sa.String(128), nullable=False),
        sa.Column("adapter", sa.String(128), nullable=False),
        sa.Column("primitive", sa.String(128), nullable=False),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("request_json", sa.Text, nullable=False),
        sa.Column("seed", sa.String(20), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("state_reason", sa.Text, nullable=False),
        sa.Column("submitted_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.UniqueConstraint("organization", "request_id", name="uq_workloads_request"),
    )
    op.create_index("ix_workloads_state", "workloads", ["state"])

    op.create_table(
        "workload_events",
        sa.Column("event_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("workload_id", sa.String(32), sa.ForeignKey("workloads.workload_id"), nullable=False),
        sa.Column("from_state", sa.String(16), nullable=True),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
    )
    op.create_index("ix_workload_events_workload_id", "workload_events", ["workload_id"])

    op.create_table(
        "shard_attempts",
        sa.Column("attempt_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("workload_id", sa.String(32), sa.ForeignKey("workloads.workload_id"), nullable=False),
        sa.Column("shard_index", sa.Integer, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("agent_id", sa.String(128), nullable=False),
        sa.Column("provider_id", sa.String(128), nullable=False),
        sa.Column("backend", sa.String(16), nullable=False),
        sa.Column("device", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("digest", sa.String(64), nullable=True),
        sa.Column("work_units", sa.BigInteger, nullable=False),
        sa.Column("wall_ms", sa.Integer, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.UniqueConstraint("workload_id", "shard_index", "attempt", name="uq_shard_attempts_attempt"),
    )

    op.create_table(
        "usage_records",
        sa.Column("workload_id", sa.String(32), sa.ForeignKey("workloads.workload_id"), primary_key=True),
        sa.Column("organization", sa.String(128), nullable=False),
        sa.Column("project", sa.String(128), nullable=False),
        sa.Column("workspace", sa.String(128), nullable=False),
        sa.Column("adapter", sa.String(128), nullable=False),
        sa.Column("primitive", sa.String(128), nullable=False),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("work_units", sa.BigInteger, nullable=False),
        sa.Column("seed", sa.String(20), nullable=False),
        sa.Column("plan_digest", sa.String(64), nullable=False),
        sa.Column("output_digest", sa.String(64), nullable=False),
        sa.Column("merkle_root", sa.String(64), nullable=False),
        sa.Column("evidence_digest", sa.String(64), nullable=False),
        sa.Column("evidence_path", sa.Text, nullable=False),
        sa.Column("kernel_digest", sa.String(64), nullable=False),
        sa.Column("rate_card_version", sa.String(32), nullable=True),
        sa.Column("charge_ucr", sa.BigInteger, nullable=True),
        sa.Column("record_json", sa.Text, nullable=False),
        sa.Column("finalized_at", sa.String(32), nullable=False),
    )

    op.create_table(
        "ledger_entries",
        sa.Column("sequence", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("transaction_id", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("account", sa.String(255), nullable=False),
        sa.Column("amount_ucr", sa.BigInteger, nullable=False),
        sa.Column("workload_id", sa.String(32), nullable=True),
        sa.Column("cycle", sa.String(10), nullable=True),
        sa.Column("organization", sa.String(128), nullable=True),
        sa.Column("project", sa.String(128), nullable=True),
        sa.Column("workspace", sa.String(128), nullable=True),
        sa.Column("provider_id", sa.String(128), nullable=True),
        sa.Column("memo", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.String(32), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("idempotency_key", name="uq_ledger_entries_idempotency_key"),
    )
    op.create_index("ix_ledger_entries_transaction_id", "ledger_entries", ["transaction_id"])
    op.create_index("ix_ledger_entries_workload_id", "ledger_entries", ["workload_id"])
    op.create_index("ix_ledger_entries_cycle", "ledger_entries", ["cycle"])


def downgrade() -> None:
    for table in ("ledger_entries", "usage_records", "shard_attempts", "workload_events", "workloads"):
        op.drop_table(table)
