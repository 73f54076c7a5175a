"""The conductor's unshelve: schedule and claim a host for a shelved-offloaded instance."""

from __future__ import annotations

from nimbus.core.conductor.base import ConductorBase


class UnshelveTasks(ConductorBase):
    """The conductor's unshelve: schedule and claim a host for a shelved-offloaded instance."""
