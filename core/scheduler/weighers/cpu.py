"""CPUWeigher: prefer hosts with more free VCPUs (spread); a negative multiplier stacks instead."""

from __future__ import annotations

from nimbus.core.scheduler.host_state import HostStates
from nimbus.core.scheduler.plugins import FloatArray, HostWeigher, ScheduleContext
from nimbus.core.scheduler.request import RequestSpec


class CPUWeigher(HostWeigher):
    """Prefer hosts with more free VCPUs (spread); a negative multiplier stacks instead."""

    name = "CPUWeigher"
    option = "cpu_weight_multiplier"
    minval = 0.0
    column = "free_vcpus"

    def weights(self, states: HostStates, request: RequestSpec,
                ctx: ScheduleContext) -> FloatArray | None:
        """Free VCPUs: total * allocation ratio - allocated, clamped at 0."""
        return states.free_vcpus
