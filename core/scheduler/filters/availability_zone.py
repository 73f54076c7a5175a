"""AvailabilityZoneFilter: pass hosts in the availability zone the request names."""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np

from nimbus.core.scheduler.host_state import HostStates
from nimbus.core.scheduler.plugins import BoolArray, HostFilter, ScheduleContext
from nimbus.core.scheduler.request import RequestSpec


class AvailabilityZoneFilter(HostFilter):
    """Pass hosts in the requested zone; a host in no zone is in the default zone.

    A request that names no zone passes every host.
    """

    name = "AvailabilityZoneFilter"
    watches = ("hosts_version",)

    def cache_key(self, request: RequestSpec) -> Hashable:
        return request.availability_zone

    def mask(self, states: HostStates, request: RequestSpec,
             ctx: ScheduleContext) -> BoolArray | None:
        if not request.availability_zone:
            return None
        zone = states.az_id(request.availability_zone)
        if zone is None:
            return np.zeros(states.n, dtype=np.bool_)
        result: BoolArray = states.az == zone
        return result
