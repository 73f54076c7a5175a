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

from collections.abc import Iterable, Mapping
from typing import Any

from nimbus.core.compute import states
from nimbus.core.compute.api_base import ApiBase
from nimbus.core.compute.api_live import LiveApi
from nimbus.core.compute.api_moves import MoveApi
from nimbus.core.compute.api_power import PowerApi
from nimbus.core.compute.api_shelve import ShelveApi
from nimbus.core.compute.messages import BuildInstances, TerminateInstance
from nimbus.core.context import RequestContext
from nimbus.core.db.instance_schema import InstanceRecord, NewInstance
from nimbus.core.errors import (
    InstanceLocked,
    InvalidInput,
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
        admin_password: str | None = None,
    ) -> list[InstanceRecord]:
        """Create ``max_count`` instance records and ask the conductor to build them (at
        least ``min_count`` must find a host). Returns the records, in ``building``."""
        if not 1 <= min_count <= max_count:
            raise InvalidInput(f"min_count {min_count} must be between 1 and max_count "
                               f"{max_count}")
        group = await self._group(ctx, group_uuid)
        now, store = self.wall(), self.store
        reservation = f"r-{self.runtime.new_id()[:8]}"
        image_meta = {f"image_{k}": str(v) for k, v in (image_properties or {}).items()}
        created = []
        for index in range(max_count):
            uuid = self.runtime.new_id()
            display = name if max_count == 1 or name is None else f"{name}-{index + 1}"
            created.append(await store.create_instance(NewInstance(
                uuid=uuid, project_id=ctx.project_id, user_id=ctx.user_id, flavor=flavor,
                image_ref=image_ref, display_name=display, display_description=description,
                hostname=_hostname(display, uuid), key_name=key_name, key_data=key_data,
                user_data=user_data, metadata=dict(metadata or {}),
                system_metadata=image_meta, availability_zone=availability_zone,
                reservation_id=reservation, launch_index=index),
                now=now, request_id=ctx.request_id))
        uuids = [i.uuid for i in created]
        if group is not None:
            await store.add_members(group.uuid, uuids, now)
        spec = RequestSpec.build(
            int(flavor["vcpus"]), int(flavor["memory_mb"]), int(flavor.get("root_gb", 0)),
            ephemeral_gb=int(flavor.get("ephemeral_gb") or 0),
            swap_mb=int(flavor.get("swap") or 0), extra_specs=flavor.get("extra_specs") or {},
            image_properties=image_properties, project_id=ctx.project_id,
            user_id=ctx.user_id, availability_zone=availability_zone,
            scheduler_hints=scheduler_hints, group=group, num_instances=max_count,
            min_count=min_count, instance_uuids=uuids, flavor_name=str(flavor.get("name", "")))
        await self.rpc.cast("conductor", BuildInstances(ctx.request_id, spec, admin_password))
        return created

    async def _group(self, ctx: RequestContext, uuid: str | None) -> ServerGroupSpec | None:
        if uuid is None:
            return None
        group = await self.store.get_server_group(uuid)
        if not ctx.is_admin and group.project_id != ctx.project_id:
            raise NotFound(f"Instance group {uuid} could not be found.")
        per_host = int(group.rules.get("max_server_per_host", 1))
        return ServerGroupSpec(group.uuid, group.policy, per_host)

    async def delete(self, ctx: RequestContext, uuid: str) -> None:
        """Delete an instance: on its host when that host is up, else right here (a
        never-scheduled instance, or one whose host is down, is deleted locally)."""
        inst = await self.get(ctx, uuid)
        self.check_lock(ctx, inst)
        self.check_state(inst, "delete")
        if inst.host is None or not await self.host_is_up(inst.host):
            await self.record_action(ctx, uuid, "delete")
            await self.delete_locally(inst)
            return
        await self.begin(ctx, uuid, "delete", task_state=states.DELETING)
        await self.cast_compute(inst.host, TerminateInstance(uuid, ctx.request_id))

    async def delete_locally(self, inst: InstanceRecord) -> None:
        """Mark an instance deleted and free what it holds, without its host."""
        store = self.store
        for consumer in [inst.uuid, *(m.uuid for m in
                                      await store.migrations_by_instance(inst.uuid))]:
            try:
                await store.delete_allocations(consumer)
            except NotFound:
                pass
        await store.remove_instance_from_groups(inst.uuid)
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
                                         locked_by="admin" if ctx.is_admin else "owner",
                                         system_metadata=meta)
        await self.record_action(ctx, uuid, "lock")

    async def unlock(self, ctx: RequestContext, uuid: str) -> None:
        """Unlock an instance; one locked by an admin only an admin may unlock."""
        inst = await self.get(ctx, uuid)
        if inst.locked and inst.locked_by == "admin" and not ctx.is_admin:
            raise InstanceLocked(f"Instance {uuid} was locked by an administrator")
        meta = {k: v for k, v in inst.system_metadata.items() if k != "locked_reason"}
        await self.store.update_instance(uuid, now=self.wall(), locked=False, locked_by=None,
                                         system_metadata=meta)
        await self.record_action(ctx, uuid, "unlock")


def _hostname(display: str | None, uuid: str) -> str:
    """A DNS-safe hostname from the display name (Nova's sanitize_hostname)."""
    text = (display or f"server-{uuid}").lower()
    out = "".join(c if c.isalnum() or c == "-" else "-" for c in text.replace(" ", "-"))
    return out.strip("-.")[:63] or f"server-{uuid}"
