"""The scheduler: host state in numpy columns, filters, weighers, claims, select_destinations.

Typical use::

    states = HostStates()
    states.add_host(HostSpec("cmp1", vcpus=32, memory_mb=131072, disk_gb=1000))
    scheduler = Scheduler(states, SchedulerConfig(), InMemoryClaimer(states), runtime.rng)
    [selection] = scheduler.select_destinations(RequestSpec.build(2, 4096, 20))
"""

from __future__ import annotations

from nimbus.core.scheduler.claims import Allocation, Claimer, InMemoryClaimer
from nimbus.core.scheduler.config import DEFAULT_FILTERS, DEFAULT_WEIGHERS, SchedulerConfig
from nimbus.core.scheduler.filters import FILTERS
from nimbus.core.scheduler.host_spec import HostSpec, HostUsage
from nimbus.core.scheduler.host_state import HostStates
from nimbus.core.scheduler.plugins import HostFilter, HostWeigher, ScheduleContext
from nimbus.core.scheduler.request import RequestSpec, Selection, ServerGroupSpec
from nimbus.core.scheduler.scheduler import FilterStep, HostsFilteredOut, Scheduler
from nimbus.core.scheduler.weighers import WEIGHERS

__all__ = [
    "DEFAULT_FILTERS",
    "DEFAULT_WEIGHERS",
    "FILTERS",
    "WEIGHERS",
    "Allocation",
    "Claimer",
    "FilterStep",
    "HostFilter",
    "HostSpec",
    "HostStates",
    "HostUsage",
    "HostWeigher",
    "HostsFilteredOut",
    "InMemoryClaimer",
    "RequestSpec",
    "ScheduleContext",
    "Scheduler",
    "SchedulerConfig",
    "Selection",
    "ServerGroupSpec",
]
