"""Rebuild in place, and evacuation (a rebuild on another host) on the compute host.

A rebuild re-creates the guest from the instance's (new) image on its own
host: the driver's own rebuild where it has one (capability ``rebuild``),
else destroy and spawn. A stopped instance is stopped again afterwards, as
Nova does; any other ends ``active``.

An evacuation re-creates on this host the guest of an instance whose host is
down (capability ``evacuate``). The conductor has claimed this host for the
instance consumer and given the source host's allocation to the migration
record (the same bookkeeping as every move): the source's resources stay
taken until the source is back and has destroyed its copy of the guest, which
:meth:`RebuildActions.cleanup_evacuated` does when the source starts again
(``init_host`` calls it). If the spawn here fails, the instance goes back to
its source in ERROR with the source's allocation, and may be evacuated again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from nimbus.core.compute import states
from nimbus.core.compute.base import ComputeBase, guest_spec, hand_over
from nimbus.core.compute.driver import EVACUATE, REBUILD
from nimbus.core.db.instance_schema import InstanceRecord
from nimbus.core.errors import ConflictError, NimbusError, NotFound
from nimbus.core.messages import message
from nimbus.core.service import endpoint

log = logging.getLogger(__name__)

REBUILD_EVENT = "compute_rebuild_instance"


@message("compute.rebuild_instance")
@dataclass(frozen=True, slots=True)
class RebuildInstance:
    """Re-create an instance's guest from its image: on its own host, or (``evacuate``)
    on this one, its host being down, under migration ``migration_id``."""

    instance_uuid: str
    request_id: str
    image_ref: str | None = None
    evacuate: bool = False
    migration_id: int | None = None
    admin_password: str | None = None


class RebuildActions(ComputeBase):
    """Rebuild, evacuation, and the cleanup after an evacuation (see the module docstring)."""

    @endpoint(RebuildInstance)
    async def rebuild_instance(self, msg: RebuildInstance) -> None:
        """Rebuild the instance here, or take it over from its down host (``evacuate``)."""
        async with self.acting(msg.instance_uuid, msg.request_id, REBUILD_EVENT,
                               revert_task_states=[states.REBUILDING,
                                                   states.REBUILD_SPAWNING]) as act:
            if msg.evacuate:
                await self._evacuate_here(act.instance, msg)
            else:
                await self._rebuild(act.instance, msg)
        self.after_instance_change()

    async def _spawning(self, uuid: str) -> InstanceRecord:
        return await self.db.update_instance(uuid, now=self.wall(),
                                             task_state=states.REBUILD_SPAWNING,
                                             expected_task_states=[states.REBUILDING])

    async def _rebuild(self, inst: InstanceRecord, msg: RebuildInstance) -> None:
        uuid = inst.uuid
        inst = await self._spawning(uuid)
        stopped = inst.vm_state == states.STOPPED
        spec = guest_spec(inst)
        try:
            rebuilt = False
            if REBUILD in self.driver.capabilities:
                try:
                    await self.driver.rebuild(spec, admin_password=msg.admin_password)
                    rebuilt = True
                except NotFound:
                    pass  # no guest to rebuild (an instance in ERROR): spawn one
            if not rebuilt:
                await self.driver.destroy(uuid)
                await self.driver.spawn(spec, admin_password=msg.admin_password)
            if stopped:
                await self.driver.power_off(uuid)
        except Exception:
            await self.set_error(uuid)  # the guest may be gone or half made, as in Nova
            raise
        await self._done(uuid, stopped, states.REBUILD_SPAWNING)

    async def _done(self, uuid: str, stopped: bool, task: str, **changes: Any) -> None:
        await self.db.update_instance(
            uuid, now=self.wall(), vm_state=states.STOPPED if stopped else states.ACTIVE,
            power_state=await self.power_state_of(uuid), task_state=None,
            launched_at=self.wall(), expected_task_states=[task], **changes)

    async def _evacuate_here(self, inst: InstanceRecord, msg: RebuildInstance) -> None:
        uuid = inst.uuid
        if msg.migration_id is None:
            raise NotFound(f"evacuation of {uuid} names no migration")
        mig = await self.db.get_migration(msg.migration_id)
        try:
            self.require(EVACUATE, "evacuate")
            inst = await self._spawning(uuid)
            stopped = inst.vm_state == states.STOPPED
            await self.driver.spawn(guest_spec(inst), admin_password=msg.admin_password)
            if stopped:
                await self.driver.power_off(uuid)
        except Exception:
            await self._evacuation_failed(uuid, mig.id, mig.uuid)
            raise
        await self._done(uuid, stopped, states.REBUILD_SPAWNING, host=self.host, node=self.host,
                         launched_on=self.host)
        await self.db.update_migration_status(mig.id, "done", now=self.wall())

    async def _evacuation_failed(self, uuid: str, migration_id: int,
                                 migration_uuid: str) -> None:
        """Leave nothing here; the instance goes back to its source's allocation, in ERROR."""
        try:
            await self.driver.destroy(uuid)
        except NimbusError as exc:
            log.warning("%s: cleaning up %s after a failed evacuation: %s", self.host, uuid,
                        exc)
        await hand_over(self.db, migration_uuid, uuid, self.wall())
        await self.db.update_migration_status(migration_id, "failed", now=self.wall())
        await self.set_error(uuid)

    async def cleanup_evacuated(self) -> None:
        """On start: destroy the guests of instances evacuated away from this host while it
        was down, free their allocation here (held by the migration) and mark each
        evacuation ``completed``."""
        done = [m for m in await self.db.list_migrations(
                    host=self.host, migration_type="evacuation", status="done")
                if m.source_compute == self.host]
        if not done:
            return
        local = set(await self.driver.list_guests())
        for mig in done:
            uuid = mig.instance_uuid
            try:
                inst: InstanceRecord | None = await self.db.get_instance(uuid)
            except NotFound:
                inst = None  # deleted since: its guest here must go all the same
            async with self.instance_lock(uuid):
                if uuid in local and (inst is None or inst.host != self.host):
                    log.info("%s: destroying %s, evacuated to %s", self.host, uuid,
                             mig.dest_compute)
                    await self.driver.destroy(uuid)
                await self.free_allocations(mig.uuid)
                try:
                    await self.db.update_migration_status(mig.id, "completed", now=self.wall(),
                                                          expected_statuses=["done"])
                except (NotFound, ConflictError):
                    pass  # another start of this service got there first
        self.after_instance_change()
