"""Resize and cold migration on the compute hosts: prep, ship, finish, confirm, revert.

The conductor has recorded the migration, given the instance's source
allocation to the migration's uuid and claimed the destination for the
instance (see :mod:`nimbus.core.conductor.moves`). Then, as in Nova:

* the destination's ``prep_resize`` checks its driver can take the guest and
  hands over to the source;
* the source's ``resize_instance`` powers the guest off and ships its disks
  (``resize_migrating``); the instance's host becomes the destination;
* the destination's ``finish_resize`` starts the guest with the new flavor:
  the instance rests in ``resized``, the migration is ``finished``;
* a confirm (the user's, or this module's periodic task once
  ``resize_confirm_window`` has passed) has the source drop its copy and the
  migration's allocation; a revert has the destination destroy its guest and
  give the source allocation back to the instance, then the source brings the
  old guest back.

The vm_state the instance had (active or stopped), kept in system metadata as
``old_vm_state``, is where it rests again. A driver failure leaves the instance
in ERROR with a fault: before the disk left the source, with the source
allocation back on the instance; after, on the destination alone (a hard reboot
there may recover it, as in Nova) while the source's periodic task drops its copy.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nimbus.core.compute import driver as d
from nimbus.core.compute import states
from nimbus.core.compute.base import ComputeBase, guest_spec, hand_over
from nimbus.core.compute.messages import compute_topic
from nimbus.core.db.instance_migrations import MigrationRecord
from nimbus.core.db.instance_schema import InstanceRecord
from nimbus.core.errors import ConflictError, NimbusError, NotFound
from nimbus.core.messages import message
from nimbus.core.service import endpoint, periodic

log = logging.getLogger(__name__)

#: The migration types this module moves (live migration and evacuation are others').
COLD_TYPES = ("resize", "migration")


@dataclass(frozen=True, slots=True)
class MoveStep:
    """A step of a resize or cold migration: which instance, request and migration."""

    instance_uuid: str
    request_id: str
    migration_id: int


@message("compute.prep_resize")
@dataclass(frozen=True, slots=True)
class PrepResize(MoveStep):
    """Destination: check the move can land here, then ask the source to ship it."""


@message("compute.resize_instance")
@dataclass(frozen=True, slots=True)
class ResizeInstance(MoveStep):
    """Source: power the guest off and ship its disks to the destination."""


@message("compute.finish_resize")
@dataclass(frozen=True, slots=True)
class FinishResize(MoveStep):
    """Destination: start the guest from the shipped disks (``disk_info``)."""

    disk_info: str = ""


@message("compute.confirm_resize")
@dataclass(frozen=True, slots=True)
class ConfirmResize(MoveStep):
    """Source: drop what was kept for a revert, and the source allocation."""


@message("compute.revert_resize")
@dataclass(frozen=True, slots=True)
class RevertResize(MoveStep):
    """Destination: destroy the moved guest and give the source allocation back."""


@message("compute.finish_revert_resize")
@dataclass(frozen=True, slots=True)
class FinishRevertResize(MoveStep):
    """Source: bring the guest back with its old flavor."""


def resting_state(inst: InstanceRecord) -> tuple[str, int]:
    """The (vm_state, power_state) a moved instance rests in: as it was before."""
    if inst.system_metadata.get("old_vm_state") == states.STOPPED:
        return states.STOPPED, states.SHUTDOWN
    return states.ACTIVE, states.RUNNING


def _without_old_state(inst: InstanceRecord) -> dict[str, Any]:
    return {k: v for k, v in inst.system_metadata.items() if k != "old_vm_state"}


def _source(mig: MigrationRecord) -> str:
    assert mig.source_compute is not None, f"migration {mig.id} has no source"
    return mig.source_compute


class MoveActions(ComputeBase):
    """Resize and cold migration on the compute hosts (see the module docstring)."""

    # -- destination, then source, then destination ------------------------------------------
    @endpoint(PrepResize)
    async def prep_resize(self, msg: PrepResize) -> None:
        """Destination: refuse a move this driver cannot take, else cast the source."""
        uuid = msg.instance_uuid
        async with self.acting(uuid, msg.request_id, "compute_prep_resize",
                               revert_task_states=[states.RESIZE_PREP]) as act:
            if act.instance.task_state != states.RESIZE_PREP:
                return
            mig = await self.db.get_migration(msg.migration_id)
            try:
                self._require_move(mig)
            except Exception:  # nothing moved yet: the instance keeps its source allocation
                await hand_over(self.db, mig.uuid, uuid, self.wall())
                await self._set_migration(mig, "error")
                raise
            await self.rpc.cast(compute_topic(_source(mig)), ResizeInstance(
                uuid, msg.request_id, mig.id))

    @endpoint(ResizeInstance)
    async def resize_instance(self, msg: ResizeInstance) -> None:
        """Source: power the guest off and ship its disks; the instance is the
        destination's from here on."""
        uuid = msg.instance_uuid
        async with self.acting(uuid, msg.request_id, "compute_resize_instance",
                               revert_task_states=[states.RESIZE_PREP]) as act:
            inst = act.instance
            if inst.task_state != states.RESIZE_PREP:
                return
            mig = await self.db.get_migration(msg.migration_id)
            dest = mig.dest_compute or ""
            meta = {**inst.system_metadata, "old_vm_state": inst.vm_state}
            await self.db.update_instance(uuid, now=self.wall(), system_metadata=meta,
                                          task_state=states.RESIZE_MIGRATING,
                                          expected_task_states=[states.RESIZE_PREP])
            await self._set_migration(mig, "migrating")
            try:
                self._require_move(mig)
                disk_info = await self.driver.migrate_disk_and_power_off(
                    uuid, dest, guest_spec(inst, inst.new_flavor))
            except Exception:  # the disk never left: the source allocation is the instance's
                await hand_over(self.db, mig.uuid, uuid, self.wall())
                await self._set_migration(mig, "error")
                await self._error(uuid)
                raise
            await self._set_migration(mig, "post-migrating")
            await self.db.update_instance(
                uuid, now=self.wall(), host=dest, node=mig.dest_node or dest,
                task_state=states.RESIZE_MIGRATED, power_state=states.SHUTDOWN,
                expected_task_states=[states.RESIZE_MIGRATING])
            await self.rpc.cast(compute_topic(dest), FinishResize(
                uuid, msg.request_id, mig.id, disk_info))
        self.after_instance_change()

    @endpoint(FinishResize)
    async def finish_resize(self, msg: FinishResize) -> None:
        """Destination: start the guest with its new flavor; the instance is ``resized``."""
        uuid = msg.instance_uuid
        async with self.acting(uuid, msg.request_id, "compute_finish_resize") as act:
            inst = act.instance
            if inst.task_state != states.RESIZE_MIGRATED:
                return
            mig = await self.db.get_migration(msg.migration_id)
            await self.db.update_instance(uuid, now=self.wall(), task_state=states.RESIZE_FINISH,
                                          expected_task_states=[states.RESIZE_MIGRATED])
            new = inst.new_flavor or inst.flavor
            power_on = resting_state(inst)[0] == states.ACTIVE
            try:
                await self.driver.finish_migration(guest_spec(inst, new),
                                                   disk_info=msg.disk_info, power_on=power_on)
            except Exception:  # the disk left the source: the instance stays here, alone
                await self.free_allocations(mig.uuid)
                await self._set_migration(mig, "error")
                await self._error(uuid)
                raise
            await self._set_migration(mig, "finished")
            await self._settle(uuid, [states.RESIZE_FINISH], flavor=new, old_flavor=inst.flavor,
                               new_flavor=new, vm_state=states.RESIZED,
                               power_state=states.RUNNING if power_on else states.SHUTDOWN)
        self.after_instance_change()

    # -- confirm (source) and revert (destination, then source) --------------------------------
    @endpoint(ConfirmResize)
    async def confirm_resize(self, msg: ConfirmResize) -> None:
        """Source: drop the copy kept for a revert and the migration's allocation."""
        uuid = msg.instance_uuid
        async with self.acting(uuid, msg.request_id, "compute_confirm_resize") as act:
            inst = act.instance
            mig = await self.db.get_migration(msg.migration_id)
            if mig.status != "confirming" or inst.vm_state != states.RESIZED:
                log.info("%s: confirm of %s dropped: migration %s, vm_state %s", self.host,
                         uuid, mig.status, inst.vm_state)
                return
            try:
                await self.driver.confirm_migration(uuid)
                await self.free_allocations(mig.uuid)
            except Exception:
                await self._set_migration(mig, "error")
                await self._error(uuid)
                raise
            await self._set_migration(mig, "confirmed")
            await self._settle(uuid, [None], vm_state=resting_state(inst)[0], old_flavor=None,
                               new_flavor=None, system_metadata=_without_old_state(inst))
        self.after_instance_change()

    @endpoint(RevertResize)
    async def revert_resize(self, msg: RevertResize) -> None:
        """Destination: destroy the moved guest; the instance takes the source
        allocation back (the destination's is dropped); then the source finishes."""
        uuid = msg.instance_uuid
        async with self.acting(uuid, msg.request_id, "compute_revert_resize") as act:
            if act.instance.task_state != states.RESIZE_REVERTING:
                return
            mig = await self.db.get_migration(msg.migration_id)
            try:
                await self.driver.destroy(uuid)
                await hand_over(self.db, mig.uuid, uuid, self.wall())
            except Exception:
                await self._set_migration(mig, "error")
                await self._error(uuid)
                raise
            await self._set_migration(mig, "reverted")
            await self.rpc.cast(compute_topic(_source(mig)), FinishRevertResize(
                uuid, msg.request_id, mig.id))
        self.after_instance_change()

    @endpoint(FinishRevertResize)
    async def finish_revert_resize(self, msg: FinishRevertResize) -> None:
        """Source: bring the guest back with its old flavor; the instance is here again."""
        uuid = msg.instance_uuid
        async with self.acting(uuid, msg.request_id, "compute_finish_revert_resize") as act:
            inst = act.instance
            if inst.task_state != states.RESIZE_REVERTING:
                return
            mig = await self.db.get_migration(msg.migration_id)
            old = inst.old_flavor or inst.flavor
            vm_state, power_state = resting_state(inst)
            try:
                await self.driver.finish_revert_migration(
                    guest_spec(inst, old), power_on=vm_state == states.ACTIVE)
            except Exception:
                await self._error(uuid, host=self.host, node=mig.source_node or self.host)
                raise
            await self._settle(uuid, [states.RESIZE_REVERTING], host=self.host,
                               node=mig.source_node or self.host, flavor=old, old_flavor=None,
                               new_flavor=None, vm_state=vm_state, power_state=power_state,
                               system_metadata=_without_old_state(inst))
        self.after_instance_change()

    # -- periodic: auto-confirm, and tidying up after moves that failed elsewhere ----------------
    @periodic("periodic_interval")
    async def poll_unconfirmed_resizes(self) -> None:
        """Confirm moves from this host finished longer than ``resize_confirm_window`` ago
        (0: never); drop what was kept here for moves that failed after leaving."""
        if self.node is None:
            return
        window, now = self.config.resize_confirm_window, self.wall()
        if window > 0:
            for mig in await self.db.list_migrations(host=self.host, status="finished"):
                if (mig.source_compute == self.host and mig.migration_type in COLD_TYPES
                        and (mig.updated_at or now) <= now - window):
                    await self._auto_confirm(mig, now)
        for mig in await self.db.list_migrations(host=self.host, status="error"):
            if mig.source_compute == self.host and mig.migration_type in COLD_TYPES:
                await self._tidy_failed(mig)

    async def _auto_confirm(self, mig: MigrationRecord, now: float) -> None:
        try:
            inst = await self.db.get_instance(mig.instance_uuid)
            if inst.vm_state != states.RESIZED or inst.task_state is not None:
                return
            await self.db.update_migration_status(mig.id, "confirming", now=now,
                                                  expected_statuses=["finished"])
        except (NotFound, ConflictError):
            return  # deleted, or confirmed or reverted by the user meanwhile
        log.info("%s: confirming the resize of %s automatically", self.host, inst.uuid)
        await self.confirm_resize(ConfirmResize(inst.uuid, f"req-{self.runtime.new_id()}",
                                                mig.id))

    async def _tidy_failed(self, mig: MigrationRecord) -> None:
        uuid = mig.instance_uuid
        async with self.instance_lock(uuid):
            try:
                if (await self.db.get_instance(uuid)).host == self.host:
                    return  # the instance is here: what this host holds is its own
            except NotFound:
                pass  # deleted: what it left here goes too
            try:
                await self.driver.confirm_migration(uuid)  # the copy kept for a revert
            except NimbusError as exc:
                log.debug("%s: nothing kept of %s: %s", self.host, uuid, exc)
            await self.free_allocations(mig.uuid)
            await self._set_migration(mig, "failed", expected=["error"])

    # -- helpers ------------------------------------------------------------------------------
    def _require_move(self, mig: MigrationRecord) -> None:
        self.require(d.RESIZE, "resize and cold migration")
        if mig.source_compute == mig.dest_compute:
            self.require(d.RESIZE_SAME_HOST, "resize to the same host")

    async def _set_migration(self, mig: MigrationRecord, status: str,
                             expected: Sequence[str] | None = None) -> None:
        try:
            await self.db.update_migration_status(mig.id, status, now=self.wall(),
                                                  expected_statuses=expected)
        except (NotFound, ConflictError) as exc:
            log.info("%s: migration %s not set %s: %s", self.host, mig.id, status, exc)

    async def _error(self, uuid: str, **changes: Any) -> None:
        """ERROR with no task, the guest's power state as the driver sees it."""
        power_state = await self.power_state_of(uuid)
        with contextlib.suppress(NotFound):
            await self.db.update_instance(uuid, now=self.wall(), vm_state=states.ERROR,
                                          task_state=None, power_state=power_state, **changes)

    async def _settle(self, uuid: str, expected: Sequence[str | None], **changes: Any) -> None:
        """Write a step's end (no task) if the task state is still one of ``expected``."""
        try:
            await self.db.update_instance(uuid, now=self.wall(), task_state=None,
                                          expected_task_states=list(expected), **changes)
        except (ConflictError, NotFound) as exc:  # a delete took the instance over
            log.info("%s: %s was taken over: %s", self.host, uuid, exc)
