"""ComputeFilter: pass hosts whose compute service is up and not disabled."""

from __future__ import annotations

from collections.abc import Hashable

from nimbus.core.scheduler.host_state import HostStates
from nimbus.core.scheduler.plugins import BoolArray, HostFilter, ScheduleContext
from nimbus.core.scheduler.request import RequestSpec


class ComputeFilter(HostFilter):
    """Pass hosts whose compute service is up (heard from lately) and not disabled."""

    name = "ComputeFilter"
    watches = ("service_version",)

    def cache_key(self, request: RequestSpec) -> Hashable:
        return ()

    def mask(self, states: HostStates, request: RequestSpec,
             ctx: ScheduleContext) -> BoolArray | None:
        return states.service_ok
