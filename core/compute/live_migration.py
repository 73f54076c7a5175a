"""Live migration on the two compute hosts: checks, pre, migrate, post, rollback.

The conductor (:mod:`nimbus.core.conductor.live`) chooses and claims the
destination, then asks it whether it can take the guest
(:class:`CheckCanLiveMigrateDestination`, a call), and the destination asks the
source whether the guest can leave (:class:`CheckCanLiveMigrateSource`). Then
the conductor casts :class:`LiveMigration` to the source, which runs the move:

1. migration ``queued``, ``preparing``: the destination prepares disks and
   networking (:class:`PreLiveMigration`, a call);
2. ``running``: the driver copies the running guest to the destination;
3. post: the source cleans up, the destination takes the guest over and records
   the instance as its own (:class:`PostLiveMigrationAtDestination`, a call, as
   Nova's since Rocky), the source's allocation (held by the migration) is freed
   and the migration is ``completed``.

A failure before the guest has moved rolls back: the destination undoes its
preparation, the source's allocation goes back to the instance (dropping the
destination's), the migration is ``error`` and the instance stays on the source
in its vm_state, with the fault recorded.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from nimbus.core.compute import states
from nimbus.core.compute.base import ComputeBase, guest_spec, hand_over
from nimbus.core.compute.driver import LIVE_MIGRATION, PAUSE, MigrateData
from nimbus.core.compute.messages import compute_topic
from nimbus.core.db.instance_migrations import MigrationRecord
from nimbus.core.db.instance_schema import InstanceRecord
from nimbus.core.errors import ConflictError, NimbusError, NotFound, RemoteError, local_error
from nimbus.core.messages import message
from nimbus.core.service import endpoint

log = logging.getLogger(__name__)

CHECK_DEST_EVENT = "compute_check_can_live_migrate_destination"
CHECK_SOURCE_EVENT = "compute_check_can_live_migrate_source"
PRE_EVENT = "compute_pre_live_migration"
LIVE_EVENT = "compute_live_migration"
POST_DEST_EVENT = "compute_post_live_migration_at_destination"
ROLLBACK_DEST_EVENT = "compute_rollback_live_migration_at_destination"


@message("compute.check_can_live_migrate_destination")
@dataclass(frozen=True, slots=True)
class CheckCanLiveMigrateDestination:
    """To the destination (a call): can it take the guest? Answers :class:`LiveMigrateData`."""

    instance_uuid: str
    request_id: str
    source_host: str
    block_migration: bool = False


@message("compute.check_can_live_migrate_source")
@dataclass(frozen=True, slots=True)
class CheckCanLiveMigrateSource:
    """To the source (a call, from the destination): can the guest leave?"""

    instance_uuid: str
    request_id: str
    data: MigrateData


@message("compute.live_migrate_data")
@dataclass(frozen=True, slots=True)
class LiveMigrateData:
    """The answer of the live-migration calls: what the two hosts agreed so far."""

    data: MigrateData


@message("compute.live_migration")
@dataclass(frozen=True, slots=True)
class LiveMigration:
    """To the source (a cast): move the guest as ``data`` says, under migration
    ``migration_id`` (whose uuid holds the source's allocation)."""

    instance_uuid: str
    request_id: str
    migration_id: int
    data: MigrateData


@message("compute.pre_live_migration")
@dataclass(frozen=True, slots=True)
class PreLiveMigration:
    """To the destination (a call): prepare to receive the guest."""

    instance_uuid: str
    request_id: str
    data: MigrateData


@message("compute.post_live_migration_at_destination")
@dataclass(frozen=True, slots=True)
class PostLiveMigrationAtDestination:
    """To the destination (a call): the guest arrived; make it, and the instance, yours."""

    instance_uuid: str
    request_id: str
    data: MigrateData


@message("compute.rollback_live_migration_at_destination")
@dataclass(frozen=True, slots=True)
class RollbackLiveMigrationAtDestination:
    """To the destination (a call): the migration failed; undo the preparation."""

    instance_uuid: str
    request_id: str
    data: MigrateData


class LiveMigrationActions(ComputeBase):
    """Live migration on the two compute hosts (see the module docstring)."""

    @asynccontextmanager
    async def recording(self, uuid: str, request_id: str, event: str) -> AsyncIterator[None]:
        """Record event ``event`` around a step answered to a caller (errors go on to it)."""
        await self.start_event(uuid, request_id, event)
        try:
            yield
        except Exception as exc:
            await self.finish_event(uuid, request_id, event, error=exc)
            raise
        await self.finish_event(uuid, request_id, event)

    async def call_compute(self, host: str, msg: object) -> MigrateData:
        """Call the compute of ``host``; its error comes back as its own class."""
        try:
            got = await self.rpc.call(compute_topic(host), msg, self.config.rpc_timeout)
        except RemoteError as err:
            raise local_error(err) from None
        assert isinstance(got, LiveMigrateData)
        return got.data

    # -- the checks (destination, then source) ------------------------------------------------
    @endpoint(CheckCanLiveMigrateDestination)
    async def check_can_live_migrate_destination(
        self, msg: CheckCanLiveMigrateDestination
    ) -> LiveMigrateData:
        """Destination: ask the driver whether it can take the guest, then the source."""
        uuid = msg.instance_uuid
        async with self.recording(uuid, msg.request_id, CHECK_DEST_EVENT):
            self.require(LIVE_MIGRATION, "live migration")
            inst = await self.db.get_instance(uuid)
            data = await self.driver.check_can_live_migrate_destination(
                guest_spec(inst), source_host=msg.source_host,
                block_migration=msg.block_migration)
            data = await self.call_compute(msg.source_host,
                                           CheckCanLiveMigrateSource(uuid, msg.request_id, data))
        return LiveMigrateData(data)

    @endpoint(CheckCanLiveMigrateSource)
    async def check_can_live_migrate_source(
        self, msg: CheckCanLiveMigrateSource
    ) -> LiveMigrateData:
        """Source: ask the driver whether the guest can leave."""
        async with self.recording(msg.instance_uuid, msg.request_id, CHECK_SOURCE_EVENT):
            self.require(LIVE_MIGRATION, "live migration")
            data = await self.driver.check_can_live_migrate_source(msg.instance_uuid, msg.data)
        return LiveMigrateData(data)

    # -- the source runs the migration ----------------------------------------------------------
    @endpoint(LiveMigration)
    async def live_migration(self, msg: LiveMigration) -> None:
        """Source: prepare the destination, copy the guest, then post or roll back."""
        uuid = msg.instance_uuid
        async with self.acting(uuid, msg.request_id, LIVE_EVENT,
                               revert_task_states=[states.MIGRATING]) as act:
            mig = await self.db.get_migration(msg.migration_id)
            await self._migrate(act.instance, mig, msg)
        self.after_instance_change()

    async def _migrate(self, inst: InstanceRecord, mig: MigrationRecord,
                       msg: LiveMigration) -> None:
        data = msg.data
        prepared = False
        try:
            await self.db.update_migration_status(mig.id, "queued", now=self.wall())
            self.require(LIVE_MIGRATION, "live migration")
            await self.db.update_migration_status(mig.id, "preparing", now=self.wall())
            prepared = True  # a failed pre may have left something at the destination
            data = await self.call_compute(data.dest_host,
                                           PreLiveMigration(inst.uuid, msg.request_id, data))
            await self.db.update_migration_status(mig.id, "running", now=self.wall())
            await self.driver.live_migration(inst.uuid, data)
        except Exception:
            # the driver's contract: on failure the guest still runs here
            await self._rollback(inst, mig, msg.request_id, data, prepared)
            raise
        await self._post(inst, mig, msg.request_id, data)

    async def _rollback(self, inst: InstanceRecord, mig: MigrationRecord, request_id: str,
                        data: MigrateData, prepared: bool) -> None:
        """Undo a migration that failed before the guest moved (the caller records the fault)."""
        uuid = inst.uuid
        if prepared:
            try:
                await self.call_compute(data.dest_host, RollbackLiveMigrationAtDestination(
                    uuid, request_id, data))
            except NimbusError as exc:  # the source must still come back to a usable state
                log.warning("%s: rollback of %s at %s failed: %s", self.host, uuid,
                            data.dest_host, exc)
        # the source's allocation goes back to the instance, replacing the destination's
        await hand_over(self.db, mig.uuid, uuid, self.wall())
        await self._set_migration(mig, "error")
        try:
            await self.db.update_instance(
                uuid, now=self.wall(), task_state=None, power_state=await self.power_state_of(uuid),
                expected_task_states=[states.MIGRATING])
        except (NotFound, ConflictError) as exc:
            log.info("%s: %s changed during the rollback: %s", self.host, uuid, exc)

    async def _post(self, inst: InstanceRecord, mig: MigrationRecord, request_id: str,
                    data: MigrateData) -> None:
        """The guest runs at the destination: clean up here, hand the instance over."""
        uuid = inst.uuid
        try:
            await self.driver.post_live_migration(uuid, data)
        except NimbusError as exc:  # only this host's leftovers; the guest is fine
            log.warning("%s: cleanup after %s left failed: %s", self.host, uuid, exc)
        try:
            await self.call_compute(data.dest_host, PostLiveMigrationAtDestination(
                uuid, request_id, data))
        except Exception:
            # the guest runs there, but the destination could not take it over: ERROR there
            await self.free_allocations(mig.uuid)
            await self._set_migration(mig, "error")
            try:
                await self.db.update_instance(uuid, now=self.wall(), host=data.dest_host,
                                              node=data.dest_host, vm_state=states.ERROR,
                                              task_state=None)
            except NotFound:
                pass
            raise
        await self.free_allocations(mig.uuid)  # the source's allocation
        await self._set_migration(mig, "completed")

    async def _set_migration(self, mig: MigrationRecord, status: str) -> None:
        try:
            await self.db.update_migration_status(mig.id, status, now=self.wall())
        except NotFound:
            pass  # deleted with its instance meanwhile

    # -- the destination's steps --------------------------------------------------------------
    @endpoint(PreLiveMigration)
    async def pre_live_migration(self, msg: PreLiveMigration) -> LiveMigrateData:
        """Destination: prepare to receive the guest."""
        uuid = msg.instance_uuid
        async with self.instance_lock(uuid), self.recording(uuid, msg.request_id, PRE_EVENT):
            self.require(LIVE_MIGRATION, "live migration")
            inst = await self.db.get_instance(uuid)
            data = await self.driver.pre_live_migration(guest_spec(inst), msg.data)
        return LiveMigrateData(data)

    @endpoint(PostLiveMigrationAtDestination)
    async def post_live_migration_at_destination(
        self, msg: PostLiveMigrationAtDestination
    ) -> LiveMigrateData:
        """Destination: take the guest over and record the instance here, idle again."""
        uuid = msg.instance_uuid
        async with self.instance_lock(uuid), self.recording(uuid, msg.request_id,
                                                            POST_DEST_EVENT):
            inst = await self.db.get_instance(uuid)
            await self.driver.post_live_migration_at_destination(guest_spec(inst), msg.data)
            power = await self._arrived_power_state(inst)
            await self.db.update_instance(
                uuid, now=self.wall(), host=self.host, node=self.host, power_state=power,
                task_state=None, expected_task_states=[states.MIGRATING])
        self.after_instance_change()
        return LiveMigrateData(msg.data)

    async def _arrived_power_state(self, inst: InstanceRecord) -> int:
        power = await self.power_state_of(inst.uuid)
        # Some hypervisors (the fake one) resume the guest on arrival; a paused instance
        # must stay paused, as it was on the source.
        if (inst.vm_state == states.PAUSED and power == states.RUNNING
                and PAUSE in self.driver.capabilities):
            await self.driver.pause(inst.uuid)
            power = await self.power_state_of(inst.uuid)
        return power

    @endpoint(RollbackLiveMigrationAtDestination)
    async def rollback_live_migration_at_destination(
        self, msg: RollbackLiveMigrationAtDestination
    ) -> LiveMigrateData:
        """Destination: undo ``pre_live_migration`` (nothing to undo is fine)."""
        uuid = msg.instance_uuid
        async with self.instance_lock(uuid), self.recording(uuid, msg.request_id,
                                                            ROLLBACK_DEST_EVENT):
            await self.driver.rollback_live_migration_at_destination(uuid, msg.data)
        self.after_instance_change()
        return LiveMigrateData(msg.data)
