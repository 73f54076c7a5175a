"""The conductor's unshelve: schedule and claim a host for a shelved-offloaded instance.

An offloaded instance holds no host and nothing in placement. Unshelving it
asks the scheduler for a host for its flavor (with its image properties, its
server group and the availability zone asked for, if any), which claims the
resources for the instance; the instance is recorded on that host and the
host's compute spawns it from its shelved image. When no host can take it, the
instance stays ``shelved_offloaded`` with no task, and the fault says why (the
user may try again later).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from nimbus.core.compute import states
from nimbus.core.compute.messages import compute_topic
from nimbus.core.compute.shelve import UnshelveInstance as UnshelveOnHost
from nimbus.core.conductor.base import ConductorBase, instance_request
from nimbus.core.errors import ConflictError, NimbusError, NotFound, NoValidHost, describe
from nimbus.core.messages import message
from nimbus.core.service import endpoint

log = logging.getLogger(__name__)

#: The conductor's step of an unshelve, as Nova names its event.
SCHEDULE_EVENT = "schedule_instances"


@message("conductor.unshelve_instance")
@dataclass(frozen=True, slots=True)
class UnshelveInstance:
    """Find a host for a shelved-offloaded instance (task ``unshelving``) and unshelve
    it there; ``availability_zone``, if given, is where it must land."""

    instance_uuid: str
    request_id: str
    availability_zone: str | None = None


class UnshelveTasks(ConductorBase):
    """Unshelving offloaded instances (see the module docstring)."""

    @endpoint(UnshelveInstance)
    async def unshelve_instance(self, msg: UnshelveInstance) -> None:
        """Schedule (and claim) a host for the instance and send it the unshelve."""
        uuid, rid = msg.instance_uuid, msg.request_id
        await self.event(uuid, rid, SCHEDULE_EVENT, start=True)
        try:
            inst = await self.store.get_instance(uuid)
        except NotFound:
            return  # deleted meanwhile, its action with it
        try:
            spec = instance_request(inst, group=await self.group_of(uuid),
                                    availability_zone=msg.availability_zone)
            host = (await self.select_destinations(spec)).selections[0].host
        except Exception as exc:
            if not isinstance(exc, NimbusError):
                log.exception("scheduling the unshelve of %s failed", uuid)
            await self.event(uuid, rid, SCHEDULE_EVENT, error=exc)
            await self._stay_offloaded(uuid, exc)
            return
        changes: dict[str, Any] = {} if msg.availability_zone is None else {
            "availability_zone": msg.availability_zone}
        try:
            await self.store.update_instance(
                uuid, now=self.wall(), host=host, node=host,
                expected_task_states=[states.UNSHELVING],
                expected_vm_states=[states.SHELVED_OFFLOADED], **changes)
        except (NotFound, ConflictError) as exc:
            # deleted while it was scheduled: the delete freed nothing of this new claim
            log.info("unshelve of %s dropped before it reached %s: %s", uuid, host, exc)
            await self.free(uuid)
            await self.event(uuid, rid, SCHEDULE_EVENT, error=exc)
            return
        await self.event(uuid, rid, SCHEDULE_EVENT)
        await self.rpc.cast(compute_topic(host), UnshelveOnHost(uuid, rid))

    async def _stay_offloaded(self, uuid: str, error: BaseException) -> None:
        """No host for it: the instance stays offloaded, idle, with the fault recorded."""
        text = describe(error)
        if isinstance(error, NoValidHost) and not text.startswith("No valid host"):
            text = f"No valid host was found. {text}"
        now = self.wall()
        try:
            await self.add_fault(uuid, error, text)
            await self.store.update_instance(uuid, now=now, task_state=None,
                                             expected_task_states=[states.UNSHELVING])
        except (NotFound, ConflictError) as exc:
            log.info("unshelve of %s: failure not recorded: %s", uuid, exc)
