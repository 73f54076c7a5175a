"""The scheduler service: select_destinations over RPC, host states kept from the Store.

:class:`SchedulerService` (topic ``scheduler``) loads the compute hosts from the
Store when it starts (:mod:`loader`), refreshes them every ``refresh_interval``
seconds, and answers

* :class:`SelectDestinations` (a call): the request spec, as the message body it
  is; the answer is :class:`Destinations`, one Selection per placed instance,
  claimed in placement (:mod:`placement_claimer`). A request no host can take
  comes back to the caller as a ``RemoteError`` of ``HostsFilteredOut``
  (a ``NoValidHost``) naming how many hosts each filter removed;
* :class:`HostReport` (a cast): a compute host's capacity and usage between
  refreshes.

Requests are decided one at a time: a claim waits on the database, and the
next decision must see it (the array work between claims is microseconds).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nimbus.core.errors import ConfigError, NotFound, NoValidHost
from nimbus.core.messages import message
from nimbus.core.scheduler.config import SchedulerConfig
from nimbus.core.scheduler.host_state import HostStates
from nimbus.core.scheduler.loader import HostReport, HostStatesLoader, Refreshed, apply_update
from nimbus.core.scheduler.placement_claimer import PlacementClaimer, with_instance_uuids
from nimbus.core.scheduler.request import RequestSpec, Selection
from nimbus.core.scheduler.scheduler import Scheduler
from nimbus.core.service import Service, ServiceContext, endpoint, periodic


def _positive(value: float) -> str | None:
    return None if value > 0 else "expected a number above 0"


def _size(value: int | None) -> str | None:
    return None if value is None or value >= 0 else "expected 0 or more (0: never)"


@dataclass(frozen=True, slots=True)
class SchedulerServiceConfig:
    """The ``[scheduler]`` section (filters and weighers are ``[filter_scheduler]``).

    ``refresh_interval``: seconds between reloads of the host states from the Store;
    ``service_down_time``: a compute service not heard from for longer is down (Nova's
    option of that name); ``compute_binary``: the binary name compute services register
    under; ``shortlist_size``: hosts weighed per decision on large fleets (empty: grows
    with the fleet; 0: weigh every host every time).
    """

    refresh_interval: float = field(default=60.0, metadata={"check": _positive})
    service_down_time: float = field(default=60.0, metadata={"check": _positive})
    compute_binary: str = "nimbus-compute"
    shortlist_size: int | None = field(default=None, metadata={"check": _size})


@message("scheduler.select_destinations")
@dataclass(frozen=True, slots=True)
class SelectDestinations:
    """Place the instances of ``spec`` (fresh uuids are drawn for a spec that names none)."""

    spec: RequestSpec


@message("scheduler.destinations")
@dataclass(frozen=True, slots=True)
class Destinations:
    """Where they go: one Selection per placed instance, claimed in placement."""

    selections: tuple[Selection, ...]


@message("scheduler.service_status")
@dataclass(frozen=True, slots=True)
class ServiceStatus:
    """A compute host was enabled, disabled or forced down by an admin (a fanout), so the
    next decision sees it without waiting for the refresh."""

    host: str
    disabled: bool
    forced_down: bool = False


class SchedulerService(Service):
    """select_destinations over RPC, on host states loaded from the Store."""

    topic = "scheduler"

    def __init__(self, ctx: ServiceContext, config: SchedulerServiceConfig | None = None,
                 filters: SchedulerConfig | None = None) -> None:
        if ctx.store is None:
            raise ConfigError("the 'scheduler' service needs the database")
        super().__init__(ctx)
        self.config = config or SchedulerServiceConfig()
        self.filters = filters or SchedulerConfig()
        self.refresh_interval = self.config.refresh_interval
        self.loader = HostStatesLoader(ctx.store, service_down_time=self.config.service_down_time,
                                       compute_binary=self.config.compute_binary)
        self.states = HostStates(default_az=self.filters.default_availability_zone)
        self.claimer = PlacementClaimer(ctx.store, self.states, ctx.runtime,
                                        prefilter=self.filters.placement_prefilter)
        self.scheduler = self._scheduler()
        self._turn = ctx.runtime.lock()
        self.last_refresh: Refreshed | None = None

    def _scheduler(self) -> Scheduler:
        return Scheduler(self.states, self.filters, self.claimer, self.runtime.rng,
                         shortlist_size=self.config.shortlist_size)

    async def on_start(self) -> None:
        await self.refresh()

    @endpoint(SelectDestinations)
    async def select_destinations(self, msg: SelectDestinations) -> Destinations:
        """Choose and claim a host for each instance of the request."""
        metrics = self.ctx.metrics
        request = with_instance_uuids(msg.spec, self.runtime)
        started = self.runtime.now()
        conflicts = self.scheduler.conflicts
        outcome = "error"
        try:
            async with self._turn:
                selections = await self.scheduler.select_destinations_async(request)
            outcome = "placed"
            metrics.scheduler_instances.inc(len(selections))
            return Destinations(tuple(selections))
        except NoValidHost:
            outcome = "no_valid_host"
            raise
        finally:
            metrics.scheduler_requests.labels(outcome).inc()
            metrics.scheduler_conflicts.inc(self.scheduler.conflicts - conflicts)
            metrics.scheduler_latency.observe(self.runtime.now() - started)

    @endpoint(HostReport)
    async def host_report(self, msg: HostReport) -> None:
        """A compute host's capacity and usage, between refreshes."""
        async with self._turn:
            apply_update(self.states, msg)

    @endpoint(ServiceStatus)
    async def service_status(self, msg: ServiceStatus) -> None:
        """An admin changed a compute host's status: apply it now."""
        async with self._turn:
            try:
                row = self.states.index(msg.host)
            except NotFound:
                return  # not loaded yet: the next refresh reads it
            up = None if not msg.forced_down else False
            self.states.set_service(row, up=up, disabled=msg.disabled)

    @periodic("refresh_interval", jitter=1.0)
    async def refresh(self) -> None:
        """Bring the host states in line with the Store."""
        async with self._turn:
            self.last_refresh = await self.loader.refresh(self.states,
                                                          self.runtime.wall_time())
        states, gauge = self.states, self.ctx.metrics.scheduler_hosts
        rows = states.rows()
        up = sum(1 for r in rows if states.up[r])
        disabled = sum(1 for r in rows if states.disabled[r])
        gauge.labels("up").set(up)
        gauge.labels("down").set(len(rows) - up)
        gauge.labels("disabled").set(disabled)
