"""Shelve, shelve-offload and unshelve end to end in simulation: API -> compute host (or
conductor -> scheduler -> compute) -> fake driver -> Store, with the periodic offload,
refusals, a failed snapshot and no room to unshelve into."""

from __future__ import annotations

from typing import Any

import pytest

from nimbus.core.compute import states as s
from nimbus.core.compute.config import ComputeConfig
from nimbus.core.compute.shelve import SHELVED_KEYS, shelved_since
from nimbus.core.errors import InstanceInvalidState, InstanceLocked, NotFound
from tests.core.compute.cloud import (
    BIG,
    SimCloud,
    footprint,
    held_on,
    power,
    run,
    settled,
    stranger,
)

OFFLOAD_AT_ONCE = ComputeConfig(reserved_host_memory_mb=0, shelved_offload_time=0)
SMALL = {"flavorid": "1", "name": "m1.small", "vcpus": 1, "memory_mb": 512, "root_gb": 1}


async def events(cloud: SimCloud, uuid: str, action: str) -> list[tuple[str, str | None]]:
    """The (event, result) pairs of the instance's newest action named ``action``."""
    found = [a for a in await cloud.store.list_actions(uuid) if a.action == action]
    _, got = await cloud.store.get_action(uuid, found[0].request_id)
    return [(e.event, e.result) for e in got]


async def where(cloud: SimCloud, uuid: str) -> dict[str, int]:
    """The hosts whose fake hypervisor holds the guest, and its power state there."""
    return {h: (await d.guest_info(uuid)).power_state for h, d in cloud.drivers.items()
            if uuid in await d.list_guests()}


async def shelved(cloud: SimCloud, uuid: str, vm_state: str = s.SHELVED) -> Any:
    """Shelve the instance and wait for it to rest in ``vm_state``."""
    assert cloud.api is not None
    await cloud.api.shelve(cloud.as_user(), uuid)
    return await cloud.wait_for(uuid, vm_state=vm_state)


def test_shelve_then_unshelve_on_the_same_host() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot(image_properties={"os_distro": "cirros"})
        host = inst.host or ""
        done = await shelved(cloud, inst.uuid)
        assert (done.host, done.power_state, done.task_state) == (host, s.SHUTDOWN, None)
        assert await where(cloud, inst.uuid) == {host: s.SHUTDOWN}
        meta = done.system_metadata
        assert meta["shelved_host"] == host and shelved_since(meta) is not None
        image = await cloud.store.get_image(meta["shelved_image_id"])
        assert (image.status, image.name, image.owner) == ("active", "vm-shelved", "p1")
        assert image.properties["image_type"] == "shelved"
        assert image.properties["os_distro"] == "cirros"
        assert image.properties["instance_uuid"] == inst.uuid
        assert await held_on(cloud, inst.uuid) == {host: {"VCPU": 1, "MEMORY_MB": 512,
                                                          "DISK_GB": 1}}
        assert await events(cloud, inst.uuid, "shelve") == [
            ("compute_shelve_instance", "Success")]

        await cloud.api.unshelve(cloud.as_user(), inst.uuid)
        back = await cloud.wait_for(inst.uuid, vm_state=s.ACTIVE)
        assert (back.host, back.power_state, back.image_ref) == (host, s.RUNNING, "img-1")
        assert not set(SHELVED_KEYS) & set(back.system_metadata)
        assert back.system_metadata["image_os_distro"] == "cirros"
        assert await where(cloud, inst.uuid) == {host: s.RUNNING}
        with pytest.raises(NotFound):
            await cloud.store.get_image(image.id)
        assert await settled(cloud, inst.uuid) == (
            "unshelve", [("compute_unshelve_instance", "Success")])
        assert [a.action for a in await cloud.store.list_actions(inst.uuid)] == [
            "unshelve", "shelve", "create"]

    run(scenario)


def test_offload_at_once_then_unshelve_where_the_scheduler_says() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        gone = await shelved(cloud, inst.uuid, s.SHELVED_OFFLOADED)
        assert (gone.host, gone.node, gone.task_state) == (None, None, None)
        assert gone.power_state == s.NOSTATE
        assert await where(cloud, inst.uuid) == {}
        assert (await cloud.store.get_allocations(inst.uuid)).allocations == {}
        assert not (await cloud.store.usages_for_provider(
            cloud.computes[inst.host or ""].node_uuid)).get("VCPU")
        image_id = gone.system_metadata["shelved_image_id"]
        assert (await cloud.store.get_image(image_id)).status == "active"

        await cloud.api.unshelve(cloud.as_user(), inst.uuid)
        back = await cloud.wait_for(inst.uuid, vm_state=s.ACTIVE)
        host = back.host or ""
        assert host in cloud.computes and back.power_state == s.RUNNING
        assert back.image_ref == "img-1" and not set(SHELVED_KEYS) & set(back.system_metadata)
        assert await held_on(cloud, inst.uuid) == {host: {"VCPU": 1, "MEMORY_MB": 512,
                                                          "DISK_GB": 1}}
        assert await where(cloud, inst.uuid) == {host: s.RUNNING}
        # the guest booted from the shelved image (the fake keeps the spec it was given)
        assert cloud.drivers[host]._guests[inst.uuid].spec.image_ref == image_id
        with pytest.raises(NotFound):
            await cloud.store.get_image(image_id)
        assert await events(cloud, inst.uuid, "unshelve") == [
            ("schedule_instances", "Success"), ("compute_unshelve_instance", "Success")]

    run(scenario, compute_config=OFFLOAD_AT_ONCE)


def test_shelve_offload_on_request() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        await shelved(cloud, inst.uuid)
        await cloud.api.shelve_offload(cloud.as_user(), inst.uuid)
        gone = await cloud.wait_for(inst.uuid, vm_state=s.SHELVED_OFFLOADED)
        assert (gone.host, gone.power_state) == (None, s.NOSTATE)
        assert await where(cloud, inst.uuid) == {}
        assert (await cloud.store.get_allocations(inst.uuid)).allocations == {}
        assert await settled(cloud, inst.uuid) == (
            "shelveOffload", [("compute_shelve_offload_instance", "Success")])

    run(scenario)


def test_the_periodic_task_offloads_after_the_configured_time() -> None:
    async def scenario(cloud: SimCloud) -> None:
        inst = await cloud.boot()
        await shelved(cloud, inst.uuid)
        start = cloud.rt.now()
        await cloud.rt.sleep(90.0)
        kept = await cloud.store.get_instance(inst.uuid)
        assert (kept.vm_state, kept.host) == (s.SHELVED, inst.host)
        gone = await cloud.wait_for(inst.uuid, vm_state=s.SHELVED_OFFLOADED, timeout=120.0)
        # polled every 30 s: offloaded within one poll of the 100 s being up
        assert 100.0 < cloud.rt.now() - start <= 100.0 + 30.0 + 1.0
        assert gone.host is None and await where(cloud, inst.uuid) == {}
        assert (await cloud.store.get_allocations(inst.uuid)).allocations == {}

    run(scenario, compute_config=ComputeConfig(reserved_host_memory_mb=0,
                                               shelved_offload_time=100.0,
                                               shelved_poll_interval=30.0))


def test_a_failed_snapshot_leaves_the_instance_running_and_the_image_killed() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        await cloud.api.shelve(cloud.as_user(), inst.uuid)
        assert await settled(cloud, inst.uuid) == (
            "shelve", [("compute_shelve_instance", "Error")])
        after = await cloud.store.get_instance(inst.uuid)
        assert (after.vm_state, after.task_state, after.power_state) == (
            s.ACTIVE, None, s.RUNNING)
        assert "shelved_image_id" not in after.system_metadata
        assert await where(cloud, inst.uuid) == {inst.host: s.RUNNING}
        fault = await cloud.store.latest_fault(inst.uuid)
        assert fault is not None and "fake failure injected: snapshot" in fault.message
        images = await cloud.store.list_images_visible_to("p1", False)
        assert [(i.name, i.status) for i in images] == [("vm-shelved", "killed")]

    run(scenario, driver_config={"vcpus": 4, "memory_mb": 8192, "local_gb": 100,
                                 "failure_rates": {"snapshot": 1.0}})


@pytest.mark.parametrize("action", ["unshelve", "shelve_offload"])
def test_unshelve_and_offload_refuse_an_active_instance(action: str) -> None:
    async def scenario(cloud: SimCloud) -> None:
        inst = await cloud.boot()
        before = await footprint(cloud, inst.uuid)
        with pytest.raises(InstanceInvalidState):
            await getattr(cloud.api, action)(cloud.as_user(), inst.uuid)
        await cloud.rt.sleep(5.0)
        assert await footprint(cloud, inst.uuid) == before

    run(scenario)


def test_refusals_change_nothing() -> None:
    async def scenario(cloud: SimCloud) -> None:
        api = cloud.api
        assert api is not None
        inst = await cloud.boot()
        await shelved(cloud, inst.uuid)
        before = await cloud.store.get_instance(inst.uuid)
        with pytest.raises(InstanceInvalidState):  # a zone only for an offloaded instance
            await api.unshelve(cloud.as_user(), inst.uuid, availability_zone="az1")
        with pytest.raises(InstanceInvalidState):
            await api.shelve(cloud.as_user(), inst.uuid)
        with pytest.raises(NotFound):
            await api.unshelve(stranger(cloud), inst.uuid)
        await api.lock(cloud.as_admin(), inst.uuid)
        locked = await cloud.store.get_instance(inst.uuid)
        with pytest.raises(InstanceLocked):
            await api.unshelve(cloud.as_user(), inst.uuid)
        await cloud.rt.sleep(5.0)
        assert await cloud.store.get_instance(inst.uuid) == locked
        assert (locked.vm_state, locked.task_state, locked.host) == (
            before.vm_state, before.task_state, before.host)
        assert [a.action for a in await cloud.store.list_actions(inst.uuid)] == [
            "lock", "shelve", "create"]

    run(scenario)


def test_unshelve_with_no_room_anywhere_stays_offloaded_with_a_fault() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot(flavor=SMALL)
        await shelved(cloud, inst.uuid, s.SHELVED_OFFLOADED)
        filler = await cloud.boot(flavor=BIG)  # takes the only host's memory
        await cloud.api.unshelve(cloud.as_user(), inst.uuid)
        stuck = await cloud.wait_for(inst.uuid, vm_state=s.SHELVED_OFFLOADED)
        assert (stuck.host, stuck.power_state) == (None, s.NOSTATE)
        assert "shelved_image_id" in stuck.system_metadata
        assert (await cloud.store.get_allocations(inst.uuid)).allocations == {}
        assert await held_on(cloud, filler.uuid) == {"cmp0": {"VCPU": 2, "MEMORY_MB": 1024,
                                                              "DISK_GB": 2}}
        fault = await cloud.store.latest_fault(inst.uuid)
        assert fault is not None and fault.message.startswith("No valid host was found")
        assert await events(cloud, inst.uuid, "unshelve") == [("schedule_instances", "Error")]
        image = await cloud.store.get_image(stuck.system_metadata["shelved_image_id"])
        assert image.status == "active"  # kept for the next try
        assert await where(cloud, inst.uuid) == {}

    run(scenario, hosts=1, driver_config={"vcpus": 4, "memory_mb": 1024, "local_gb": 100},
        compute_config=ComputeConfig(reserved_host_memory_mb=0, ram_allocation_ratio=1.0,
                                     shelved_offload_time=0))


def test_a_failed_spawn_on_unshelve_gives_back_the_host_and_stays_offloaded() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        gone = await shelved(cloud, inst.uuid, s.SHELVED_OFFLOADED)
        cloud.drivers["cmp0"]._fail_p["spawn"] = 1.0  # the only host now fails every spawn
        await cloud.api.unshelve(cloud.as_user(), inst.uuid)
        stuck = await cloud.wait_for(inst.uuid, vm_state=s.SHELVED_OFFLOADED)
        assert (stuck.host, stuck.node, stuck.power_state) == (None, None, s.NOSTATE)
        assert stuck.system_metadata == gone.system_metadata
        assert (await cloud.store.get_allocations(inst.uuid)).allocations == {}
        assert await where(cloud, inst.uuid) == {}
        fault = await cloud.store.latest_fault(inst.uuid)
        assert fault is not None and "fake failure injected: spawn" in fault.message
        image = await cloud.store.get_image(gone.system_metadata["shelved_image_id"])
        assert image.status == "active"
        assert await events(cloud, inst.uuid, "unshelve") == [
            ("schedule_instances", "Success"), ("compute_unshelve_instance", "Error")]

    run(scenario, hosts=1, compute_config=OFFLOAD_AT_ONCE)


@pytest.mark.parametrize(("before", "was"), [
    ("stop", s.STOPPED), ("pause", s.PAUSED), ("suspend", s.SUSPENDED)])
def test_shelve_from_a_resting_state_unshelves_to_active(before: str, was: str) -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        await power(cloud, before, inst.uuid)
        await cloud.wait_for(inst.uuid, vm_state=was)
        done = await shelved(cloud, inst.uuid)
        assert done.power_state == s.SHUTDOWN
        assert await where(cloud, inst.uuid) == {inst.host: s.SHUTDOWN}
        await cloud.api.unshelve(cloud.as_user(), inst.uuid)
        back = await cloud.wait_for(inst.uuid, vm_state=s.ACTIVE)
        assert back.power_state == s.RUNNING
        assert await where(cloud, inst.uuid) == {inst.host: s.RUNNING}

    run(scenario)


@pytest.mark.parametrize("zone", ["nova", "elsewhere"])
def test_unshelve_into_an_availability_zone(zone: str) -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        await shelved(cloud, inst.uuid, s.SHELVED_OFFLOADED)
        await cloud.api.unshelve(cloud.as_user(), inst.uuid, availability_zone=zone)
        if zone == "nova":  # every host's zone here
            back = await cloud.wait_for(inst.uuid, vm_state=s.ACTIVE)
            assert back.availability_zone == "nova" and back.host in cloud.computes
        else:
            stuck = await cloud.wait_for(inst.uuid, vm_state=s.SHELVED_OFFLOADED)
            assert stuck.host is None and stuck.availability_zone is None
            fault = await cloud.store.latest_fault(inst.uuid)
            assert fault is not None and fault.message.startswith("No valid host")

    run(scenario, compute_config=OFFLOAD_AT_ONCE)
