"""init_host in simulation: what a compute service does at start about the work its
previous run left half done, one test per family of task states, and guests nobody owns."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from nimbus.core.compute import states
from nimbus.core.compute.base import guest_spec
from tests.core.compute.cloud import (
    BIG,
    SimCloud,
    TaskLog,
    guests_by_host,
    held_on,
    kill_compute,
    on_host,
    run,
    wait_for_migration,
)

HOST = {"vcpus": 4, "memory_mb": 8192, "local_gb": 100}
SMALL_USE = {"VCPU": 1, "MEMORY_MB": 512, "DISK_GB": 1}
BIG_USE = {"VCPU": 2, "MEMORY_MB": 1024, "DISK_GB": 2}


async def left_in(cloud: SimCloud, uuid: str, task: str | None, **changes: Any) -> None:
    """Leave an instance as an action interrupted by the crash would (compute is down)."""
    await cloud.store.update_instance(uuid, now=cloud.rt.wall_time(), task_state=task,
                                      **changes)


async def boot_many(cloud: SimCloud, n: int) -> list[str]:
    return [(await cloud.boot()).uuid for _ in range(n)]


def test_power_actions_rest_in_the_state_their_guest_is_in() -> None:
    async def scenario(cloud: SimCloud) -> None:
        drv = cloud.drivers["cmp0"]
        reboot, stop, pause, start, snap, idle = await boot_many(cloud, 6)
        await cloud.stop_compute("cmp0")
        await left_in(cloud, reboot, states.REBOOT_STARTED_HARD)  # the guest came back up
        await drv.power_off(stop)
        await left_in(cloud, stop, states.POWERING_OFF)
        await drv.pause(pause)
        await left_in(cloud, pause, states.PAUSING)
        await drv.destroy(start)  # nothing left to start
        await left_in(cloud, start, states.POWERING_ON, vm_state=states.STOPPED,
                      power_state=states.SHUTDOWN)
        await left_in(cloud, snap, states.IMAGE_UPLOADING)
        before = await cloud.store.get_instance(idle)

        await cloud.start_compute("cmp0")
        got = {u: await cloud.store.get_instance(u)
               for u in (reboot, stop, pause, start, snap)}
        assert {u: (i.vm_state, i.task_state, i.power_state) for u, i in got.items()} == {
            reboot: (states.ACTIVE, None, states.RUNNING),
            stop: (states.STOPPED, None, states.SHUTDOWN),
            pause: (states.PAUSED, None, states.POWER_PAUSED),
            start: (states.ERROR, None, states.NOSTATE),
            snap: (states.ACTIVE, None, states.RUNNING)}
        fault = await cloud.store.latest_fault(start)
        assert fault is not None and "powering-on" in fault.message
        assert "restart of compute service on cmp0" in fault.message
        for uuid in (reboot, stop, pause, snap):
            assert await cloud.store.latest_fault(uuid) is None
            assert await held_on(cloud, uuid) == {"cmp0": SMALL_USE}
        assert await cloud.store.get_instance(idle) == before  # nothing to do: untouched

    run(scenario, hosts=1)


def test_builds_fail_deletes_finish_and_soft_deletes_restores_offloads_complete() -> None:
    async def scenario(cloud: SimCloud) -> None:
        drv = cloud.drivers["cmp0"]
        build, delete, soft, restore, offload = await boot_many(cloud, 5)
        await cloud.stop_compute("cmp0")
        await left_in(cloud, build, states.SPAWNING, vm_state=states.BUILDING)
        await left_in(cloud, delete, states.DELETING)
        await left_in(cloud, soft, states.SOFT_DELETING)
        await drv.power_off(restore)
        await left_in(cloud, restore, states.RESTORING, vm_state=states.SOFT_DELETED,
                      power_state=states.SHUTDOWN)
        await drv.power_off(offload)
        await left_in(cloud, offload, states.SHELVING_OFFLOADING, vm_state=states.SHELVED,
                      power_state=states.SHUTDOWN)

        await cloud.start_compute("cmp0")
        failed = await cloud.store.get_instance(build)
        assert (failed.vm_state, failed.task_state, failed.host) == (states.ERROR, None, None)
        fault = await cloud.store.latest_fault(build)
        assert fault is not None
        assert "interrupted by a restart of compute service on cmp0" in fault.message
        gone = await cloud.store.get_instance(delete, read_deleted=True)
        assert gone.deleted and gone.vm_state == states.DELETED
        deferred = await cloud.store.get_instance(soft)
        assert (deferred.vm_state, deferred.task_state, deferred.power_state) == (
            states.SOFT_DELETED, None, states.SHUTDOWN)
        back = await cloud.store.get_instance(restore)
        assert (back.vm_state, back.task_state, back.power_state) == (
            states.ACTIVE, None, states.RUNNING)
        shelved = await cloud.store.get_instance(offload)
        assert (shelved.vm_state, shelved.task_state, shelved.host) == (
            states.SHELVED_OFFLOADED, None, None)
        # what each holds, and what runs, afterwards
        for uuid in (build, delete, offload):
            assert await held_on(cloud, uuid) == {}
        for uuid in (soft, restore):
            assert await held_on(cloud, uuid) == {"cmp0": SMALL_USE}
        assert await on_host(cloud, "cmp0") == {soft: states.SHUTDOWN,
                                                restore: states.RUNNING}

    run(scenario, hosts=1)


def test_orphan_guests_are_destroyed_and_the_others_kept() -> None:
    async def scenario(cloud: SimCloud) -> None:
        drv = cloud.drivers["cmp0"]
        deleted, kept = await boot_many(cloud, 2)
        spec = guest_spec(await cloud.store.get_instance(kept))
        await cloud.stop_compute("cmp0")
        # deleted while the host was down (its guest stayed), and a guest of nobody
        await cloud.store.soft_delete_instance(deleted, now=cloud.rt.wall_time())
        await drv.spawn(replace(spec, uuid="not-an-instance"))
        assert set(await drv.list_guests()) == {deleted, kept, "not-an-instance"}

        await cloud.start_compute("cmp0")
        assert await on_host(cloud, "cmp0") == {kept: states.RUNNING}
        assert (await cloud.store.get_instance(kept)).vm_state == states.ACTIVE

    run(scenario, hosts=1)


def test_a_resize_cut_on_its_source_fails_and_gives_the_source_back_to_the_instance() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        tasks = TaskLog(cloud)
        inst = await cloud.boot()
        uuid, source = inst.uuid, inst.host or ""
        await cloud.api.resize(cloud.as_user(), uuid, BIG)
        await cloud.wait_for(uuid, vm_state=states.ACTIVE, task_state=states.RESIZE_MIGRATING)
        mig = await wait_for_migration(cloud, uuid, "migrating")
        dest = mig.dest_compute or ""
        assert await held_on(cloud, uuid) == {dest: BIG_USE}
        assert await held_on(cloud, mig.uuid) == {source: SMALL_USE}

        await kill_compute(cloud, source, tasks)  # in the middle of shipping the disk
        await cloud.start_compute(source)
        failed = await cloud.store.get_instance(uuid)
        assert (failed.vm_state, failed.task_state, failed.host, failed.flavor_id) == (
            states.ERROR, None, source, "1")
        assert failed.power_state == states.RUNNING
        assert (await cloud.store.get_migration(mig.id)).status == "error"
        fault = await cloud.store.latest_fault(uuid)
        assert fault is not None and "resize_migrating" in fault.message
        # the instance holds its source again, the destination's claim is gone
        assert await held_on(cloud, uuid) == {source: SMALL_USE}
        assert await held_on(cloud, mig.uuid) == {}
        assert await guests_by_host(cloud, uuid) == {source: (states.RUNNING, 1)}

    run(scenario, driver_config={**HOST, "timings": {"migrate_disk_and_power_off": 30.0}})
