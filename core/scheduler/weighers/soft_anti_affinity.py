"""ServerGroupSoftAntiAffinityWeigher: prefer hosts running fewer members of a soft group."""

from __future__ import annotations

import numpy as np

from nimbus.core.scheduler.host_state import HostStates
from nimbus.core.scheduler.plugins import FloatArray, HostWeigher, IntArray, ScheduleContext
from nimbus.core.scheduler.request import RequestSpec


class ServerGroupSoftAntiAffinityWeigher(HostWeigher):
    """For a ``soft-anti-affinity`` group, weigh each host by minus the group's members on it."""

    name = "ServerGroupSoftAntiAffinityWeigher"
    option = "soft_anti_affinity_weight_multiplier"

    def applies(self, request: RequestSpec) -> bool:
        return request.group is not None and request.group.policy == "soft-anti-affinity"

    def weights(self, states: HostStates, request: RequestSpec,
                ctx: ScheduleContext) -> FloatArray | None:
        """Minus the members per host (batch included); None for other requests or no
        members."""
        found = self.sparse_weights(states, request, ctx)
        if found is None:
            return None
        out = np.zeros(states.n, dtype=np.float64)
        out[found[0]] = found[1]
        return out

    def sparse_weights(self, states: HostStates, request: RequestSpec,
                       ctx: ScheduleContext) -> tuple[IntArray, FloatArray] | None:
        """The hosts running members, and minus their counts (the group's own arrays)."""
        group, members = request.group, ctx.group
        if group is None or group.policy != "soft-anti-affinity" or members is None:
            return None
        return members.rows, members.negated()
