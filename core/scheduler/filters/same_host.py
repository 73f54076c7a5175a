"""SameHostFilter: the ``same_host`` hint puts an instance beside the instances it names."""

from __future__ import annotations

import numpy as np

from nimbus.core.scheduler.host_state import HostStates
from nimbus.core.scheduler.plugins import BoolArray, HostFilter, ScheduleContext
from nimbus.core.scheduler.request import RequestSpec


class SameHostFilter(HostFilter):
    """With scheduler hint ``same_host`` (instance uuids), pass only hosts running one of them."""

    name = "SameHostFilter"

    def applies(self, request: RequestSpec) -> bool:
        return bool(request.hint("same_host"))

    def mask(self, states: HostStates, request: RequestSpec,
             ctx: ScheduleContext) -> BoolArray | None:
        uuids = request.hint("same_host")
        if not uuids:
            return None
        return hosts_running(states, uuids)


def hosts_running(states: HostStates, uuids: tuple[str, ...]) -> BoolArray:
    """True for each host that runs one of the instances ``uuids``."""
    result = np.zeros(states.n, dtype=np.bool_)
    for uuid in uuids:
        row = states.host_of(uuid)
        if row is not None:
            result[row] = True
    return result
