"""The conductor's live migration and evacuation: schedule, checks, allocations.

Both create a migration record (``live-migration`` or ``evacuation``, status
``accepted``) and keep placement as Nova has since Queens: the migration's
uuid becomes the consumer holding the source host's allocation
(``move_allocations`` from the instance), and the instance consumer claims the
destination, through the scheduler (``ignore_hosts`` keeping it off the
source) or, for a host the admin named, directly. A named host must have a
compute service that is up and must not be the source.

Live migration then asks the destination (which asks the source) whether the
guest can move; a host the scheduler chose that refuses is released and
another is tried, up to ``max_attempts`` hosts (Nova's ``migrate_max_retries``).
Once a destination agrees, the source is told to migrate
(:mod:`nimbus.core.compute.live_migration`).

Evacuation keeps the same bookkeeping (rather than Nova's instance consumer
holding both hosts' amounts): the source allocation, held by the migration,
is freed by the source's compute when it starts again and destroys its copy of
the guest. The destination is cast a rebuild (:mod:`nimbus.core.compute.rebuild`).

A move that fails here gives the source allocation back to the instance
(dropping any destination claim), marks the migration ``error``, records the
fault and puts the task state back: the instance stays where it was, usable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from nimbus.core.compute import states
from nimbus.core.compute.base import hand_over
from nimbus.core.compute.driver import MigrateData
from nimbus.core.compute.live_migration import (
    CheckCanLiveMigrateDestination,
    LiveMigrateData,
    LiveMigration,
)
from nimbus.core.compute.messages import compute_topic
from nimbus.core.compute.rebuild import RebuildInstance
from nimbus.core.conductor.base import ConductorBase, instance_request
from nimbus.core.db.instance_migrations import MigrationRecord
from nimbus.core.db.instance_schema import InstanceRecord
from nimbus.core.errors import (
    InvalidInput,
    NimbusError,
    NotFound,
    NoValidHost,
    RemoteError,
    describe,
    local_error,
)
from nimbus.core.messages import message
from nimbus.core.scheduler.request import RequestSpec
from nimbus.core.service import endpoint

log = logging.getLogger(__name__)

LIVE_EVENT = "conductor_live_migrate_instance"
EVACUATE_EVENT = "conductor_rebuild_server"


class MigrationPreCheckError(NoValidHost):
    """No destination passed the live-migration checks (Nova's ``MigrationPreCheckError``)."""


@message("conductor.live_migrate_instance")
@dataclass(frozen=True, slots=True)
class LiveMigrateInstance:
    """Live-migrate an instance (task ``migrating``) to ``host``, or where the scheduler says."""

    instance_uuid: str
    request_id: str
    host: str | None = None
    block_migration: bool = False


@message("conductor.evacuate_instance")
@dataclass(frozen=True, slots=True)
class EvacuateInstance:
    """Rebuild an instance (task ``rebuilding``) whose host is down on ``host``, or where
    the scheduler says."""

    instance_uuid: str
    request_id: str
    host: str | None = None
    admin_password: str | None = None


class LiveTasks(ConductorBase):
    """Live migration and evacuation (see the module docstring)."""

    @endpoint(LiveMigrateInstance)
    async def live_migrate_instance(self, msg: LiveMigrateInstance) -> None:
        """Choose and check a destination, then have the source migrate the guest."""
        uuid, rid = msg.instance_uuid, msg.request_id
        started = await self._start(uuid, rid, LIVE_EVENT, "live-migration", msg.host)
        if started is None:
            return
        inst, mig = started
        try:
            spec = instance_request(inst, group=await self.group_of(inst.uuid))
            await hand_over(self.store, uuid, mig.uuid, self.wall())
            dest, data = await self._live_destination(inst, spec, msg)
            await self.store.update_migration(mig.id, now=self.wall(), dest_compute=dest,
                                              dest_node=dest)
        except Exception as exc:
            await self.abandon(inst, mig, exc, states.MIGRATING)
            await self.event(uuid, rid, LIVE_EVENT, error=exc)
            return
        await self.event(uuid, rid, LIVE_EVENT)
        await self.rpc.cast(compute_topic(inst.host or data.source_host),
                            LiveMigration(uuid, rid, mig.id, data))

    @endpoint(EvacuateInstance)
    async def evacuate_instance(self, msg: EvacuateInstance) -> None:
        """Claim a destination for an instance whose host is down, and rebuild it there."""
        uuid, rid = msg.instance_uuid, msg.request_id
        started = await self._start(uuid, rid, EVACUATE_EVENT, "evacuation", msg.host)
        if started is None:
            return
        inst, mig = started
        try:
            spec = instance_request(inst, group=await self.group_of(inst.uuid))
            await hand_over(self.store, uuid, mig.uuid, self.wall())
            if msg.host is not None:
                dest = msg.host
                await self.claim_on(dest, uuid, spec)
            else:
                placed = await self.select_destinations(
                    replace(spec, ignore_hosts=(inst.host,) if inst.host else ()))
                dest = placed.selections[0].host
            await self.store.update_migration(mig.id, now=self.wall(), dest_compute=dest,
                                              dest_node=dest, status="pre-migrating")
        except Exception as exc:
            await self.abandon(inst, mig, exc, states.REBUILDING)
            await self.event(uuid, rid, EVACUATE_EVENT, error=exc)
            return
        await self.event(uuid, rid, EVACUATE_EVENT)
        await self.rpc.cast(compute_topic(dest), RebuildInstance(
            uuid, rid, image_ref=inst.image_ref, evacuate=True, migration_id=mig.id,
            admin_password=msg.admin_password))

    async def _start(self, uuid: str, request_id: str, event: str, kind: str,
                     host: str | None) -> tuple[InstanceRecord, MigrationRecord] | None:
        """The instance and its new migration record; None if the move cannot start (the
        instance is gone, or the named host is no destination: fault kept, task back)."""
        try:
            inst = await self.store.get_instance(uuid)
        except NotFound:
            return None
        await self.event(uuid, request_id, event, start=True)
        try:
            mig = await self.store.create_migration(
                uuid=self.runtime.new_id(), instance_uuid=uuid, migration_type=kind,
                status="accepted", now=self.wall(), source_compute=inst.host,
                source_node=inst.node, dest_compute=host, dest_node=host,
                user_id=inst.user_id, project_id=inst.project_id)
        except NotFound:
            return None
        try:
            if host is not None:
                await self.check_destination(host, inst.host)
        except NimbusError as exc:
            task = states.MIGRATING if kind == "live-migration" else states.REBUILDING
            await self.abandon(inst, mig, exc, task)
            await self.event(uuid, request_id, event, error=exc)
            return None
        return inst, mig

    async def check_destination(self, host: str, source: str | None) -> None:
        """``InvalidInput`` unless ``host`` is another host whose compute service is up."""
        if host == source:
            raise InvalidInput(f"Unable to migrate instance to its own host {host}.")
        svc = await self.store.service_by_host_binary(host, self.config.compute_binary)
        if svc is None:
            raise InvalidInput(f"Compute host {host} could not be found.")
        if not svc.is_up(self.wall(), self.config.service_down_time):
            raise InvalidInput(f"Compute service of {host} is unavailable at this time.")

    async def _live_destination(self, inst: InstanceRecord, spec: RequestSpec,
                                msg: LiveMigrateInstance) -> tuple[str, MigrateData]:
        """Claim a destination for the instance consumer and pass the checks there."""
        if msg.host is not None:
            await self.claim_on(msg.host, inst.uuid, spec)
            return msg.host, await self._check_live(inst, msg.host, msg)
        refused: list[str] = []
        reasons: list[str] = []
        for _ in range(self.config.max_attempts):
            ignored = tuple(sorted({*refused, *([inst.host] if inst.host else [])}))
            try:
                placed = await self.select_destinations(replace(spec, ignore_hosts=ignored))
            except NoValidHost:
                if not refused:
                    raise
                break  # no host left to try: say why the ones tried refused
            host = placed.selections[0].host
            try:
                return host, await self._check_live(inst, host, msg)
            except NimbusError as exc:  # this host refused: release it, try another (Nova's)
                log.info("live migration of %s: %s refused: %s", inst.uuid, host, exc)
                await self.free(inst.uuid)
                refused.append(host)
                reasons.append(f"{host}: {describe(exc)}")
        raise MigrationPreCheckError(
            f"No valid host was found. Live migration pre-checks failed on "
            f"{len(refused)} host(s): {'; '.join(reasons)}")

    async def _check_live(self, inst: InstanceRecord, host: str,
                          msg: LiveMigrateInstance) -> MigrateData:
        if inst.host is None:
            raise InvalidInput(f"instance {inst.uuid} is on no host")
        try:
            got = await self.rpc.call(compute_topic(host), CheckCanLiveMigrateDestination(
                inst.uuid, msg.request_id, inst.host, msg.block_migration),
                self.config.rpc_timeout)
        except RemoteError as err:
            raise local_error(err) from None
        assert isinstance(got, LiveMigrateData)
        return got.data
