"""What compute repairs: the work a previous run left half done, guests nobody owns, and
the deferred (soft) delete.

When the service starts (after registering), :meth:`Repair.init_host` first lets
the evacuation cleanup run, then takes each instance of this host that is in a
transitional state, under the instance's lock, and applies one rule per family:

* a build (vm_state ``building``, or a scheduling/networking/spawning task) cannot
  be resumed: ERROR with a fault, its guest destroyed, its allocations freed and its
  host cleared, as for a build that failed on every host (the conductor's watch does
  the same for a host that never comes back);
* a delete, soft delete, restore or shelve offload is finished; an unshelve of an
  offloaded instance goes back to offloaded, as a failed one does;
* a power action, reboot, snapshot or shelve has its task cleared and the vm_state
  its guest's power state says (RUNNING -> active, SHUTDOWN -> stopped ...); with no
  guest left, ERROR;
* a move (resize, migration, live migration), rebuild or rescue is not resumed: ERROR
  with a fault, and the move's migration ``error``. Where the move had not left this
  host the source allocation goes back to the instance, as after a failed move.

Then the guests of instances that are deleted, unknown, or on no host (failed
builds, offloaded instances) are destroyed; the periodic tasks sweep them too.

Soft delete: with ``reclaim_instance_interval`` set, the API's delete only powers
the guest off (``soft-delete``, restorable); this host deletes it for good once the
interval has passed (see :mod:`periodic`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nimbus.core.compute import states
from nimbus.core.compute.base import ComputeBase, hand_over
from nimbus.core.db.instance_migrations import DONE_STATUSES
from nimbus.core.db.instance_schema import InstanceRecord
from nimbus.core.errors import ConflictError, NimbusError, NotFound
from nimbus.core.messages import message
from nimbus.core.service import endpoint

log = logging.getLogger(__name__)

#: Tasks of a build: a build interrupted in one of them is failed.
BUILD_TASKS = frozenset({states.SCHEDULING, states.BLOCK_DEVICE_MAPPING, states.NETWORKING,
                         states.SPAWNING})
#: Tasks whose end state the guest's power state tells: cleared, vm_state from the power.
SETTLE_TASKS = frozenset({
    states.REBOOTING, states.REBOOT_PENDING, states.REBOOT_STARTED, states.REBOOTING_HARD,
    states.REBOOT_PENDING_HARD, states.REBOOT_STARTED_HARD, states.POWERING_OFF,
    states.POWERING_ON, states.PAUSING, states.UNPAUSING, states.SUSPENDING, states.RESUMING,
    states.UPDATING_PASSWORD, states.IMAGE_SNAPSHOT, states.IMAGE_SNAPSHOT_PENDING,
    states.IMAGE_PENDING_UPLOAD, states.IMAGE_UPLOADING, states.SHELVING,
    states.SHELVING_IMAGE_PENDING_UPLOAD, states.SHELVING_IMAGE_UPLOADING,
})
#: Tasks of moves: the move is failed (ERROR, migration ``error``).
MOVE_TASKS = frozenset({states.RESIZE_PREP, states.RESIZE_MIGRATING, states.RESIZE_MIGRATED,
                        states.RESIZE_FINISH, states.RESIZE_REVERTING,
                        states.RESIZE_CONFIRMING, states.MIGRATING})

#: The vm_state an instance rests in when its guest is in each power state.
VM_STATE_OF_POWER = {states.RUNNING: states.ACTIVE, states.SHUTDOWN: states.STOPPED,
                     states.CRASHED: states.STOPPED, states.POWER_PAUSED: states.PAUSED,
                     states.POWER_SUSPENDED: states.SUSPENDED}

SOFT_DELETE_EVENT = "compute_soft_delete_instance"
RESTORE_EVENT = "compute_restore_instance"
#: The system metadata key holding when an instance was soft-deleted (epoch seconds).
SOFT_DELETED_AT = "soft_deleted_at"


@message("compute.soft_delete_instance")
@dataclass(frozen=True, slots=True)
class SoftDeleteInstance:
    """Power the guest off and mark the instance ``soft-delete`` (restorable for now)."""

    instance_uuid: str
    request_id: str


@message("compute.restore_instance")
@dataclass(frozen=True, slots=True)
class RestoreInstance:
    """Power a soft-deleted instance's guest on again: ``active``."""

    instance_uuid: str
    request_id: str


def soft_deleted_since(inst: InstanceRecord) -> float | None:
    """When the instance was soft-deleted (None if it is not, or nobody recorded it)."""
    if inst.vm_state != states.SOFT_DELETED:
        return None
    try:
        return float(inst.system_metadata[SOFT_DELETED_AT])
    except (KeyError, TypeError, ValueError):
        return inst.updated_at


class Repair(ComputeBase):
    """init_host, the orphan sweep, and soft delete (see the module docstring)."""

    async def init_host(self) -> None:
        """Repair what a previous run of this service left half done."""
        cleanup: Callable[[], Awaitable[None]] | None = getattr(self, "cleanup_evacuated", None)
        if cleanup is not None:
            try:
                await cleanup()
            except Exception:  # a bad evacuation record must not keep the host down
                log.exception("%s: cleaning up evacuated instances failed", self.host)
        for inst in await self.db.instances_by_host(self.host):
            if inst.task_state in states.TRANSITIONAL or inst.vm_state == states.BUILDING:
                try:
                    await self.repair_instance(inst.uuid)
                except Exception:  # one instance must not keep the others unrepaired
                    log.exception("%s: repairing %s failed", self.host, inst.uuid)
        await self.destroy_orphans()

    async def repair_instance(self, uuid: str) -> None:
        """Apply init_host's rule to one instance of this host (see the module docstring)."""
        async with self.instance_lock(uuid):
            try:
                inst = await self.db.get_instance(uuid)
            except NotFound:
                return
            task, vm = inst.task_state, inst.vm_state
            if inst.host != self.host or (task not in states.TRANSITIONAL
                                          and vm != states.BUILDING):
                return  # a handler that ran meanwhile finished it
            log.info("%s: %s found %s/%s at start-up", self.host, uuid, vm, task)
            if task == states.DELETING:
                await self.delete_instance_here(uuid, inst)
            elif vm == states.SHELVED_OFFLOADED:  # unshelving here: offloaded again
                await self._undo_unshelve(inst)
            elif vm == states.BUILDING or task in BUILD_TASKS:
                await self.fail_build(uuid, NimbusError(
                    f"Build of instance {uuid} was interrupted by a restart of compute "
                    f"service on {self.host}"))
            elif task == states.SOFT_DELETING:
                await self.soft_delete_here(inst)
            elif task == states.RESTORING:
                await self.restore_here(inst)
            elif task == states.SHELVING_OFFLOADING:
                await self._finish_offload(uuid)
            elif task in SETTLE_TASKS:
                await self._settle_from_power(inst)
            else:
                await self._fail_interrupted(inst)

    def _interrupted(self, inst: InstanceRecord) -> NimbusError:
        return NimbusError(f"Task {inst.task_state} of instance {inst.uuid} was interrupted "
                           f"by a restart of compute service on {self.host}")

    async def fail_build(self, uuid: str, error: NimbusError) -> bool:
        """Fail a build that cannot go on here: ERROR on no host, with ``error`` as its
        fault, its allocations freed and its guest (if any) destroyed. False if the
        instance is no longer building (it finished, or was deleted)."""
        try:
            await self.db.update_instance(
                uuid, now=self.wall(), vm_state=states.ERROR, task_state=None,
                power_state=states.NOSTATE, host=None, node=None,
                expected_vm_states=[states.BUILDING])
        except (NotFound, ConflictError):
            return False
        log.warning("%s: %s", self.host, error.message)
        await self.add_fault(uuid, error)
        await self.free_allocations(uuid)
        await self._destroy_quietly(uuid)
        self.ctx.metrics.builds.labels("error").inc()
        return True

    async def _settle_from_power(self, inst: InstanceRecord) -> None:
        power = await self.power_state_of(inst.uuid)
        vm = VM_STATE_OF_POWER.get(power)
        if vm is None:  # no guest any more: nothing to rest in
            await self.add_fault(inst.uuid, self._interrupted(inst))
            vm = states.ERROR
        await self.db.update_instance(inst.uuid, now=self.wall(), vm_state=vm, task_state=None,
                                      power_state=power, expected_task_states=[inst.task_state])

    async def _fail_interrupted(self, inst: InstanceRecord) -> None:
        uuid, now = inst.uuid, self.wall()
        for mig in await self.db.migrations_by_instance(uuid):
            if mig.status in DONE_STATUSES or self.host not in (mig.source_compute,
                                                                mig.dest_compute):
                continue
            try:
                if mig.source_compute == self.host:
                    # the instance is still here: it takes back the source allocation and
                    # the destination's claim goes, as when a move fails before leaving
                    await hand_over(self.db, mig.uuid, uuid, now)
                await self.db.update_migration_status(mig.id, "error", now=now)
            except NimbusError as exc:  # raced by the other end: the record says how
                log.warning("%s: failing migration %s of %s: %s", self.host, mig.id, uuid,
                            exc)
        await self.add_fault(uuid, self._interrupted(inst))
        await self.db.update_instance(uuid, now=self.wall(), vm_state=states.ERROR,
                                      task_state=None,
                                      power_state=await self.power_state_of(uuid),
                                      expected_task_states=[inst.task_state])

    async def _undo_unshelve(self, inst: InstanceRecord) -> None:
        await self._destroy_quietly(inst.uuid)
        await self.add_fault(inst.uuid, self._interrupted(inst))
        await self.db.update_instance(inst.uuid, now=self.wall(), task_state=None, host=None,
                                      node=None, power_state=states.NOSTATE,
                                      expected_task_states=[inst.task_state])
        await self.free_allocations(inst.uuid)

    async def _finish_offload(self, uuid: str) -> None:
        await self.driver.destroy(uuid)
        await self.db.update_instance(
            uuid, now=self.wall(), vm_state=states.SHELVED_OFFLOADED, task_state=None,
            power_state=states.NOSTATE, host=None, node=None,
            expected_task_states=[states.SHELVING_OFFLOADING])
        await self.free_allocations(uuid)

    async def _destroy_quietly(self, uuid: str) -> None:
        try:
            await self.driver.destroy(uuid)
        except NimbusError as exc:
            log.warning("%s: destroying the guest of %s failed: %s", self.host, uuid, exc)

    # -- guests nobody owns ----------------------------------------------------------------
    async def destroy_orphans(self) -> int:
        """Destroy the guests here of instances deleted, unknown, or on no host; how many."""
        mine = {i.uuid for i in await self.db.instances_by_host(self.host)}
        destroyed = 0
        for uuid in await self.driver.list_guests():
            if uuid in mine:
                continue
            async with self.instance_lock(uuid):
                if await self._orphaned(uuid):
                    log.warning("%s: destroying guest %s, which no instance here owns",
                                self.host, uuid)
                    await self._destroy_quietly(uuid)
                    destroyed += 1
        return destroyed

    async def _orphaned(self, uuid: str) -> bool:
        try:
            inst = await self.db.get_instance(uuid, read_deleted=True)
        except NotFound:
            return True
        # on no host and idle: a failed build's or an offload's leftover. A guest of an
        # instance on another host is left to the moves and the evacuation cleanup.
        return inst.deleted or (inst.host is None and inst.task_state is None
                                and inst.vm_state != states.BUILDING)

    # -- soft delete -------------------------------------------------------------------------
    @endpoint(SoftDeleteInstance)
    async def soft_delete_instance(self, msg: SoftDeleteInstance) -> None:
        """Power the guest off; the instance rests in ``soft-delete`` until restored or
        reclaimed."""
        async with self.acting(msg.instance_uuid, msg.request_id, SOFT_DELETE_EVENT,
                               revert_task_states=[states.SOFT_DELETING]) as act:
            if act.instance.task_state == states.SOFT_DELETING:
                await self.soft_delete_here(act.instance)

    @endpoint(RestoreInstance)
    async def restore_instance(self, msg: RestoreInstance) -> None:
        """Power a soft-deleted instance's guest on: ``active`` again."""
        async with self.acting(msg.instance_uuid, msg.request_id, RESTORE_EVENT,
                               revert_task_states=[states.RESTORING]) as act:
            if act.instance.task_state == states.RESTORING:
                await self.restore_here(act.instance)

    async def soft_delete_here(self, inst: InstanceRecord) -> None:
        """Power the guest off (a missing one is fine: it is deleted anyway) and mark the
        instance soft-deleted now."""
        try:
            await self.driver.power_off(inst.uuid)
        except NotFound:
            pass
        meta = {**inst.system_metadata, SOFT_DELETED_AT: repr(self.wall())}
        await self.db.update_instance(
            inst.uuid, now=self.wall(), vm_state=states.SOFT_DELETED, task_state=None,
            power_state=await self.power_state_of(inst.uuid), system_metadata=meta,
            expected_task_states=[states.SOFT_DELETING])

    async def restore_here(self, inst: InstanceRecord) -> None:
        """Power the guest on and make the instance ``active`` again."""
        if await self.power_state_of(inst.uuid) != states.RUNNING:
            await self.driver.power_on(inst.uuid)
        meta = {k: v for k, v in inst.system_metadata.items() if k != SOFT_DELETED_AT}
        await self.db.update_instance(
            inst.uuid, now=self.wall(), vm_state=states.ACTIVE, task_state=None,
            power_state=states.RUNNING, system_metadata=meta,
            expected_task_states=[states.RESTORING])
