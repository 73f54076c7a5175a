"""Rebuild in place, and evacuation (a rebuild on another host) on the compute host."""

from __future__ import annotations

from nimbus.core.compute.base import ComputeBase


class RebuildActions(ComputeBase):
    """Rebuild in place, and evacuation (a rebuild on another host) on the compute host."""
