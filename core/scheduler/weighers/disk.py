"""DiskWeigher: prefer hosts with more free disk (spread); a negative multiplier stacks instead."""

from __future__ import annotations

from nimbus.core.scheduler.host_state import HostStates
from nimbus.core.scheduler.plugins import FloatArray, HostWeigher, ScheduleContext
from nimbus.core.scheduler.request import RequestSpec


class DiskWeigher(HostWeigher):
    """Prefer hosts with more free disk (spread); a negative multiplier stacks instead."""

    name = "DiskWeigher"
    option = "disk_weight_multiplier"
    minval = 0.0
    column = "free_disk"

    def weights(self, states: HostStates, request: RequestSpec,
                ctx: ScheduleContext) -> FloatArray | None:
        """Free disk in GiB: total - reserved - allocated, clamped at 0."""
        return states.free_disk
