"""BuildFailureWeigher: steer away from hosts where builds failed lately."""

from __future__ import annotations

from nimbus.core.scheduler.host_state import HostStates
from nimbus.core.scheduler.plugins import FloatArray, HostWeigher, IntArray, ScheduleContext
from nimbus.core.scheduler.request import RequestSpec


class BuildFailureWeigher(HostWeigher):
    """Weigh hosts down by their count of recent failed builds.

    The multiplier (1,000,000 by default) is negated, as in Nova, so one failure
    outweighs every other weigher.
    """

    name = "BuildFailureWeigher"
    option = "build_failure_weight_multiplier"
    negate = True

    def weights(self, states: HostStates, request: RequestSpec,
                ctx: ScheduleContext) -> FloatArray | None:
        """Failed builds per host; None while no host has any."""
        return states.failed_builds if states.failed_build_hosts else None

    def sparse_weights(self, states: HostStates, request: RequestSpec,
                       ctx: ScheduleContext) -> tuple[IntArray, FloatArray] | None:
        """The few hosts with failed builds, and their counts."""
        return states.failed_builds_sparse()
