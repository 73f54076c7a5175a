"""The API side of live migration, evacuation and rebuild.

Live migration and evacuation are admin actions (Nova's default policy): a
user gets ``Forbidden`` and nothing changes. Live migration and rebuild need
the instance's host up (a cast to a dead host would leave the task state set
forever); evacuation needs it down (``compute service ... is still in use``
otherwise, a 409), since the guest may still run there. Each then sets its
task state with one conditional write, records the instance action, and sends
the work on: live migration and evacuation to the conductor
(:mod:`nimbus.core.conductor.live`), a rebuild straight to the instance's host
(:mod:`nimbus.core.compute.rebuild`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nimbus.core.compute import states
from nimbus.core.compute.api_base import ApiBase
from nimbus.core.compute.rebuild import RebuildInstance
from nimbus.core.conductor.live import EvacuateInstance, LiveMigrateInstance
from nimbus.core.context import RequestContext
from nimbus.core.db.instance_schema import InstanceRecord
from nimbus.core.errors import InstanceInvalidState, InvalidInput


def _target(inst: InstanceRecord) -> dict[str, object]:
    return {"project_id": inst.project_id, "user_id": inst.user_id}


class LiveApi(ApiBase):
    """Live migration, evacuation and rebuild (see the module docstring)."""

    async def require_host_up(self, inst: InstanceRecord) -> None:
        """``InstanceInvalidState`` (409) if the instance's compute service is down."""
        if inst.host is not None and not await self.host_is_up(inst.host):
            raise InstanceInvalidState(
                f"Compute service of host {inst.host} of instance {inst.uuid} is "
                "unavailable at this time.")

    async def live_migrate(self, ctx: RequestContext, uuid: str, host: str | None = None,
                           block_migration: bool = False) -> None:
        """Move a running (or paused) instance to ``host``, or where the scheduler says,
        without stopping it."""
        inst = await self.get(ctx, uuid)
        self.policy.authorize("os_compute_api:os-migrate-server:migrate_live", ctx,
                              _target(inst))
        self.check_state(inst, "live_migrate")
        await self.require_host_up(inst)
        await self.begin(ctx, uuid, "live_migrate", task_state=states.MIGRATING,
                         record="live-migration")
        await self.rpc.cast("conductor", LiveMigrateInstance(uuid, ctx.request_id, host,
                                                             block_migration))

    async def evacuate(self, ctx: RequestContext, uuid: str, host: str | None = None,
                       admin_password: str | None = None) -> None:
        """Rebuild an instance whose host is down on ``host``, or where the scheduler says."""
        inst = await self.get(ctx, uuid)
        self.policy.authorize("os_compute_api:os-evacuate", ctx, _target(inst))
        self.check_state(inst, "evacuate")
        assert inst.host is not None  # the rule needs a host
        if host is not None and host == inst.host:
            raise InvalidInput("The target host can't be the same one.")
        if await self.host_is_up(inst.host):
            raise InstanceInvalidState(f"Compute service of {inst.host} is still in use.")
        await self.begin(ctx, uuid, "evacuate", task_state=states.REBUILDING)
        await self.rpc.cast("conductor", EvacuateInstance(uuid, ctx.request_id, host,
                                                          admin_password))

    async def rebuild(self, ctx: RequestContext, uuid: str, image_ref: str,
                      name: str | None = None, metadata: Mapping[str, str] | None = None,
                      admin_password: str | None = None) -> InstanceRecord:
        """Re-create an instance's guest from ``image_ref`` on its host (its disk is lost);
        ``name`` and ``metadata``, if given, replace the instance's. Returns the record,
        in ``rebuilding``."""
        if not image_ref:
            raise InvalidInput("Invalid imageRef provided.")
        inst = await self.get(ctx, uuid)
        self.check_lock(ctx, inst)
        self.check_state(inst, "rebuild")
        await self.require_host_up(inst)
        changes: dict[str, Any] = {"image_ref": image_ref}
        if name is not None:
            changes["display_name"] = name
        if metadata is not None:
            changes["metadata"] = dict(metadata)
        inst = await self.begin(ctx, uuid, "rebuild", task_state=states.REBUILDING, **changes)
        assert inst.host is not None
        await self.cast_compute(inst.host, RebuildInstance(
            uuid, ctx.request_id, image_ref=image_ref, admin_password=admin_password))
        return inst
