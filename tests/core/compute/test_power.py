"""Reboot, stop/start, pause, suspend, rescue and consoles end to end in simulation:
API -> compute host -> fake driver -> Store, with refusals, driver failures, missing
capabilities and races."""

from __future__ import annotations

from typing import Any

import pytest

from nimbus.core.compute import power as p
from nimbus.core.compute import states as s
from nimbus.core.compute.driver import ALL_CAPABILITIES, ConsoleInfo
from nimbus.core.errors import (
    DriverNotSupported,
    InstanceInvalidState,
    InvalidInput,
    NimbusError,
    NotFound,
)
from nimbus.core.messages import MESSAGES, Codec, Envelope, Kind
from tests.core.compute.cloud import (
    POWER_ACTIONS,
    SimCloud,
    footprint,
    power,
    run,
    settled,
    stranger,
)

HOST = {"vcpus": 4, "memory_mb": 8192, "local_gb": 100}
EVENT = {"reboot_soft": "compute_reboot_instance", "reboot_hard": "compute_reboot_instance"}
RECORDED = {"reboot_soft": "reboot", "reboot_hard": "reboot"}


async def steps(cloud: SimCloud, uuid: str, *actions: str) -> None:
    """Run power actions one after another, each to its end."""
    for action in actions:
        await power(cloud, action, uuid)
        await settled(cloud, uuid)


@pytest.mark.parametrize(("before", "action", "vm_state", "power_state"), [
    ((), "reboot_soft", s.ACTIVE, s.RUNNING),
    ((), "reboot_hard", s.ACTIVE, s.RUNNING),
    (("stop",), "reboot_hard", s.ACTIVE, s.RUNNING),
    (("pause",), "reboot_hard", s.ACTIVE, s.RUNNING),
    ((), "stop", s.STOPPED, s.SHUTDOWN),
    (("stop",), "start", s.ACTIVE, s.RUNNING),
    ((), "pause", s.PAUSED, s.POWER_PAUSED),
    (("pause",), "unpause", s.ACTIVE, s.RUNNING),
    ((), "suspend", s.SUSPENDED, s.POWER_SUSPENDED),
    (("suspend",), "resume", s.ACTIVE, s.RUNNING),
    ((), "rescue", s.RESCUED, s.RUNNING),
    (("stop",), "rescue", s.RESCUED, s.RUNNING),
    (("rescue",), "unrescue", s.ACTIVE, s.RUNNING),
    (("stop", "rescue"), "unrescue", s.ACTIVE, s.RUNNING),
])
def test_each_action_end_to_end(before: tuple[str, ...], action: str, vm_state: str,
                                power_state: int) -> None:
    async def scenario(cloud: SimCloud) -> None:
        inst = await cloud.boot()
        await steps(cloud, inst.uuid, *before)
        await power(cloud, action, inst.uuid)
        name, events = await settled(cloud, inst.uuid)
        assert name == RECORDED.get(action, action)
        assert events == [(EVENT.get(action, f"compute_{action}_instance"), "Success")]
        now = await cloud.store.get_instance(inst.uuid)
        assert (now.vm_state, now.task_state, now.power_state) == (vm_state, None, power_state)
        assert now.host == inst.host and await cloud.store.latest_fault(inst.uuid) is None
        assert (await cloud.drivers[inst.host or ""].guest_info(inst.uuid)).power_state \
            == power_state
        actions = [a.action for a in await cloud.store.list_actions(inst.uuid)]
        assert actions == [name, *(RECORDED.get(b, b) for b in reversed(before)), "create"]
        if action == "rescue":  # the vm_state before the rescue is kept for the record
            was = s.STOPPED if before == ("stop",) else s.ACTIVE
            assert now.system_metadata["old_vm_state"] == was
            assert cloud.api is not None
            log = await cloud.api.get_console_output(cloud.as_user(), inst.uuid)
            assert log.endswith("booted from rescue image img-1\n")
        if action == "unrescue":
            assert "old_vm_state" not in now.system_metadata

    run(scenario)


@pytest.mark.parametrize(("before", "action"), [
    ((), "start"), ((), "unpause"), ((), "resume"), ((), "unrescue"),
    (("stop",), "reboot_soft"), (("stop",), "stop"), (("stop",), "pause"),
    (("stop",), "suspend"), (("pause",), "suspend"), (("pause",), "rescue"),
    (("suspend",), "stop"), (("suspend",), "unpause"), (("rescue",), "reboot_hard"),
    (("rescue",), "rescue"),
])
def test_an_action_in_a_wrong_state_is_refused_and_changes_nothing(
        before: tuple[str, ...], action: str) -> None:
    async def scenario(cloud: SimCloud) -> None:
        inst = await cloud.boot()
        await steps(cloud, inst.uuid, *before)
        was = await footprint(cloud, inst.uuid)
        with pytest.raises(InstanceInvalidState):
            await power(cloud, action, inst.uuid)
        await cloud.rt.sleep(1.0)
        assert await footprint(cloud, inst.uuid) == was

    run(scenario)


def test_actions_on_a_missing_or_foreign_instance_are_not_found() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        was = await footprint(cloud, inst.uuid)
        for action in POWER_ACTIONS:
            with pytest.raises(NotFound):
                await power(cloud, action, "no-such-uuid")
            with pytest.raises(NotFound):
                await power(cloud, action, inst.uuid, stranger(cloud))
        with pytest.raises(NotFound):
            await cloud.api.get_console_output(stranger(cloud), inst.uuid)
        with pytest.raises(NotFound):
            await cloud.api.get_console(stranger(cloud), inst.uuid, "novnc")
        with pytest.raises(NotFound):
            await cloud.api.get_console_output(cloud.as_user(), "no-such-uuid")
        await cloud.rt.sleep(1.0)
        assert await footprint(cloud, inst.uuid) == was

    run(scenario)


@pytest.mark.parametrize(("before", "action", "op", "vm_state", "then", "then_state"), [
    ((), "reboot_soft", "reboot", s.ACTIVE, "stop", s.STOPPED),
    ((), "reboot_hard", "reboot", s.ERROR, "stop", s.STOPPED),
    ((), "stop", "power_off", s.ACTIVE, "pause", s.PAUSED),
    (("stop",), "start", "power_on", s.STOPPED, "reboot_hard", s.ACTIVE),
    ((), "pause", "pause", s.ACTIVE, "stop", s.STOPPED),
    ((), "suspend", "suspend", s.ACTIVE, "pause", s.PAUSED),
    ((), "rescue", "rescue", s.ACTIVE, "stop", s.STOPPED),
])
def test_a_driver_failure_leaves_a_fault_and_a_usable_instance(
        before: tuple[str, ...], action: str, op: str, vm_state: str, then: str,
        then_state: str) -> None:
    async def scenario(cloud: SimCloud) -> None:
        inst = await cloud.boot()
        await steps(cloud, inst.uuid, *before)
        await power(cloud, action, inst.uuid)
        _, events = await settled(cloud, inst.uuid)
        assert [result for _, result in events] == ["Error"]
        failed = await cloud.store.get_instance(inst.uuid)
        assert (failed.vm_state, failed.task_state) == (vm_state, None)
        fault = await cloud.store.latest_fault(inst.uuid)
        assert fault is not None and f"fake failure injected: {op}" in fault.message
        await steps(cloud, inst.uuid, then)  # usable: the next action works
        assert (await cloud.store.get_instance(inst.uuid)).vm_state == then_state

    run(scenario, driver_config={**HOST, "failure_rates": {op: 1.0}})


@pytest.mark.parametrize(("action", "capability"), [
    ("pause", "pause"), ("suspend", "suspend"), ("rescue", "rescue"),
])
def test_a_driver_without_the_capability_records_a_fault_and_reverts(
        action: str, capability: str) -> None:
    async def scenario(cloud: SimCloud) -> None:
        inst = await cloud.boot()
        await power(cloud, action, inst.uuid)
        assert [r for _, r in (await settled(cloud, inst.uuid))[1]] == ["Error"]
        now = await cloud.store.get_instance(inst.uuid)
        assert (now.vm_state, now.task_state, now.power_state) == (s.ACTIVE, None, s.RUNNING)
        fault = await cloud.store.latest_fault(inst.uuid)
        assert fault is not None and fault.code == 409
        assert f"does not support {action}" in fault.message
        assert (await cloud.drivers[inst.host or ""].guest_info(inst.uuid)).power_state \
            == s.RUNNING

    caps = sorted(ALL_CAPABILITIES - {capability})
    run(scenario, driver_config={**HOST, "capabilities": caps})


@pytest.mark.parametrize("slow_reads", [False, True])
def test_two_racing_actions_exactly_one_starts(slow_reads: bool) -> None:
    async def scenario(cloud: SimCloud) -> None:
        inst = await cloud.boot()
        if slow_reads:  # both pass the state check before either writes: the write decides
            read = cloud.store.get_instance

            async def slow(*args: Any, **kwargs: Any) -> Any:
                got = await read(*args, **kwargs)
                await cloud.rt.sleep(0.01)
                return got

            cloud.store.get_instance = slow  # type: ignore[method-assign]
        tasks = {a: cloud.rt.spawn(power(cloud, a, inst.uuid)) for a in ("stop", "pause")}
        started, refusals = [], []
        for action, task in tasks.items():
            try:
                await task.join()
                started.append(action)
            except InstanceInvalidState as exc:
                refusals.append(exc.message)
        assert len(started) == 1 and len(refusals) == 1
        # with slow reads the loser passed the state check and lost the conditional write
        assert ("expected" in refusals[0]) == slow_reads
        name, events = await settled(cloud, inst.uuid)
        assert name == started[0] and [r for _, r in events] == ["Success"]
        want = {"stop": s.STOPPED, "pause": s.PAUSED}[started[0]]
        assert (await cloud.store.get_instance(inst.uuid)).vm_state == want
        assert [a.action for a in await cloud.store.list_actions(inst.uuid)] == [name, "create"]

    run(scenario)


def test_a_hard_reboot_takes_over_a_soft_reboot_under_way() -> None:
    async def scenario(cloud: SimCloud) -> None:
        inst = await cloud.boot()
        await power(cloud, "reboot_soft", inst.uuid)
        await cloud.wait_for(inst.uuid, vm_state=s.ACTIVE, task_state=s.REBOOT_STARTED)
        with pytest.raises(InstanceInvalidState):  # one soft reboot at a time
            await power(cloud, "reboot_soft", inst.uuid)
        await power(cloud, "reboot_hard", inst.uuid)
        await settled(cloud, inst.uuid)
        now = await cloud.wait_for(inst.uuid, vm_state=s.ACTIVE)
        assert now.power_state == s.RUNNING and await cloud.store.latest_fault(inst.uuid) is None
        for action in (await cloud.store.list_actions(inst.uuid))[:2]:
            _, events = await cloud.store.get_action(inst.uuid, action.request_id)
            assert [(e.event, e.result) for e in events] == [
                ("compute_reboot_instance", "Success")]

    run(scenario, driver_config={**HOST, "timings": {"reboot": 5.0}})


@pytest.mark.parametrize("delay", [0.0, 1.0])  # before the stop reaches the host; during it
def test_a_delete_during_a_stop_wins_quietly(delay: float) -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        await power(cloud, "stop", inst.uuid)
        await cloud.rt.sleep(delay)
        await cloud.api.delete(cloud.as_user(), inst.uuid)
        await cloud.wait_for(inst.uuid, deleted=True)
        assert await cloud.store.latest_fault(inst.uuid) is None
        assert inst.uuid not in await cloud.drivers[inst.host or ""].list_guests()

    run(scenario, driver_config={**HOST, "timings": {"power_off": 5.0}})


def test_console_output_returns_the_last_lines() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        await steps(cloud, inst.uuid, "reboot_soft")
        out = await cloud.api.get_console_output(cloud.as_user(), inst.uuid)
        assert out == "fake: vm booted\nfake: vm rebooted\n"
        for length, want in ((1, "fake: vm rebooted\n"), (0, ""), (-1, out), (5, out)):
            assert await cloud.api.get_console_output(cloud.as_user(), inst.uuid,
                                                      length) == want
        with pytest.raises(InvalidInput):
            await cloud.api.get_console_output(cloud.as_user(), inst.uuid, -2)
        assert [a.action for a in await cloud.store.list_actions(inst.uuid)] == [
            "reboot", "create"]  # reads record no action

    run(scenario)


def test_get_console_answers_where_the_console_listens() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        got = await cloud.api.get_console(cloud.as_user(), inst.uuid, "novnc")
        assert got == ConsoleInfo("novnc", "127.0.0.1", 5900, None)
        with pytest.raises(InvalidInput):
            await cloud.api.get_console(cloud.as_user(), inst.uuid, "telnet")

    run(scenario)


@pytest.mark.parametrize(("call", "missing"), [
    (("get_console", "novnc"), "vnc_console"), (("get_console", "serial"), "serial_console"),
    (("get_console_output",), "console_output"),
])
def test_a_console_the_driver_lacks_is_a_409(call: tuple[str, ...], missing: str) -> None:
    async def scenario(cloud: SimCloud) -> None:
        inst = await cloud.boot()
        fn: Any = getattr(cloud.api, call[0])
        with pytest.raises(DriverNotSupported) as err:
            await fn(cloud.as_user(), inst.uuid, *call[1:])
        assert isinstance(err.value, NimbusError) and err.value.status == 409

    run(scenario, driver_config={**HOST, "capabilities": sorted(ALL_CAPABILITIES - {missing})})


def test_the_power_messages_travel_as_messagepack() -> None:
    codec = Codec()
    for msg in (p.RebootInstance("u", "r", True), p.StopInstance("u", "r"),
                p.RescueInstance("u", "r", "img-9", "pw"), p.UnrescueInstance("u", "r"),
                p.GetConsoleOutput("u", 3), p.GetConsole("u", "novnc"),
                p.ConsoleAnswer(ConsoleInfo("novnc", "10.0.0.1", 5901, None))):
        name, version = MESSAGES.name_of(msg)
        env = Envelope(Kind.CAST, "m1", "compute.cmp0", "", name, version, msg)
        assert codec.decode(codec.encode(env)).body == msg
