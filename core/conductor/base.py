"""What every conductor task stands on: the Store, the scheduler, events and faults.

:class:`ConductorBase` is the conductor service without its tasks; the task
families (builds, moves, watching) are mixins composed in :mod:`service`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from nimbus.core.compute import states
from nimbus.core.compute.base import hand_over
from nimbus.core.conductor.config import ConductorConfig
from nimbus.core.db.instance_migrations import MigrationRecord
from nimbus.core.db.instance_schema import InstanceRecord
from nimbus.core.db.store import Store
from nimbus.core.errors import (
    CapacityExceeded,
    ConfigError,
    ConflictError,
    NotFound,
    RemoteError,
    describe,
    fault_code,
    local_error,
)
from nimbus.core.scheduler.request import RequestSpec, ServerGroupSpec
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
        if not start:
            self.ctx.metrics.instance_events.labels(name, "Success" if error is None
                                                    else "Error").inc()
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
        now = self.wall()
        try:
            await self.add_fault(uuid, error)
            await self.store.update_instance(uuid, now=now, vm_state=states.ERROR,
                                             task_state=None, **changes)
        except NotFound:
            pass
        await self.free(uuid)

    async def abandon(self, inst: InstanceRecord, mig: MigrationRecord, error: BaseException,
                      task: str, **changes: Any) -> None:
        """Undo a move that reached no host: the source allocation back to the instance
        (dropping any claim on a destination), the migration ``error``, the fault
        recorded, the task state put back and ``changes`` made (the vm_state stays)."""
        uuid, now = inst.uuid, self.wall()
        try:
            await hand_over(self.store, mig.uuid, uuid, now)  # nothing moved yet: a no-op
            await self.store.update_migration_status(mig.id, "error", now=now)
            await self.add_fault(uuid, error)
            await self.store.update_instance(uuid, now=now, task_state=None,
                                             expected_task_states=[task], **changes)
        except (NotFound, ConflictError) as exc:  # deleted meanwhile: the delete frees it
            log.info("abandoning the move of %s: %s", uuid, exc)

    async def add_fault(self, uuid: str, error: BaseException, message: str | None = None
                        ) -> None:
        """Record a fault of an instance from ``error`` (``NotFound`` if it is gone)."""
        await self.store.add_instance_fault(uuid, code=fault_code(error),
                                            message=message or describe(error),
                                            now=self.wall(), host=self.host)

    async def group_of(self, uuid: str) -> ServerGroupSpec | None:
        """The server group an instance belongs to, as the scheduler takes it."""
        group = await self.store.group_for_instance(uuid)
        if group is None:
            return None
        return ServerGroupSpec(group.uuid, group.policy,
                               int(group.rules.get("max_server_per_host", 1)))

    @staticmethod
    def retryable_claim_error(exc: BaseException) -> bool:
        """True for the errors a claim on an alternate host may meet and move past."""
        return isinstance(exc, (ConflictError, CapacityExceeded, NotFound))


def instance_request(inst: InstanceRecord, *, flavor: Mapping[str, Any] | None = None,
                     group: ServerGroupSpec | None = None,
                     availability_zone: str | None = None,
                     ignore_hosts: tuple[str, ...] = ()) -> RequestSpec:
    """The scheduling request that places one existing instance again: its flavor (or
    ``flavor``, for a resize), image properties, project, group and zone, with the
    instance as placement's consumer, away from ``ignore_hosts``."""
    fl = inst.flavor if flavor is None else flavor
    return RequestSpec.build(
        int(fl.get("vcpus", inst.vcpus)), int(fl.get("memory_mb", inst.memory_mb)),
        int(fl.get("root_gb", inst.root_gb) or 0),
        ephemeral_gb=int(fl.get("ephemeral_gb") or 0), swap_mb=int(fl.get("swap") or 0),
        extra_specs=fl.get("extra_specs") or {},
        image_properties={k[len("image_"):]: v for k, v in inst.system_metadata.items()
                          if k.startswith("image_")},
        project_id=inst.project_id, user_id=inst.user_id,
        availability_zone=availability_zone or inst.availability_zone, group=group,
        instance_uuids=(inst.uuid,), flavor_name=str(fl.get("name", "")),
        ignore_hosts=ignore_hosts)
