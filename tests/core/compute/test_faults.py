"""Builds that can no longer finish, end to end in simulation: a compute service killed in
the middle of a spawn (restarted, or never back), a build lost before any host, and a
build that outlives ``instance_build_timeout``."""

from __future__ import annotations

from nimbus.core.compute import states
from nimbus.core.compute.config import ComputeConfig
from nimbus.core.conductor.config import ConductorConfig
from tests.core.compute.cloud import SimCloud, TaskLog, held_on, kill_compute, on_host, run

HOST = {"vcpus": 4, "memory_mb": 8192, "local_gb": 100}
SLOW_SPAWN = {**HOST, "timings": {"spawn": 30.0}}
SMALL_USE = {"VCPU": 1, "MEMORY_MB": 512, "DISK_GB": 1}


async def spawning(cloud: SimCloud) -> tuple[str, str]:
    """Boot one instance and let it spawn for 5 s; (uuid, host)."""
    inst = await cloud.boot(wait=False)
    await cloud.rt.sleep(5.0)
    now = await cloud.store.get_instance(inst.uuid)
    assert (now.vm_state, now.task_state) == (states.BUILDING, states.SPAWNING)
    assert now.host is not None
    assert await held_on(cloud, inst.uuid) == {now.host: SMALL_USE}
    return inst.uuid, now.host


async def used_on(cloud: SimCloud, host: str) -> dict[str, int]:
    nodes = await cloud.store.list_compute_nodes(host=host)
    return {k: v for k, v in (await cloud.store.usages_for_provider(nodes[0].uuid)).items()
            if v}


def test_a_build_cut_by_a_crash_is_failed_when_the_compute_restarts() -> None:
    async def scenario(cloud: SimCloud) -> None:
        tasks = TaskLog(cloud)
        uuid, host = await spawning(cloud)
        await kill_compute(cloud, host, tasks)
        await cloud.rt.sleep(5.0)
        stuck = await cloud.store.get_instance(uuid)
        assert (stuck.vm_state, stuck.task_state) == (states.BUILDING, states.SPAWNING)

        await cloud.start_compute(host)  # init_host runs before start returns
        failed = await cloud.store.get_instance(uuid)
        assert (failed.vm_state, failed.task_state, failed.host) == (states.ERROR, None, None)
        fault = await cloud.store.latest_fault(uuid)
        assert fault is not None
        assert f"interrupted by a restart of compute service on {host}" in fault.message
        assert await held_on(cloud, uuid) == {}
        assert await used_on(cloud, host) == {}
        # the spawn the crash cut never lands, and nothing later brings the build back
        await cloud.rt.sleep(60.0)
        assert await on_host(cloud, host) == {}
        assert (await cloud.store.get_instance(uuid)).vm_state == states.ERROR

    run(scenario, driver_config=SLOW_SPAWN)


def test_a_build_on_a_host_that_never_comes_back_is_failed_by_the_conductor() -> None:
    async def scenario(cloud: SimCloud) -> None:
        tasks = TaskLog(cloud)
        uuid, host = await spawning(cloud)
        await kill_compute(cloud, host, tasks)
        killed_at = cloud.rt.now()
        # not before the host is seen down (service_down_time 60 s)
        await cloud.rt.sleep(50.0)
        assert (await cloud.store.get_instance(uuid)).vm_state == states.BUILDING
        assert await held_on(cloud, uuid) == {host: SMALL_USE}

        failed = await cloud.wait_for(uuid, vm_state=states.ERROR, timeout=60.0)
        # down 60 s after its last heartbeat (<= 10 s before the kill), seen within 10 s
        assert cloud.rt.now() - killed_at <= 60.0 + 10.0 + 1.0
        assert failed.host is None and failed.task_state is None
        fault = await cloud.store.latest_fault(uuid)
        assert fault is not None and f"compute host {host} went down" in fault.message
        assert await held_on(cloud, uuid) == {}
        assert await used_on(cloud, host) == {}
        # a second watch finds nothing more to do
        await cloud.rt.sleep(20.0)
        assert await cloud.store.latest_fault(uuid) == fault

    run(scenario, driver_config=SLOW_SPAWN,
        conductor_config=ConductorConfig(watch_interval=10.0))


def test_a_build_on_a_forced_down_host_is_failed_at_the_next_watch() -> None:
    async def scenario(cloud: SimCloud) -> None:
        tasks = TaskLog(cloud)
        uuid, host = await spawning(cloud)
        await kill_compute(cloud, host, tasks)
        svc = await cloud.store.service_by_host_binary(host, "nimbus-compute")
        assert svc is not None
        await cloud.store.set_service_status(svc.id, disabled=False, reason=None,
                                             forced_down=True, now=cloud.rt.wall_time())
        await cloud.rt.sleep(10.5)  # one watch, long before service_down_time
        failed = await cloud.store.get_instance(uuid)
        assert (failed.vm_state, failed.host) == (states.ERROR, None)
        assert await held_on(cloud, uuid) == {}

    run(scenario, driver_config=SLOW_SPAWN,
        conductor_config=ConductorConfig(watch_interval=10.0))


def test_a_build_on_a_host_that_is_up_is_left_alone() -> None:
    async def scenario(cloud: SimCloud) -> None:
        uuid, host = await spawning(cloud)
        done = await cloud.wait_for(uuid, vm_state=states.ACTIVE, timeout=60.0)
        assert done.host == host and await held_on(cloud, uuid) == {host: SMALL_USE}
        assert await cloud.store.latest_fault(uuid) is None

    run(scenario, driver_config={**HOST, "timings": {"spawn": 45.0}},
        conductor_config=ConductorConfig(watch_interval=10.0, service_down_time=20.0))


def test_a_build_lost_before_any_host_fails_after_the_build_timeout() -> None:
    async def scenario(cloud: SimCloud) -> None:
        # the conductor never gets the request (a restart lost it)
        lost = cloud.transport.drop(  # type: ignore[attr-defined]
            match=lambda env, _addr: env.type == "conductor.build_instances")
        inst = await cloud.boot(wait=False)
        cloud.transport.heal(lost)  # type: ignore[attr-defined]
        await cloud.rt.sleep(90.0)
        waiting = await cloud.store.get_instance(inst.uuid)
        assert (waiting.vm_state, waiting.task_state, waiting.host) == (
            states.BUILDING, states.SCHEDULING, None)
        failed = await cloud.wait_for(inst.uuid, vm_state=states.ERROR, timeout=30.0)
        assert cloud.rt.now() <= 100.0 + 10.0 + 1.0
        fault = await cloud.store.latest_fault(inst.uuid)
        assert fault is not None and "found no host within 100 seconds" in fault.message
        assert failed.host is None and await held_on(cloud, inst.uuid) == {}

    run(scenario, conductor_config=ConductorConfig(watch_interval=10.0, build_timeout=100.0))


def test_a_build_longer_than_instance_build_timeout_fails_and_its_late_guest_goes() -> None:
    async def scenario(cloud: SimCloud) -> None:
        inst = await cloud.boot(wait=False)
        failed = await cloud.wait_for(inst.uuid, vm_state=states.ERROR, timeout=40.0)
        assert 20.0 < cloud.rt.now() <= 20.0 + 5.0 + 1.0
        assert failed.host is None and await held_on(cloud, inst.uuid) == {}
        fault = await cloud.store.latest_fault(inst.uuid)
        assert fault is not None and "did not finish building within 20 seconds" in (
            fault.message)
        # the spawn ends at 60 s on its host: the build does not come back, and the guest
        # nobody owns is destroyed by the next sweep
        await cloud.rt.sleep(60.0)
        assert (await cloud.store.get_instance(inst.uuid)).vm_state == states.ERROR
        for host in cloud.computes:
            assert await on_host(cloud, host) == {}

    run(scenario, driver_config={**HOST, "timings": {"spawn": 60.0}},
        compute_config=ComputeConfig(reserved_host_memory_mb=0, instance_build_timeout=20.0,
                                     periodic_interval=5.0, update_resources_interval=10.0))
