"""Compute's build and delete: spawn what the scheduler placed here, destroy what is deleted.

A build takes the instance from ``building``/``scheduling`` to ``spawning`` and
then ``active``. If the driver fails, the guest is cleaned up and the build
goes back to the conductor with the remaining alternates (a reschedule); the
conductor sends it to the next one, or, with none left, puts the instance in
ERROR with the fault recorded and its allocations freed. A delete that arrives
while the build runs waits for the instance lock and then destroys whatever the
build left.

A build message may arrive twice. The copy waits for the instance lock and
then finds the instance past ``scheduling`` (spawning, active, in error or
deleted) and leaves it. The one case that state cannot tell is a build that
failed here: the instance is back in ``scheduling`` for its reschedule, so the
host remembers the builds it failed and drops a copy of one of them.
"""

from __future__ import annotations

import logging

from nimbus.core.compute import states
from nimbus.core.compute.base import ComputeBase, guest_spec
from nimbus.core.compute.config import ComputeConfig
from nimbus.core.compute.driver import HypervisorDriver
from nimbus.core.compute.messages import BuildAndRunInstance, RescheduleInstance, TerminateInstance
from nimbus.core.errors import ConflictError, NimbusError, NotFound
from nimbus.core.service import ServiceContext, endpoint

log = logging.getLogger(__name__)

BUILD_EVENT = "compute_build_and_run_instance"
TERMINATE_EVENT = "compute_terminate_instance"

#: How many failed builds a host remembers (a redelivered copy comes soon after).
FAILED_BUILDS_KEPT = 1024

#: One build message: instance uuid, request id, attempt.
BuildKey = tuple[str, str, int]


def build_key(msg: BuildAndRunInstance) -> BuildKey:
    """What tells one build message from another (a reschedule is a new attempt)."""
    return msg.instance_uuid, msg.request_id, msg.attempt


class BuildActions(ComputeBase):
    """Build and terminate (see the module docstring)."""

    def __init__(self, ctx: ServiceContext, driver: HypervisorDriver,
                 config: ComputeConfig | None = None) -> None:
        super().__init__(ctx, driver, config)
        #: builds that failed here, oldest first (a dict as an ordered set)
        self._failed_here: dict[BuildKey, None] = {}

    @endpoint(BuildAndRunInstance)
    async def build_and_run_instance(self, msg: BuildAndRunInstance) -> None:
        """Spawn the instance here; reschedule or fail it if the driver cannot."""
        uuid = msg.instance_uuid
        async with self.instance_lock(uuid):
            if build_key(msg) in self._failed_here:
                log.info("%s: build of %s failed here already: copy dropped", self.host, uuid)
                return
            try:
                inst = await self.db.update_instance(
                    uuid, now=self.wall(), task_state=states.SPAWNING, host=self.host,
                    node=self.host, launched_on=self.host,
                    expected_task_states=[states.SCHEDULING, None],
                    expected_vm_states=[states.BUILDING])
            except (NotFound, ConflictError) as exc:
                # deleted (or being deleted) while it was scheduled: the delete frees it
                log.info("%s: build of %s abandoned: %s", self.host, uuid, exc)
                await self._free_if_deleted(uuid)
                return
            await self.start_event(uuid, msg.request_id, BUILD_EVENT)
            try:
                await self.driver.spawn(guest_spec(inst), admin_password=msg.admin_password)
            except Exception as exc:
                await self.finish_event(uuid, msg.request_id, BUILD_EVENT, error=exc)
                await self._build_failed(msg, exc)
                return
            try:
                await self.db.update_instance(
                    uuid, now=self.wall(), vm_state=states.ACTIVE, task_state=None,
                    power_state=states.RUNNING, launched_at=self.wall(),
                    expected_task_states=[states.SPAWNING])
            except (NotFound, ConflictError) as exc:
                log.info("%s: %s changed while spawning (%s); the delete cleans up",
                         self.host, uuid, exc)
            else:
                metrics = self.ctx.metrics
                metrics.builds.labels("active").inc()
                if inst.created_at is not None:
                    metrics.build_latency.observe(max(0.0, self.wall() - inst.created_at))
            await self.finish_event(uuid, msg.request_id, BUILD_EVENT)
        self.after_instance_change()

    async def _build_failed(self, msg: BuildAndRunInstance, exc: Exception) -> None:
        uuid = msg.instance_uuid
        log.info("%s: build of %s failed (attempt %d): %s", self.host, uuid, msg.attempt, exc)
        self._failed_here[build_key(msg)] = None
        if len(self._failed_here) > FAILED_BUILDS_KEPT:
            del self._failed_here[next(iter(self._failed_here))]
        try:
            await self.driver.destroy(uuid)
        except NimbusError as cleanup:
            log.warning("%s: cleaning up %s after a failed build: %s", self.host, uuid, cleanup)
        reason = exc.message if isinstance(exc, NimbusError) else f"{type(exc).__name__}: {exc}"
        # the conductor decides: the next alternate, or ERROR once none is left
        try:
            await self.db.update_instance(
                uuid, now=self.wall(), task_state=states.SCHEDULING, host=None, node=None,
                expected_task_states=[states.SPAWNING])
        except (NotFound, ConflictError):
            await self._free_if_deleted(uuid)
            return
        self.failed_builds += 1
        self.ctx.metrics.builds.labels("rescheduled").inc()
        await self.rpc.cast("conductor", RescheduleInstance(
            uuid, msg.request_id, msg.spec, msg.alternates, msg.attempt, self.host,
            reason, msg.admin_password))

    async def _free_if_deleted(self, uuid: str) -> None:
        try:
            await self.db.get_instance(uuid)
        except NotFound:
            await self.free_allocations(uuid)

    @endpoint(TerminateInstance)
    async def terminate_instance(self, msg: TerminateInstance) -> None:
        """Destroy the guest, free the allocations, and mark the instance deleted."""
        uuid = msg.instance_uuid
        async with self.instance_lock(uuid):
            try:
                inst = await self.db.get_instance(uuid)
            except NotFound:
                await self.driver.destroy(uuid)  # already deleted: make sure nothing runs
                return
            await self.start_event(uuid, msg.request_id, TERMINATE_EVENT)
            try:
                await self.delete_instance_here(uuid, inst)
            except Exception as exc:
                await self.add_fault(uuid, exc)
                await self.set_error(uuid)
                await self.finish_event(uuid, msg.request_id, TERMINATE_EVENT, error=exc)
                return
            await self.finish_event(uuid, msg.request_id, TERMINATE_EVENT)
        self.after_instance_change()
