"""Signed writes keep their head hash only: the Merkle root and frontier columns of
`ledger_signatures` (revision 0003) go. The head hash already commits to every entry before
it; the Merkle root is recomputed by `ledger verify` and signed in each checkpoint, so posting
no longer extends a tree per entry.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ledger_signatures") as batch:
        batch.drop_column("merkle_root")
        batch.drop_column("frontier")


def downgrade() -> None:
    # The dropped roots and frontiers are not recomputed: the columns come back empty, and code of revision
    # 0003 (which extends the last write's frontier) cannot post on such a ledger until it is re-signed.
    with op.batch_alter_table("ledger_signatures") as batch:
        batch.add_column(sa.Column("merkle_root", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("frontier", sa.Text, nullable=False, server_default=""))
