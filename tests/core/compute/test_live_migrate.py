"""Live migration end to end in simulation: API -> conductor (scheduler, claims, checks) ->
source and destination computes -> fake drivers -> Store, with refusals and rollbacks."""

from __future__ import annotations

from typing import Any

import pytest

from nimbus.core.compute import states as s
from nimbus.core.compute.driver import GuestSpec
from nimbus.core.errors import Forbidden, InstanceInvalidState
from tests.core.compute.cloud import (
    BIG,
    FLAVOR,
    SimCloud,
    footprint,
    held_on,
    run,
    settled,
)

SMALL = {"VCPU": 1, "MEMORY_MB": 512, "DISK_GB": 1}
BIG_HELD = {"VCPU": 2, "MEMORY_MB": 1024, "DISK_GB": 2}


async def guests(cloud: SimCloud) -> dict[str, list[str]]:
    """The guests each fake hypervisor holds (incoming ones not counted)."""
    return {h: await d.list_guests() for h, d in sorted(cloud.drivers.items())}


async def live_migrate(cloud: SimCloud, uuid: str, host: str | None = None) -> Any:
    """Live-migrate as the admin and wait until it ends; the migration record."""
    assert cloud.api is not None
    await cloud.api.live_migrate(cloud.as_admin(), uuid, host)
    for _ in range(1200):
        migrations = await cloud.store.migrations_by_instance(uuid)
        inst = await cloud.store.get_instance(uuid)
        if migrations and not migrations[-1].in_progress and inst.task_state is None:
            break
        await cloud.rt.sleep(0.05)
    await settled(cloud, uuid)
    return (await cloud.store.migrations_by_instance(uuid))[-1]


async def moved_ok(cloud: SimCloud, uuid: str, source: str, mig: Any,
                   held: dict[str, int]) -> str:
    """Assert a live migration of ``uuid`` off ``source`` completed; the destination."""
    assert mig.migration_type == "live-migration" and mig.status == "completed"
    dest = mig.dest_compute
    assert dest not in (None, source) and mig.source_compute == source
    inst = await cloud.store.get_instance(uuid)
    assert (inst.host, inst.node, inst.task_state) == (dest, dest, None)
    assert await held_on(cloud, uuid) == {dest: held}
    assert await held_on(cloud, mig.uuid) == {}
    placed = await guests(cloud)
    assert uuid in placed[dest] and uuid not in placed[source]
    assert sum(uuid in g for g in placed.values()) == 1
    return str(dest)


def test_live_migrate_to_a_host_the_scheduler_chooses() -> None:
    async def scenario(cloud: SimCloud) -> None:
        inst = await cloud.boot()
        source = inst.host or ""
        mig = await live_migrate(cloud, inst.uuid)
        dest = await moved_ok(cloud, inst.uuid, source, mig, SMALL)
        after = await cloud.store.get_instance(inst.uuid)
        assert (after.vm_state, after.power_state) == (s.ACTIVE, s.RUNNING)
        assert (await cloud.drivers[dest].guest_info(inst.uuid)).power_state == s.RUNNING
        action, events = await settled(cloud, inst.uuid)
        assert action == "live-migration"
        assert sorted(events) == sorted([
            ("conductor_live_migrate_instance", "Success"),
            ("compute_check_can_live_migrate_destination", "Success"),
            ("compute_check_can_live_migrate_source", "Success"),
            ("compute_live_migration", "Success"),
            ("compute_pre_live_migration", "Success"),
            ("compute_post_live_migration_at_destination", "Success")])

    run(scenario)


def test_live_migrate_to_a_named_host_and_back() -> None:
    async def scenario(cloud: SimCloud) -> None:
        inst = await cloud.boot(flavor=BIG)
        source = inst.host or ""
        target = next(h for h in sorted(cloud.computes) if h != source)
        mig = await live_migrate(cloud, inst.uuid, target)
        assert await moved_ok(cloud, inst.uuid, source, mig, BIG_HELD) == target
        back = await live_migrate(cloud, inst.uuid, source)  # and home again
        assert await moved_ok(cloud, inst.uuid, target, back, BIG_HELD) == source
        usage = await cloud.store.usages_for_provider(cloud.computes[target].node_uuid)
        assert not usage.get("VCPU")

    run(scenario)


def test_a_paused_instance_stays_paused() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        await cloud.api.pause(cloud.as_user(), inst.uuid)
        await cloud.wait_for(inst.uuid, vm_state=s.PAUSED)
        mig = await live_migrate(cloud, inst.uuid)
        dest = await moved_ok(cloud, inst.uuid, inst.host or "", mig, SMALL)
        after = await cloud.store.get_instance(inst.uuid)
        assert (after.vm_state, after.power_state) == (s.PAUSED, s.POWER_PAUSED)
        assert (await cloud.drivers[dest].guest_info(inst.uuid)).power_state == s.POWER_PAUSED

    run(scenario)


async def refused_unchanged(cloud: SimCloud, inst: Any, mig: Any, held: dict[str, int],
                            fault: str) -> None:
    """Assert a refused live migration left the instance ACTIVE where it was."""
    source = inst.host
    assert mig.status == "error"
    after = await cloud.store.get_instance(inst.uuid)
    assert (after.host, after.vm_state, after.task_state, after.power_state) == (
        source, s.ACTIVE, None, s.RUNNING)
    assert await held_on(cloud, inst.uuid) == {source: held}
    assert await held_on(cloud, mig.uuid) == {}
    placed = await guests(cloud)
    assert [h for h, g in placed.items() if inst.uuid in g] == [source]
    assert (await cloud.drivers[source].guest_info(inst.uuid)).power_state == s.RUNNING
    latest = await cloud.store.latest_fault(inst.uuid)
    assert latest is not None and fault in latest.message, latest


def test_a_destination_without_room_refuses_and_nothing_moves() -> None:
    async def scenario(cloud: SimCloud) -> None:
        inst = await cloud.boot(flavor=BIG)
        source = inst.host or ""
        target = next(h for h in sorted(cloud.computes) if h != source)
        # a guest the cloud does not know takes the small host's room at the hypervisor,
        # so placement accepts the claim and the driver's check refuses
        await cloud.drivers[target].spawn(GuestSpec("stray", "stray", 1, 512, 1))
        mig = await live_migrate(cloud, inst.uuid, target)
        await refused_unchanged(cloud, inst, mig, BIG_HELD, "no room for guest")
        usage = await cloud.store.usages_for_provider(cloud.computes[target].node_uuid)
        assert not usage.get("VCPU")
        _, events = await settled(cloud, inst.uuid)
        assert ("compute_check_can_live_migrate_destination", "Error") in events
        assert ("conductor_live_migrate_instance", "Error") in events

    small = {"vcpus": 2, "memory_mb": 8192, "local_gb": 100}
    run(scenario, host_driver_config={f"cmp{i}": small for i in range(3)})


def test_every_host_the_scheduler_offers_refusing_ends_in_a_precheck_fault() -> None:
    async def scenario(cloud: SimCloud) -> None:
        inst = await cloud.boot(flavor=BIG)
        for host, driver in cloud.drivers.items():
            if host != inst.host:
                await driver.spawn(GuestSpec(f"stray-{host}", "stray", 1, 512, 1))
        mig = await live_migrate(cloud, inst.uuid)
        await refused_unchanged(cloud, inst, mig, BIG_HELD,
                                "pre-checks failed on 2 host(s)")

    small = {"vcpus": 2, "memory_mb": 8192, "local_gb": 100}
    run(scenario, host_driver_config={f"cmp{i}": small for i in range(3)})


def test_a_driver_failure_during_the_migration_rolls_back() -> None:
    async def scenario(cloud: SimCloud) -> None:
        inst = await cloud.boot()
        mig = await live_migrate(cloud, inst.uuid)
        await refused_unchanged(cloud, inst, mig, SMALL, "fake failure injected")
        _, events = await settled(cloud, inst.uuid)
        assert ("compute_live_migration", "Error") in events
        assert ("compute_pre_live_migration", "Success") in events
        assert ("compute_rollback_live_migration_at_destination", "Success") in events

    run(scenario, driver_config={"vcpus": 4, "memory_mb": 8192, "local_gb": 100,
                                 "failure_rates": {"live_migration": 1.0}})


@pytest.mark.parametrize("where", ["itself", "nowhere"])
def test_a_named_host_that_is_no_destination_is_refused(where: str) -> None:
    async def scenario(cloud: SimCloud) -> None:
        inst = await cloud.boot()
        host = inst.host if where == "itself" else "no-such-host"
        mig = await live_migrate(cloud, inst.uuid, host)
        why = "its own host" if where == "itself" else "could not be found"
        await refused_unchanged(cloud, inst, mig, SMALL, why)

    run(scenario)


def test_only_an_admin_may_live_migrate() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        before = await footprint(cloud, inst.uuid)
        with pytest.raises(Forbidden):
            await cloud.api.live_migrate(cloud.as_user(), inst.uuid)
        await cloud.rt.sleep(1.0)
        assert await footprint(cloud, inst.uuid) == before
        assert await cloud.store.migrations_by_instance(inst.uuid) == []

    run(scenario)


def test_a_stopped_instance_cannot_be_live_migrated() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot(flavor=FLAVOR)
        await cloud.api.stop(cloud.as_user(), inst.uuid)
        await cloud.wait_for(inst.uuid, vm_state=s.STOPPED)
        await settled(cloud, inst.uuid)
        before = await footprint(cloud, inst.uuid)
        with pytest.raises(InstanceInvalidState):
            await cloud.api.live_migrate(cloud.as_admin(), inst.uuid)
        assert await footprint(cloud, inst.uuid) == before

    run(scenario)
