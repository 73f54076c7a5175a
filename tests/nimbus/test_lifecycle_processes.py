"""An instance's lifecycle with the services in separate OS processes, joined over ZeroMQ.

Four ``nimbus serve`` processes: the broker (``queue``); the scheduler and the
conductor on a SQLite file (the only process that writes it for the services);
two computes on a fake hypervisor each, which reach the database only through the
conductor. The test process is the API: a ComputeAPI on its own Store over the same
SQLite file (WAL lets both processes at it), sending over ZeroMQ like the others.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nimbus.core.compute import states
from nimbus.core.compute.api import ComputeAPI
from nimbus.core.context import ADMIN, RequestContext
from nimbus.core.db.instance_schema import InstanceRecord
from nimbus.core.db.store import Store
from nimbus.core.errors import NotFound
from nimbus.core.rpc import RpcEndpoint
from nimbus.core.service import Describe
from nimbus.db import SqlDatabase
from nimbus.runtime import AsyncioRuntime
from nimbus.zmq_transport import ZmqTransport

from .test_serve_cli import free_port

pytestmark = pytest.mark.timeout(150)

FLAVOR = {"flavorid": "1", "name": "m1.small", "vcpus": 1, "memory_mb": 512, "root_gb": 1,
          "ephemeral_gb": 0, "swap": 0, "extra_specs": {}}
BIG = {"flavorid": "2", "name": "m1.big", "vcpus": 2, "memory_mb": 1024, "root_gb": 2,
       "ephemeral_gb": 0, "swap": 0, "extra_specs": {}}
COMPUTES = ("cmp1", "cmp2")


class Cloud:
    """The `nimbus serve` processes of one cloud, their logs, and stopping them."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.broker = f"tcp://127.0.0.1:{free_port()}"
        self.url = f"sqlite:///{tmp / 'cloud.sqlite'}"
        self.procs: dict[str, subprocess.Popen[str]] = {}

    def spawn(self, name: str, *args: str) -> subprocess.Popen[str]:
        """A ``nimbus serve`` process; its log goes to a file (a pipe nobody reads would
        fill up and stop it)."""
        log = (self.tmp / f"{name}.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "nimbus", "serve", "--transport", "zmq",
             "--broker", self.broker, "--host", name, "--log-level", "WARNING", *args],
            stdout=subprocess.PIPE, stderr=log, text=True,
            env=nimbus_env())
        log.close()
        self.procs[name] = proc
        return proc

    def logs(self) -> str:
        return "\n".join(f"--- {name} (exit {p.poll()}):\n{(self.tmp / f'{name}.log').read_text()}"
                         for name, p in self.procs.items())

    def check_alive(self) -> None:
        dead = [name for name, p in self.procs.items() if p.poll() is not None]
        if dead:
            pytest.fail(f"{', '.join(dead)} exited:\n{self.logs()}")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs.values():
            proc.communicate(timeout=5)


def nimbus_env() -> dict[str, str]:
    """This environment without NIMBUS_* settings, as the other subprocess tests run nimbus."""
    return {k: v for k, v in os.environ.items() if not k.startswith("NIMBUS_")}


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    c = Cloud(tmp_path)
    try:
        yield c
    finally:
        c.stop()


async def answered(me: RpcEndpoint, cloud: Cloud, topic: str, deadline: float = 20.0) -> None:
    """Wait until a service of ``topic`` answers over the broker."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        cloud.check_alive()
        try:
            await me.call(topic, Describe(), timeout=0.2)
            return
        except TimeoutError:
            continue
    pytest.fail(f"{topic} did not answer within {deadline} s:\n{cloud.logs()}")


class Api:
    """The API side, in the test process."""

    def __init__(self, cloud: Cloud, store: Store, api: ComputeAPI) -> None:
        self.cloud = cloud
        self.store = store
        self.api = api
        self.user = RequestContext("u1", "p1", "req-0")
        self.requests = 0

    def ctx(self) -> RequestContext:
        self.requests += 1
        return self.user.with_request(f"req-{self.requests}")

    def admin(self) -> RequestContext:
        self.requests += 1
        return RequestContext("admin", "admin", f"req-{self.requests}", (ADMIN,))

    async def settled(self, ctx: RequestContext, uuid: str, vm_state: str,
                      events: list[tuple[str, str]]) -> InstanceRecord:
        """Wait for the action of ``ctx`` to bring the instance to ``vm_state`` and finish
        its events (the event is finished just after the state is written)."""
        inst = await self.wait_for(uuid, vm_state)
        end = time.monotonic() + 5.0
        while True:
            _, got = await self.store.get_action(uuid, ctx.request_id)
            done = [(e.event, e.result) for e in got]
            if done == events or time.monotonic() > end:
                assert done == events
                return inst
            await asyncio.sleep(0.05)

    async def migration(self, uuid: str, status: str, deadline: float = 20.0) -> Any:
        """The instance's newest migration once it reaches ``status``."""
        end = time.monotonic() + deadline
        while True:
            migrations = await self.store.migrations_by_instance(uuid)
            now = migrations[-1].status if migrations else None
            if now == status:
                return migrations[-1]
            if time.monotonic() > end:
                pytest.fail(f"migration of {uuid} stuck at {now}, wanted {status}\n"
                            f"{self.cloud.logs()}")
            self.cloud.check_alive()
            await asyncio.sleep(0.05)

    async def held_on(self, consumer: str) -> dict[str, dict[str, int]]:
        """What ``consumer`` holds in placement, by host name."""
        hosts = {n.uuid: n.host for n in await self.store.list_compute_nodes()}
        held = await self.store.get_allocations(consumer)
        return {hosts[rp]: dict(use) for rp, use in held.allocations.items()}

    async def wait_for(self, uuid: str, vm_state: str, task_state: str | None = None,
                       deadline: float = 30.0) -> InstanceRecord:
        end = time.monotonic() + deadline
        last: Any = None
        while time.monotonic() < end:
            try:
                inst = await self.store.get_instance(uuid, read_deleted=True)
                last = (inst.vm_state, inst.task_state)
                if last == (vm_state, task_state):
                    return inst
            except NotFound:
                pass
            self.cloud.check_alive()
            await asyncio.sleep(0.05)
        fault = await self.store.latest_fault(uuid)
        pytest.fail(f"{uuid} stuck at {last}, wanted {(vm_state, task_state)}; fault: "
                    f"{fault.message if fault else None}\n{self.cloud.logs()}")


Scenario = Callable[[Api], Awaitable[None]]


async def registered(cloud: Cloud, store: Store, deadline: float = 20.0) -> None:
    """Wait until both computes registered their service and node (through the conductor)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        cloud.check_alive()
        nodes = await store.list_compute_nodes()
        services = await store.list_services(binary="nimbus-compute")
        if sorted(n.host for n in nodes) == sorted(s.host for s in services) == list(COMPUTES):
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"the computes did not register within {deadline} s:\n{cloud.logs()}")


async def lifecycle(cloud: Cloud, scenario: Scenario) -> None:
    queue = cloud.spawn("queue", "--services", "queue")
    assert queue.stdout is not None
    assert queue.stdout.readline().strip() == f"nimbus: message broker on {cloud.broker}"
    cloud.spawn("control", "--services", "scheduler,conductor",
                "--set", f"database.url={cloud.url}", "--set", "scheduler.refresh_interval=0.3")
    rt = AsyncioRuntime()
    transport = ZmqTransport(rt, cloud.broker)
    me = RpcEndpoint(rt, transport, default_timeout=10.0)
    await me.start()
    store: Store | None = None
    try:
        await answered(me, cloud, "conductor")  # the database is at its head revision now
        for host in COMPUTES:
            cloud.spawn(host, "--services", "compute", "--set", "compute.reserved_host_memory_mb=0",
                        "--set", "fake_driver.vcpus=4", "--set", "fake_driver.memory_mb=4096")
        store = Store(SqlDatabase(cloud.url))
        await registered(cloud, store)
        await asyncio.sleep(0.8)  # a scheduler refresh or two: it knows both hosts now
        await scenario(Api(cloud, store, ComputeAPI(store, me, rt)))
    finally:
        if store is not None:
            await store.close()
        await me.stop()
        await transport.close()


SMALL_USE = {"VCPU": 1, "MEMORY_MB": 512, "DISK_GB": 1}
BIG_USE = {"VCPU": 2, "MEMORY_MB": 1024, "DISK_GB": 2}


async def boot(a: Api) -> tuple[str, str]:
    """Boot one instance to ACTIVE; its uuid and host."""
    (inst,) = await a.api.create(a.ctx(), flavor=FLAVOR, image_ref="img-1", name="vm")
    active = await a.wait_for(inst.uuid, states.ACTIVE)
    host = active.host or ""
    assert host in COMPUTES and active.power_state == states.RUNNING
    assert await a.held_on(inst.uuid) == {host: SMALL_USE}
    return inst.uuid, host


async def delete(a: Api, uuid: str) -> list[str]:
    """Delete the instance until it is gone; its actions, newest first (as Nova lists)."""
    await a.api.delete(a.ctx(), uuid)
    gone = await a.wait_for(uuid, states.DELETED)
    assert gone.terminated_at is not None
    assert (await a.store.get_allocations(uuid)).allocations == {}
    return [x.action for x in await a.store.list_actions(uuid)]


async def power_path(a: Api) -> None:
    uuid, host = await boot(a)
    ctx = a.ctx()
    await a.api.reboot(ctx, uuid)
    await a.settled(ctx, uuid, states.ACTIVE, [("compute_reboot_instance", "Success")])
    ctx = a.ctx()
    await a.api.stop(ctx, uuid)
    stopped = await a.settled(ctx, uuid, states.STOPPED, [("compute_stop_instance", "Success")])
    assert stopped.power_state == states.SHUTDOWN
    ctx = a.ctx()
    await a.api.start(ctx, uuid)
    started = await a.settled(ctx, uuid, states.ACTIVE, [("compute_start_instance", "Success")])
    assert (started.power_state, started.host) == (states.RUNNING, host)
    assert await delete(a, uuid) == ["delete", "start", "stop", "reboot", "create"]


async def move_path(a: Api) -> None:
    uuid, first = await boot(a)
    # resize to the other host; until confirmed the migration holds the source's resources
    await a.api.resize(a.ctx(), uuid, BIG)
    resized = await a.wait_for(uuid, states.RESIZED)
    second = resized.host or ""
    assert second in COMPUTES and second != first
    mig = await a.migration(uuid, "finished")
    assert (mig.migration_type, mig.source_compute, mig.dest_compute) == (
        "resize", first, second)
    assert await a.held_on(uuid) == {second: BIG_USE}
    assert await a.held_on(mig.uuid) == {first: SMALL_USE}
    await a.api.confirm_resize(a.ctx(), uuid)
    await a.migration(uuid, "confirmed")
    confirmed = await a.wait_for(uuid, states.ACTIVE)
    assert (confirmed.host, confirmed.vcpus, confirmed.power_state) == (
        second, 2, states.RUNNING)
    assert confirmed.flavor["flavorid"] == "2"
    assert await a.held_on(uuid) == {second: BIG_USE}
    assert await a.held_on(mig.uuid) == {}

    # cold migration: back to the first host (the only other one), then confirmed
    await a.api.migrate(a.admin(), uuid)
    moved = await a.wait_for(uuid, states.RESIZED)
    assert (moved.host, moved.flavor_id) == (first, "2")
    mig = await a.migration(uuid, "finished")
    assert (mig.migration_type, mig.source_compute, mig.dest_compute) == (
        "migration", second, first)
    await a.api.confirm_resize(a.ctx(), uuid)
    await a.migration(uuid, "confirmed")
    back = await a.wait_for(uuid, states.ACTIVE)
    assert (back.host, back.power_state) == (first, states.RUNNING)
    assert await a.held_on(uuid) == {first: BIG_USE}
    assert await a.held_on(mig.uuid) == {}
    assert await delete(a, uuid) == ["delete", "confirmResize", "migrate", "confirmResize",
                                     "resize", "create"]


def test_boot_reboot_stop_start_delete_across_processes(cloud: Cloud) -> None:
    started = time.monotonic()
    asyncio.run(lifecycle(cloud, power_path))
    assert time.monotonic() - started < 30


def test_resize_and_migrate_with_confirm_across_processes(cloud: Cloud) -> None:
    started = time.monotonic()
    asyncio.run(lifecycle(cloud, move_path))
    assert time.monotonic() - started < 30
