"""ServerGroupAffinityFilter: an ``affinity`` group's instances all go where its members are."""

from __future__ import annotations

import numpy as np

from nimbus.core.scheduler.host_state import HostStates
from nimbus.core.scheduler.plugins import BoolArray, HostFilter, ScheduleContext
from nimbus.core.scheduler.request import RequestSpec


class ServerGroupAffinityFilter(HostFilter):
    """For a group with the hard ``affinity`` policy, pass only hosts that already run
    a member (members placed earlier in the same batch count); any host for the first."""

    name = "ServerGroupAffinityFilter"

    def applies(self, request: RequestSpec) -> bool:
        return request.group is not None and request.group.policy == "affinity"

    def mask(self, states: HostStates, request: RequestSpec,
             ctx: ScheduleContext) -> BoolArray | None:
        group = request.group
        if group is None or group.policy != "affinity" or not ctx.group_total:
            return None
        members = ctx.group
        if members is None:
            return np.zeros(states.n, dtype=np.bool_)
        return members.mask(states.n, members.counts > 0)
