"""The compute API's logic: what a user's request does before any host is involved.

:class:`ComputeAPI` is where the REST layer (and the simulator's synthetic
users) turn a request into records and messages: it creates instance records
and asks the conductor to build them; for every other action it finds the
instance (a project sees only its own: ``NotFound`` otherwise), refuses a
locked one (``InstanceLocked``) or one in a state the action does not accept
(``InstanceInvalidState``), and sets the action's task state in one
conditional write, so that of two racing actions exactly one starts. Then it
records the instance action under the request id and sends the work on.

Action families beyond create and delete are mixins over :class:`ApiBase`
(power, moves, shelving ...), composed into :class:`ComputeAPI`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from nimbus.core.compute import api_create, states
from nimbus.core.compute.api_base import ApiBase
from nimbus.core.compute.api_live import LiveApi
from nimbus.core.compute.api_moves import MoveApi
from nimbus.core.compute.api_power import PowerApi
from nimbus.core.compute.api_shelve import ShelveApi
from nimbus.core.compute.messages import BuildInstances, TerminateInstance
from nimbus.core.compute.repair import RestoreInstance, SoftDeleteInstance
from nimbus.core.context import RequestContext
from nimbus.core.db.block_devices import BlockDeviceSpec
from nimbus.core.db.instance_schema import InstanceRecord, NewInstance
from nimbus.core.errors import (
    ConflictError,
    Forbidden,
    InstanceLocked,
    InvalidInput,
    NimbusError,
    NotFound,
)
from nimbus.core.scheduler.request import RequestSpec, ServerGroupSpec


class ComputeAPI(PowerApi, MoveApi, LiveApi, ShelveApi, ApiBase):
    """Create and delete, and (through the mixins) every other action."""

    async def create(
        self, ctx: RequestContext, *, flavor: Mapping[str, Any], image_ref: str | None = None,
        image_properties: Mapping[str, Any] | None = None, name: str | None = None,
        description: str | None = None, min_count: int = 1, max_count: int = 1,
        availability_zone: str | None = None, group_uuid: str | None = None,
        scheduler_hints: Mapping[str, str | Iterable[str]] | None = None,
        key_name: str | None = None, key_data: str | None = None,
        user_data: str | None = None, metadata: Mapping[str, str] | None = None,
        admin_password: str | None = None, hostname: str | None = None,
        networks: str | Sequence[Mapping[str, Any]] | None = None,
        security_groups: Sequence[str] = (), block_devices: Sequence[BlockDeviceSpec] = (),
        config_drive: bool = False, system_metadata: Mapping[str, Any] | None = None,
        enforce_quota: bool = False,
    ) -> list[InstanceRecord]:
        """Create instance records (``max_count``, or fewer down to ``min_count`` if the
        quota leaves room for no more) and ask the conductor to build them (at least
        ``min_count`` must find a host). Returns the records, in ``building``.

        The REST API asks for everything a server gets: ``enforce_quota`` (instances,
        cores and RAM of the project and user, checked before and after the records
        are made), ``networks`` (``"auto"``: an address on the default network; see
        :mod:`nimbus.core.compute.api_create`), ``security_groups`` by name and the
        ``block_devices`` of each instance (their uuids are made fresh per instance).
        Other callers (simulated users) get none of these unless they ask. A create
        that fails after its records were made leaves none of them behind.
        """
        if not 1 <= min_count <= max_count:
            raise InvalidInput(f"min_count {min_count} must be between 1 and max_count "
                               f"{max_count}")
        group = await self._group(ctx, group_uuid)
        if enforce_quota:
            max_count = await api_create.quota_room(self, ctx, flavor, min_count, max_count)
        now, store = self.wall(), self.store
        reservation = f"r-{self.runtime.new_id()[:8]}"
        sysmeta: dict[str, Any] = {f"image_{k}": str(v)
                                   for k, v in (image_properties or {}).items()}
        sysmeta.update(system_metadata or {})
        if scheduler_hints:  # shown by the API from 2.100
            sysmeta["scheduler_hints"] = {k: v if isinstance(v, str) else list(v)
                                          for k, v in scheduler_hints.items()}
        created: list[InstanceRecord] = []
        try:
            for index in range(max_count):
                uuid = self.runtime.new_id()
                display = name if max_count == 1 or name is None else f"{name}-{index + 1}"
                disks = [dataclasses.replace(d, uuid=self.runtime.new_id())
                         for d in block_devices]
                created.append(await store.create_instance(NewInstance(
                    uuid=uuid, project_id=ctx.project_id, user_id=ctx.user_id,
                    flavor=flavor, image_ref=image_ref, display_name=display,
                    display_description=description,
                    hostname=hostname or _hostname(display, uuid), key_name=key_name,
                    key_data=key_data, user_data=user_data, metadata=dict(metadata or {}),
                    system_metadata=sysmeta, availability_zone=availability_zone,
                    reservation_id=reservation, launch_index=index,
                    config_drive=config_drive),
                    now=now, request_id=ctx.request_id, block_devices=disks))
            if enforce_quota:
                await api_create.recheck_quota(self, ctx, created)
            if security_groups:
                await api_create.join_security_groups(self, ctx, created, security_groups)
            await api_create.attach_networks(self, ctx, created, networks)
        except NimbusError:
            await api_create.undo_create(self, created)
            raise
        uuids = [i.uuid for i in created]
        if group is not None:
            await store.add_members(group.uuid, uuids, now)
        spec = RequestSpec.build(
            int(flavor["vcpus"]), int(flavor["memory_mb"]), int(flavor.get("root_gb", 0)),
            ephemeral_gb=int(flavor.get("ephemeral_gb") or 0),
            swap_mb=int(flavor.get("swap") or 0), extra_specs=flavor.get("extra_specs") or {},
            image_properties=image_properties, project_id=ctx.project_id,
            user_id=ctx.user_id, availability_zone=availability_zone,
            scheduler_hints=scheduler_hints, group=group, num_instances=len(created),
            min_count=min_count, instance_uuids=uuids, flavor_name=str(flavor.get("name", "")))
        await self.rpc.cast("conductor", BuildInstances(ctx.request_id, spec, admin_password))
        return created

    async def _group(self, ctx: RequestContext, uuid: str | None) -> ServerGroupSpec | None:
        if uuid is None:
            return None
        group = await self.store.get_server_group(uuid)
        if group.project_id != ctx.project_id and not self.is_admin(ctx):
            raise NotFound(f"Instance group {uuid} could not be found.")
        per_host = int(group.rules.get("max_server_per_host", 1))
        return ServerGroupSpec(group.uuid, group.policy, per_host)

    async def delete(self, ctx: RequestContext, uuid: str) -> None:
        """Delete an instance: on its host when that host is up, else right here (a
        never-scheduled instance, or one whose host is down, is deleted locally).

        With ``reclaim_instance_interval`` above 0 the delete is soft where it can be:
        an idle instance that ran, in active/stopped/paused/suspended, on a host that is
        up, has its guest powered off and rests in ``soft-delete``, restorable until
        its host reclaims it (as Nova's deferred delete). Any other instance, one
        already soft-deleted included, is deleted now."""
        inst = await self.get(ctx, uuid)
        self.check_lock(ctx, inst)
        self.check_state(inst, "delete")
        if (self.reclaim_instance_interval > 0 and inst.launched_at is not None
                and inst.task_state is None
                and inst.vm_state in states.RULES["soft_delete"].vm_states
                and inst.host is not None and await self.host_is_up(inst.host)):
            await self.begin(ctx, uuid, "soft_delete", task_state=states.SOFT_DELETING,
                             record="delete")
            await self.cast_compute(inst.host, SoftDeleteInstance(uuid, ctx.request_id))
            return
        await self._delete_now(ctx, inst, "delete", "delete")

    async def force_delete(self, ctx: RequestContext, uuid: str) -> None:
        """Delete an instance now, soft-deleted or not (any vm_state, no task under way)."""
        inst = await self.get(ctx, uuid)
        self.check_lock(ctx, inst)
        self.check_state(inst, "force_delete")
        await self._delete_now(ctx, inst, "force_delete", "forceDelete")

    async def restore(self, ctx: RequestContext, uuid: str) -> None:
        """Bring a soft-deleted instance back: its guest is powered on, ``active``."""
        inst = await self.get(ctx, uuid)
        self.check_lock(ctx, inst)
        self.check_state(inst, "restore")
        await self.require_host_up(inst)
        inst = await self.begin(ctx, uuid, "restore", task_state=states.RESTORING)
        assert inst.host is not None  # the rule needs a host
        await self.cast_compute(inst.host, RestoreInstance(uuid, ctx.request_id))

    async def _delete_now(self, ctx: RequestContext, inst: InstanceRecord, rule: str,
                          record: str) -> None:
        if inst.host is None or not await self.host_is_up(inst.host):
            await self.record_action(ctx, inst.uuid, record)
            await self.delete_locally(inst)
            return
        await self.begin(ctx, inst.uuid, rule, task_state=states.DELETING, record=record)
        await self.cast_compute(inst.host, TerminateInstance(inst.uuid, ctx.request_id))

    async def delete_locally(self, inst: InstanceRecord) -> None:
        """Mark an instance deleted and free what it holds, without its host."""
        store = self.store
        for consumer in [inst.uuid, *(m.uuid for m in
                                      await store.migrations_by_instance(inst.uuid))]:
            try:
                await store.delete_allocations(consumer)
            except NotFound:
                pass
        image_id = inst.system_metadata.get("shelved_image_id")
        if image_id:  # an offloaded instance's snapshot goes with it, as in Nova
            try:
                await store.delete_image(str(image_id), self.wall())
            except (NotFound, ConflictError, Forbidden):
                pass
        try:
            await store.soft_delete_instance(inst.uuid, now=self.wall())
        except NotFound:
            pass

    async def lock(self, ctx: RequestContext, uuid: str, reason: str | None = None) -> None:
        """Lock an instance: only an admin may act on it until it is unlocked."""
        inst = await self.get(ctx, uuid)
        self.check_state(inst, "lock")
        meta = dict(inst.system_metadata)
        if reason is not None:
            meta["locked_reason"] = reason
        await self.store.update_instance(uuid, now=self.wall(), locked=True,
                                         locked_by=_lock_side(ctx, inst),
                                         system_metadata=meta)
        await self.record_action(ctx, uuid, "lock")

    async def unlock(self, ctx: RequestContext, uuid: str) -> None:
        """Unlock an instance; a lock taken from the other side (an admin's, for the
        owner) needs ``os-lock-server:unlock:unlock_override``."""
        inst = await self.get(ctx, uuid)
        if (inst.locked and inst.locked_by not in (None, _lock_side(ctx, inst))
                and not self.policy.allows("os_compute_api:os-lock-server:unlock:"
                                           "unlock_override", ctx,
                                           {"project_id": inst.project_id})):
            raise InstanceLocked(f"Instance {uuid} was locked by an administrator")
        meta = {k: v for k, v in inst.system_metadata.items() if k != "locked_reason"}
        await self.store.update_instance(uuid, now=self.wall(), locked=False, locked_by=None,
                                         system_metadata=meta)
        await self.record_action(ctx, uuid, "unlock")


def _lock_side(ctx: RequestContext, inst: InstanceRecord) -> str:
    """Who a lock by ``ctx`` is taken by, as Nova records it: the owner's project, or an
    administrator from another."""
    return "owner" if ctx.project_id == inst.project_id else "admin"


def _hostname(display: str | None, uuid: str) -> str:
    """A DNS-safe hostname from the display name (Nova's sanitize_hostname)."""
    text = (display or f"server-{uuid}").lower()
    out = "".join(c if c.isalnum() or c == "-" else "-" for c in text.replace(" ", "-"))
    return out.strip("-.")[:63] or f"server-{uuid}"
