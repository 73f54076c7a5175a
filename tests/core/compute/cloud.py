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

    def ctx(self, host: str) -> ServiceContext:
        return ServiceContext(self.rt, self.transport, host, store=self.store)

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
