"""Indexes for the reads that scanned: instances (host, deleted), (updated_at,
project_id) and (project_id, deleted); fixed_ips (virtual_interface_id).

Revision ID: 0003
Revises: 0002

``WHERE host = ? AND deleted = 0`` (a compute host's instances, its load
report) could only use the first column of (host, node, deleted), and SQLite's
planner, seeing equal costs, chose (deleted, updated_at) instead: a scan of
every live instance per call. Nova's instances table has the same pair of
indexes for the same reason. ``changes-since`` over live and deleted instances
(``updated_at >= ?`` with no ``deleted`` term) could use no index at all: a scan
of every row ever written per poll; Nova indexes (updated_at, project_id). A
project's quota count (``project_id = ? AND deleted = 0``) went the (deleted,
created_at) way too, over every live instance of every project; Nova indexes
(project_id, deleted). Releasing an instance's fixed IPs
(``virtual_interface_id IN (...)``) scanned every fixed IP.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the four indexes."""
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_instances_host_deleted"), ["host", "deleted"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_instances_updated_at_project_id"),
                              ["updated_at", "project_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_instances_project_id_deleted"),
                              ["project_id", "deleted"], unique=False)
    with op.batch_alter_table("fixed_ips", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fixed_ips_virtual_interface_id"),
                              ["virtual_interface_id"], unique=False)


def downgrade() -> None:
    """Drop the four indexes."""
    with op.batch_alter_table("fixed_ips", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fixed_ips_virtual_interface_id"))
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_instances_project_id_deleted"))
        batch_op.drop_index(batch_op.f("ix_instances_updated_at_project_id"))
        batch_op.drop_index(batch_op.f("ix_instances_host_deleted"))
