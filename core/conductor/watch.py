"""The conductor's watch over builds that can no longer finish.

Every ``watch_interval`` seconds:

* each compute service that is down (not heard from for ``service_down_time``, or
  forced down by an operator) is looked at: its instances still ``building`` since
  before the host went down (or for longer than ``service_down_time``) will never be
  built by it. They go to ERROR with a fault naming the host, on no host, and their
  allocations are freed, as a build that failed on every host. If the host comes
  back, its ``init_host`` destroys any guest it had started for them.
* an instance ``building`` on no host (being scheduled or rescheduled) for longer
  than ``build_timeout`` lost its request on the way (a conductor or scheduler
  restart): ERROR with a fault, allocations freed.

Every write is conditional on the instance still building, so a build that ends
meanwhile wins.
"""

from __future__ import annotations

import logging

from nimbus.core.compute import states
from nimbus.core.conductor.base import ConductorBase
from nimbus.core.db.services import ServiceRecord
from nimbus.core.errors import ConflictError, NimbusError, NotFound
from nimbus.core.service import periodic

log = logging.getLogger(__name__)

#: The task states of a build that a compute host carries out.
HOST_BUILD_TASKS: tuple[str | None, ...] = (
    None, states.SCHEDULING, states.BLOCK_DEVICE_MAPPING, states.NETWORKING, states.SPAWNING)


class WatchTasks(ConductorBase):
    """The conductor's watch over stuck builds (see the module docstring)."""

    @periodic("watch_interval")
    async def watch_builds(self) -> None:
        """Fail the builds on hosts that are down, and builds lost before any host."""
        now = self.wall()
        for svc in await self.store.list_services(binary=self.config.compute_binary):
            if not svc.is_up(now, self.config.service_down_time):
                await self.fail_builds_on(svc, now)
        await self.fail_lost_builds(now)

    async def fail_builds_on(self, svc: ServiceRecord, now: float) -> int:
        """Fail the builds stuck on the down host of ``svc``; how many."""
        down_time = self.config.service_down_time
        # when the host was declared down; an operator's word is taken as of now
        went_down = now if svc.forced_down else (svc.last_seen_up or now) + down_time
        cutoff = max(went_down, now - down_time)
        failed = 0
        for inst in await self.store.instances_by_host(svc.host):
            if (inst.vm_state == states.BUILDING and inst.task_state in HOST_BUILD_TASKS
                    and (inst.updated_at or 0.0) <= cutoff):
                failed += await self.fail_build(
                    inst.uuid, HOST_BUILD_TASKS,
                    NimbusError(f"compute host {svc.host} went down during the build of "
                                f"instance {inst.uuid}"))
        return failed

    async def fail_lost_builds(self, now: float) -> int:
        """Fail the builds on no host older than ``build_timeout``; how many."""
        limit = self.config.build_timeout
        failed = 0
        for inst in await self.store.list_instances(vm_states=[states.BUILDING],
                                                    changes_before=now - limit):
            if inst.host is None and inst.task_state in (None, states.SCHEDULING):
                failed += await self.fail_build(
                    inst.uuid, (None, states.SCHEDULING),
                    NimbusError(f"Build of instance {inst.uuid} timed out: it found no host "
                                f"within {limit:g} seconds"))
        return failed

    async def fail_build(self, uuid: str, tasks: tuple[str | None, ...],
                         error: NimbusError) -> int:
        """ERROR on no host with ``error`` as the fault and allocations freed, if the
        instance is still building in one of ``tasks``; 1 if it was failed, else 0."""
        now = self.wall()
        try:
            await self.store.update_instance(
                uuid, now=now, vm_state=states.ERROR, task_state=None, host=None, node=None,
                expected_vm_states=[states.BUILDING], expected_task_states=list(tasks))
        except (NotFound, ConflictError):
            return 0  # built, deleted or rescheduled meanwhile
        log.warning("%s", error.message)
        try:
            await self.store.add_instance_fault(uuid, code=error.status, message=error.message,
                                                now=now, host=self.host)
        except NotFound:
            pass
        await self.free(uuid)
        self.ctx.metrics.builds.labels("error").inc()
        return 1
