"""The API side of shelve, shelve-offload, unshelve and create image.

Create image and shelve register the image first, as Nova does through Glance:
``queued``, owned by the caller's project, named, with the properties of the
image the instance was booted from (kept in its system metadata as ``image_*``)
plus ``instance_uuid``, ``user_id`` and ``image_type``; the instance's compute
host fills it (see :mod:`nimbus.core.compute.shelve`). Unshelving a shelved
instance goes to its host, which still has its guest; an offloaded one goes to
the conductor, which finds it a host.
"""

from __future__ import annotations

from collections.abc import Mapping

from nimbus.core.compute import states
from nimbus.core.compute.api_base import ApiBase
from nimbus.core.compute.shelve import ShelveInstance, ShelveOffloadInstance, SnapshotInstance
from nimbus.core.compute.shelve import UnshelveInstance as UnshelveOnHost
from nimbus.core.conductor.shelve import UnshelveInstance
from nimbus.core.context import RequestContext
from nimbus.core.db.instance_schema import InstanceRecord
from nimbus.core.db.meta import NAME_LEN
from nimbus.core.errors import InstanceInvalidState, InvalidInput

#: ``image_*`` system metadata that are fields of an image, not properties. Disk and
#: container formats are left to the driver, which knows what it wrote (as Nova does).
_IMAGE_FIELDS = frozenset({"min_ram", "min_disk", "disk_format", "container_format", "size",
                           "checksum", "name", "status", "visibility", "owner"})


class ShelveApi(ApiBase):
    """Create image, shelve, shelve-offload and unshelve (see the module docstring)."""

    async def create_image(self, ctx: RequestContext, uuid: str, name: str,
                           metadata: Mapping[str, str] | None = None) -> str:
        """Snapshot an instance into a new image named ``name`` (``metadata`` become its
        properties); returns the image's id at once, while the image is ``queued``."""
        _check_name(name)
        extra = _check_metadata(metadata)
        inst = await self.begin(ctx, uuid, "create_image", task_state=states.IMAGE_SNAPSHOT,
                                record="createImage")
        image_id = await self._new_image(ctx, inst, name, "snapshot", extra,
                                         states.IMAGE_SNAPSHOT)
        assert inst.host is not None  # the rule needs a host
        await self.cast_compute(inst.host, SnapshotInstance(uuid, ctx.request_id, image_id))
        return image_id

    async def shelve(self, ctx: RequestContext, uuid: str) -> None:
        """Shelve an instance: its host snapshots it into ``<name>-shelved`` and powers it
        off (and offloads it, when ``shelved_offload_time`` is 0)."""
        inst = await self.begin(ctx, uuid, "shelve", task_state=states.SHELVING)
        name = f"{inst.display_name or inst.uuid}-shelved"[:NAME_LEN]
        image_id = await self._new_image(ctx, inst, name, "shelved", {}, states.SHELVING)
        assert inst.host is not None
        await self.cast_compute(inst.host, ShelveInstance(uuid, ctx.request_id, image_id))

    async def shelve_offload(self, ctx: RequestContext, uuid: str) -> None:
        """Offload a shelved instance: its guest is destroyed and its host freed."""
        inst = await self.begin(ctx, uuid, "shelve_offload",
                                task_state=states.SHELVING_OFFLOADING, record="shelveOffload")
        assert inst.host is not None
        await self.cast_compute(inst.host, ShelveOffloadInstance(uuid, ctx.request_id))

    async def unshelve(self, ctx: RequestContext, uuid: str,
                       availability_zone: str | None = None) -> None:
        """Unshelve an instance: powered on where it is (shelved), or spawned on a host
        the scheduler picks, in ``availability_zone`` if given (offloaded only)."""
        if availability_zone is not None:
            inst = await self.get(ctx, uuid)
            if inst.vm_state != states.SHELVED_OFFLOADED:
                raise InstanceInvalidState(
                    f"Cannot unshelve instance {uuid} to availability zone "
                    f"{availability_zone}: it is {inst.vm_state}, not shelved_offloaded")
        inst = await self.begin(ctx, uuid, "unshelve", task_state=states.UNSHELVING)
        if inst.vm_state == states.SHELVED and inst.host is not None:
            await self.cast_compute(inst.host, UnshelveOnHost(uuid, ctx.request_id))
        else:
            await self.rpc.cast("conductor", UnshelveInstance(uuid, ctx.request_id,
                                                              availability_zone))

    async def _new_image(self, ctx: RequestContext, inst: InstanceRecord, name: str,
                         image_type: str, extra: dict[str, str], task: str) -> str:
        """Register the ``queued`` image an action fills; if that fails, the action's
        task state is put back before the error goes on."""
        meta = inst.system_metadata
        props: dict[str, str | None] = {
            k[len("image_"):]: str(v) for k, v in meta.items()
            if k.startswith("image_") and k[len("image_"):] not in _IMAGE_FIELDS}
        if inst.image_ref and "base_image_ref" not in props:
            props["base_image_ref"] = inst.image_ref
        props.update(instance_uuid=inst.uuid, user_id=ctx.user_id, image_type=image_type)
        props.update(extra)  # the caller's metadata come last, as Nova's do
        # a snapshot taken for another project's instance (by an admin) is kept private
        shared = "shared" if ctx.project_id == inst.project_id else "private"
        image_id = self.runtime.new_id()
        try:
            await self.store.create_image(
                id=image_id, owner=ctx.project_id, now=self.wall(), name=name,
                visibility=shared,
                min_ram=_int(meta.get("image_min_ram")),
                min_disk=max(_int(meta.get("image_min_disk")), inst.root_gb),
                properties=props)
        except Exception:
            await self.store.update_instance(inst.uuid, now=self.wall(), task_state=None,
                                             expected_task_states=[task])
            raise
        return image_id


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name.strip() or len(name) > NAME_LEN:
        raise InvalidInput(f"Invalid image name {name!r}: expected 1 to {NAME_LEN} "
                           "characters")


def _check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    out = {}
    for key, value in (metadata or {}).items():
        if (not isinstance(key, str) or not key or len(key) > NAME_LEN
                or not isinstance(value, str) or len(value) > NAME_LEN):
            raise InvalidInput(f"Invalid image metadata item {key!r}: {value!r} (keys and "
                               f"values are strings of up to {NAME_LEN} characters)")
        out[key] = value
    return out


def _int(value: object) -> int:
    """A non-negative integer from a system metadata value (0 if it is none)."""
    try:
        return max(int(str(value)), 0)
    except ValueError:
        return 0
