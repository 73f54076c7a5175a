"""Shelve, shelve-offload, unshelve and snapshots (create image) on the compute host."""

from __future__ import annotations

from nimbus.core.compute.base import ComputeBase


class ShelveActions(ComputeBase):
    """Shelve, shelve-offload, unshelve and snapshots (create image) on the compute host."""
