"""Live migration on the two compute hosts: checks, pre, migrate, post, rollback."""

from __future__ import annotations

from nimbus.core.compute.base import ComputeBase


class LiveMigrationActions(ComputeBase):
    """Live migration on the two compute hosts: checks, pre, migrate, post, rollback."""
