"""ServerGroupAntiAffinityFilter: an ``anti-affinity`` group's instances go to different hosts."""

from __future__ import annotations

import numpy as np

from nimbus.core.scheduler.host_state import HostStates
from nimbus.core.scheduler.plugins import BoolArray, HostFilter, ScheduleContext
from nimbus.core.scheduler.request import RequestSpec


class ServerGroupAntiAffinityFilter(HostFilter):
    """For a group with the hard ``anti-affinity`` policy, pass hosts running fewer than
    ``max_server_per_host`` members (1 by default), members of the same batch included.

    The host already running the instance being scheduled passes (a move may stay put).
    """

    name = "ServerGroupAntiAffinityFilter"

    def applies(self, request: RequestSpec) -> bool:
        return request.group is not None and request.group.policy == "anti-affinity"

    def mask(self, states: HostStates, request: RequestSpec,
             ctx: ScheduleContext) -> BoolArray | None:
        group = request.group
        if group is None or group.policy != "anti-affinity" or not ctx.group_total:
            return None
        result: BoolArray = np.ones(states.n, dtype=np.bool_)
        members = ctx.group
        if members is not None:  # only the hosts of members can be full
            result[members.rows[members.counts >= group.max_server_per_host]] = False
        here = states.host_of(ctx.instance_uuid) if ctx.instance_uuid else None
        if here is not None:
            result[here] = True
        return result
