"""A whole cloud in simulation for lifecycle tests: API logic, conductor, scheduler,
computes on fake drivers, the Store on the sim database, the sim transport.

``run(scenario, hosts=3)`` builds it under a SimRuntime and runs
``await scenario(cloud)``; the same seed gives the same run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nimbus.backends.fake import FakeDriver
from nimbus.core.compute.api import ComputeAPI
from nimbus.core.compute.config import ComputeConfig
from nimbus.core.compute.driver import DriverContext
from nimbus.core.compute.manager import ComputeService
from nimbus.core.conductor.config import ConductorConfig
from nimbus.core.conductor.service import ConductorService
from nimbus.core.context import ADMIN, RequestContext
from nimbus.core.db.instance_schema import InstanceRecord
from nimbus.core.db.store import Store
from nimbus.core.errors import NotFound
from nimbus.core.metrics import Metrics
from nimbus.core.rpc import RpcEndpoint
from nimbus.core.scheduler.service import SchedulerService, SchedulerServiceConfig
from nimbus.core.service import ServiceContext
from nimbus.core.transport import Transport
from nimbus.sim.db import SimDatabase
from nimbus.sim.runtime import SimRuntime
from nimbus.sim.transport import SimTransport, constant_latency

FLAVOR = {"flavorid": "1", "name": "m1.small", "vcpus": 1, "memory_mb": 512, "root_gb": 1,
          "ephemeral_gb": 0, "swap": 0, "extra_specs": {}}
BIG = {"flavorid": "2", "name": "m1.big", "vcpus": 2, "memory_mb": 1024, "root_gb": 2,
       "ephemeral_gb": 0, "swap": 0, "extra_specs": {}}


@dataclass
class SimCloud:
    """The services of one simulated cloud and handles on them."""

    rt: SimRuntime
    transport: Transport
    store: Store
    driver_config: Mapping[str, Any]
    compute_config: ComputeConfig
    conductor_config: ConductorConfig
    #: driver settings of particular hosts, over ``driver_config``
    host_driver_config: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    drivers: dict[str, FakeDriver] = field(default_factory=dict)
    computes: dict[str, ComputeService] = field(default_factory=dict)
    scheduler: SchedulerService | None = None
    conductor: ConductorService | None = None
    api: ComputeAPI | None = None
    client: RpcEndpoint | None = None
    user: RequestContext = field(default_factory=lambda: RequestContext("u1", "p1", "req-0"))
    admin: RequestContext = field(
        default_factory=lambda: RequestContext("admin", "admin", "req-0", (ADMIN,)))
    _requests: int = 0

    #: one registry for the whole cloud, as one process shares one
    metrics: Metrics = field(default_factory=Metrics)

    def ctx(self, host: str) -> ServiceContext:
        return ServiceContext(self.rt, self.transport, host, metrics=self.metrics,
                              store=self.store)

    def as_user(self, ctx: RequestContext | None = None) -> RequestContext:
        """The user (or ``ctx``) making a fresh request."""
        self._requests += 1
        return (ctx or self.user).with_request(f"req-{self._requests}")

    def as_admin(self) -> RequestContext:
        return self.as_user(self.admin)

    def driver(self, host: str, **config: Any) -> FakeDriver:
        """The fake hypervisor of ``host`` (kept across compute restarts, like a real one)."""
        if host not in self.drivers:
            merged = {**self.driver_config, **self.host_driver_config.get(host, {}), **config}
            self.drivers[host] = FakeDriver(DriverContext(self.rt, host, merged))
        return self.drivers[host]

    async def start_compute(self, host: str, **driver_config: Any) -> ComputeService:
        svc = ComputeService(self.ctx(host), self.driver(host, **driver_config),
                             self.compute_config)
        await svc.start()
        self.computes[host] = svc
        return svc

    async def stop_compute(self, host: str) -> None:
        """Stop a compute service (its guests keep running on the fake hypervisor)."""
        await self.computes.pop(host).stop()

    async def start(self, hosts: int) -> None:
        self.conductor = ConductorService(self.ctx("conductor-1"), self.conductor_config)
        await self.conductor.start()
        for i in range(hosts):
            await self.start_compute(f"cmp{i}")
        self.scheduler = SchedulerService(self.ctx("sched-1"),
                                          SchedulerServiceConfig(refresh_interval=30.0))
        await self.scheduler.start()
        self.client = RpcEndpoint(self.rt, self.transport, default_timeout=30.0)
        await self.client.start()
        self.api = ComputeAPI(self.store, self.client, self.rt)

    async def stop(self) -> None:
        for host in list(self.computes):
            await self.stop_compute(host)
        for svc in (self.scheduler, self.conductor):
            if svc is not None:
                await svc.stop()
        if self.client is not None:
            await self.client.stop()
        await self.store.close()

    async def refresh_scheduler(self) -> None:
        assert self.scheduler is not None
        await self.scheduler.refresh()

    async def wait_for(self, uuid: str, *, vm_state: str | None = None,
                       task_state: str | None = None, timeout: float = 120.0,
                       deleted: bool = False) -> InstanceRecord:
        """Poll until the instance reaches ``vm_state`` with ``task_state`` (or is deleted)."""
        deadline = self.rt.now() + timeout
        last: InstanceRecord | None = None
        while self.rt.now() < deadline:
            try:
                last = await self.store.get_instance(uuid, read_deleted=deleted)
            except NotFound:
                last = None
            if last is not None and (
                    (deleted and last.vm_state == "deleted")
                    or (not deleted and last.vm_state == vm_state
                        and last.task_state == task_state)):
                return last
            await self.rt.sleep(0.05)
        state = None if last is None else (last.vm_state, last.task_state)
        raise AssertionError(f"{uuid} stuck at {state}, wanted "
                             f"{'deleted' if deleted else (vm_state, task_state)}")

    async def boot(self, ctx: RequestContext | None = None, *, flavor: Mapping[str, Any] = FLAVOR,
                   wait: bool = True, **kw: Any) -> InstanceRecord:
        """Create one instance and (by default) wait until it is ACTIVE."""
        assert self.api is not None
        created = await self.api.create(ctx or self.as_user(), flavor=flavor,
                                        image_ref="img-1", name="vm", **kw)
        inst = created[0]
        if wait:
            return await self.wait_for(inst.uuid, vm_state="active")
        return inst


Scenario = Callable[[SimCloud], Awaitable[Any]]


def run(scenario: Scenario, *, hosts: int = 3, seed: int = 0,
        driver_config: Mapping[str, Any] | None = None,
        compute_config: ComputeConfig | None = None,
        conductor_config: ConductorConfig | None = None, latency: float = 0.001,
        host_driver_config: Mapping[str, Mapping[str, Any]] | None = None) -> Any:
    """Run ``scenario(cloud)`` in a started simulated cloud of ``hosts`` compute hosts."""
    rt = SimRuntime(seed)
    cloud = SimCloud(rt, SimTransport(rt, latency=constant_latency(latency)),
                     Store(SimDatabase()),
                     driver_config or {"vcpus": 4, "memory_mb": 8192, "local_gb": 100},
                     compute_config or ComputeConfig(reserved_host_memory_mb=0),
                     conductor_config or ConductorConfig(), dict(host_driver_config or {}))

    async def main() -> Any:
        await cloud.start(hosts)
        try:
            return await scenario(cloud)
        finally:
            await cloud.stop()

    return rt.run(main())


# -- power, console and lock helpers (tests/core/compute/test_power.py, test_lock.py) ------
#: The power actions by the names of their rules, as :func:`power` takes them.
POWER_ACTIONS = ("reboot_soft", "reboot_hard", "stop", "start", "pause", "unpause",
                 "suspend", "resume", "rescue", "unrescue")


async def power(cloud: SimCloud, action: str, uuid: str,
                ctx: RequestContext | None = None) -> None:
    """Ask the API for power action ``action`` (of ``POWER_ACTIONS``) as ``ctx`` (the user)."""
    assert cloud.api is not None
    ctx = ctx or cloud.as_user()
    if action.startswith("reboot_"):
        await cloud.api.reboot(ctx, uuid, hard=action == "reboot_hard")
    else:
        await getattr(cloud.api, action)(ctx, uuid)


async def settled(cloud: SimCloud, uuid: str, *, timeout: float = 60.0
                  ) -> tuple[str, list[tuple[str, str | None]]]:
    """Wait until every event of the instance's newest action has finished; that action's
    name and its (event, result) pairs, oldest first."""
    deadline = cloud.rt.now() + timeout
    while True:
        newest = (await cloud.store.list_actions(uuid))[0]
        _, events = await cloud.store.get_action(uuid, newest.request_id)
        if events and all(e.finish_time is not None for e in events):
            return newest.action, [(e.event, e.result) for e in events]
        if cloud.rt.now() >= deadline:
            raise AssertionError(f"{newest.action} of {uuid} unfinished: {events}")
        await cloud.rt.sleep(0.05)


async def footprint(cloud: SimCloud, uuid: str) -> tuple[Any, ...]:
    """What an action leaves behind, to assert a refused one changed nothing: the
    record, its actions, its latest fault and the guest's power state."""
    inst = await cloud.store.get_instance(uuid)
    actions = [(a.action, a.request_id) for a in await cloud.store.list_actions(uuid)]
    guest = await cloud.drivers[inst.host or ""].guest_info(uuid)
    return inst, actions, await cloud.store.latest_fault(uuid), guest.power_state


def stranger(cloud: SimCloud) -> RequestContext:
    """A user of another project, making a fresh request."""
    return cloud.as_user(RequestContext("u2", "p2", "req-0"))


async def wait_for_migration(cloud: SimCloud, uuid: str, status: str, *,
                             timeout: float = 60.0) -> Any:
    """Poll until the instance's newest migration reaches ``status``; that migration."""
    deadline = cloud.rt.now() + timeout
    while True:
        migrations = await cloud.store.migrations_by_instance(uuid)
        if migrations and migrations[-1].status == status:
            return migrations[-1]
        if cloud.rt.now() >= deadline:
            raise AssertionError(f"migration of {uuid} stuck at "
                                 f"{migrations[-1].status if migrations else None}, "
                                 f"wanted {status}")
        await cloud.rt.sleep(0.05)


async def held_on(cloud: SimCloud, consumer: str) -> dict[str, dict[str, int]]:
    """What a placement consumer holds, by host name (stopped hosts included)."""
    hosts = {n.uuid: n.host for n in await cloud.store.list_compute_nodes()}
    held = await cloud.store.get_allocations(consumer)
    return {hosts[rp]: res for rp, res in held.allocations.items()}


# -- resize and cold migration helpers (tests/core/compute/test_resize.py, test_migrate.py) --
async def guests_by_host(cloud: SimCloud, uuid: str) -> dict[str, tuple[int, int]]:
    """Where the fake hypervisors hold a guest of ``uuid``: host -> (power state, vcpus)."""
    found = {}
    for host, drv in sorted(cloud.drivers.items()):
        if uuid in await drv.list_guests():
            info = await drv.guest_info(uuid)
            found[host] = (info.power_state, info.vcpus)
    return found


async def action_events(cloud: SimCloud, uuid: str, action: str) -> list[tuple[str, str | None]]:
    """(event, result) of the instance's newest action named ``action``, oldest first."""
    found = [a for a in await cloud.store.list_actions(uuid) if a.action == action]
    assert found, f"no {action} action of {uuid}"
    _, events = await cloud.store.get_action(uuid, found[0].request_id)
    return [(e.event, e.result) for e in events]


# -- crashes, for the repair tests (tests/core/compute/test_faults.py ...) -----------------
class TaskLog:
    """Every task spawned on the cloud's runtime from now on: what a crash ends."""

    def __init__(self, cloud: SimCloud) -> None:
        self.tasks: list[Any] = []
        spawn = cloud.rt.spawn

        def spawn_logged(coro: Any, name: str = "") -> Any:
            task = spawn(coro, name)
            if len(self.tasks) > 512:
                self.tasks = [t for t in self.tasks if not t.done()]
            self.tasks.append(task)
            return task

        cloud.rt.spawn = spawn_logged  # type: ignore[method-assign]


async def kill_compute(cloud: SimCloud, host: str, tasks: TaskLog) -> None:
    """Kill a compute service as a crash does: every task it runs (RPC handlers included)
    ends where it is, a driver call under way too; its guests stay on the hypervisor.
    (``stop_compute`` is a graceful stop: handlers in flight run on and still write.)"""
    svc = cloud.computes[host]
    mine = (f"{svc.rpc.address}:", f"compute.{host}:")
    for task in tasks.tasks:
        if task.name.startswith(mine) and not task.done():
            task.cancel()
    await cloud.stop_compute(host)


async def on_host(cloud: SimCloud, host: str) -> dict[str, int]:
    """The guests on ``host``'s hypervisor and their power states."""
    drv = cloud.drivers[host]
    return {u: (await drv.guest_info(u)).power_state for u in await drv.list_guests()}
