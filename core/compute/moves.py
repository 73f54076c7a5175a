"""Resize and cold migration on the compute hosts: prep, ship, finish, confirm, revert."""

from __future__ import annotations

from nimbus.core.compute.base import ComputeBase


class MoveActions(ComputeBase):
    """Resize and cold migration on the compute hosts: prep, ship, finish, confirm, revert."""
