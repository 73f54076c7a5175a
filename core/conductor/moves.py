"""The conductor's resize and cold migration: schedule, migration record, allocations."""

from __future__ import annotations

from nimbus.core.conductor.base import ConductorBase


class MoveTasks(ConductorBase):
    """The conductor's resize and cold migration: schedule, migration record, allocations."""
