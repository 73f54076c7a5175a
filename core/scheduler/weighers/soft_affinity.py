"""ServerGroupSoftAffinityWeigher: prefer hosts running more members of a soft-affinity group."""

from __future__ import annotations

import numpy as np

from nimbus.core.scheduler.host_state import HostStates
from nimbus.core.scheduler.plugins import FloatArray, HostWeigher, IntArray, ScheduleContext
from nimbus.core.scheduler.request import RequestSpec


class ServerGroupSoftAffinityWeigher(HostWeigher):
    """For a ``soft-affinity`` group, weigh each host by the group's members on it."""

    name = "ServerGroupSoftAffinityWeigher"
    option = "soft_affinity_weight_multiplier"

    def applies(self, request: RequestSpec) -> bool:
        return request.group is not None and request.group.policy == "soft-affinity"

    def weights(self, states: HostStates, request: RequestSpec,
                ctx: ScheduleContext) -> FloatArray | None:
        """Members per host (batch included); None for other requests."""
        group = request.group
        if group is None or group.policy != "soft-affinity" or ctx.group_counts is None:
            return None
        return ctx.group_counts.astype(np.float64)

    def sparse_weights(self, states: HostStates, request: RequestSpec,
                       ctx: ScheduleContext) -> tuple[IntArray, FloatArray] | None:
        """The hosts running members, and their counts."""
        group = request.group
        if group is None or group.policy != "soft-affinity" or ctx.group_counts is None:
            return None
        rows = np.flatnonzero(ctx.group_counts)
        return rows, ctx.group_counts[rows].astype(np.float64)
