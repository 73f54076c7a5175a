"""Compute's periodic tasks in simulation: placement healing, power state sync, and the
deferred (soft) delete with restore, reclaim and force delete."""

from __future__ import annotations

import pytest

from nimbus.core.compute import states
from nimbus.core.compute.api import ComputeAPI
from nimbus.core.compute.config import ComputeConfig
from nimbus.core.errors import InstanceInvalidState, InstanceLocked, NotFound
from tests.core.compute.cloud import (
    BIG,
    SimCloud,
    held_on,
    on_host,
    run,
    settled,
    stranger,
    wait_for_migration,
)

SMALL_USE = {"VCPU": 1, "MEMORY_MB": 512, "DISK_GB": 1}
BIG_USE = {"VCPU": 2, "MEMORY_MB": 1024, "DISK_GB": 2}
HEALING = ComputeConfig(reserved_host_memory_mb=0, update_resources_interval=10.0)
SYNCING = ComputeConfig(reserved_host_memory_mb=0, sync_power_state_interval=10.0)
RECLAIM = 100.0
DEFERRING = ComputeConfig(reserved_host_memory_mb=0, reclaim_instance_interval=RECLAIM,
                          periodic_interval=10.0)


async def used_on(cloud: SimCloud, host: str) -> dict[str, int]:
    nodes = await cloud.store.list_compute_nodes(host=host)
    return {k: v for k, v in (await cloud.store.usages_for_provider(nodes[0].uuid)).items()
            if v}


# -- placement healing ---------------------------------------------------------------------
def test_an_allocation_lost_behind_computes_back_is_claimed_again() -> None:
    async def scenario(cloud: SimCloud) -> None:
        inst = await cloud.boot()
        await cloud.store.delete_allocations(inst.uuid)
        assert await held_on(cloud, inst.uuid) == {}
        await cloud.rt.sleep(10.0 + 5.0)  # one period, and the first run's jitter
        assert await held_on(cloud, inst.uuid) == {inst.host: SMALL_USE}
        assert await used_on(cloud, inst.host or "") == SMALL_USE

    run(scenario, hosts=1, compute_config=HEALING)


def test_stray_allocations_and_guests_go_and_the_rightful_ones_stay() -> None:
    async def scenario(cloud: SimCloud) -> None:
        kept, deleted = (await cloud.boot()).uuid, (await cloud.boot()).uuid
        provider = cloud.computes["cmp0"].node_uuid
        await cloud.store.claim_allocations("nobody", {provider: {"VCPU": 2}},
                                            project_id="p9", user_id="u9",
                                            now=cloud.rt.wall_time())
        # deleted behind compute's back: the record goes, its claim and guest stay
        await cloud.store.soft_delete_instance(deleted, now=cloud.rt.wall_time())
        assert await used_on(cloud, "cmp0") == {"VCPU": 4, "MEMORY_MB": 1024, "DISK_GB": 2}
        await cloud.rt.sleep(10.0 + 5.0)
        assert await held_on(cloud, "nobody") == {}
        assert await held_on(cloud, deleted) == {}
        assert await held_on(cloud, kept) == {"cmp0": SMALL_USE}
        assert await used_on(cloud, "cmp0") == SMALL_USE
        assert await on_host(cloud, "cmp0") == {kept: states.RUNNING}

    run(scenario, hosts=1, compute_config=HEALING)


def test_a_move_in_progress_keeps_both_its_allocations() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        source = inst.host or ""
        await cloud.api.resize(cloud.as_user(), inst.uuid, BIG)
        resized = await cloud.wait_for(inst.uuid, vm_state=states.RESIZED)
        mig = await wait_for_migration(cloud, inst.uuid, "finished")
        await cloud.rt.sleep(3 * 10.0)  # healing runs on both hosts, several times
        assert await held_on(cloud, inst.uuid) == {resized.host: BIG_USE}
        assert await held_on(cloud, mig.uuid) == {source: SMALL_USE}

    run(scenario, hosts=2, compute_config=HEALING)


# -- power state sync ------------------------------------------------------------------------
def test_guests_that_changed_behind_computes_back_are_written_and_stopped() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        drv = cloud.drivers["cmp0"]
        crashed, shut, gone, paused, woke = [(await cloud.boot()).uuid for _ in range(5)]
        await cloud.api.stop(cloud.as_user(), woke)
        await cloud.wait_for(woke, vm_state=states.STOPPED)
        drv.crash(crashed)
        await drv.power_off(shut)
        await drv.destroy(gone)
        await drv.pause(paused)
        await drv.power_on(woke)
        await cloud.rt.sleep(10.0 + 1.0)

        got = {u: await cloud.store.get_instance(u)
               for u in (crashed, shut, gone, paused, woke)}
        assert {u: (i.vm_state, i.task_state, i.power_state) for u, i in got.items()} == {
            crashed: (states.STOPPED, None, states.SHUTDOWN),
            shut: (states.STOPPED, None, states.SHUTDOWN),
            gone: (states.ACTIVE, None, states.NOSTATE),  # the hypervisor may be restarting
            paused: (states.ACTIVE, None, states.POWER_PAUSED),  # ignored, as Nova does
            woke: (states.STOPPED, None, states.SHUTDOWN)}
        assert await on_host(cloud, "cmp0") == {crashed: states.SHUTDOWN,
                                                shut: states.SHUTDOWN,
                                                paused: states.POWER_PAUSED,
                                                woke: states.SHUTDOWN}
        fault = await cloud.store.latest_fault(gone)
        assert fault is not None and "has no guest on compute host cmp0" in fault.message
        for uuid in (crashed, shut, woke):  # stopped as Nova's stop API does: an action
            assert await settled(cloud, uuid) == ("stop", [("compute_stop_instance",
                                                            "Success")])
        # the next sync finds everything in line: no new action, no new fault
        await cloud.rt.sleep(10.0)
        assert await cloud.store.latest_fault(gone) == fault
        assert [a.action for a in await cloud.store.list_actions(crashed)] == [
            "stop", "create"]

    run(scenario, hosts=1, compute_config=SYNCING)


# -- soft delete ---------------------------------------------------------------------------
def deferring_api(cloud: SimCloud) -> ComputeAPI:
    """The cloud's API with deletes deferred by ``RECLAIM`` seconds."""
    assert cloud.client is not None
    return ComputeAPI(cloud.store, cloud.client, cloud.rt, reclaim_instance_interval=RECLAIM)


def test_a_soft_deleted_instance_is_restored_then_reclaimed_after_the_interval() -> None:
    async def scenario(cloud: SimCloud) -> None:
        api = deferring_api(cloud)
        inst = await cloud.boot()
        uuid, host = inst.uuid, inst.host or ""
        await api.delete(cloud.as_user(), uuid)
        soft = await cloud.wait_for(uuid, vm_state=states.SOFT_DELETED)
        assert soft.power_state == states.SHUTDOWN
        assert await on_host(cloud, host) == {uuid: states.SHUTDOWN}
        assert await held_on(cloud, uuid) == {host: SMALL_USE}  # kept for a restore
        assert await settled(cloud, uuid) == (
            "delete", [("compute_soft_delete_instance", "Success")])

        await api.restore(cloud.as_user(), uuid)
        back = await cloud.wait_for(uuid, vm_state=states.ACTIVE)
        assert back.power_state == states.RUNNING and "soft_deleted_at" not in (
            back.system_metadata)
        assert await on_host(cloud, host) == {uuid: states.RUNNING}
        assert await settled(cloud, uuid) == (
            "restore", [("compute_restore_instance", "Success")])

        await api.delete(cloud.as_user(), uuid)
        await cloud.wait_for(uuid, vm_state=states.SOFT_DELETED)
        deleted_at = cloud.rt.now()
        await cloud.rt.sleep(RECLAIM - 10.0)
        assert (await cloud.store.get_instance(uuid)).vm_state == states.SOFT_DELETED
        await cloud.wait_for(uuid, deleted=True, timeout=30.0)
        assert cloud.rt.now() - deleted_at <= RECLAIM + 10.0 + 1.0
        assert await on_host(cloud, host) == {}
        assert await held_on(cloud, uuid) == {}

    run(scenario, compute_config=DEFERRING)


def test_force_delete_and_a_second_delete_delete_at_once() -> None:
    async def scenario(cloud: SimCloud) -> None:
        api = deferring_api(cloud)
        for how in ("force_delete", "delete"):
            inst = await cloud.boot()
            await api.delete(cloud.as_user(), inst.uuid)
            await cloud.wait_for(inst.uuid, vm_state=states.SOFT_DELETED)
            await getattr(api, how)(cloud.as_user(), inst.uuid)
            await cloud.wait_for(inst.uuid, deleted=True, timeout=5.0)
            assert await on_host(cloud, inst.host or "") == {}
            assert await held_on(cloud, inst.uuid) == {}
            actions = [a.action for a in await cloud.store.list_actions(inst.uuid)]
            assert actions[0] == ("forceDelete" if how == "force_delete" else "delete")

    run(scenario, compute_config=DEFERRING)


def test_an_instance_that_never_ran_is_deleted_at_once_even_when_deletes_are_deferred() -> None:
    async def scenario(cloud: SimCloud) -> None:
        api = deferring_api(cloud)
        inst = await cloud.boot(flavor={**BIG, "vcpus": 64}, wait=False)  # no valid host
        await cloud.wait_for(inst.uuid, vm_state=states.ERROR)
        await api.delete(cloud.as_user(), inst.uuid)
        await cloud.wait_for(inst.uuid, deleted=True, timeout=5.0)

    run(scenario, compute_config=DEFERRING)


def test_restore_and_force_delete_refusals_change_nothing() -> None:
    async def scenario(cloud: SimCloud) -> None:
        api = deferring_api(cloud)
        active = await cloud.boot()
        with pytest.raises(InstanceInvalidState):
            await api.restore(cloud.as_user(), active.uuid)
        assert await cloud.store.get_instance(active.uuid) == active
        soft = await cloud.boot()
        await api.delete(cloud.as_user(), soft.uuid)
        before = await cloud.wait_for(soft.uuid, vm_state=states.SOFT_DELETED)
        with pytest.raises(NotFound):
            await api.restore(stranger(cloud), soft.uuid)
        with pytest.raises(NotFound):
            await api.force_delete(stranger(cloud), soft.uuid)
        await api.lock(cloud.as_admin(), soft.uuid)
        locked = await cloud.store.get_instance(soft.uuid)
        with pytest.raises(InstanceLocked):
            await api.restore(cloud.as_user(), soft.uuid)
        with pytest.raises(InstanceLocked):
            await api.force_delete(cloud.as_user(), soft.uuid)
        assert await cloud.store.get_instance(soft.uuid) == locked
        assert locked.vm_state == before.vm_state == states.SOFT_DELETED
        assert [a.action for a in await cloud.store.list_actions(soft.uuid)] == [
            "lock", "delete", "create"]
        busy = await cloud.boot()
        await cloud.store.update_instance(busy.uuid, now=cloud.rt.wall_time(),
                                          task_state=states.REBOOTING_HARD)
        busy = await cloud.store.get_instance(busy.uuid)
        with pytest.raises(InstanceInvalidState):
            await api.force_delete(cloud.as_user(), busy.uuid)
        assert await cloud.store.get_instance(busy.uuid) == busy

    run(scenario, compute_config=DEFERRING)
