"""Shelve, shelve-offload, unshelve and snapshots (create image) on the compute host.

A snapshot copies an instance's root disk into an image the API registered
(``queued``): the image goes ``saving``, the driver makes the copy, and its size
and digests are recorded as the image turns ``active``; the instance's task
walks ``image_pending_upload`` -> ``image_uploading`` -> None on the way, as
Nova's does. If anything fails the image is ``killed`` and the instance keeps
its state, with a fault.

Shelving powers the guest off, snapshots it into the instance's shelved image
and marks it ``shelved`` (its disk and its place on the host stay). Offloading,
at once when ``shelved_offload_time`` is 0, on request, or from the periodic
task once an instance has been shelved that long, destroys the guest and frees
the host's allocation: ``shelved_offloaded``, on no host. Unshelving a shelved
instance powers its guest on again; an offloaded one is spawned from its shelved
image on the host the conductor chose and claimed. Either way the shelved image
and the ``shelved_*`` system metadata go.

The image bytes are not kept anywhere yet: the Store records an image's
metadata and a ``location`` naming the host whose driver made the copy.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from nimbus.core.compute import states
from nimbus.core.compute.base import ComputeBase, guest_spec
from nimbus.core.compute.driver import SNAPSHOT
from nimbus.core.db.instance_schema import InstanceRecord
from nimbus.core.errors import ConflictError, NimbusError, NotFound
from nimbus.core.messages import message
from nimbus.core.service import endpoint, periodic

log = logging.getLogger(__name__)

SNAPSHOT_EVENT = "compute_snapshot_instance"
SHELVE_EVENT = "compute_shelve_instance"
OFFLOAD_EVENT = "compute_shelve_offload_instance"
UNSHELVE_EVENT = "compute_unshelve_instance"

#: The system metadata a shelved instance carries (Nova's keys), dropped when it unshelves.
SHELVED_KEYS = ("shelved_at", "shelved_image_id", "shelved_host")

#: The task steps of a snapshot after its first task: (pending upload, uploading).
_UPLOAD_STEPS = {
    states.IMAGE_SNAPSHOT: (states.IMAGE_PENDING_UPLOAD, states.IMAGE_UPLOADING),
    states.SHELVING: (states.SHELVING_IMAGE_PENDING_UPLOAD, states.SHELVING_IMAGE_UPLOADING),
}
_SNAPSHOT_TASKS = (states.IMAGE_SNAPSHOT, *_UPLOAD_STEPS[states.IMAGE_SNAPSHOT])
_SHELVE_TASKS = (states.SHELVING, *_UPLOAD_STEPS[states.SHELVING], states.SHELVING_OFFLOADING)


@message("compute.snapshot_instance")
@dataclass(frozen=True, slots=True)
class SnapshotInstance:
    """Copy the instance's root disk into image ``image_id`` (registered, ``queued``)."""

    instance_uuid: str
    request_id: str
    image_id: str


@message("compute.shelve_instance")
@dataclass(frozen=True, slots=True)
class ShelveInstance:
    """Power off, snapshot into the shelved image ``image_id``, and mark the instance
    shelved (offloading it at once when ``shelved_offload_time`` is 0)."""

    instance_uuid: str
    request_id: str
    image_id: str


@message("compute.shelve_offload_instance")
@dataclass(frozen=True, slots=True)
class ShelveOffloadInstance:
    """Destroy a shelved instance's guest here and free its place on this host."""

    instance_uuid: str
    request_id: str


@message("compute.unshelve_instance")
@dataclass(frozen=True, slots=True)
class UnshelveInstance:
    """Bring a shelved instance back on this host: power its guest on (shelved), or
    spawn it from its shelved image (offloaded, placed here by the conductor)."""

    instance_uuid: str
    request_id: str


def shelved_at(wall: float) -> str:
    """The ``shelved_at`` value for epoch seconds ``wall``: naive UTC ISO 8601, as Nova's."""
    return datetime.fromtimestamp(wall, UTC).replace(tzinfo=None).isoformat()


def shelved_since(system_metadata: Mapping[str, Any]) -> float | None:
    """When an instance was shelved (epoch seconds), from its system metadata; None if
    it does not say."""
    value = system_metadata.get("shelved_at")
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def without_shelved_keys(system_metadata: Mapping[str, Any]) -> dict[str, Any]:
    """System metadata without the ``shelved_*`` keys."""
    return {k: v for k, v in system_metadata.items() if k not in SHELVED_KEYS}


def snapshot_location(host: str, image_id: str) -> str:
    """Where a snapshot's bytes are said to be: with the host whose driver made them
    (no image file store takes them yet)."""
    return f"nimbus-compute://{host}/{image_id}"


class ShelveActions(ComputeBase):
    """Snapshots, shelve, shelve-offload and unshelve (see the module docstring)."""

    # -- snapshots ---------------------------------------------------------------------------
    @endpoint(SnapshotInstance)
    async def snapshot_instance(self, msg: SnapshotInstance) -> None:
        """Fill image ``msg.image_id`` from the instance's disk; the instance stays as it is."""
        uuid = msg.instance_uuid
        async with self.acting(uuid, msg.request_id, SNAPSHOT_EVENT,
                               revert_task_states=_SNAPSHOT_TASKS):
            try:
                await self.upload_snapshot(uuid, msg.image_id, states.IMAGE_SNAPSHOT)
            except Exception:
                await self.kill_image(msg.image_id)
                raise
            await self.db.update_instance(uuid, now=self.wall(), task_state=None,
                                          expected_task_states=[states.IMAGE_UPLOADING])

    async def upload_snapshot(self, uuid: str, image_id: str, task: str) -> None:
        """Snapshot the guest into image ``image_id`` and record its data (``active``),
        moving the instance's task from ``task`` through its upload steps."""
        pending, uploading = _UPLOAD_STEPS[task]
        db = self.db
        self.require(SNAPSHOT, "snapshots")
        await db.update_instance(uuid, now=self.wall(), task_state=pending,
                                 expected_task_states=[task])
        await db.set_image_status(image_id, "saving", now=self.wall(), expected_status="queued")
        snap = await self.driver.snapshot(uuid, image_id)
        await db.update_instance(uuid, now=self.wall(), task_state=uploading,
                                 expected_task_states=[pending])
        await db.update_image(image_id, now=self.wall(), disk_format=snap.disk_format,
                              container_format=snap.container_format)
        await db.set_image_data(
            image_id, size=snap.size, checksum=snap.checksum, os_hash_algo=snap.os_hash_algo,
            os_hash_value=snap.os_hash_value, location=snapshot_location(self.host, image_id),
            now=self.wall())

    async def kill_image(self, image_id: str) -> None:
        """Mark an image whose upload failed ``killed`` (a deleted one is left alone)."""
        try:
            await self.db.set_image_status(image_id, "killed", now=self.wall())
        except NimbusError as exc:
            log.info("%s: image %s not marked killed: %s", self.host, image_id, exc)

    async def delete_shelved_image(self, image_id: str | None) -> None:
        """Delete an unshelved instance's shelved image (already gone is fine)."""
        if image_id is None:
            return
        try:
            await self.db.delete_image(image_id, now=self.wall())
        except NimbusError as exc:  # deleted by its owner, or protected meanwhile
            log.info("%s: shelved image %s not deleted: %s", self.host, image_id, exc)

    # -- shelve and offload --------------------------------------------------------------------
    @endpoint(ShelveInstance)
    async def shelve_instance(self, msg: ShelveInstance) -> None:
        """Power off, snapshot into the shelved image, and mark the instance shelved."""
        uuid = msg.instance_uuid
        async with self.acting(uuid, msg.request_id, SHELVE_EVENT,
                               revert_task_states=_SHELVE_TASKS) as act:
            was = await self.power_state_of(uuid)
            try:
                self.require(SNAPSHOT, "shelve")  # before the guest is stopped for nothing
                await self.driver.power_off(uuid)  # a quiet disk makes a consistent image
                await self.upload_snapshot(uuid, msg.image_id, states.SHELVING)
            except Exception:
                await self.kill_image(msg.image_id)
                await self._restore_power(act.instance, was)
                raise
            offload = self.config.shelved_offload_time == 0
            inst = await self.db.get_instance(uuid)  # its metadata as it is now
            meta = {**inst.system_metadata, "shelved_at": shelved_at(self.wall()),
                    "shelved_image_id": msg.image_id, "shelved_host": self.host}
            await self.db.update_instance(
                uuid, now=self.wall(), vm_state=states.SHELVED,
                task_state=states.SHELVING_OFFLOADING if offload else None,
                power_state=await self.power_state_of(uuid), system_metadata=meta,
                expected_task_states=[states.SHELVING_IMAGE_UPLOADING])
            if offload:
                await self.offload(uuid)
        self.after_instance_change()

    async def _restore_power(self, inst: InstanceRecord, was: int) -> None:
        """After a failed shelve: run the guest again if it ran; one left off is STOPPED."""
        uuid = inst.uuid
        try:
            now = await self.power_state_of(uuid)
            if was == states.RUNNING and now != states.RUNNING:
                await self.driver.power_on(uuid)
                now = await self.power_state_of(uuid)
        except NimbusError as exc:
            log.warning("%s: %s not powered on again after a failed shelve: %s",
                        self.host, uuid, exc)
            now = await self.power_state_of(uuid)
        changes: dict[str, Any] = {"power_state": now}
        if now == states.SHUTDOWN and inst.vm_state != states.STOPPED:
            changes["vm_state"] = states.STOPPED
        try:
            await self.db.update_instance(uuid, now=self.wall(), **changes)
        except NimbusError as exc:
            log.info("%s: power state of %s not recorded: %s", self.host, uuid, exc)

    @endpoint(ShelveOffloadInstance)
    async def shelve_offload_instance(self, msg: ShelveOffloadInstance) -> None:
        """Offload a shelved instance from this host."""
        async with self.acting(msg.instance_uuid, msg.request_id, OFFLOAD_EVENT,
                               revert_task_states=[states.SHELVING_OFFLOADING]):
            await self.offload(msg.instance_uuid)
        self.after_instance_change()

    async def offload(self, uuid: str) -> None:
        """Destroy a shelved instance's guest and give back its place here: it is
        ``shelved_offloaded``, on no host, holding nothing in placement."""
        await self.driver.destroy(uuid)
        # free first: while the task is still shelving_offloading healing leaves it alone,
        # and whoever sees the instance offloaded sees it holding nothing
        await self.free_allocations(uuid)
        await self.db.update_instance(
            uuid, now=self.wall(), vm_state=states.SHELVED_OFFLOADED, task_state=None,
            power_state=states.NOSTATE, host=None, node=None,
            expected_task_states=[states.SHELVING_OFFLOADING],
            expected_vm_states=[states.SHELVED])

    @periodic("shelved_poll_interval")
    async def poll_shelved_instances(self) -> None:
        """Offload this host's instances shelved longer than ``shelved_offload_time``
        (when it is above 0)."""
        limit = self.config.shelved_offload_time
        if limit <= 0:
            return
        now = self.wall()
        for inst in await self.db.instances_by_host(self.host):
            since = shelved_since(inst.system_metadata)
            if (inst.vm_state != states.SHELVED or inst.task_state is not None
                    or since is None or now - since <= limit):
                continue
            try:
                await self.db.update_instance(
                    inst.uuid, now=self.wall(), task_state=states.SHELVING_OFFLOADING,
                    expected_task_states=[None], expected_vm_states=[states.SHELVED])
            except (NotFound, ConflictError):
                continue  # deleted, or an action (unshelve) got there first
            # no user asked: no instance action exists to record events under
            await self.shelve_offload_instance(ShelveOffloadInstance(
                inst.uuid, f"req-{self.runtime.new_id()}"))

    # -- unshelve --------------------------------------------------------------------------------
    @endpoint(UnshelveInstance)
    async def unshelve_instance(self, msg: UnshelveInstance) -> None:
        """Power on a shelved instance's guest, or spawn an offloaded one here."""
        uuid = msg.instance_uuid
        async with self.acting(uuid, msg.request_id, UNSHELVE_EVENT,
                               revert_task_states=[states.UNSHELVING, states.SPAWNING]) as act:
            inst = act.instance
            image_id = inst.system_metadata.get("shelved_image_id")
            changes: dict[str, Any] = {}
            if inst.vm_state == states.SHELVED:
                await self.driver.power_on(uuid)
                expected = states.UNSHELVING
            else:
                await self._spawn_unshelved(inst, image_id)
                expected = states.SPAWNING
                changes.update(launched_at=self.wall(), launched_on=self.host)
            current = await self.db.get_instance(uuid)
            await self.db.update_instance(
                uuid, now=self.wall(), vm_state=states.ACTIVE, task_state=None,
                power_state=await self.power_state_of(uuid),
                system_metadata=without_shelved_keys(current.system_metadata),
                expected_task_states=[expected], **changes)
            await self.delete_shelved_image(image_id)
        self.after_instance_change()

    async def _spawn_unshelved(self, inst: InstanceRecord, image_id: str | None) -> None:
        """Spawn an offloaded instance here from its shelved image; on failure give back
        the conductor's claim and host, so that it stays offloaded."""
        uuid = inst.uuid
        await self.db.update_instance(uuid, now=self.wall(), task_state=states.SPAWNING,
                                      expected_task_states=[states.UNSHELVING],
                                      expected_vm_states=[states.SHELVED_OFFLOADED])
        # the guest boots from the shelved image; the record keeps its original image_ref
        guest = replace(guest_spec(inst), image_ref=image_id or inst.image_ref)
        try:
            await self.driver.spawn(guest)
        except Exception:
            try:
                await self.driver.destroy(uuid)
            except NimbusError as cleanup:
                log.warning("%s: cleaning up %s after a failed unshelve: %s",
                            self.host, uuid, cleanup)
            await self.free_allocations(uuid)
            try:
                await self.db.update_instance(uuid, now=self.wall(), host=None, node=None,
                                              expected_task_states=[states.SPAWNING])
            except NimbusError:
                pass  # deleted, or moved on: nothing of ours to undo on the record
            raise
