"""A cloud's control plane on any runtime, transport and Store, built in one call.

:func:`start_cloud` starts a conductor, N compute hosts on hypervisor drivers (the
fake one unless told otherwise) and a scheduler, and hands back a :class:`Cloud`
with a :class:`~nimbus.core.compute.api.ComputeAPI` to drive them. The same wiring
runs in simulation (SimRuntime, SimTransport, a Store on SimDatabase) and in real
time (AsyncioRuntime, InProcessTransport, a Store on SqlDatabase), which is what
``nimbus bench lifecycle`` compares and what ``nimbus sim`` scenarios build on.

Start order matters: compute registers through the conductor, so the conductor
comes first; the scheduler loads its hosts from the Store when it starts, so it
comes after the computes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nimbus.backends import fake
from nimbus.core.compute import states
from nimbus.core.compute.api import ComputeAPI
from nimbus.core.compute.config import ComputeConfig
from nimbus.core.compute.driver import DriverContext, DriverFactory, HypervisorDriver
from nimbus.core.compute.manager import ComputeService
from nimbus.core.conductor.config import ConductorConfig
from nimbus.core.conductor.service import ConductorService
from nimbus.core.db.instance_schema import InstanceRecord
from nimbus.core.db.store import Store
from nimbus.core.metrics import Metrics
from nimbus.core.rpc import RpcEndpoint
from nimbus.core.runtime import Future, Runtime, Task
from nimbus.core.scheduler.config import SchedulerConfig
from nimbus.core.scheduler.service import SchedulerService, SchedulerServiceConfig
from nimbus.core.service import ServiceContext
from nimbus.core.transport import Transport


@dataclass(frozen=True, slots=True)
class HostSetup:
    """One host's own driver settings and compute config (a host class's)."""

    driver_config: Mapping[str, Any]
    compute_config: ComputeConfig | None = None


@dataclass
class Cloud:
    """The started services of one cloud, and the API that drives them."""

    runtime: Runtime
    transport: Transport
    store: Store
    metrics: Metrics
    conductor: ConductorService
    scheduler: SchedulerService
    client: RpcEndpoint
    api: ComputeAPI
    computes: dict[str, ComputeService] = field(default_factory=dict)
    drivers: dict[str, HypervisorDriver] = field(default_factory=dict)

    async def stop(self) -> None:
        """Stop every service, the conductor last (the Store stays open: it is the caller's)."""
        await self.client.stop()
        await self.scheduler.stop()
        for svc in self.computes.values():
            await svc.stop()
        await self.conductor.stop()


class StateWatch:
    """Waits for instances to reach a state, with one Store query per ``poll`` seconds.

    A client that watches many instances lists those changed since it last looked
    (``changes-since``), rather than reading each one: here one
    ``list_instances(changes_since=...)`` per round wakes every waiter whose instance got
    where it wanted (or to ERROR), so watching costs the same whatever is in flight.
    The window starts at the oldest waiter's ``since``, a wall time taken before the
    request that changes the instance, so no change is missed.
    """

    def __init__(self, runtime: Runtime, store: Store, *, poll: float = 0.05,
                 project_id: str | None = None) -> None:
        self.runtime = runtime
        self.store = store
        self.poll = poll
        self.project_id = project_id
        self.queries = 0
        self._waiters: dict[str, tuple[str, float, Future[InstanceRecord]]] = {}
        self._task: Task[None] | None = None

    async def wait(self, uuid: str, vm_state: str, since: float, *,
                   timeout: float = 300.0) -> InstanceRecord:
        """The instance once it is in ``vm_state`` with no task (``deleted``: soft-deleted),
        or in ERROR; ``since`` is the wall time before the request that moves it there."""
        fut: Future[InstanceRecord] = self.runtime.future()
        self._waiters[uuid] = (vm_state, since, fut)
        if self._task is None:
            self._task = self.runtime.spawn(self._watch(), name="state-watch")
        try:
            return await self.runtime.timeout(fut, timeout)
        except TimeoutError:
            raise TimeoutError(f"instance {uuid} not {vm_state} within {timeout} s") from None
        finally:
            self._waiters.pop(uuid, None)

    async def _watch(self) -> None:
        try:
            while self._waiters:
                await self.runtime.sleep(self.poll)
                if not self._waiters:
                    break
                oldest = min(since for _, since, _ in self._waiters.values())
                self.queries += 1
                changed = await self.store.list_instances(
                    project_id=self.project_id, changes_since=oldest - 1.0, deleted=None)
                for inst in changed:
                    waiter = self._waiters.get(inst.uuid)
                    if waiter is None or waiter[2].done():
                        continue
                    if ((inst.vm_state == waiter[0] and inst.task_state is None)
                            or inst.vm_state == states.ERROR):
                        waiter[2].set_result(inst)
        finally:
            self._task = None


def host_names(hosts: int | Sequence[str], prefix: str = "cmp") -> list[str]:
    """``hosts`` names as given, or that many named ``<prefix>0`` .. ``<prefix>N-1``."""
    return [f"{prefix}{i}" for i in range(hosts)] if isinstance(hosts, int) else list(hosts)


async def start_cloud(
    runtime: Runtime, transport: Transport, store: Store, *,
    hosts: int | Sequence[str] = 3, driver: DriverFactory = fake.factory,
    driver_config: Mapping[str, Any] | None = None,
    compute_config: ComputeConfig | None = None,
    conductor_config: ConductorConfig | None = None,
    scheduler_config: SchedulerServiceConfig | None = None,
    filters: SchedulerConfig | None = None, metrics: Metrics | None = None,
    rpc_timeout: float = 30.0, setups: Mapping[str, HostSetup] | None = None,
) -> Cloud:
    """Start a conductor, the compute ``hosts`` (each on its own ``driver``) and a
    scheduler on ``transport`` and ``store``; returns them with a ComputeAPI.
    ``setups`` gives hosts their own driver and compute settings."""
    metrics = metrics if metrics is not None else Metrics()

    def ctx(host: str, *, with_store: bool = True) -> ServiceContext:
        return ServiceContext(runtime, transport, host, metrics, rpc_timeout,
                              store=store if with_store else None)

    conductor = ConductorService(ctx("conductor-1"), conductor_config)
    await conductor.start()
    computes: dict[str, ComputeService] = {}
    drivers: dict[str, HypervisorDriver] = {}
    for host in host_names(hosts):
        setup = (setups or {}).get(host) or HostSetup(driver_config or {}, compute_config)
        drivers[host] = driver(DriverContext(runtime, host, dict(setup.driver_config)))
        svc = ComputeService(ctx(host, with_store=False), drivers[host], setup.compute_config)
        await svc.start()
        computes[host] = svc
    scheduler = SchedulerService(ctx("scheduler-1"), scheduler_config, filters)
    await scheduler.start()
    client = RpcEndpoint(runtime, transport, default_timeout=rpc_timeout, metrics=metrics)
    await client.start()
    api = ComputeAPI(store, client, runtime)
    return Cloud(runtime, transport, store, metrics, conductor, scheduler, client, api,
                 computes, drivers)
