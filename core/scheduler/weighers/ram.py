"""RAMWeigher: prefer hosts with more free RAM (spread); a negative multiplier stacks instead."""

from __future__ import annotations

from nimbus.core.scheduler.host_state import HostStates
from nimbus.core.scheduler.plugins import FloatArray, HostWeigher, ScheduleContext
from nimbus.core.scheduler.request import RequestSpec


class RAMWeigher(HostWeigher):
    """Prefer hosts with more free RAM (spread); a negative multiplier stacks instead."""

    name = "RAMWeigher"
    option = "ram_weight_multiplier"
    minval = 0.0
    column = "free_ram"

    def weights(self, states: HostStates, request: RequestSpec,
                ctx: ScheduleContext) -> FloatArray | None:
        """Free RAM: total - reserved - allocated, clamped at 0 (Nova's free_ram_mb)."""
        return states.free_ram
