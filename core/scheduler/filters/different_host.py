"""DifferentHostFilter: the ``different_host`` hint keeps an instance off the named ones' hosts."""

from __future__ import annotations

from nimbus.core.scheduler.filters.same_host import hosts_running
from nimbus.core.scheduler.host_state import HostStates
from nimbus.core.scheduler.plugins import BoolArray, HostFilter, ScheduleContext
from nimbus.core.scheduler.request import RequestSpec


class DifferentHostFilter(HostFilter):
    """With scheduler hint ``different_host`` (instance uuids), pass hosts running none of them."""

    name = "DifferentHostFilter"

    def applies(self, request: RequestSpec) -> bool:
        return bool(request.hint("different_host"))

    def mask(self, states: HostStates, request: RequestSpec,
             ctx: ScheduleContext) -> BoolArray | None:
        uuids = request.hint("different_host")
        if not uuids:
            return None
        return ~hosts_running(states, uuids)
