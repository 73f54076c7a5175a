"""ResourceFit: pass hosts with room for the flavor's VCPU, RAM and disk (placement's test)."""

from __future__ import annotations

import numpy as np

from nimbus.core.scheduler.host_state import HostStates
from nimbus.core.scheduler.plugins import BoolArray, HostFilter, ScheduleContext
from nimbus.core.scheduler.request import RequestSpec


class ResourceFit(HostFilter):
    """Pass hosts where ``used + asked <= (total - reserved) * ratio`` and ``asked <= total``
    for VCPU, MEMORY_MB and DISK_GB (an amount of 0 is not asked, as in placement).

    It is what Nova's RamFilter, CoreFilter and DiskFilter did before placement, and the
    scheduler's stand-in for placement's allocation candidates. ``out`` and ``scratch``
    let the scheduler reuse its buffers.
    """

    name = "ResourceFit"

    def mask(self, states: HostStates, request: RequestSpec,
             ctx: ScheduleContext) -> BoolArray | None:
        return self.fit(states, request, np.empty(states.n, dtype=np.bool_),
                        np.empty(states.n, dtype=np.bool_))

    @staticmethod
    def fit(states: HostStates, request: RequestSpec, out: BoolArray,
            scratch: BoolArray) -> BoolArray:
        """Write the fit mask into ``out`` (``scratch`` is clobbered); returns ``out``."""
        asks = [(amount, room) for amount, room in (
            (request.memory_mb, states.ram_room), (request.vcpus, states.vcpu_room),
            (request.disk_gb, states.disk_room)) if amount]
        if not asks:
            np.copyto(out, states.present)
            return out
        np.greater_equal(asks[0][1], asks[0][0], out=out)
        for amount, room in asks[1:]:
            np.greater_equal(room, amount, out=scratch)
            np.logical_and(out, scratch, out=out)
        return out
