"""What every conductor task stands on: the Store, the scheduler, events and faults.

:class:`ConductorBase` is the conductor service without its tasks; the task
families (builds, moves, watching) are mixins composed in :mod:`service`.
"""

from __future__ import annotations

import logging
from typing import Any

from nimbus.core.compute import states
from nimbus.core.conductor.config import ConductorConfig
from nimbus.core.db.store import Store
from nimbus.core.errors import (
    CapacityExceeded,
    ConfigError,
    ConflictError,
    NimbusError,
    NotFound,
    RemoteError,
    local_error,
)
from nimbus.core.scheduler.request import RequestSpec
from nimbus.core.scheduler.service import Destinations, SelectDestinations
from nimbus.core.service import Service, ServiceContext

log = logging.getLogger(__name__)


class ConductorBase(Service):
    """The conductor without its tasks (see the module docstring)."""

    topic = "conductor"

    def __init__(self, ctx: ServiceContext, config: ConductorConfig | None = None) -> None:
        if ctx.store is None:
            raise ConfigError("the 'conductor' service needs the database")
        super().__init__(ctx)
        self.store: Store = ctx.store
        self.config = config or ConductorConfig()
        self.watch_interval = self.config.watch_interval

    def wall(self) -> float:
        """Seconds since the epoch as the Runtime tells it (virtual in simulation)."""
        return self.runtime.wall_time()

    async def select_destinations(self, spec: RequestSpec) -> Destinations:
        """Ask the scheduler to place and claim ``spec``; its errors as their own class
        (``NoValidHost`` for a request no host can take)."""
        try:
            got = await self.rpc.call("scheduler", SelectDestinations(spec),
                                      self.config.rpc_timeout)
        except RemoteError as err:
            raise local_error(err) from None
        assert isinstance(got, Destinations)
        return got

    async def provider_of(self, host: str) -> str:
        """The resource provider (compute node uuid) of ``host``; ``NotFound`` if none."""
        nodes = await self.store.list_compute_nodes(host=host)
        if not nodes:
            raise NotFound(f"compute host {host} has no compute node")
        return nodes[0].uuid

    async def claim_on(self, host: str, consumer: str, spec: RequestSpec) -> None:
        """Claim ``spec``'s resources for ``consumer`` on ``host``, replacing what the
        consumer holds; ``ConflictError``/``CapacityExceeded``/``NotFound`` if it cannot."""
        provider = await self.provider_of(host)
        held = await self.store.get_allocations(consumer)
        generation = held.generation if held.allocations else None
        await self.store.claim_allocations(
            consumer, {provider: spec.resources()}, project_id=spec.project_id,
            user_id=spec.user_id or spec.project_id, now=self.wall(),
            consumer_generation=generation, consumer_type="INSTANCE")

    async def free(self, consumer: str) -> None:
        """Give back what a consumer holds in placement (nothing held is fine)."""
        try:
            await self.store.delete_allocations(consumer)
        except NotFound:
            pass

    async def event(self, uuid: str, request_id: str, name: str, *,
                    error: BaseException | None = None, start: bool = False) -> None:
        """Record the start, or the end, of a conductor step of an action."""
        now = self.wall()
        try:
            if start:
                await self.store.start_event(uuid, request_id, name, now=now, host=self.host)
            elif error is None:
                await self.store.finish_event(uuid, request_id, name, now=now)
            else:
                await self.store.finish_event(uuid, request_id, name, now=now, result="Error",
                                              traceback=describe(error))
        except NotFound:
            pass  # no action recorded (an internal request), or the instance is gone

    async def fail_instance(self, uuid: str, error: BaseException, **changes: Any) -> None:
        """Put an instance in ERROR with its fault recorded and its allocations freed."""
        code = error.status if isinstance(error, NimbusError) else 500
        now = self.wall()
        try:
            await self.store.add_instance_fault(uuid, code=code, message=describe(error),
                                                now=now, host=self.host)
            await self.store.update_instance(uuid, now=now, vm_state=states.ERROR,
                                             task_state=None, **changes)
        except NotFound:
            pass
        await self.free(uuid)

    @staticmethod
    def retryable_claim_error(exc: BaseException) -> bool:
        """True for the errors a claim on an alternate host may meet and move past."""
        return isinstance(exc, (ConflictError, CapacityExceeded, NotFound))


def describe(error: BaseException) -> str:
    """An error as a fault message."""
    if isinstance(error, NimbusError):
        return error.message
    return f"{type(error).__name__}: {error}"
