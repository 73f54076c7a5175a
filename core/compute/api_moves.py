"""The API side of resize, cold migrate, confirm and revert.

A resize or migration is checked here (state, lock, a flavor that changes and
does not shrink the root disk, a target host that exists and is another one),
started in ``resize_prep`` and handed to the conductor, which schedules it (see
:mod:`nimbus.core.conductor.moves`). Confirm and revert act on the instance's
``finished`` migration: moving it to ``confirming``/``reverting`` with a
conditional write is what keeps two of them (or a user's and the automatic
confirm) from both going ahead; the instance's task state stays None during a
confirm, as in Nova, and is ``resize_reverting`` during a revert.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nimbus.core.compute import states
from nimbus.core.compute.api_base import ApiBase
from nimbus.core.compute.moves import ConfirmResize, RevertResize
from nimbus.core.conductor.moves import MigrateServer
from nimbus.core.context import RequestContext
from nimbus.core.db.instance_migrations import MigrationRecord
from nimbus.core.db.instance_schema import InstanceRecord
from nimbus.core.errors import ConflictError, InstanceInvalidState, InvalidInput, NotFound

#: The flavor keys a resize needs (the instance record's flavor columns).
_SIZES = ("vcpus", "memory_mb")
_NEEDED = ("flavorid", *_SIZES, "root_gb")


def checked_flavor(inst: InstanceRecord, flavor: Mapping[str, Any]) -> dict[str, Any]:
    """``flavor`` as a new flavor for ``inst``; ``InvalidInput`` if it is malformed, the
    same flavor, or has a smaller root disk (Nova does not shrink disks)."""
    new = dict(flavor)
    missing = [k for k in _NEEDED if new.get(k) is None]
    if missing:
        raise InvalidInput(f"Invalid flavor for a resize: it lacks {', '.join(missing)}")
    try:
        if min(int(new[k]) for k in _SIZES) < 1 or int(new["root_gb"]) < 0:
            raise ValueError("vcpus and memory_mb must be 1 or more, root_gb 0 or more")
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"Invalid flavor for a resize: {exc}") from None
    old = inst.flavor
    same_id = new.get("flavorid") is not None and new.get("flavorid") == old.get("flavorid")
    if same_id or new == old:
        raise InvalidInput(f"Cannot resize instance {inst.uuid}: the flavor is the same; "
                           "when resizing, instances must change flavor.")
    if int(new["root_gb"]) < inst.root_gb:
        raise InvalidInput(f"Cannot resize instance {inst.uuid} to a smaller root disk "
                           f"({new['root_gb']} GB, it has {inst.root_gb} GB).")
    return new


class MoveApi(ApiBase):
    """The API side of resize, cold migrate, confirm and revert."""

    async def resize(self, ctx: RequestContext, uuid: str, flavor: Mapping[str, Any]) -> None:
        """Resize an ACTIVE or STOPPED instance to ``flavor`` (on another host, unless the
        conductor allows the same one)."""
        inst = await self._checked(ctx, uuid, "resize")
        new = checked_flavor(inst, flavor)
        await self.begin(ctx, uuid, "resize", task_state=states.RESIZE_PREP, new_flavor=new)
        await self.rpc.cast("conductor", MigrateServer(uuid, ctx.request_id, new, None))

    async def migrate(self, ctx: RequestContext, uuid: str, host: str | None = None) -> None:
        """Cold-migrate an ACTIVE or STOPPED instance to another host (``host``, if given:
        it must be a compute host, not the instance's own)."""
        inst = await self._checked(ctx, uuid, "migrate")
        if host is not None:
            if host == inst.host:
                raise InvalidInput(f"Unable to migrate instance ({uuid}) to current host "
                                   f"({host}).")
            if await self.store.service_by_host_binary(host, self.compute_binary) is None:
                raise InvalidInput(f"Compute host {host} could not be found.")
        await self.begin(ctx, uuid, "migrate", task_state=states.RESIZE_PREP)
        await self.rpc.cast("conductor", MigrateServer(uuid, ctx.request_id, None, host))

    async def confirm_resize(self, ctx: RequestContext, uuid: str) -> None:
        """Keep a resized instance as it is: its source host drops what it kept."""
        mig = await self._settling(ctx, uuid, "confirm_resize", "confirming", None,
                                   "confirmResize")
        assert mig.source_compute is not None
        await self.cast_compute(mig.source_compute, ConfirmResize(uuid, ctx.request_id, mig.id))

    async def revert_resize(self, ctx: RequestContext, uuid: str) -> None:
        """Take a resized instance back to its source host and old flavor."""
        mig = await self._settling(ctx, uuid, "revert_resize", "reverting",
                                   states.RESIZE_REVERTING, "revertResize")
        assert mig.dest_compute is not None
        await self.cast_compute(mig.dest_compute, RevertResize(uuid, ctx.request_id, mig.id))

    async def _checked(self, ctx: RequestContext, uuid: str, action: str) -> InstanceRecord:
        inst = await self.get(ctx, uuid)
        self.check_lock(ctx, inst)
        self.check_state(inst, action)
        return inst

    async def _settling(self, ctx: RequestContext, uuid: str, action: str, status: str,
                        task_state: str | None, record: str) -> MigrationRecord:
        """Start a confirm or revert: the finished migration to ``status``, then the
        instance's action (the migration put back if that fails)."""
        await self._checked(ctx, uuid, action)
        try:
            mig = await self.store.migration_by_instance_and_status(uuid, "finished")
        except NotFound:
            raise InvalidInput(f"Migration not found for instance {uuid} with status "
                               "finished.") from None
        try:
            mig = await self.store.update_migration_status(mig.id, status, now=self.wall(),
                                                           expected_statuses=["finished"])
        except ConflictError:  # another confirm or revert got there first
            raise InstanceInvalidState(f"Cannot '{action}' instance {uuid}: its resize is "
                                       "being confirmed or reverted already") from None
        try:
            await self.begin(ctx, uuid, action, task_state=task_state, record=record)
        except Exception:
            await self.store.update_migration_status(mig.id, "finished", now=self.wall(),
                                                     expected_statuses=[status])
            raise
        return mig
