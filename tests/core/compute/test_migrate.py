"""Cold migration end to end in simulation: to the scheduler's pick, to a named host,
and with nowhere to go (NoValidHost leaves the instance where it was)."""

from __future__ import annotations

import pytest

from nimbus.core.compute import states
from nimbus.core.errors import InstanceInvalidState, InvalidInput
from tests.core.compute.cloud import (
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

USE = {"VCPU": 1, "MEMORY_MB": 512, "DISK_GB": 1}


def test_cold_migration_moves_the_instance_with_its_flavor_and_confirms() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        uuid, source = inst.uuid, inst.host or ""
        await cloud.api.migrate(cloud.as_admin(), uuid)
        moved = await cloud.wait_for(uuid, vm_state=states.RESIZED)
        dest = moved.host or ""
        assert dest not in ("", source) and (moved.flavor_id, moved.vcpus) == ("1", 1)
        mig = await wait_for_migration(cloud, uuid, "finished")
        assert (mig.migration_type, mig.source_compute, mig.dest_compute) == (
            "migration", source, dest)
        assert await held_on(cloud, uuid) == {dest: USE}
        assert await held_on(cloud, mig.uuid) == {source: USE}
        assert [e for e, _ in await action_events(cloud, uuid, "migrate")] == [
            "conductor_migrate_server", "compute_prep_resize", "compute_resize_instance",
            "compute_finish_resize"]
        await cloud.api.confirm_resize(cloud.as_user(), uuid)
        done = await cloud.wait_for(uuid, vm_state=states.ACTIVE)
        assert (done.host, done.power_state) == (dest, states.RUNNING)
        assert (await wait_for_migration(cloud, uuid, "confirmed")).id == mig.id
        assert await held_on(cloud, uuid) == {dest: USE}
        assert await held_on(cloud, mig.uuid) == {}
        assert await guests_by_host(cloud, uuid) == {dest: (states.RUNNING, 1)}

    run(scenario)


def test_migration_to_a_named_host_goes_there() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst, other, third = [await cloud.boot() for _ in range(3)]
        source, target = inst.host or "", other.host or ""
        used = {(await cloud.store.get_instance(i.uuid)).host for i in (inst, other, third)}
        # spreading put one instance per host: left alone, the scheduler would pick the
        # empty fourth host, not the named one
        assert len(used) == 3 and source != target
        await cloud.api.migrate(cloud.as_admin(), inst.uuid, host=target)
        moved = await cloud.wait_for(inst.uuid, vm_state=states.RESIZED)
        assert moved.host == target
        mig = await wait_for_migration(cloud, inst.uuid, "finished")
        assert (mig.source_compute, mig.dest_compute) == (source, target)
        await cloud.api.revert_resize(cloud.as_user(), inst.uuid)
        back = await cloud.wait_for(inst.uuid, vm_state=states.ACTIVE)
        assert back.host == source
        assert await held_on(cloud, inst.uuid) == {source: USE}
        assert await guests_by_host(cloud, inst.uuid) == {source: (states.RUNNING, 1)}

    run(scenario, hosts=4)


def test_a_named_host_must_be_another_compute_host() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        before = await footprint(cloud, inst.uuid)
        with pytest.raises(InvalidInput, match="could not be found"):
            await cloud.api.migrate(cloud.as_admin(), inst.uuid, host="nowhere")
        with pytest.raises(InvalidInput, match="current host"):
            await cloud.api.migrate(cloud.as_admin(), inst.uuid, host=inst.host)
        assert await footprint(cloud, inst.uuid) == before
        assert await cloud.store.migrations_by_instance(inst.uuid) == []

    run(scenario)


def test_with_no_other_host_the_migration_fails_and_the_instance_stays_put() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        await cloud.api.migrate(cloud.as_admin(), inst.uuid)
        mig = await wait_for_migration(cloud, inst.uuid, "error")
        after = await cloud.wait_for(inst.uuid, vm_state=states.ACTIVE)
        assert (after.host, after.power_state, after.new_flavor) == (
            "cmp0", states.RUNNING, None)
        fault = await cloud.store.latest_fault(inst.uuid)
        assert fault is not None and fault.message.startswith("No valid host was found")
        assert "IgnoreHosts removed 1 of 1 hosts" in fault.message
        assert await held_on(cloud, inst.uuid) == {"cmp0": USE}
        assert await held_on(cloud, mig.uuid) == {}
        assert await guests_by_host(cloud, inst.uuid) == {"cmp0": (states.RUNNING, 1)}
        assert await settled(cloud, inst.uuid) == (
            "migrate", [("conductor_migrate_server", "Error")])

    run(scenario, hosts=1)


def test_migration_is_refused_in_a_wrong_state_and_changes_nothing() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        await power(cloud, "suspend", inst.uuid)
        await cloud.wait_for(inst.uuid, vm_state=states.SUSPENDED)
        before = await footprint(cloud, inst.uuid)
        with pytest.raises(InstanceInvalidState):
            await cloud.api.migrate(cloud.as_admin(), inst.uuid)
        assert await footprint(cloud, inst.uuid) == before
        assert await cloud.store.migrations_by_instance(inst.uuid) == []

    run(scenario)
