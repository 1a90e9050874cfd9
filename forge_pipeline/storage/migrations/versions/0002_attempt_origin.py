"""Shard attempts name the stage that recorded them (batch, retry, verification), so a
Dagster step re-executed after its commit records nothing twice.

Rows written before this revision are given their stage from what they already say: the
hub's attempts are verification, attempts whose detail starts with "retry" are retries,
the rest came from Agent batches.

Revision ID: 0002_attempt_origin
Revises: 0001_initial_schema
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_attempt_origin"
down_revision = "0001_initial_schema"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("shard_attempts", sa.Column("origin", sa.String(16), nullable=True))
    op.execute("UPDATE shard_attempts SET origin = CASE WHEN agent_id = 'hub' THEN 'verification' "
               "WHEN detail LIKE 'retry%' THEN 'retry' ELSE 'batch' END")
    with op.batch_alter_table("shard_attempts") as batch:
        batch.alter_column("origin", existing_type=sa.String(16), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("shard_attempts") as batch:
        batch.drop_column("origin")
