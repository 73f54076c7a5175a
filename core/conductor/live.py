"""The conductor's live migration and evacuation: schedule, checks, allocations."""

from __future__ import annotations

from nimbus.core.conductor.base import ConductorBase


class LiveTasks(ConductorBase):
    """The conductor's live migration and evacuation: schedule, checks, allocations."""
