"""Reboot, stop/start, pause, suspend, rescue and consoles on the compute host."""

from __future__ import annotations

from nimbus.core.compute.base import ComputeBase


class PowerActions(ComputeBase):
    """Reboot, stop/start, pause, suspend, rescue and consoles on the compute host."""
