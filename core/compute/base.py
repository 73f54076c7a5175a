"""What every compute action stands on: the service, its driver, its database proxy,
per-instance locks and the recording of action events and faults.

:class:`ComputeBase` is the service without actions; the actions are mixins
(one module per family: :mod:`build`, power, moves, shelving ...) composed in
:mod:`manager`. Each action handler is a cast that runs under the instance's
lock inside :meth:`ComputeBase.acting`, which records the action event
(``compute_<action>``) as Nova does, and on failure records a fault, puts the
task state back (the instance stays usable) and finishes the event as Error.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from nimbus.core.compute import states
from nimbus.core.compute.config import ComputeConfig
from nimbus.core.compute.driver import GuestSpec, HostResources, HypervisorDriver
from nimbus.core.compute.messages import compute_topic
from nimbus.core.conductor.store_proxy import RemoteStore
from nimbus.core.db.instance_schema import InstanceRecord
from nimbus.core.db.services import ComputeNodeRecord
from nimbus.core.db.store import Store
from nimbus.core.errors import DriverNotSupported, NimbusError, NotFound, describe, fault_code
from nimbus.core.messages import message
from nimbus.core.runtime import Lock
from nimbus.core.service import Service, ServiceContext, endpoint

log = logging.getLogger(__name__)


#: Migration statuses of a resize that waits for its confirm (or is being confirmed).
PENDING_CONFIRM = ("finished", "confirming")


@message("compute.drop_resize_copy")
@dataclass(frozen=True, slots=True)
class DropResizeCopy:
    """Source host: the instance of a finished resize was deleted; drop what was kept."""

    instance_uuid: str
    migration_id: int


@dataclass(frozen=True, slots=True)
class Acting:
    """An action under way on one instance: what ``acting`` hands its body."""

    instance: InstanceRecord
    request_id: str
    event: str


def guest_spec(inst: InstanceRecord, flavor: dict[str, Any] | None = None) -> GuestSpec:
    """What the driver is asked to run for an instance (with ``flavor``, or its own)."""
    fl = flavor if flavor is not None else inst.flavor
    extra = fl.get("extra_specs") or {}
    return GuestSpec(
        uuid=inst.uuid, name=inst.hostname or inst.display_name or inst.uuid,
        vcpus=int(fl.get("vcpus", inst.vcpus)), memory_mb=int(fl.get("memory_mb", inst.memory_mb)),
        root_gb=int(fl.get("root_gb", inst.root_gb)),
        ephemeral_gb=int(fl.get("ephemeral_gb") or 0), swap_mb=int(fl.get("swap") or 0),
        flavor_name=str(fl.get("name", "")),
        extra_specs=tuple(sorted((str(k), str(v)) for k, v in extra.items())),
        image_ref=inst.image_ref,
        image_properties=tuple(sorted(
            (k[len("image_"):], str(v)) for k, v in inst.system_metadata.items()
            if k.startswith("image_"))),
        user_data=inst.user_data, key_data=inst.key_data,
        metadata=tuple(sorted((str(k), str(v)) for k, v in inst.metadata.items())))


async def hand_over(store: Store, source: str, target: str, now: float) -> bool:
    """Give everything consumer ``source`` holds to consumer ``target`` (whose own
    allocations are dropped); False, and nothing done, if ``source`` holds nothing."""
    held = await store.get_allocations(source)
    if not held.allocations or held.generation is None:
        return False
    other = await store.get_allocations(target)
    await store.move_allocations(source, target, source_generation=held.generation,
                                 target_generation=other.generation, now=now)
    return True


class ComputeBase(Service):
    """The compute service without its actions (see the module docstring)."""

    topic = "compute"

    def __init__(self, ctx: ServiceContext, driver: HypervisorDriver,
                 config: ComputeConfig | None = None) -> None:
        super().__init__(ctx)
        self.driver = driver
        self.config = config or ComputeConfig()
        #: the database, through the conductor (compute holds no connection)
        self.db = RemoteStore.for_endpoint(self.rpc, timeout=self.config.rpc_timeout)
        self.service_id: int | None = None
        #: this host's compute node (its uuid is its resource provider's), once registered
        self.node: ComputeNodeRecord | None = None
        self.resources: HostResources | None = None
        #: builds that failed here (the scheduler's build-failure weigher reads it)
        self.failed_builds = 0
        self._locks: dict[str, tuple[Lock, int]] = {}
        # periodic intervals, read by name by @periodic
        self.report_interval = self.config.report_interval
        #: a usage report is waiting to run (see ``after_instance_change``)
        self._report_waiting = False
        self.update_resources_interval = self.config.update_resources_interval
        self.sync_power_state_interval = self.config.sync_power_state_interval
        self.periodic_interval = self.config.periodic_interval
        self.shelved_poll_interval = self.config.shelved_poll_interval

    # -- time and identity ---------------------------------------------------------------
    def wall(self) -> float:
        """Seconds since the epoch as the Runtime tells it (virtual in simulation)."""
        return self.runtime.wall_time()

    @property
    def node_uuid(self) -> str:
        """The compute node's uuid, which is its resource provider's."""
        if self.node is None:
            raise NotFound(f"compute host {self.host} has not registered its node yet")
        return self.node.uuid

    # -- per-instance locking --------------------------------------------------------------
    @asynccontextmanager
    async def instance_lock(self, uuid: str) -> AsyncIterator[None]:
        """Hold the lock of instance ``uuid``: one action at a time per instance."""
        lock, users = self._locks.get(uuid) or (self.runtime.lock(), 0)
        self._locks[uuid] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[uuid]
            if users == 1:
                del self._locks[uuid]
            else:
                self._locks[uuid] = (lock, users - 1)

    # -- action events and faults ------------------------------------------------------------
    async def start_event(self, uuid: str, request_id: str, event: str) -> None:
        """Record that an action's step started here; an action nobody recorded is fine."""
        try:
            await self.db.start_event(uuid, request_id, event, now=self.wall(), host=self.host)
        except NotFound:
            log.debug("no action for request %s on %s: event %s not recorded",
                      request_id, uuid, event)

    async def finish_event(self, uuid: str, request_id: str, event: str, *,
                           error: BaseException | None = None) -> None:
        """Record how an action's step ended (Success, or Error with the reason)."""
        self.ctx.metrics.instance_events.labels(event, "Success" if error is None
                                                else "Error").inc()
        try:
            if error is None:
                await self.db.finish_event(uuid, request_id, event, now=self.wall())
            else:
                await self.db.finish_event(uuid, request_id, event, now=self.wall(),
                                           result="Error", traceback=describe(error))
        except NotFound:
            pass

    async def add_fault(self, uuid: str, error: BaseException) -> None:
        """Record a fault of an instance from the error that caused it."""
        try:
            await self.db.add_instance_fault(uuid, code=fault_code(error),
                                             message=describe(error),
                                             now=self.wall(), host=self.host)
        except NotFound:
            pass  # deleted meanwhile: nothing to record it on

    @asynccontextmanager
    async def acting(
        self, uuid: str, request_id: str, event: str, *,
        revert_task_states: Sequence[str | None] | None = None,
    ) -> AsyncIterator[Acting]:
        """Run an action's body under the instance lock, recording event ``event``.

        On an error the fault is recorded, the event finished as Error, and (with
        ``revert_task_states``) a task state still among those is put back to None,
        as Nova's ``reverts_task_state`` does. The error is not re-raised: actions
        are casts, and the instance records what happened. ``NotFound`` for the
        instance itself (deleted meanwhile) is raised before the body runs.
        """
        async with self.instance_lock(uuid):
            try:
                inst = await self.db.get_instance(uuid)
            except NotFound:
                # gone meanwhile: nothing to act on (a cast: the error ends the handler)
                log.info("%s: instance %s is gone; %s dropped", self.host, uuid, event)
                raise
            await self.start_event(uuid, request_id, event)
            try:
                yield Acting(inst, request_id, event)
            except Exception as exc:
                if not isinstance(exc, (NimbusError,)):
                    log.exception("%s: %s of %s failed", self.host, event, uuid)
                else:
                    log.info("%s: %s of %s failed: %s", self.host, event, uuid, exc)
                await self.add_fault(uuid, exc)
                if revert_task_states is not None:
                    await self.revert_task_state(uuid, revert_task_states)
                await self.finish_event(uuid, request_id, event, error=exc)
            else:
                await self.finish_event(uuid, request_id, event)

    async def revert_task_state(self, uuid: str, expected: Sequence[str | None]) -> None:
        """Put the task state back to None if it is still one of ``expected``."""
        try:
            await self.db.update_instance(uuid, now=self.wall(), task_state=None,
                                          expected_task_states=list(expected))
        except (NotFound, NimbusError):
            pass  # moved on meanwhile (deleted, or another action owns it now)

    async def power_state_of(self, uuid: str) -> int:
        """The guest's power state as the driver reports it (NOSTATE if it has none)."""
        try:
            return (await self.driver.guest_info(uuid)).power_state
        except NotFound:
            return states.NOSTATE

    async def set_error(self, uuid: str) -> None:
        """Put an instance in ERROR with no task (it stays where it is)."""
        try:
            await self.db.update_instance(uuid, now=self.wall(), vm_state=states.ERROR,
                                          task_state=None)
        except NotFound:
            pass

    async def free_allocations(self, consumer_uuid: str) -> None:
        """Give back what a consumer holds in placement (nothing held is fine)."""
        try:
            await self.db.delete_allocations(consumer_uuid)
        except NotFound:
            pass

    async def delete_instance_here(self, uuid: str, inst: InstanceRecord | None = None) -> None:
        """Destroy the guest and everything the instance holds, then soft-delete the record.

        A resize waiting for its confirm is confirmed on its way out (the source drops
        the copy it kept, as Nova's delete does), and a shelved instance's image goes.
        ``inst`` is the record as the caller read it under the instance lock (read here
        when not given).
        """
        if inst is None:
            try:
                inst = await self.db.get_instance(uuid)
            except NotFound:
                inst = None
        await self.driver.destroy(uuid)
        await self.free_allocations(uuid)
        for migration in await self.db.migrations_by_instance(uuid):
            await self.free_allocations(migration.uuid)
            if migration.status in PENDING_CONFIRM and migration.source_compute:
                await self.rpc.cast(compute_topic(migration.source_compute),
                                    DropResizeCopy(uuid, migration.id))
        image_id = inst.system_metadata.get("shelved_image_id") if inst else None
        if image_id:
            try:
                await self.db.delete_image(str(image_id), self.wall())
            except NimbusError as exc:  # gone already, or protected: the instance goes anyway
                log.info("%s: shelved image %s of %s not deleted: %s", self.host, image_id,
                         uuid, exc)
        try:
            await self.db.soft_delete_instance(uuid, now=self.wall())
        except NotFound:
            pass

    @endpoint(DropResizeCopy)
    async def drop_resize_copy(self, msg: DropResizeCopy) -> None:
        """Source of a resize whose instance was deleted: drop the copy kept for a revert."""
        try:
            await self.driver.confirm_migration(msg.instance_uuid)
        except NimbusError as exc:  # nothing kept, or already gone: nothing to drop
            log.info("%s: no resize copy of %s dropped: %s", self.host, msg.instance_uuid, exc)
        try:
            await self.db.update_migration_status(msg.migration_id, "confirmed", now=self.wall(),
                                                  expected_statuses=list(PENDING_CONFIRM))
        except NimbusError:
            pass  # soft-deleted with its instance, or settled meanwhile

    def after_instance_change(self) -> None:
        """Hook: an instance came or went on this host (the resource tracker listens)."""

    def require(self, capability: str, action: str) -> None:
        """``DriverNotSupported`` unless the driver has ``capability``."""
        if capability not in self.driver.capabilities:
            raise DriverNotSupported(
                f"the {type(self.driver).__name__} driver of host {self.host} does not "
                f"support {action}")
