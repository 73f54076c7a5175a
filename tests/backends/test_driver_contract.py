"""The hypervisor driver contract: every driver, on SimRuntime and on AsyncioRuntime.

What :mod:`nimbus.core.compute.driver` promises compute, checked the same way
for each implementation listed in ``conftest.DRIVERS``: guest lifecycle, power
transitions and the refusals that leave a guest as it was, NotFound for unknown
guests, snapshots, resize and live migration between two hosts, consoles, and
``DriverNotSupported`` exactly for the capabilities a driver lacks.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import pytest

from nimbus.core.compute import driver as d
from nimbus.core.compute.driver import (
    ALL_CAPABILITIES,
    CONSOLE_KINDS,
    GuestSpec,
    HostResources,
    HypervisorDriver,
    MigrateData,
)
from nimbus.core.compute.states import RUNNING, SHUTDOWN
from nimbus.core.errors import DriverError, DriverNotSupported, NotFound

from .conftest import (
    GUEST_OPS,
    OPTIONAL_OPS,
    REFUSALS,
    STATE_NEEDS,
    TRANSITIONS,
    MakeDriver,
    bring_to,
    case_ids,
    guest_spec,
    needs,
    power_of,
)

pytestmark = pytest.mark.timeout(60)


# -- identity, capacity, lifecycle ------------------------------------------------------------


def test_is_a_hypervisor_driver(driver_factory: MakeDriver) -> None:
    async def body(rt: Any) -> None:
        drv = driver_factory(rt)
        assert isinstance(drv, HypervisorDriver)
        assert isinstance(drv.capabilities, frozenset)
        assert drv.capabilities <= ALL_CAPABILITIES
        await drv.init_host("host-a")

    driver_factory.run(body)


def test_host_resources_are_sane(driver_factory: MakeDriver) -> None:
    async def body(rt: Any) -> None:
        res = await driver_factory(rt, "host-a").host_resources()
        assert isinstance(res, HostResources)
        assert res.hostname == "host-a"
        assert res.hypervisor_type and isinstance(res.hypervisor_type, str)
        assert isinstance(res.hypervisor_version, int) and res.hypervisor_version >= 0
        assert res.vcpus >= 1 and res.memory_mb >= 1 and res.local_gb >= 0
        assert all(len(t) == 3 and all(isinstance(p, str) for p in t)
                   for t in res.supported_instances)
        assert all(isinstance(t, str) for t in res.traits)

    driver_factory.run(body)


def test_spawn_list_info_destroy(driver_factory: MakeDriver) -> None:
    async def body(rt: Any) -> None:
        drv = driver_factory(rt)
        assert await drv.list_guests() == []
        a, b = guest_spec(rt, "a"), guest_spec(rt, "b", vcpus=2, memory_mb=1024)
        await drv.spawn(a)
        await drv.spawn(b, admin_password="secret")
        assert sorted(await drv.list_guests()) == sorted([a.uuid, b.uuid])
        info = await drv.guest_info(b.uuid)
        assert (info.uuid, info.power_state, info.vcpus, info.memory_mb) == (
            b.uuid, RUNNING, 2, 1024)
        assert isinstance(info.cpu_time_ns, int) and info.cpu_time_ns >= 0
        await drv.destroy(a.uuid)
        assert await drv.list_guests() == [b.uuid]
        with pytest.raises(NotFound):
            await drv.guest_info(a.uuid)

    driver_factory.run(body)


def test_destroy_twice_and_unknown_is_fine(driver_factory: MakeDriver) -> None:
    async def body(rt: Any) -> None:
        drv = driver_factory(rt)
        g = guest_spec(rt)
        await drv.destroy(g.uuid)
        await drv.spawn(g)
        await drv.destroy(g.uuid, destroy_disks=True)
        await drv.destroy(g.uuid)
        assert await drv.list_guests() == []

    driver_factory.run(body)


def test_spawn_of_an_existing_guest_is_refused(driver_factory: MakeDriver) -> None:
    async def body(rt: Any) -> None:
        drv = driver_factory(rt)
        g = guest_spec(rt)
        await drv.spawn(g)
        await drv.power_off(g.uuid)
        with pytest.raises(DriverError):
            await drv.spawn(replace(g, vcpus=4))
        assert await drv.list_guests() == [g.uuid]
        info = await drv.guest_info(g.uuid)
        assert (info.power_state, info.vcpus) == (SHUTDOWN, 1)

    driver_factory.run(body)


@pytest.mark.parametrize("op", list(GUEST_OPS))
def test_unknown_guest_raises_not_found(driver_factory: MakeDriver, op: str) -> None:
    cap, call = GUEST_OPS[op]

    async def body(rt: Any) -> None:
        drv = driver_factory(rt)
        needs(drv, cap)
        await drv.spawn(guest_spec(rt, "bystander"))
        with pytest.raises(NotFound):
            await call(drv, guest_spec(rt, "ghost"))

    driver_factory.run(body)


# -- power transitions ------------------------------------------------------------------------


@pytest.mark.parametrize(("before", "op", "after"), TRANSITIONS, ids=case_ids(TRANSITIONS))
def test_power_transition(driver_factory: MakeDriver, before: int, op: str, after: int) -> None:
    cap, call = GUEST_OPS[op]

    async def body(rt: Any) -> None:
        drv = driver_factory(rt)
        needs(drv, cap, STATE_NEEDS[before])
        g = guest_spec(rt)
        await drv.spawn(g)
        await bring_to(drv, g.uuid, before)
        await call(drv, g)
        assert await power_of(drv, g.uuid) == after

    driver_factory.run(body)


@pytest.mark.parametrize(("state", "op"), REFUSALS, ids=case_ids(REFUSALS))
def test_wrong_state_is_refused_and_changes_nothing(driver_factory: MakeDriver, state: int,
                                                    op: str) -> None:
    cap, call = GUEST_OPS[op]

    async def body(rt: Any) -> None:
        drv = driver_factory(rt)
        needs(drv, cap, STATE_NEEDS[state])
        g = guest_spec(rt)
        await drv.spawn(g)
        await bring_to(drv, g.uuid, state)
        with pytest.raises(DriverError) as refused:
            await call(drv, g)
        assert not isinstance(refused.value, DriverNotSupported)
        assert await power_of(drv, g.uuid) == state
        assert await drv.list_guests() == [g.uuid]

    driver_factory.run(body)


def test_rescue_and_unrescue(driver_factory: MakeDriver) -> None:
    async def body(rt: Any) -> None:
        drv = driver_factory(rt)
        needs(drv, d.RESCUE)
        g = guest_spec(rt)
        await drv.spawn(g)
        await drv.rescue(g, rescue_image_ref="rescue-image", admin_password="pw")
        assert await power_of(drv, g.uuid) == RUNNING
        with pytest.raises(DriverError):
            await drv.rescue(g, rescue_image_ref=None)
        await drv.unrescue(g.uuid)
        assert await power_of(drv, g.uuid) == RUNNING
        with pytest.raises(DriverError):
            await drv.unrescue(g.uuid)
        assert await drv.list_guests() == [g.uuid]

    driver_factory.run(body)


def test_snapshot_digests_match_its_data(driver_factory: MakeDriver) -> None:
    async def body(rt: Any) -> None:
        drv = driver_factory(rt)
        needs(drv, d.SNAPSHOT)
        g = guest_spec(rt)
        await drv.spawn(g)
        snap = await drv.snapshot(g.uuid, "image-1")
        assert snap.disk_format and snap.container_format
        assert snap.os_hash_algo == "sha512"
        if snap.data:  # a driver may hand over a location instead of the bytes
            assert snap.size == len(snap.data)
            assert snap.checksum == hashlib.md5(snap.data).hexdigest()
            assert snap.os_hash_value == hashlib.sha512(snap.data).hexdigest()
        assert await power_of(drv, g.uuid) == RUNNING

    driver_factory.run(body)


# -- resize and cold migration ----------------------------------------------------------------


def _bigger(g: GuestSpec) -> GuestSpec:
    return replace(g, vcpus=2, memory_mb=1024, root_gb=2, flavor_name="m1.small")


@pytest.mark.parametrize("power_on", [True, False])
def test_resize_to_another_host_and_confirm(two_hosts: MakeDriver, power_on: bool) -> None:
    async def body(rt: Any) -> None:
        src, dst = two_hosts(rt, "host-a"), two_hosts(rt, "host-b")
        needs(src, d.RESIZE)
        g = guest_spec(rt)
        await src.spawn(g)
        disk_info = await src.migrate_disk_and_power_off(g.uuid, "host-b", _bigger(g))
        assert isinstance(disk_info, str)
        assert await power_of(src, g.uuid) == SHUTDOWN
        await dst.finish_migration(_bigger(g), disk_info=disk_info, power_on=power_on)
        info = await dst.guest_info(g.uuid)
        assert (info.power_state, info.vcpus, info.memory_mb) == (
            RUNNING if power_on else SHUTDOWN, 2, 1024)
        await src.confirm_migration(g.uuid)
        assert g.uuid not in await src.list_guests()
        assert await dst.list_guests() == [g.uuid]

    two_hosts.run(body)


def test_resize_to_another_host_and_revert(two_hosts: MakeDriver) -> None:
    async def body(rt: Any) -> None:
        src, dst = two_hosts(rt, "host-a"), two_hosts(rt, "host-b")
        needs(src, d.RESIZE)
        g = guest_spec(rt)
        await src.spawn(g)
        disk_info = await src.migrate_disk_and_power_off(g.uuid, "host-b", _bigger(g))
        await dst.finish_migration(_bigger(g), disk_info=disk_info, power_on=True)
        await dst.destroy(g.uuid)  # compute's revert: the destination lets go first
        await src.finish_revert_migration(g, power_on=True)
        info = await src.guest_info(g.uuid)
        assert (info.power_state, info.vcpus, info.memory_mb) == (RUNNING, 1, 512)
        assert await src.list_guests() == [g.uuid]
        assert await dst.list_guests() == []
        with pytest.raises(DriverError):  # nothing is kept any more
            await src.confirm_migration(g.uuid)

    two_hosts.run(body)


@pytest.mark.parametrize("outcome", ["confirm", "revert"])
def test_resize_on_the_same_host(driver_factory: MakeDriver, outcome: str) -> None:
    async def body(rt: Any) -> None:
        drv = driver_factory(rt, "host-a")
        needs(drv, d.RESIZE, d.RESIZE_SAME_HOST)
        g = guest_spec(rt)
        await drv.spawn(g)
        disk_info = await drv.migrate_disk_and_power_off(g.uuid, "host-a", _bigger(g))
        await drv.finish_migration(_bigger(g), disk_info=disk_info, power_on=True)
        assert (await drv.guest_info(g.uuid)).vcpus == 2
        if outcome == "confirm":
            await drv.confirm_migration(g.uuid)
        else:
            await drv.finish_revert_migration(g, power_on=True)
        info = await drv.guest_info(g.uuid)
        assert (info.power_state, info.vcpus) == (RUNNING, 2 if outcome == "confirm" else 1)
        assert await drv.list_guests() == [g.uuid]

    driver_factory.run(body)


# -- live migration ---------------------------------------------------------------------------


def test_live_migration(two_hosts: MakeDriver) -> None:
    async def body(rt: Any) -> None:
        src, dst = two_hosts(rt, "host-a"), two_hosts(rt, "host-b")
        needs(src, d.LIVE_MIGRATION)
        g = guest_spec(rt)
        await src.spawn(g)
        data = await dst.check_can_live_migrate_destination(
            g, source_host="host-a", block_migration=False)
        assert (data.source_host, data.dest_host) == ("host-a", "host-b")
        data = await src.check_can_live_migrate_source(g.uuid, data)
        data = await dst.pre_live_migration(g, data)
        assert await dst.list_guests() == []  # not the destination's until it is over
        await src.live_migration(g.uuid, data)
        await src.post_live_migration(g.uuid, data)
        await dst.post_live_migration_at_destination(g, data)
        assert await dst.list_guests() == [g.uuid]
        assert await power_of(dst, g.uuid) == RUNNING
        assert await src.list_guests() == []
        await src.post_live_migration(g.uuid, data)  # cleanup may run again

    two_hosts.run(body)


def test_live_migration_rolled_back(two_hosts: MakeDriver) -> None:
    async def body(rt: Any) -> None:
        src, dst = two_hosts(rt, "host-a"), two_hosts(rt, "host-b")
        needs(src, d.LIVE_MIGRATION)
        g = guest_spec(rt)
        await src.spawn(g)
        if d.PAUSE in src.capabilities:
            await src.pause(g.uuid)  # a paused guest may leave too
        state = await power_of(src, g.uuid)
        data = await dst.check_can_live_migrate_destination(
            g, source_host="host-a", block_migration=True)
        data = await src.check_can_live_migrate_source(g.uuid, data)
        data = await dst.pre_live_migration(g, data)
        await dst.rollback_live_migration_at_destination(g.uuid, data)
        await dst.rollback_live_migration_at_destination(g.uuid, data)  # a cleanup, again
        assert await dst.list_guests() == []
        assert await src.list_guests() == [g.uuid]
        assert await power_of(src, g.uuid) == state
        await dst.pre_live_migration(g, data)  # nothing was left behind in the way

    two_hosts.run(body)


def test_live_migration_refusals(two_hosts: MakeDriver) -> None:
    async def body(rt: Any) -> None:
        src, dst = two_hosts(rt, "host-a"), two_hosts(rt, "host-b")
        needs(src, d.LIVE_MIGRATION)
        room = await dst.host_resources()
        huge = guest_spec(rt, "huge", vcpus=room.vcpus + 1, memory_mb=room.memory_mb + 1)
        with pytest.raises(DriverError):
            await dst.check_can_live_migrate_destination(
                huge, source_host="host-a", block_migration=False)
        g = guest_spec(rt)
        await src.spawn(g)
        await src.power_off(g.uuid)
        data = MigrateData(source_host="host-a", dest_host="host-b")
        with pytest.raises(DriverError):  # a stopped guest is cold-migrated, not live
            await src.check_can_live_migrate_source(g.uuid, data)
        assert await power_of(src, g.uuid) == SHUTDOWN

    two_hosts.run(body)


# -- consoles -----------------------------------------------------------------------------------


def test_console_output_and_consoles(driver_factory: MakeDriver) -> None:
    async def body(rt: Any) -> None:
        drv = driver_factory(rt)
        g = guest_spec(rt)
        await drv.spawn(g)
        if d.CONSOLE_OUTPUT in drv.capabilities:
            assert isinstance(await drv.get_console_output(g.uuid), str)
        for kind, cap in CONSOLE_KINDS.items():
            if cap in drv.capabilities:
                info = await drv.get_console(g.uuid, kind)
                assert info.kind == kind and info.host and 0 < info.port < 65536
        with pytest.raises(DriverError):
            await drv.get_console(g.uuid, "telepathy")

    driver_factory.run(body)


# -- capabilities -----------------------------------------------------------------------------


@pytest.mark.parametrize("op", list(OPTIONAL_OPS))
def test_op_without_its_capability_is_not_supported(driver_factory: MakeDriver,
                                                    op: str) -> None:
    cap, call = OPTIONAL_OPS[op]

    async def body(rt: Any) -> None:
        if driver_factory.can_limit:
            drv = driver_factory(rt, capabilities=ALL_CAPABILITIES - {cap})
        else:
            drv = driver_factory(rt)
            if cap in drv.capabilities:
                pytest.skip(f"the driver has {cap} and cannot be built without it")
        assert cap not in drv.capabilities
        g = guest_spec(rt)
        await drv.spawn(g)
        with pytest.raises(DriverNotSupported):
            await call(drv, g)
        assert await drv.list_guests() == [g.uuid]
        assert await power_of(drv, g.uuid) == RUNNING

    driver_factory.run(body)


@pytest.mark.parametrize("op", list(OPTIONAL_OPS))
def test_declared_capability_is_supported(driver_factory: MakeDriver, op: str) -> None:
    cap, call = OPTIONAL_OPS[op]

    async def body(rt: Any) -> None:
        drv = driver_factory(rt)
        needs(drv, cap)
        g = guest_spec(rt)
        await drv.spawn(g)
        try:
            await call(drv, g)
        except DriverNotSupported:
            raise
        except (DriverError, NotFound):
            pass  # refused by the state of things, which is fine: it is supported

    driver_factory.run(body)
