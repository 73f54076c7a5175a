"""The conductor's resize and cold migration: schedule, migration record, allocations.

``migrate_server`` takes an instance the API left in ``resize_prep``: it
records the migration (``resize``, or ``migration`` for a cold migration,
``pre-migrating``), gives the instance's allocation on its source host to the
migration's uuid (placement's bookkeeping for moves since Nova's Queens), and
asks the scheduler for a destination for the new flavor, which claims it for
the instance. The source is not a candidate, unless a resize may stay there
(``allow_resize_to_same_host``); a migration to a named host considers only that
host (every other one is ignored), still through the filters, as Nova does.
Then the destination's compute takes over (:mod:`nimbus.core.compute.moves`).

If no host can take it, the move is abandoned: the source allocation goes back
to the instance, the migration is ``error``, the fault is recorded and the
instance is idle again in the vm_state it had.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from nimbus.core.compute import states
from nimbus.core.compute.base import hand_over
from nimbus.core.compute.messages import compute_topic
from nimbus.core.compute.moves import PrepResize
from nimbus.core.conductor.base import ConductorBase, instance_request
from nimbus.core.db.instance_migrations import MigrationRecord
from nimbus.core.db.instance_schema import InstanceRecord
from nimbus.core.errors import NimbusError, NotFound
from nimbus.core.messages import message
from nimbus.core.service import endpoint

log = logging.getLogger(__name__)

MIGRATE_EVENT = "conductor_migrate_server"


@message("conductor.migrate_server")
@dataclass(frozen=True, slots=True)
class MigrateServer:
    """Resize an instance to ``flavor``, or cold-migrate it (``flavor`` None), to a host
    the scheduler picks, or to ``host`` when an admin named one."""

    instance_uuid: str
    request_id: str
    flavor: dict[str, Any] | None = None
    host: str | None = None


class MoveTasks(ConductorBase):
    """Resize and cold migration (see the module docstring)."""

    @endpoint(MigrateServer)
    async def migrate_server(self, msg: MigrateServer) -> None:
        """Record the move, hand the source allocation to it, choose and claim a
        destination, and send the move there; abandon it if no host can take it."""
        uuid, rid = msg.instance_uuid, msg.request_id
        await self.event(uuid, rid, MIGRATE_EVENT, start=True)
        try:
            inst = await self.store.get_instance(uuid)
        except NotFound:
            return
        if inst.task_state != states.RESIZE_PREP or inst.host is None:
            log.info("move of %s dropped: it is %s/%s on %s", uuid, inst.vm_state,
                     inst.task_state, inst.host)
            return
        resize = msg.flavor is not None
        mig = await self.store.create_migration(
            uuid=self.runtime.new_id(), instance_uuid=uuid, now=self.wall(),
            migration_type="resize" if resize else "migration", status="pre-migrating",
            source_compute=inst.host, source_node=inst.node or inst.host,
            user_id=inst.user_id, project_id=inst.project_id)
        try:
            await hand_over(self.store, uuid, mig.uuid, self.wall())
            spec = instance_request(
                inst, flavor=msg.flavor or inst.flavor, group=await self.group_of(uuid),
                ignore_hosts=await self._ignored(inst.host, resize, msg.host))
            dest = (await self.select_destinations(spec)).selections[0].host
            mig = await self.store.update_migration(
                mig.id, now=self.wall(), dest_compute=dest, dest_node=dest,
                expected_statuses=["pre-migrating"])
        except Exception as exc:
            await self._abandon(inst, mig, exc)
            await self.event(uuid, rid, MIGRATE_EVENT, error=exc)
            return
        await self.event(uuid, rid, MIGRATE_EVENT)
        await self.rpc.cast(compute_topic(dest), PrepResize(uuid, rid, mig.id))

    async def _ignored(self, source: str, resize: bool, target: str | None) -> tuple[str, ...]:
        """The hosts the scheduler must not pick for this move."""
        if target is not None:  # only the named host (a rare admin action: a list is fine)
            nodes = await self.store.list_compute_nodes()
            return tuple(sorted({n.host for n in nodes} - {target}))
        if resize and self.config.allow_resize_to_same_host:
            return ()
        return (source,)

    async def _abandon(self, inst: InstanceRecord, mig: MigrationRecord,
                       error: BaseException) -> None:
        """Undo a resize or migration that reached no host (see ``abandon``); the new
        flavor is dropped too."""
        if not isinstance(error, NimbusError):
            log.exception("move of %s failed", inst.uuid)
        await self.abandon(inst, mig, error, states.RESIZE_PREP, new_flavor=None)
