"""Instance faults keep their details (what Nova shows admins beside the message).

Revision ID: 0002
Revises: 0001

Also the example of an upgrade that must keep rows: the column is added in batch
mode, which on SQLite rebuilds the table and copies every row.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add instance_faults.details."""
    with op.batch_alter_table("instance_faults", schema=None) as batch_op:
        batch_op.add_column(sa.Column("details", sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop instance_faults.details."""
    with op.batch_alter_table("instance_faults", schema=None) as batch_op:
        batch_op.drop_column("details")
