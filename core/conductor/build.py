"""The conductor's builds: schedule, hand each instance to its host, reschedule on failure.

``build_instances`` asks the scheduler to place (and claim) every instance of
a request, then casts each to its host's compute with that host's
alternates. An instance the scheduler could not place goes to ERROR with a
"No valid host" fault naming how many hosts each filter removed.

``reschedule_instance`` runs when a build failed on a host: the instance's
claim moves to the next alternate that still has room (placement decides), and
the build goes there; once the alternates or ``max_attempts`` are used up the
instance goes to ERROR and its allocations are freed.

Messages may arrive twice (a broker redelivers what it is not sure was taken),
so both take up only an instance still waiting for a host: ``building``,
``scheduling``, on no host. A copy that finds it scheduled, failed or deleted
leaves it alone; a copy that overtakes that check meets the scheduler's
:class:`~nimbus.core.scheduler.placement_claimer.AlreadyClaimed` (the instance
holds its claim already) and leaves it alone too.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from nimbus.core.compute import states
from nimbus.core.compute.messages import (
    BuildAndRunInstance,
    BuildInstances,
    RescheduleInstance,
    compute_topic,
)
from nimbus.core.conductor.base import ConductorBase
from nimbus.core.errors import ConflictError, NimbusError, NotFound, NoValidHost
from nimbus.core.scheduler.placement_claimer import AlreadyClaimed
from nimbus.core.scheduler.request import RequestSpec
from nimbus.core.service import endpoint

log = logging.getLogger(__name__)

SCHEDULE_EVENT = "conductor_schedule_and_build_instances"


class MaxRetriesExceeded(NoValidHost):
    """Every host tried for a build failed it (Nova's ``MaxRetriesExceeded``)."""


def one_instance(spec: RequestSpec, uuid: str) -> RequestSpec:
    """The part of a multi-instance request that concerns one instance."""
    return replace(spec, num_instances=1, min_count=None, instance_uuids=(uuid,))


class BuildTasks(ConductorBase):
    """Builds and reschedules (see the module docstring)."""

    @endpoint(BuildInstances)
    async def build_instances(self, msg: BuildInstances) -> None:
        """Place the request's instances that still wait for a host and send each to
        its host."""
        rid = msg.request_id
        spec = await self._waiting_part(msg.spec)
        if spec is None:
            return
        for uuid in spec.instance_uuids:
            await self.event(uuid, rid, SCHEDULE_EVENT, start=True)
        try:
            destinations = await self.select_destinations(spec)
        except AlreadyClaimed as exc:  # another copy of the request placed them
            log.info("build request %s served already: %s", rid, exc)
            return
        except NimbusError as exc:
            if not isinstance(exc, NoValidHost):
                log.warning("scheduling %s failed: %s", rid, exc)
            for uuid in spec.instance_uuids:
                await self.event(uuid, rid, SCHEDULE_EVENT, error=exc)
                await self.fail_instance(uuid, _no_valid_host(exc))
            self.ctx.metrics.builds.labels("error").inc(len(spec.instance_uuids))
            return
        placed = {s.instance_uuid: s for s in destinations.selections}
        for uuid in spec.instance_uuids:
            selection = placed.get(uuid)
            if selection is None:  # min_count let the request through without it
                missing = NoValidHost("No valid host was found. There are not enough "
                                      "hosts available.")
                await self.event(uuid, rid, SCHEDULE_EVENT, error=missing)
                await self.fail_instance(uuid, missing)
                self.ctx.metrics.builds.labels("error").inc()
                continue
            await self.event(uuid, rid, SCHEDULE_EVENT)
            await self.send_build(one_instance(spec, uuid), uuid, rid, selection.host,
                                  selection.alternates, 1, msg.admin_password)

    async def _waiting_part(self, spec: RequestSpec) -> RequestSpec | None:
        """``spec`` for its instances that still wait for a host; None if none does."""
        waiting = [uuid for uuid in spec.instance_uuids if await self._waiting(uuid)]
        if len(waiting) == len(spec.instance_uuids):
            return spec
        if not waiting:
            return None
        least = None if spec.min_count is None else min(spec.min_count, len(waiting))
        return replace(spec, num_instances=len(waiting), min_count=least,
                       instance_uuids=tuple(waiting))

    async def _waiting(self, uuid: str) -> bool:
        """Whether the instance waits for a host (building, scheduling, on none)."""
        try:
            inst = await self.store.get_instance(uuid)
        except NotFound:
            return False  # deleted: nothing to place
        if (inst.vm_state, inst.task_state, inst.host) == (states.BUILDING,
                                                           states.SCHEDULING, None):
            return True
        log.info("%s is not scheduled again: it is %s/%s on %s (a redelivered message)",
                 uuid, inst.vm_state, inst.task_state, inst.host)
        return False

    async def send_build(self, spec: RequestSpec, uuid: str, request_id: str, host: str,
                         alternates: tuple[str, ...], attempt: int,
                         admin_password: str | None) -> None:
        """Record the instance on ``host`` (claimed there already) and cast it the build."""
        try:
            await self.store.update_instance(
                uuid, now=self.wall(), host=host, node=host, scheduled_at=self.wall(),
                expected_task_states=[states.SCHEDULING], expected_vm_states=[states.BUILDING])
        except (NotFound, ConflictError) as exc:
            log.info("build of %s dropped before it reached %s: %s", uuid, host, exc)
            await self._free_if_deleted(uuid)
            return
        await self.rpc.cast(compute_topic(host), BuildAndRunInstance(
            uuid, request_id, spec, alternates, attempt, admin_password))

    @endpoint(RescheduleInstance)
    async def reschedule_instance(self, msg: RescheduleInstance) -> None:
        """Move a failed build to the next alternate with room, or fail it."""
        uuid, attempt = msg.instance_uuid, msg.attempt
        if not await self._waiting(uuid):
            return
        alternates = list(msg.alternates)
        while alternates and attempt < self.config.max_attempts:
            host = alternates.pop(0)
            attempt += 1
            try:
                await self.claim_on(host, uuid, msg.spec)
            except NimbusError as exc:
                if not self.retryable_claim_error(exc):
                    raise
                log.info("reschedule of %s: alternate %s refused: %s", uuid, host, exc)
                continue
            await self.send_build(msg.spec, uuid, msg.request_id, host, tuple(alternates),
                                  attempt, msg.admin_password)
            return
        error = MaxRetriesExceeded(
            f"Exceeded maximum number of retries. Exhausted all hosts available for "
            f"retrying build failures for instance {uuid}. Last failure on "
            f"{msg.failed_host}: {msg.reason}")
        self.ctx.metrics.builds.labels("error").inc()
        await self.fail_instance(uuid, error, host=None, node=None)

    async def _free_if_deleted(self, uuid: str) -> None:
        try:
            await self.store.get_instance(uuid)
        except NotFound:
            await self.free(uuid)


def _no_valid_host(exc: NimbusError) -> NimbusError:
    if isinstance(exc, NoValidHost):
        text = exc.message
        if not text.startswith("No valid host"):
            text = f"No valid host was found. {text}"
        return NoValidHost(text)
    return exc
