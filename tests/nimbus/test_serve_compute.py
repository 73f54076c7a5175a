"""``nimbus serve`` hosting the conductor and compute: fake hosts registered in the Store,
an instance booted and deleted through the served services, the all-in-one command line."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import ClassVar

import pytest

import nimbus.serve as serve_module
from nimbus.cli import main
from nimbus.config import load_config
from nimbus.core.compute import states
from nimbus.core.compute.api import ComputeAPI
from nimbus.core.context import RequestContext
from nimbus.core.db.store import Store
from nimbus.core.errors import NotFound
from nimbus.core.service import Service, ServiceContext
from nimbus.db import SqlDatabase
from nimbus.serve import needs_store, serve, service_names

from .test_serve_cli import free_port, nimbus, wait_until_up

pytestmark = pytest.mark.timeout(30)

FLAVOR = {"flavorid": "1", "name": "m1.small", "vcpus": 1, "memory_mb": 512, "root_gb": 1,
          "ephemeral_gb": 0, "swap": 0, "extra_specs": {}}


class Probe(Service):
    """Started last: hands the test its context and an RPC endpoint inside the served process."""

    topic = "probe"
    started: ClassVar[list[Probe]] = []

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)

    async def on_start(self) -> None:
        Probe.started.append(self)


async def wait_for_state(store: Store, uuid: str, vm_state: str, deadline: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    last = None
    while loop.time() < end:
        try:
            inst = await store.get_instance(uuid, read_deleted=True)
            last = (inst.vm_state, inst.task_state)
            if last == (vm_state, None):
                return
        except NotFound:
            pass
        await asyncio.sleep(0.02)
    pytest.fail(f"{uuid} stuck at {last}, wanted {vm_state}")


def test_serve_registers_fake_hosts_and_builds_on_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serve_module, "SERVICES", serve_module.SERVICES.with_entries(
        {"probe": lambda ctx, cfg, cloud: Probe(ctx)}))
    Probe.started = []
    config = load_config(None, {}, [
        "serve.services=probe,scheduler,compute,conductor", "serve.host=node",
        f"database.url=sqlite:///{tmp_path / 'cloud.sqlite'}", "compute.fake_hosts=2",
        "compute.reserved_host_memory_mb=0", "fake_driver.vcpus=4", "fake_driver.memory_mb=4096"])
    assert service_names(config) == ["conductor", "compute", "probe", "scheduler"]

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(serve(config, stop=stop))
        try:
            while not Probe.started:
                assert not task.done(), task.exception()
                await asyncio.sleep(0.01)
            probe = Probe.started[0]
            store = probe.ctx.store
            assert store is not None
            await check_registered(store, probe.runtime.wall_time())
            api = ComputeAPI(store, probe.rpc, probe.runtime)
            user = RequestContext("u1", "p1", "req-1")
            (inst,) = await api.create(user, flavor=FLAVOR, image_ref="img-1", name="vm")
            await wait_for_state(store, inst.uuid, states.ACTIVE)
            booted = await store.get_instance(inst.uuid)
            assert booted.host in ("node-1", "node-2")
            assert booted.power_state == states.RUNNING
            await api.delete(user.with_request("req-2"), inst.uuid)
            await wait_for_state(store, inst.uuid, states.DELETED)
            assert (await store.get_allocations(inst.uuid)).allocations == {}
        finally:
            stop.set()
            assert await asyncio.wait_for(task, 5) == 0

    asyncio.run(run())


async def check_registered(store: Store, now: float) -> None:
    nodes = await store.list_compute_nodes()
    assert sorted((n.host, n.hypervisor_hostname, n.vcpus) for n in nodes) == [
        ("node-1", "node-1", 4), ("node-2", "node-2", 4)]
    for node in nodes:  # each node is its own resource provider, with inventory
        provider = await store.get_resource_provider(node.uuid)
        assert provider.name == node.hypervisor_hostname
        inventory = (await store.get_inventories(node.uuid)).inventories
        assert inventory["VCPU"].total == 4 and inventory["MEMORY_MB"].total == 4096
    computes = await store.list_services(binary="nimbus-compute")
    assert sorted(s.host for s in computes) == ["node-1", "node-2"]
    assert all(s.is_up(now, 60.0) for s in computes)


def test_compute_alone_opens_no_database_and_drivers_are_checked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not needs_store(load_config(None, {}, ["serve.services=compute"]))
    assert needs_store(load_config(None, {}, ["serve.services=compute,conductor"]))
    for name in [n for n in os.environ if n.startswith("NIMBUS_")]:
        monkeypatch.delenv(name)
    assert main(["serve", "--services", "compute", "--set", "compute.driver=kvm"]) == 2
    assert capsys.readouterr().err.strip() == (
        "nimbus: error: unknown driver 'kvm'; valid driver names: fake")
    assert main(["serve", "--services", "compute", "--set", "fake_driver.vcpus=0"]) == 2
    assert "fake driver config vcpus: expected an integer of 1 or more" in (
        capsys.readouterr().err)


def test_all_in_one_command_line_on_sqlite(tmp_path: Path) -> None:
    port = free_port()
    proc = nimbus("serve", "--services", "api,placement,scheduler,conductor,compute",
                  "--listen", f"127.0.0.1:{port}", "--host", "aio",
                  "--set", "placement.port=0", "--set", f"serve.state_dir={tmp_path}")
    try:
        wait_until_up(proc, f"http://127.0.0.1:{port}/healthz")
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=5)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    async def registered() -> list[tuple[str, str]]:
        store = Store(SqlDatabase(f"sqlite:///{tmp_path / 'nimbus.sqlite'}"))
        try:
            nodes = await store.list_compute_nodes()
            services = await store.list_services()
            return sorted([*((n.host, "node") for n in nodes),
                           *((s.host, s.binary) for s in services)])
        finally:
            await store.close()

    assert asyncio.run(registered()) == [("aio", "nimbus-compute"), ("aio", "node")]
