"""What every action of the compute API stands on: finding the instance, checking its
state and lock, starting the action (see :mod:`nimbus.core.compute.api`)."""

from __future__ import annotations

from typing import Any

from nimbus.core.compute import states
from nimbus.core.compute.messages import compute_topic
from nimbus.core.context import RequestContext
from nimbus.core.db.instance_schema import InstanceRecord
from nimbus.core.db.store import Store
from nimbus.core.errors import InstanceInvalidState, InstanceLocked, NotFound, UnexpectedStateError
from nimbus.core.policy import DEFAULT_POLICY, Policy
from nimbus.core.rpc import RpcEndpoint
from nimbus.core.runtime import Runtime


class ApiBase:
    """Finding instances, checking states and locks, starting actions."""

    def __init__(self, store: Store, rpc: RpcEndpoint, runtime: Runtime, *,
                 service_down_time: float = 60.0,
                 compute_binary: str = "nimbus-compute",
                 reclaim_instance_interval: float = 0.0,
                 policy: Policy = DEFAULT_POLICY) -> None:
        self.store = store
        #: the rules the role checks here obey (who sees every project, who ignores
        #: locks, live migration, evacuation)
        self.policy = policy
        self.rpc = rpc
        self.runtime = runtime
        self.service_down_time = service_down_time
        self.compute_binary = compute_binary
        #: above 0, deletes are soft (restorable until the host reclaims them)
        self.reclaim_instance_interval = reclaim_instance_interval

    def is_admin(self, ctx: RequestContext) -> bool:
        """Whether the policy's ``context_is_admin`` makes the caller an administrator
        (sees every project's instances, acts on locked ones), as Nova's context is."""
        return self.policy.allows("context_is_admin", ctx)

    def wall(self) -> float:
        """Seconds since the epoch as the Runtime tells it."""
        return self.runtime.wall_time()

    async def get(self, ctx: RequestContext, uuid: str) -> InstanceRecord:
        """An instance the caller may see; ``NotFound`` for another project's (non-admin)."""
        inst = await self.store.get_instance(uuid)
        if inst.project_id != ctx.project_id and not self.is_admin(ctx):
            raise NotFound(f"Instance {uuid} could not be found.")
        return inst

    def check_lock(self, ctx: RequestContext, inst: InstanceRecord) -> None:
        """``InstanceLocked`` if the instance is locked and the caller is not an admin."""
        if inst.locked and not self.is_admin(ctx):
            raise InstanceLocked(f"Instance {inst.uuid} is locked")

    @staticmethod
    def check_state(inst: InstanceRecord, action: str) -> states.ActionRule:
        """``InstanceInvalidState`` unless ``action`` may start in the instance's states."""
        rule = states.RULES[action]
        if (inst.vm_state not in rule.vm_states or inst.task_state not in rule.task_states
                or (rule.needs_host and inst.host is None)):
            raise InstanceInvalidState(
                f"Cannot '{action}' instance {inst.uuid} while it is in vm_state "
                f"{inst.vm_state}, task_state {inst.task_state}")
        return rule

    async def begin(self, ctx: RequestContext, uuid: str, action: str, *,
                    task_state: str | None, record: str | None = None,
                    check_lock: bool = True, **changes: Any) -> InstanceRecord:
        """Start ``action`` on an instance: visible, unlocked, in an accepted state; set
        ``task_state`` (and ``changes``) conditionally and record the instance action
        ``record`` (default: ``action``). Returns the instance as it is now."""
        inst = await self.get(ctx, uuid)
        if check_lock:
            self.check_lock(ctx, inst)
        rule = self.check_state(inst, action)
        try:
            inst = await self.store.update_instance(
                uuid, now=self.wall(), task_state=task_state,
                expected_task_states=list(rule.task_states),
                expected_vm_states=list(rule.vm_states), **changes)
        except UnexpectedStateError as exc:  # another action got there first
            raise InstanceInvalidState(
                f"Cannot '{action}' instance {uuid}: {exc.message}") from None
        await self.record_action(ctx, uuid, record or action)
        return inst

    async def record_action(self, ctx: RequestContext, uuid: str, action: str) -> None:
        """Record the instance action of this request."""
        await self.store.start_action(uuid, action=action, request_id=ctx.request_id,
                                      user_id=ctx.user_id, project_id=ctx.project_id,
                                      now=self.wall())

    async def host_is_up(self, host: str) -> bool:
        """Whether the compute service of ``host`` is up (heard from, not forced down)."""
        svc = await self.store.service_by_host_binary(host, self.compute_binary)
        return svc is not None and svc.is_up(self.wall(), self.service_down_time)

    async def cast_compute(self, host: str, msg: object) -> None:
        """Send ``msg`` to the compute service of ``host``."""
        await self.rpc.cast(compute_topic(host), msg)
