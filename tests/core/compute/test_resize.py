"""Resize end to end in simulation: confirm, revert, auto-confirm, a stopped instance,
wrong states and driver failures (API -> conductor -> scheduler -> computes -> Store)."""

from __future__ import annotations

import pytest

from nimbus.core.compute import states
from nimbus.core.compute.config import ComputeConfig
from nimbus.core.compute.moves import FinishResize, PrepResize
from nimbus.core.conductor.config import ConductorConfig
from nimbus.core.conductor.moves import MigrateServer
from nimbus.core.errors import InstanceInvalidState, InvalidInput
from nimbus.core.messages import MESSAGES, Codec, Envelope, Kind
from tests.core.compute.cloud import (
    BIG,
    FLAVOR,
    SimCloud,
    action_events,
    footprint,
    guests_by_host,
    held_on,
    power,
    run,
    settled,
    wait_for_migration,
)

SMALL_USE = {"VCPU": 1, "MEMORY_MB": 512, "DISK_GB": 1}
BIG_USE = {"VCPU": 2, "MEMORY_MB": 1024, "DISK_GB": 2}
MOVE_EVENTS = [("conductor_migrate_server", "Success"), ("compute_prep_resize", "Success"),
               ("compute_resize_instance", "Success"), ("compute_finish_resize", "Success")]


async def resized(cloud: SimCloud, uuid: str) -> tuple[str, str]:
    """Resize ``uuid`` to BIG and wait for RESIZED; (source, destination)."""
    assert cloud.api is not None
    source = (await cloud.store.get_instance(uuid)).host or ""
    await cloud.api.resize(cloud.as_user(), uuid, BIG)
    inst = await cloud.wait_for(uuid, vm_state=states.RESIZED)
    assert inst.host is not None and inst.host != source
    return source, inst.host


def test_resize_then_confirm_leaves_the_new_flavor_on_the_destination_only() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        uuid = (await cloud.boot()).uuid
        source, dest = await resized(cloud, uuid)
        inst = await cloud.store.get_instance(uuid)
        assert (inst.flavor_id, inst.vcpus, inst.old_flavor, inst.new_flavor) == (
            "2", 2, FLAVOR, BIG)
        assert inst.power_state == states.RUNNING and inst.node == dest
        mig = await wait_for_migration(cloud, uuid, "finished")
        assert (mig.migration_type, mig.source_compute, mig.dest_compute) == (
            "resize", source, dest)
        # until confirmed: the instance holds the destination, the migration the source
        assert await held_on(cloud, uuid) == {dest: BIG_USE}
        assert await held_on(cloud, mig.uuid) == {source: SMALL_USE}
        assert await guests_by_host(cloud, uuid) == {source: (states.SHUTDOWN, 1),
                                                     dest: (states.RUNNING, 2)}
        assert await action_events(cloud, uuid, "resize") == MOVE_EVENTS

        await cloud.api.confirm_resize(cloud.as_user(), uuid)
        await wait_for_migration(cloud, uuid, "confirmed")
        inst = await cloud.wait_for(uuid, vm_state=states.ACTIVE)
        assert (inst.host, inst.vcpus, inst.memory_mb) == (dest, 2, 1024)
        assert inst.old_flavor is None and inst.new_flavor is None
        assert "old_vm_state" not in inst.system_metadata
        assert await held_on(cloud, uuid) == {dest: BIG_USE}
        assert await held_on(cloud, mig.uuid) == {}
        assert await guests_by_host(cloud, uuid) == {dest: (states.RUNNING, 2)}
        assert await settled(cloud, uuid) == (
            "confirmResize", [("compute_confirm_resize", "Success")])

    run(scenario)


def test_resize_then_revert_brings_the_old_flavor_back_on_the_source() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        uuid = (await cloud.boot()).uuid
        source, _ = await resized(cloud, uuid)
        mig = await wait_for_migration(cloud, uuid, "finished")
        await cloud.api.revert_resize(cloud.as_user(), uuid)
        inst = await cloud.wait_for(uuid, vm_state=states.ACTIVE)
        assert (inst.host, inst.node, inst.flavor_id, inst.vcpus) == (source, source, "1", 1)
        assert inst.old_flavor is None and inst.power_state == states.RUNNING
        assert (await wait_for_migration(cloud, uuid, "reverted")).id == mig.id
        assert await held_on(cloud, uuid) == {source: SMALL_USE}
        assert await held_on(cloud, mig.uuid) == {}
        assert await guests_by_host(cloud, uuid) == {source: (states.RUNNING, 1)}
        assert await settled(cloud, uuid) == ("revertResize", [
            ("compute_revert_resize", "Success"), ("compute_finish_revert_resize", "Success")])

    run(scenario)


def test_a_resize_is_confirmed_automatically_after_the_window() -> None:
    async def scenario(cloud: SimCloud) -> None:
        uuid = (await cloud.boot()).uuid
        _, dest = await resized(cloud, uuid)
        mig = await wait_for_migration(cloud, uuid, "finished")
        await cloud.rt.sleep(100)  # inside the window: still waiting for the user
        assert (await cloud.store.get_instance(uuid)).vm_state == states.RESIZED
        await cloud.rt.sleep(60)  # past the window and a periodic run
        inst = await cloud.store.get_instance(uuid)
        assert (inst.vm_state, inst.task_state, inst.host) == (states.ACTIVE, None, dest)
        assert (await cloud.store.get_migration(mig.id)).status == "confirmed"
        assert await held_on(cloud, mig.uuid) == {}
        assert await guests_by_host(cloud, uuid) == {dest: (states.RUNNING, 2)}

    run(scenario, compute_config=ComputeConfig(reserved_host_memory_mb=0,
                                               resize_confirm_window=120, periodic_interval=20))


def test_a_stopped_instance_stays_stopped_through_resize_and_confirm() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        uuid = (await cloud.boot()).uuid
        await power(cloud, "stop", uuid)
        await cloud.wait_for(uuid, vm_state=states.STOPPED)
        _, dest = await resized(cloud, uuid)
        inst = await cloud.store.get_instance(uuid)
        assert inst.power_state == states.SHUTDOWN
        assert (await guests_by_host(cloud, uuid))[dest] == (states.SHUTDOWN, 2)
        await cloud.api.confirm_resize(cloud.as_user(), uuid)
        inst = await cloud.wait_for(uuid, vm_state=states.STOPPED)
        assert (inst.host, inst.vcpus, inst.power_state) == (dest, 2, states.SHUTDOWN)
        assert await guests_by_host(cloud, uuid) == {dest: (states.SHUTDOWN, 2)}

    run(scenario)


def test_a_resize_may_stay_on_its_host_when_the_conductor_allows_it() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        uuid = (await cloud.boot()).uuid
        await cloud.api.resize(cloud.as_user(), uuid, BIG)
        inst = await cloud.wait_for(uuid, vm_state=states.RESIZED)
        mig = await wait_for_migration(cloud, uuid, "finished")
        assert inst.host == mig.source_compute == mig.dest_compute == "cmp0"
        assert await held_on(cloud, uuid) == {"cmp0": BIG_USE}
        assert await held_on(cloud, mig.uuid) == {"cmp0": SMALL_USE}
        await cloud.api.revert_resize(cloud.as_user(), uuid)
        inst = await cloud.wait_for(uuid, vm_state=states.ACTIVE)
        assert (inst.host, inst.vcpus) == ("cmp0", 1)
        assert await held_on(cloud, uuid) == {"cmp0": SMALL_USE}
        assert await guests_by_host(cloud, uuid) == {"cmp0": (states.RUNNING, 1)}

    run(scenario, hosts=1, conductor_config=ConductorConfig(allow_resize_to_same_host=True))


def test_wrong_states_and_bad_flavors_are_refused_and_change_nothing() -> None:
    async def scenario(cloud: SimCloud) -> None:
        api = cloud.api
        assert api is not None
        uuid = (await cloud.boot()).uuid
        before = await footprint(cloud, uuid)
        with pytest.raises(InstanceInvalidState):
            await api.confirm_resize(cloud.as_user(), uuid)
        with pytest.raises(InstanceInvalidState):
            await api.revert_resize(cloud.as_user(), uuid)
        with pytest.raises(InvalidInput, match="flavor is the same"):
            await api.resize(cloud.as_user(), uuid, dict(FLAVOR))
        with pytest.raises(InvalidInput, match="smaller root disk"):
            await api.resize(cloud.as_user(), uuid, {**BIG, "root_gb": 0})
        assert await footprint(cloud, uuid) == before
        await power(cloud, "pause", uuid)
        await cloud.wait_for(uuid, vm_state=states.PAUSED)
        paused = await footprint(cloud, uuid)
        with pytest.raises(InstanceInvalidState):
            await api.resize(cloud.as_user(), uuid, BIG)
        assert await footprint(cloud, uuid) == paused
        assert await cloud.store.migrations_by_instance(uuid) == []

    run(scenario)


def test_a_failure_before_the_disk_leaves_keeps_the_instance_on_its_source() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        uuid, source = inst.uuid, inst.host or ""
        await cloud.api.resize(cloud.as_user(), uuid, BIG)
        failed = await cloud.wait_for(uuid, vm_state=states.ERROR)
        assert (failed.host, failed.flavor_id, failed.power_state) == (
            source, "1", states.RUNNING)
        mig = await wait_for_migration(cloud, uuid, "error")
        fault = await cloud.store.latest_fault(uuid)
        assert fault is not None and "migrate_disk_and_power_off" in fault.message
        assert await held_on(cloud, uuid) == {source: SMALL_USE}  # the dest claim dropped
        assert await held_on(cloud, mig.uuid) == {}
        assert await guests_by_host(cloud, uuid) == {source: (states.RUNNING, 1)}
        events = await action_events(cloud, uuid, "resize")
        assert events[-1] == ("compute_resize_instance", "Error")

    failing = {"failure_rates": {"migrate_disk_and_power_off": 1.0}}
    run(scenario, driver_config={"vcpus": 4, "memory_mb": 8192, "local_gb": 100, **failing})


def test_a_failure_after_the_disk_left_keeps_the_instance_on_its_destination() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        uuid, source = inst.uuid, inst.host or ""
        await cloud.api.resize(cloud.as_user(), uuid, BIG)
        failed = await cloud.wait_for(uuid, vm_state=states.ERROR)
        dest = failed.host or ""
        assert dest != source and failed.task_state is None
        mig = await wait_for_migration(cloud, uuid, "error")
        fault = await cloud.store.latest_fault(uuid)
        assert fault is not None and "finish_migration" in fault.message
        # never both hosts: the instance keeps the destination's claim, the source's is gone
        assert await held_on(cloud, uuid) == {dest: BIG_USE}
        assert await held_on(cloud, mig.uuid) == {}
        # the source's periodic task drops the copy it kept for a revert
        await cloud.rt.sleep(25)
        assert (await cloud.store.get_migration(mig.id)).status == "failed"
        assert await guests_by_host(cloud, uuid) == {}

    failing = {"failure_rates": {"finish_migration": 1.0}}
    run(scenario, driver_config={"vcpus": 4, "memory_mb": 8192, "local_gb": 100, **failing},
        compute_config=ComputeConfig(reserved_host_memory_mb=0, periodic_interval=20))


def test_confirm_and_revert_cannot_both_start() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        uuid = (await cloud.boot()).uuid
        _, dest = await resized(cloud, uuid)
        await cloud.api.confirm_resize(cloud.as_user(), uuid)
        # the migration is no longer "finished": Nova's 400 (MigrationNotFoundByStatus)
        with pytest.raises(InvalidInput, match="Migration not found"):
            await cloud.api.revert_resize(cloud.as_user(), uuid)
        inst = await cloud.wait_for(uuid, vm_state=states.ACTIVE)
        assert inst.host == dest
        assert [a.action for a in await cloud.store.list_actions(uuid)] == [
            "confirmResize", "resize", "create"]

    run(scenario)


def test_the_move_messages_travel_as_messagepack() -> None:
    codec = Codec()
    for msg in (PrepResize("u", "r", 3), FinishResize("u", "r", 3, '{"root_gb": 2}'),
                MigrateServer("u", "r", dict(BIG), "cmp1")):
        name, version = MESSAGES.name_of(msg)
        sent = Envelope(Kind.CAST, "m1", "t", "", name, version, msg)
        assert codec.decode(codec.encode(sent)).body == msg


def test_the_instance_record_holds_the_new_flavor_after_a_resize() -> None:
    async def scenario(cloud: SimCloud) -> None:
        uuid = (await cloud.boot()).uuid
        await resized(cloud, uuid)
        assert (await cloud.store.get_instance(uuid)).flavor == BIG

    run(scenario)
