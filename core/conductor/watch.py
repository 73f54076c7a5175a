"""The conductor's watch over hosts that went down: builds and moves stuck there."""

from __future__ import annotations

from nimbus.core.conductor.base import ConductorBase


class WatchTasks(ConductorBase):
    """The conductor's watch over hosts that went down: builds and moves stuck there."""
