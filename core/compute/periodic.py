"""Compute's periodic tasks: power states, placement healing, build timeouts, reclaim.

* ``sync_power_states`` (every ``sync_power_state_interval``): for each idle instance
  here, the guest's power state is written to the record when they differ; a guest
  that stopped (or crashed, or suspended) by itself while the instance is ``active``
  is stopped through a ``stop`` action, as Nova's calls its stop API, and so is a
  guest running while the instance is ``stopped``; a guest gone missing is recorded
  as a fault (the vm_state stays: the hypervisor may be restarting).
* ``heal_allocations`` (every ``update_resources_interval``): placement is made to
  match the host, as Nova's resource tracker and ``heal_allocations`` do. An idle
  instance here without an allocation on this node gets one for its flavor; an
  allocation on this node whose consumer is neither an instance here, a move in
  progress through here, nor a build or action under way is removed. Guests nobody
  owns are destroyed on the way.
* ``check_build_timeout`` (every ``periodic_interval``, when ``instance_build_timeout``
  is set): builds here older than it fail.
* ``reclaim_queued_deletes`` (every ``periodic_interval``, when
  ``reclaim_instance_interval`` is set): instances soft-deleted longer ago than it are
  deleted for good.
"""

from __future__ import annotations

import logging
import math

from nimbus.core.compute import states
from nimbus.core.compute.repair import Repair, soft_deleted_since
from nimbus.core.db.instance_schema import InstanceRecord
from nimbus.core.errors import CapacityExceeded, ConflictError, NimbusError, NotFound
from nimbus.core.service import periodic

log = logging.getLogger(__name__)

STOP_EVENT = "compute_stop_instance"

#: vm_state -> the power states of its guest that make Nova stop the instance.
STOP_WHEN = {
    states.ACTIVE: frozenset({states.SHUTDOWN, states.CRASHED, states.POWER_SUSPENDED}),
    states.STOPPED: frozenset({states.RUNNING, states.POWER_PAUSED, states.POWER_SUSPENDED}),
    states.PAUSED: frozenset({states.SHUTDOWN, states.CRASHED}),
}
#: vm_states whose instance has a guest on its host: a missing one is a fault.
HAS_GUEST = frozenset({states.ACTIVE, states.STOPPED, states.PAUSED, states.SUSPENDED,
                       states.RESCUED, states.RESIZED, states.SOFT_DELETED, states.SHELVED})


def flavor_resources(inst: InstanceRecord) -> dict[str, int]:
    """What an instance's flavor takes of placement, as the scheduler claims it."""
    fl = inst.flavor
    disk = (int(fl.get("root_gb", inst.root_gb)) + int(fl.get("ephemeral_gb") or 0)
            + math.ceil(int(fl.get("swap") or 0) / 1024))
    asked = {"VCPU": int(fl.get("vcpus", inst.vcpus)),
             "MEMORY_MB": int(fl.get("memory_mb", inst.memory_mb)), "DISK_GB": disk}
    return {rc: n for rc, n in asked.items() if n}


class PeriodicTasks(Repair):
    """The periodic tasks of compute (see the module docstring)."""

    # -- power states ------------------------------------------------------------------------
    @periodic("sync_power_state_interval")
    async def sync_power_states(self) -> None:
        """Compare each idle instance's record with its guest's power state."""
        if self.node is None:
            return
        for inst in await self.db.instances_by_host(self.host):
            if inst.task_state is not None or inst.vm_state == states.BUILDING:
                continue  # an action under way owns the instance
            try:
                await self.sync_power_state(inst)
            except NimbusError as exc:
                log.warning("%s: power state sync of %s failed: %s", self.host, inst.uuid, exc)

    async def sync_power_state(self, inst: InstanceRecord) -> None:
        """Bring one instance's record in line with its guest (see the module docstring)."""
        uuid, vm = inst.uuid, inst.vm_state
        power = await self.power_state_of(uuid)
        if power != inst.power_state:
            try:
                await self.db.update_instance(uuid, now=self.wall(), power_state=power,
                                              expected_task_states=[None],
                                              expected_vm_states=[vm])
            except (NotFound, ConflictError):
                return  # an action started meanwhile: it writes the power state
            if power == states.NOSTATE and vm in HAS_GUEST:
                await self.add_fault(uuid, NimbusError(
                    f"Instance {uuid} has no guest on compute host {self.host}"))
        if power in STOP_WHEN.get(vm, ()):
            log.warning("%s: %s is %s with its guest %s: stopping it", self.host, uuid, vm,
                        states.POWER_STATE_NAMES.get(power, power))
            await self.stop_by_itself(inst)

    async def stop_by_itself(self, inst: InstanceRecord) -> None:
        """Stop an instance whose guest went its own way, as a recorded ``stop`` action."""
        uuid = inst.uuid
        try:
            await self.db.update_instance(uuid, now=self.wall(), task_state=states.POWERING_OFF,
                                          expected_task_states=[None],
                                          expected_vm_states=[inst.vm_state])
        except (NotFound, ConflictError):
            return
        request_id = f"req-{self.runtime.new_id()}"
        try:
            await self.db.start_action(uuid, action="stop", request_id=request_id,
                                       user_id=None, project_id=None, now=self.wall())
        except NotFound:
            pass
        async with self.acting(uuid, request_id, STOP_EVENT,
                               revert_task_states=[states.POWERING_OFF]):
            await self.driver.power_off(uuid)
            await self.db.update_instance(uuid, now=self.wall(), vm_state=states.STOPPED,
                                          task_state=None, power_state=states.SHUTDOWN,
                                          expected_task_states=[states.POWERING_OFF])

    # -- placement healing -----------------------------------------------------------------
    @periodic("update_resources_interval", jitter=5.0)
    async def heal_allocations(self) -> None:
        """Make placement's allocations on this node match the instances here."""
        if self.node is None:
            return
        await self.destroy_orphans()
        changed = await self.heal_placement()
        if changed:
            log.info("%s: healed %d allocation(s)", self.host, changed)
            self.after_instance_change()

    async def heal_placement(self) -> int:
        """Claim for instances here holding nothing here; drop allocations here of
        consumers that should hold none. How many consumers changed."""
        provider = self.node_uuid
        held = await self.db.allocations_for_provider(provider)
        here = {i.uuid: i for i in await self.db.instances_by_host(self.host)}
        moving = await self.db.in_progress_migrations_by_host(self.host)
        migrations = {m.uuid for m in moving}
        moving_instances = {m.instance_uuid for m in moving}
        changed = 0
        for inst in here.values():
            if (inst.uuid not in held and inst.uuid not in moving_instances
                    and inst.task_state is None
                    and inst.vm_state not in (states.BUILDING, states.SHELVED_OFFLOADED)):
                changed += await self._claim_here(inst, provider)
        for consumer in held:
            if consumer in here or consumer in migrations or consumer in moving_instances:
                continue
            if await self._stray(consumer):
                changed += await self._drop_here(consumer, provider)
        return changed

    async def _claim_here(self, inst: InstanceRecord, provider: str) -> int:
        held = await self.db.get_allocations(inst.uuid)
        wanted = {**held.allocations, provider: flavor_resources(inst)}
        log.warning("%s: %s holds nothing here: claiming %s", self.host, inst.uuid,
                    wanted[provider])
        try:
            await self.db.claim_allocations(
                inst.uuid, wanted, project_id=inst.project_id, user_id=inst.user_id,
                now=self.wall(), consumer_generation=held.generation, consumer_type="INSTANCE")
        except (ConflictError, CapacityExceeded, NotFound) as exc:
            log.warning("%s: cannot heal the allocation of %s: %s", self.host, inst.uuid, exc)
            return 0
        return 1

    async def _stray(self, consumer: str) -> bool:
        """True for a consumer that should hold nothing here (this host's instances and
        moves through it are already known to hold their own)."""
        try:
            inst = await self.db.get_instance(consumer, read_deleted=True)
        except NotFound:
            pass
        else:
            # deleted; or idle elsewhere: a build or move that left its claim behind
            return inst.deleted or (inst.host != self.host and inst.task_state is None
                                    and inst.vm_state != states.BUILDING)
        try:
            mig = await self.db.get_migration_by_uuid(consumer)
        except NotFound:
            return True  # nobody: a stray
        return mig.status != "done"  # an evacuation's source holds it until it cleans up

    async def _drop_here(self, consumer: str, provider: str) -> int:
        held = await self.db.get_allocations(consumer)
        rest = {rp: res for rp, res in held.allocations.items() if rp != provider}
        log.warning("%s: removing the stray allocation of %s", self.host, consumer)
        try:
            # only this node's part goes; what the consumer holds elsewhere stays
            await self.db.claim_allocations(
                consumer, rest, project_id=held.project_id or "",
                user_id=held.user_id or held.project_id or "", now=self.wall(),
                consumer_generation=held.generation)
        except (ConflictError, NotFound) as exc:
            log.warning("%s: cannot remove the allocation of %s: %s", self.host, consumer,
                        exc)
            return 0
        return 1

    # -- build timeout and reclaim -------------------------------------------------------------
    @periodic("periodic_interval")
    async def check_build_timeout(self) -> None:
        """Fail the builds here running longer than ``instance_build_timeout`` (0: never)."""
        limit = self.config.instance_build_timeout
        if limit <= 0 or self.node is None:
            return
        now = self.wall()
        for inst in await self.db.instances_by_host(self.host):
            if (inst.vm_state == states.BUILDING and inst.created_at is not None
                    and now - inst.created_at > limit):
                await self.fail_build(inst.uuid, NimbusError(
                    f"Instance {inst.uuid} did not finish building within {limit:g} seconds"))

    @periodic("periodic_interval")
    async def reclaim_queued_deletes(self) -> None:
        """Delete for good the instances soft-deleted longer than
        ``reclaim_instance_interval`` ago (0: deletes are immediate, nothing to do)."""
        interval = self.config.reclaim_instance_interval
        if interval <= 0 or self.node is None:
            return
        now = self.wall()
        for inst in await self.db.instances_by_host(self.host):
            since = soft_deleted_since(inst)
            if inst.task_state is not None or since is None or now - since <= interval:
                continue
            try:  # DELETING keeps a restore from starting under our feet
                await self.db.update_instance(inst.uuid, now=self.wall(),
                                              task_state=states.DELETING,
                                              expected_task_states=[None],
                                              expected_vm_states=[states.SOFT_DELETED])
            except (NotFound, ConflictError):
                continue  # restored or deleted meanwhile
            log.info("%s: reclaiming soft-deleted instance %s", self.host, inst.uuid)
            async with self.instance_lock(inst.uuid):
                try:
                    await self.delete_instance_here(inst.uuid, inst)
                except NimbusError as exc:  # as a failed terminate: ERROR, deletable again
                    await self.add_fault(inst.uuid, exc)
                    await self.set_error(inst.uuid)
            self.after_instance_change()
