"""Evacuation from a down host and rebuild in place, end to end in simulation: API ->
conductor (scheduler, claims) -> compute -> fake drivers -> Store, and the cleanup on the
source when it comes back."""

from __future__ import annotations

from typing import Any

import pytest

from nimbus.core.compute import states as s
from nimbus.core.compute.driver import ALL_CAPABILITIES, REBUILD
from nimbus.core.errors import Forbidden, InstanceInvalidState, InstanceLocked, NotFound
from tests.core.compute.cloud import (
    SimCloud,
    footprint,
    held_on,
    run,
    settled,
    stranger,
    wait_for_migration,
)

SMALL = {"VCPU": 1, "MEMORY_MB": 512, "DISK_GB": 1}
DOWN_TIME = 60.0  # service_down_time of the API and the conductor


async def take_down(cloud: SimCloud, host: str) -> None:
    """Stop a compute service and let virtual time pass until the cloud sees it down."""
    await cloud.stop_compute(host)
    await cloud.rt.sleep(DOWN_TIME + 15.0)
    assert cloud.api is not None and not await cloud.api.host_is_up(host)


def test_evacuate_from_a_down_host_and_clean_up_when_it_returns() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        source = inst.host or ""
        await take_down(cloud, source)
        await cloud.api.evacuate(cloud.as_admin(), inst.uuid)
        after = await cloud.wait_for(inst.uuid, vm_state=s.ACTIVE)
        mig = await wait_for_migration(cloud, inst.uuid, "done")
        dest = after.host or ""
        assert dest not in ("", source) and after.node == dest
        assert (mig.migration_type, mig.source_compute, mig.dest_compute) == (
            "evacuation", source, dest)
        assert after.power_state == s.RUNNING
        assert (await cloud.drivers[dest].guest_info(inst.uuid)).power_state == s.RUNNING
        # the source's allocation stays taken (by the migration) until the source is back
        assert await held_on(cloud, inst.uuid) == {dest: SMALL}
        assert await held_on(cloud, mig.uuid) == {source: SMALL}
        assert inst.uuid in await cloud.drivers[source].list_guests()
        action, events = await settled(cloud, inst.uuid)
        assert action == "evacuate"
        assert events == [("conductor_rebuild_server", "Success"),
                          ("compute_rebuild_instance", "Success")]

        svc = await cloud.start_compute(source)
        await svc.cleanup_evacuated()  # init_host's job, called here to be sure it ran
        assert inst.uuid not in await cloud.drivers[source].list_guests()
        assert await held_on(cloud, mig.uuid) == {}
        assert await held_on(cloud, inst.uuid) == {dest: SMALL}
        assert (await cloud.store.get_migration(mig.id)).status == "completed"
        usage = await cloud.store.usages_for_provider(svc.node_uuid)
        assert not usage.get("VCPU")
        still = await cloud.store.get_instance(inst.uuid)
        assert (still.host, still.vm_state, still.task_state) == (dest, s.ACTIVE, None)
        await svc.cleanup_evacuated()  # a second start finds nothing left to do
        assert (await cloud.store.get_migration(mig.id)).status == "completed"

    run(scenario)


def test_evacuate_to_a_named_host_keeps_a_stopped_instance_stopped() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        source = inst.host or ""
        await cloud.api.stop(cloud.as_user(), inst.uuid)
        await cloud.wait_for(inst.uuid, vm_state=s.STOPPED)
        target = next(h for h in sorted(cloud.computes) if h != source)
        await take_down(cloud, source)
        await cloud.api.evacuate(cloud.as_admin(), inst.uuid, target)
        after = await cloud.wait_for(inst.uuid, vm_state=s.STOPPED)
        await wait_for_migration(cloud, inst.uuid, "done")
        assert (after.host, after.power_state) == (target, s.SHUTDOWN)
        assert (await cloud.drivers[target].guest_info(inst.uuid)).power_state == s.SHUTDOWN
        assert await held_on(cloud, inst.uuid) == {target: SMALL}

    run(scenario)


def test_evacuating_while_the_host_is_up_is_refused_and_changes_nothing() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        before = await footprint(cloud, inst.uuid)
        with pytest.raises(InstanceInvalidState, match="still in use") as err:
            await cloud.api.evacuate(cloud.as_admin(), inst.uuid)
        assert err.value.status == 409
        with pytest.raises(Forbidden):
            await cloud.api.evacuate(cloud.as_user(), inst.uuid)
        await cloud.rt.sleep(1.0)
        assert await footprint(cloud, inst.uuid) == before
        assert await cloud.store.migrations_by_instance(inst.uuid) == []
        assert await held_on(cloud, inst.uuid) == {inst.host: SMALL}

    run(scenario)


def test_a_failed_evacuation_leaves_the_instance_in_error_on_its_source() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        assert inst.host == "cmp0"  # cmp1 fails every spawn: the boot was rescheduled
        await take_down(cloud, "cmp0")
        await cloud.api.evacuate(cloud.as_admin(), inst.uuid)
        after = await cloud.wait_for(inst.uuid, vm_state=s.ERROR)
        mig = await wait_for_migration(cloud, inst.uuid, "failed")
        assert (after.host, after.task_state) == ("cmp0", None)
        assert await held_on(cloud, inst.uuid) == {"cmp0": SMALL}
        assert await held_on(cloud, mig.uuid) == {}
        assert inst.uuid not in await cloud.drivers["cmp1"].list_guests()
        fault = await cloud.store.latest_fault(inst.uuid)
        assert fault is not None and "fake failure injected: spawn" in fault.message

    run(scenario, hosts=2, host_driver_config={"cmp1": {"failure_rates": {"spawn": 1.0}}})


async def console(cloud: SimCloud, inst: Any) -> str:
    return await cloud.drivers[inst.host].get_console_output(inst.uuid)


@pytest.mark.parametrize("own_rebuild", [True, False], ids=["driver-rebuild", "respawn"])
def test_rebuild_with_a_new_image_on_the_same_host(own_rebuild: bool) -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        await cloud.api.reboot(cloud.as_user(), inst.uuid)  # a console line to lose
        await cloud.wait_for(inst.uuid, vm_state=s.ACTIVE)
        await settled(cloud, inst.uuid)
        assert "rebooted" in await console(cloud, inst)
        await cloud.api.rebuild(cloud.as_user(), inst.uuid, "img-2", name="vm2",
                                metadata={"role": "web"})
        after = await cloud.wait_for(inst.uuid, vm_state=s.ACTIVE)
        assert (after.host, after.image_ref, after.display_name) == (inst.host, "img-2", "vm2")
        assert after.metadata == {"role": "web"} and after.power_state == s.RUNNING
        log = await console(cloud, inst)
        if own_rebuild:
            assert "rebuilt from img-2" in log
        else:
            assert "rebooted" not in log and "booted" in log  # a new guest
        guest = await cloud.drivers[inst.host or ""].guest_info(inst.uuid)
        assert guest.power_state == s.RUNNING
        assert await held_on(cloud, inst.uuid) == {inst.host: SMALL}
        action, events = await settled(cloud, inst.uuid)
        assert (action, events) == ("rebuild", [("compute_rebuild_instance", "Success")])

    caps = sorted(ALL_CAPABILITIES if own_rebuild else ALL_CAPABILITIES - {REBUILD})
    run(scenario, driver_config={"vcpus": 4, "memory_mb": 8192, "local_gb": 100,
                                 "capabilities": caps})


def test_rebuild_of_a_stopped_instance_leaves_it_stopped() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        await cloud.api.stop(cloud.as_user(), inst.uuid)
        await cloud.wait_for(inst.uuid, vm_state=s.STOPPED)
        await cloud.api.rebuild(cloud.as_user(), inst.uuid, "img-2")
        after = await cloud.wait_for(inst.uuid, vm_state=s.STOPPED)
        assert (after.image_ref, after.power_state) == ("img-2", s.SHUTDOWN)
        guest = await cloud.drivers[inst.host or ""].guest_info(inst.uuid)
        assert guest.power_state == s.SHUTDOWN

    run(scenario)


def test_rebuild_refusals_change_nothing() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        before = await footprint(cloud, inst.uuid)
        with pytest.raises(NotFound):
            await cloud.api.rebuild(stranger(cloud), inst.uuid, "img-2")
        await cloud.api.lock(cloud.as_admin(), inst.uuid)
        with pytest.raises(InstanceLocked):
            await cloud.api.rebuild(cloud.as_user(), inst.uuid, "img-2")
        after = await cloud.store.get_instance(inst.uuid)
        assert (after.image_ref, after.task_state, after.vm_state) == ("img-1", None, s.ACTIVE)
        assert before[0].image_ref == "img-1"

    run(scenario)
