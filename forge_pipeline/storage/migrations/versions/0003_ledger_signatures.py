"""The hub's signature over each write to the ledger (forge_pipeline/ledger/ledger.py).

A ledger written before this revision has no signatures: the first write after it signs
every entry from the first (the operator upgrades a ledger it trusts; docs/ledger-integrity.md).

Revision ID: 0003
Revises: 0002_attempt_origin
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002_attempt_origin"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_signatures",
        sa.Column("last_sequence", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("first_sequence", sa.BigInteger, nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("merkle_root", sa.String(64), nullable=False),
        sa.Column("frontier", sa.Text, nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("signed_at", sa.String(32), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ledger_signatures")
