"""ServerGroupAffinityFilter: an ``affinity`` group's instances all go where its members are."""

from __future__ import annotations

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
        assert ctx.group_counts is not None
        result: BoolArray = ctx.group_counts > 0
        return result
