"""A message delivered twice builds one guest with one set of allocations.

Brokers deliver at least once, so the build path must be idempotent: a second
``build_instances`` (conductor), ``select_destinations`` (scheduler) or
``build_and_run_instance`` (compute) leaves the instance where the first put it.
The sim transport's ``duplicate`` fault delivers the same envelope twice.
"""

from __future__ import annotations

from typing import Any

import pytest

from nimbus.core.compute import states
from nimbus.core.compute.driver import GuestSpec
from nimbus.core.errors import DriverError, RemoteError
from nimbus.core.scheduler.request import RequestSpec
from nimbus.core.scheduler.service import Destinations, SelectDestinations
from nimbus.sim.transport import SimTransport
from tests.core.compute.cloud import BIG, FLAVOR, SimCloud, guests_by_host, held_on, run

AMOUNTS = {"VCPU": 1, "MEMORY_MB": 512, "DISK_GB": 1}


def of_type(name: str) -> Any:
    """Match the envelopes of one message type."""
    return lambda env, address: env.type == name


def duplicate(cloud: SimCloud, name: str, after: float) -> None:
    """Deliver every ``name`` message twice, the copy ``after`` seconds later."""
    assert isinstance(cloud.transport, SimTransport)
    cloud.transport.duplicate(1.0, after, of_type(name))


async def one_guest_one_claim(cloud: SimCloud, uuid: str,
                              amounts: dict[str, int] = AMOUNTS) -> str:
    """The instance is ACTIVE with one guest, on the host that holds its claim; that host."""
    inst = await cloud.wait_for(uuid, vm_state=states.ACTIVE)
    await cloud.rt.sleep(1.0)  # late copies have landed by now
    inst = await cloud.store.get_instance(uuid)
    assert (inst.vm_state, inst.task_state) == (states.ACTIVE, None)
    assert inst.host is not None
    assert list(await guests_by_host(cloud, uuid)) == [inst.host]
    assert await held_on(cloud, uuid) == {inst.host: amounts}
    return inst.host


async def vcpus_used(cloud: SimCloud) -> int:
    used = 0
    for compute in cloud.computes.values():
        used += (await cloud.store.usages_for_provider(compute.node_uuid)).get("VCPU", 0)
    return used


@pytest.mark.parametrize("after", [0.0, 0.5], ids=["at-once", "later"])
def test_build_instances_twice_builds_each_instance_once(after: float) -> None:
    """At once, the copy overtakes the first's scheduling (the scheduler refuses it);
    later, it finds the instances scheduled (the conductor drops it)."""
    async def scenario(cloud: SimCloud) -> None:
        duplicate(cloud, "conductor.build_instances", after)
        assert cloud.api is not None
        created = await cloud.api.create(cloud.as_user(), flavor=FLAVOR, image_ref="img-1",
                                         name="vm", min_count=3, max_count=3)
        for inst in created:
            await one_guest_one_claim(cloud, inst.uuid)
        assert await vcpus_used(cloud) == 3
        for inst in created:
            assert await cloud.store.latest_fault(inst.uuid) is None

    run(scenario)


def test_select_destinations_twice_keeps_the_first_claim() -> None:
    async def scenario(cloud: SimCloud) -> None:
        duplicate(cloud, "scheduler.select_destinations", 0.1)
        first = await cloud.boot()
        second = await cloud.boot()
        hosts = {await one_guest_one_claim(cloud, i.uuid) for i in (first, second)}
        assert len(hosts) == 2  # spread: a moved claim would have landed elsewhere
        assert await vcpus_used(cloud) == 2

    run(scenario)


def test_the_scheduler_refuses_to_place_an_instance_that_holds_a_claim() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.client is not None
        spec = RequestSpec.build(1, 512, 1, project_id="p1", user_id="u1",
                                 instance_uuids=["i-1"])
        placed = await cloud.client.call("scheduler", SelectDestinations(spec))
        assert isinstance(placed, Destinations)
        host = placed.selections[0].host
        with pytest.raises(RemoteError) as err:
            await cloud.client.call("scheduler", SelectDestinations(spec))
        assert err.value.exc_type == "AlreadyClaimed" and err.value.status == 409
        assert await held_on(cloud, "i-1") == {host: AMOUNTS}
        assert await vcpus_used(cloud) == 1
        assert cloud.scheduler is not None
        assert cloud.scheduler.states.vcpus_used.sum() == 1

    run(scenario)


def fail_first_spawn(cloud: SimCloud) -> list[str]:
    """Make the first spawn anywhere fail after a second; the hosts asked to spawn."""
    spawned: list[str] = []
    for host, drv in cloud.drivers.items():
        real = drv.spawn

        async def spawn(spec: GuestSpec, *, host: str = host, real: Any = real,
                        **kw: Any) -> Any:
            spawned.append(host)
            if len(spawned) == 1:
                await cloud.rt.sleep(1.0)
                raise DriverError(f"injected spawn failure on {host}")
            return await real(spec, **kw)

        drv.spawn = spawn  # type: ignore[method-assign]
    return spawned


def test_build_and_run_instance_twice_after_a_failed_spawn_spawns_once() -> None:
    """The first spawn fails and the build is rescheduled; the copy of the failed build
    message, waiting on the instance lock meanwhile, must not spawn it there too."""
    async def scenario(cloud: SimCloud) -> None:
        duplicate(cloud, "compute.build_and_run_instance", 0.1)
        spawned = fail_first_spawn(cloud)
        inst = await cloud.boot(flavor=BIG, wait=False)
        host = await one_guest_one_claim(cloud, inst.uuid,
                                         {"VCPU": 2, "MEMORY_MB": 1024, "DISK_GB": 2})
        failed = spawned[0]
        assert host != failed
        assert spawned == [failed, host]  # the copy of the failed build spawned nothing
        assert await vcpus_used(cloud) == 2

    run(scenario)


def test_reschedule_instance_twice_fails_the_build_once() -> None:
    """Every host fails the spawn: the last reschedule fails the build; its copy finds
    the instance in ERROR already and leaves it (no second failure counted)."""
    async def scenario(cloud: SimCloud) -> None:
        duplicate(cloud, "conductor.reschedule_instance", 0.5)
        inst = await cloud.boot(wait=False)
        await cloud.wait_for(inst.uuid, vm_state=states.ERROR)
        await cloud.rt.sleep(1.0)
        fault = await cloud.store.latest_fault(inst.uuid)
        assert fault is not None and "Exceeded maximum number of retries" in fault.message
        assert await held_on(cloud, inst.uuid) == {}
        assert await guests_by_host(cloud, inst.uuid) == {}
        assert 'nimbus_instance_builds_total{outcome="error"} 1.0' in (
            cloud.metrics.render().decode())

    failing = {"failure_rates": {"spawn": 1.0}}
    run(scenario, driver_config={"vcpus": 4, "memory_mb": 8192, "local_gb": 100, **failing})
