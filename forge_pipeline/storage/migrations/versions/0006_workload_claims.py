"""A workload's claim names the Dagster run that holds its lifecycle, and the execution
plan is recorded once, so a run that takes over from a dead one continues with the plan
the dead run made (assignment and sampling read Agent history, which moves on).

Workloads claimed before this revision keep a null claimant: no run names them, so a
stranded one among them can be taken over by any run.

Revision ID: 0006
Revises: 0002_attempt_origin
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workloads") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(64), nullable=True))
    op.create_table(
        "execution_plans",
        sa.Column("workload_id", sa.String(32), sa.ForeignKey("workloads.workload_id"), primary_key=True),
        sa.Column("plan_json", sa.Text, nullable=False),
        sa.Column("planned_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("execution_plans")
    with op.batch_alter_table("workloads") as batch:
        batch.drop_column("claimed_by")
