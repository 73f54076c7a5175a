"""Lock and unlock: a locked instance refuses its owner every action, an admin may still
act, and only an admin unlocks what an admin locked."""

from __future__ import annotations

import pytest

from nimbus.core.compute import states as s
from nimbus.core.errors import InstanceLocked, NotFound
from tests.core.compute.cloud import (
    POWER_ACTIONS,
    SimCloud,
    footprint,
    power,
    run,
    settled,
    stranger,
)


def test_a_locked_instance_refuses_every_power_action_of_its_owner() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        await cloud.api.lock(cloud.as_user(), inst.uuid, reason="maintenance")
        locked = await cloud.store.get_instance(inst.uuid)
        assert locked.locked and locked.locked_by == "owner"
        assert locked.system_metadata["locked_reason"] == "maintenance"
        was = await footprint(cloud, inst.uuid)
        for action in POWER_ACTIONS:  # the lock is checked before the state: all refused
            with pytest.raises(InstanceLocked):
                await power(cloud, action, inst.uuid)
        with pytest.raises(InstanceLocked):
            await cloud.api.delete(cloud.as_user(), inst.uuid)
        await cloud.rt.sleep(1.0)
        assert await footprint(cloud, inst.uuid) == was
        # reads are not actions: the console still answers
        assert "booted" in await cloud.api.get_console_output(cloud.as_user(), inst.uuid)

    run(scenario)


@pytest.mark.parametrize("locker", ["owner", "admin"])
def test_an_admin_can_still_act_on_a_locked_instance(locker: str) -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        await cloud.api.lock(cloud.as_user() if locker == "owner" else cloud.as_admin(),
                             inst.uuid)
        await power(cloud, "stop", inst.uuid, cloud.as_admin())
        name, events = await settled(cloud, inst.uuid)
        assert (name, events) == ("stop", [("compute_stop_instance", "Success")])
        now = await cloud.store.get_instance(inst.uuid)
        assert (now.vm_state, now.task_state, now.locked) == (s.STOPPED, None, True)
        guest = await cloud.drivers[inst.host or ""].guest_info(inst.uuid)
        assert guest.power_state == s.SHUTDOWN

    run(scenario)


def test_an_owner_cannot_unlock_an_admin_lock() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        await cloud.api.lock(cloud.as_admin(), inst.uuid)
        was = await footprint(cloud, inst.uuid)
        with pytest.raises(InstanceLocked):
            await cloud.api.unlock(cloud.as_user(), inst.uuid)
        assert await footprint(cloud, inst.uuid) == was
        locked = await cloud.store.get_instance(inst.uuid)
        assert (locked.locked, locked.locked_by) == (True, "admin")
        await cloud.api.unlock(cloud.as_admin(), inst.uuid)
        await power(cloud, "pause", inst.uuid)  # the owner may act again
        await settled(cloud, inst.uuid)
        now = await cloud.store.get_instance(inst.uuid)
        assert (now.vm_state, now.locked, now.locked_by) == (s.PAUSED, False, None)
        actions = [a.action for a in await cloud.store.list_actions(inst.uuid)]
        assert actions == ["pause", "unlock", "lock", "create"]

    run(scenario)


def test_an_owner_unlocks_their_own_lock_and_strangers_see_nothing() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        for call in (cloud.api.lock, cloud.api.unlock):
            with pytest.raises(NotFound):
                await call(stranger(cloud), inst.uuid)
        await cloud.api.lock(cloud.as_user(), inst.uuid, reason="mine")
        await cloud.api.unlock(cloud.as_user(), inst.uuid)
        now = await cloud.store.get_instance(inst.uuid)
        assert (now.locked, now.locked_by) == (False, None)
        assert "locked_reason" not in now.system_metadata
        await power(cloud, "reboot_soft", inst.uuid)
        assert (await settled(cloud, inst.uuid))[1] == [("compute_reboot_instance", "Success")]

    run(scenario)
