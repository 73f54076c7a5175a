"""What only the fake driver does: timings, failure injection, config, and its helpers.

Everything runs in simulation, where virtual time is exact and a seed fixes
every draw.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from nimbus.backends.fake import FakeDriver, FakeDriverConfig, factory
from nimbus.backends.fake.config import OPERATIONS, parse_timing
from nimbus.core.compute.driver import (
    ALL_CAPABILITIES,
    DriverContext,
    HypervisorDriver,
    MigrateData,
)
from nimbus.core.compute.states import CRASHED, RUNNING, SHUTDOWN
from nimbus.core.errors import ConfigError, DriverError, DriverNotSupported, NotFound
from nimbus.sim.runtime import SimRuntime

from .conftest import guest_spec, power_of

pytestmark = pytest.mark.timeout(60)

Body = Callable[[Any], Coroutine[Any, Any, Any]]


def fake(rt: Any, host: str = "host-a", **config: Any) -> FakeDriver:
    return FakeDriver(DriverContext(runtime=rt, host=host, config=config))


def sim(body: Body, seed: int = 0) -> Any:
    rt = SimRuntime(seed)
    return rt.run(body(rt))


class CountingSleeps:
    """A runtime that counts the sleeps asked of it and passes everything on."""

    def __init__(self, rt: Any) -> None:
        self.rt, self.sleeps = rt, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rt, name)

    def sleep(self, seconds: float) -> Any:
        self.sleeps += 1
        return self.rt.sleep(seconds)


# -- timings ------------------------------------------------------------------------------------


def test_constant_timing_advances_virtual_time() -> None:
    async def body(rt: Any) -> None:
        drv = fake(rt, timings={"spawn": 5, "power_off": {"dist": "constant", "value": 2.5}})
        g = guest_spec(rt)
        await drv.spawn(g)
        assert rt.now() == 5.0
        await drv.power_off(g.uuid)
        assert rt.now() == 7.5
        await drv.power_on(g.uuid)  # no timing: instant
        assert rt.now() == 7.5

    sim(body)


def test_default_timing_applies_to_every_other_operation() -> None:
    async def body(rt: Any) -> None:
        drv = fake(rt, default_timing=2, timings={"spawn": 5})
        g = guest_spec(rt)
        await drv.spawn(g)
        await drv.list_guests()
        await drv.guest_info(g.uuid)
        assert rt.now() == 9.0

    sim(body)


def test_zero_time_operations_do_not_sleep() -> None:
    async def body(rt: Any) -> None:
        counting = CountingSleeps(rt)
        drv = fake(counting, timings={"spawn": {"dist": "uniform", "low": 0, "high": 0}})
        g = guest_spec(rt)
        await drv.spawn(g)
        await drv.pause(g.uuid)
        await drv.destroy(g.uuid)
        assert counting.sleeps == 0
        drv = fake(counting, timings={"spawn": 1})
        await drv.spawn(g)
        assert counting.sleeps == 1

    sim(body)


def _spawn_times(seed: int, timing: Any, n: int = 6) -> list[float]:
    async def body(rt: Any) -> list[float]:
        drv = fake(rt, timings={"spawn": timing})
        times = []
        for i in range(n):
            t0 = rt.now()
            await drv.spawn(guest_spec(rt, f"vm{i}"))
            times.append(rt.now() - t0)
        return times

    return list(sim(body, seed))


def test_lognormal_times_repeat_for_a_seed() -> None:
    spec = {"dist": "lognormal", "median": 30.0, "sigma": 0.5}
    first = _spawn_times(7, spec)
    assert first == _spawn_times(7, spec)
    assert first != _spawn_times(8, spec)
    assert all(t > 0 for t in first) and len(set(first)) == len(first)


def test_uniform_and_exponential_times() -> None:
    uniform = _spawn_times(3, {"dist": "uniform", "low": 2.0, "high": 4.0}, n=30)
    assert all(2.0 <= t <= 4.0 for t in uniform)
    exponential = _spawn_times(3, {"dist": "exponential", "mean": 10.0}, n=30)
    assert all(t > 0 for t in exponential) and exponential == _spawn_times(
        3, {"dist": "exponential", "mean": 10.0}, n=30)


def test_a_refused_operation_takes_no_time() -> None:
    async def body(rt: Any) -> None:
        drv = fake(rt, default_timing=3)
        g = guest_spec(rt)
        await drv.spawn(g)
        await drv.power_off(g.uuid)
        t0 = rt.now()
        with pytest.raises(DriverError):
            await drv.pause(g.uuid)
        with pytest.raises(NotFound):
            await drv.reboot("no-such-guest", hard=True)
        assert rt.now() == t0

    sim(body)


def test_a_guest_destroyed_while_an_operation_runs() -> None:
    async def body(rt: Any) -> None:
        drv = fake(rt, timings={"pause": 5})
        g = guest_spec(rt)
        await drv.spawn(g)
        pausing = rt.spawn(drv.pause(g.uuid))
        await rt.sleep(1)
        await drv.destroy(g.uuid)
        with pytest.raises(NotFound):
            await pausing.join()
        assert await drv.list_guests() == []

    sim(body)


# -- failure injection -------------------------------------------------------------------------


def test_certain_failure_leaves_everything_as_it_was() -> None:
    async def body(rt: Any) -> None:
        drv = fake(rt, failure_rates={"spawn": 1.0, "pause": 1.0, "destroy": 1.0})
        g = guest_spec(rt)
        with pytest.raises(DriverError, match="fake failure injected: spawn on host-a"):
            await drv.spawn(g)
        assert await drv.list_guests() == []
        ok = fake(rt, failure_rates={"pause": 1.0, "destroy": 1.0})
        await ok.spawn(g)
        with pytest.raises(DriverError, match="fake failure injected: pause on host-a"):
            await ok.pause(g.uuid)
        assert await power_of(ok, g.uuid) == RUNNING
        with pytest.raises(DriverError, match="destroy"):
            await ok.destroy(g.uuid)
        assert await ok.list_guests() == [g.uuid]

    sim(body)


def test_zero_failure_rate_never_fails() -> None:
    async def body(rt: Any) -> None:
        drv = fake(rt, failure_rates={op: 0.0 for op in OPERATIONS}, host_failure_rate=0.0)
        for i in range(200):
            g = guest_spec(rt, f"vm{i}")
            await drv.spawn(g)
            await drv.reboot(g.uuid, hard=False)
            await drv.destroy(g.uuid)

    sim(body)


def _outcomes(seed: int, **config: Any) -> list[bool]:
    async def body(rt: Any) -> list[bool]:
        drv = fake(rt, **config)
        results = []
        for _ in range(40):
            try:
                await drv.list_guests()
                results.append(True)
            except DriverError:
                results.append(False)
        return results

    return list(sim(body, seed))


def test_host_failure_rate_applies_to_every_operation() -> None:
    assert _outcomes(1, host_failure_rate=1.0) == [False] * 40

    async def body(rt: Any) -> None:
        drv = fake(rt, host_failure_rate=1.0)
        with pytest.raises(DriverError, match="host_resources on host-a"):
            await drv.host_resources()
        with pytest.raises(DriverError, match="spawn on host-a"):
            await drv.spawn(guest_spec(rt))

    sim(body)
    half = _outcomes(5, host_failure_rate=0.5)
    assert 5 < half.count(False) < 35
    assert half == _outcomes(5, host_failure_rate=0.5)
    # both rates draw together: an operation's own rate adds to the host's
    both = _outcomes(5, host_failure_rate=0.5, failure_rates={"list_guests": 0.5})
    assert both.count(False) > half.count(False)


# -- configuration -----------------------------------------------------------------------------


BAD_CONFIGS = [
    ({"vcpus": 0}, "vcpus"),
    ({"vcpus": "8"}, "vcpus"),
    ({"memory_mb": True}, "memory_mb"),
    ({"local_gb": -1}, "local_gb"),
    ({"capabilities": ["pause", "fly"]}, "capabilities: unknown capability 'fly'; valid"),
    ({"capabilities": "pause"}, "capabilities"),
    ({"timings": {"spwan": 1}}, "timings.spwan: unknown operation"),
    ({"timings": {"spawn": -1}}, "timings.spawn"),
    ({"timings": {"spawn": {"dist": "gamma"}}}, "timings.spawn.dist"),
    ({"timings": {"spawn": {"dist": "uniform", "low": 3, "high": 1}}}, "timings.spawn"),
    ({"timings": {"spawn": {"dist": "lognormal", "median": 2}}}, "timings.spawn.sigma"),
    ({"timings": {"spawn": {"dist": "lognormal", "median": 0, "sigma": 1}}},
     "timings.spawn.median"),
    ({"timings": {"spawn": {"dist": "exponential", "mean": 1, "rate": 2}}}, "timings.spawn"),
    ({"timings": ["spawn"]}, "timings"),
    ({"default_timing": "fast"}, "default_timing"),
    ({"failure_rates": {"spawn": 1.5}}, "failure_rates.spawn"),
    ({"failure_rates": {"boot": 0.1}}, "failure_rates.boot"),
    ({"host_failure_rate": -0.1}, "host_failure_rate"),
    ({"colour": "blue"}, "unknown key 'colour'"),
    ({"hypervisor_type": ""}, "hypervisor_type"),
    ({"host_ip": 5}, "host_ip"),
    ({"traits": "CUSTOM_X"}, "traits"),
    ({"cpu_info": ["x86_64"]}, "cpu_info"),
    ({"supported_instances": [["x86_64", "fake"]]}, "supported_instances"),
    ({"console_port_base": 70000}, "console_port_base"),
]


@pytest.mark.parametrize(("config", "names"), BAD_CONFIGS,
                         ids=[str(c) for c, _ in BAD_CONFIGS])
def test_bad_config_is_a_config_error_naming_the_key(config: dict[str, Any],
                                                     names: str) -> None:
    with pytest.raises(ConfigError, match=names.replace(".", r"\.").replace("'", ".")):
        FakeDriverConfig.from_mapping(config)


def test_timing_forms() -> None:
    rng = random.Random(1)
    state = rng.getstate()
    assert parse_timing("t", 3).draw(rng) == 3.0
    assert rng.getstate() == state  # a constant draws nothing
    assert parse_timing("t", {"dist": "constant", "value": 1.5}).a == 1.5
    assert parse_timing("t", 0.0).always_zero
    assert not parse_timing("t", {"dist": "exponential", "mean": 2}).always_zero


def test_capacity_and_identity_from_config() -> None:
    async def body(rt: Any) -> None:
        res = await fake(rt, "big-7", vcpus=96, memory_mb=786432, local_gb=4000,
                         hypervisor_type="QEMU", hypervisor_version=8002000,
                         host_ip="10.0.0.7", traits=["CUSTOM_GPU", "HW_CPU_X86_AVX2"],
                         supported_instances=[["aarch64", "qemu", "hvm"]]).host_resources()
        assert (res.hostname, res.vcpus, res.memory_mb, res.local_gb) == ("big-7", 96, 786432,
                                                                          4000)
        assert (res.hypervisor_type, res.hypervisor_version, res.host_ip) == (
            "QEMU", 8002000, "10.0.0.7")
        assert res.traits == frozenset({"CUSTOM_GPU", "HW_CPU_X86_AVX2"})
        assert res.supported_instances == (("aarch64", "qemu", "hvm"),)
        assert res.cpu_info["topology"]["cores"] == 96
        plain = await fake(rt).host_resources()
        assert (plain.vcpus, plain.memory_mb, plain.local_gb, plain.hypervisor_type) == (
            16, 65536, 1000, "fake")
        assert plain.host_ip is None and plain.traits == frozenset()
        assert plain.supported_instances == (("x86_64", "fake", "hvm"),)
        assert plain.cpu_info["arch"] == "x86_64"

    sim(body)


def test_capabilities_from_config() -> None:
    async def body(rt: Any) -> None:
        assert fake(rt).capabilities == ALL_CAPABILITIES
        drv = fake(rt, capabilities=["pause"])
        assert drv.capabilities == frozenset({"pause"})
        g = guest_spec(rt)
        await drv.spawn(g)
        await drv.pause(g.uuid)
        with pytest.raises(DriverNotSupported, match="suspend"):
            await drv.suspend(g.uuid)
        with pytest.raises(DriverNotSupported, match="get_console novnc"):
            await drv.get_console(g.uuid, "novnc")

    sim(body)


def test_the_factory_builds_a_driver() -> None:
    drv = factory(DriverContext(runtime=SimRuntime(0), host="h", config={}))
    assert isinstance(drv, FakeDriver) and isinstance(drv, HypervisorDriver)


# -- the fake's own behaviour ------------------------------------------------------------------


def test_cpu_time_grows_while_running() -> None:
    async def body(rt: Any) -> None:
        drv = fake(rt)
        g = guest_spec(rt)
        await drv.spawn(g)
        await rt.sleep(10)
        assert (await drv.guest_info(g.uuid)).cpu_time_ns == 10 * 10**9
        await drv.pause(g.uuid)
        await rt.sleep(5)
        assert (await drv.guest_info(g.uuid)).cpu_time_ns == 10 * 10**9
        await drv.unpause(g.uuid)
        await rt.sleep(1)
        assert (await drv.guest_info(g.uuid)).cpu_time_ns == 11 * 10**9

    sim(body)


def test_console_output_and_ports() -> None:
    async def body(rt: Any) -> None:
        drv = fake(rt, host_ip="192.0.2.5", console_port_base=6000)
        a, b, c = (guest_spec(rt, n) for n in "abc")
        await drv.spawn(a)
        await drv.reboot(a.uuid, hard=True)
        assert await drv.get_console_output(a.uuid) == "fake: a booted\nfake: a rebooted\n"
        await drv.spawn(b)
        assert (await drv.get_console(a.uuid, "novnc")).port == 6000
        info = await drv.get_console(b.uuid, "spice-html5")
        assert (info.kind, info.host, info.port, info.internal_access_path) == (
            "spice-html5", "192.0.2.5", 6001, None)
        await drv.destroy(a.uuid)
        await drv.spawn(c)  # takes the port a gave back
        assert (await drv.get_console(c.uuid, "serial")).port == 6000

    sim(body)


def test_crash_and_lose_all() -> None:
    async def body(rt: Any) -> None:
        src, drv = fake(rt, "host-b"), fake(rt)
        a, b, moving = guest_spec(rt, "a"), guest_spec(rt, "b"), guest_spec(rt, "moving")
        await drv.spawn(a)
        await drv.spawn(b)
        drv.crash(a.uuid)
        assert await power_of(drv, a.uuid) == CRASHED
        await drv.power_on(a.uuid)
        await drv.pause(b.uuid)
        await src.spawn(moving)
        await drv.pre_live_migration(moving, MigrateData("host-b", "host-a"))
        drv.lose_all()
        assert sorted(await drv.list_guests()) == sorted([a.uuid, b.uuid])
        assert {await power_of(drv, u) for u in (a.uuid, b.uuid)} == {SHUTDOWN}
        with pytest.raises(NotFound):
            drv.crash(moving.uuid)

    sim(body)


def test_snapshot_data_is_deterministic() -> None:
    async def body(rt: Any) -> list[bytes]:
        g = guest_spec(rt)
        blobs = []
        for image in ("img-1", "img-1", "img-2"):
            drv = fake(rt)
            await drv.spawn(g)
            snap = await drv.snapshot(g.uuid, image)
            assert (snap.disk_format, snap.container_format) == ("qcow2", "bare")
            assert snap.checksum == hashlib.md5(snap.data).hexdigest()
            blobs.append(snap.data)
        return blobs

    one, again, other = sim(body)
    assert one == again != other and one


def test_incoming_guest_is_invisible_and_full_destination_says_what_is_short() -> None:
    async def body(rt: Any) -> None:
        dst = fake(rt, "host-b", vcpus=4, memory_mb=4096)
        g = guest_spec(rt, vcpus=3, memory_mb=1024)
        data = MigrateData("host-a", "host-b")
        await dst.pre_live_migration(g, data)
        assert await dst.list_guests() == []
        with pytest.raises(NotFound):
            await dst.guest_info(g.uuid)
        other = guest_spec(rt, vcpus=2, memory_mb=3500)
        with pytest.raises(DriverError, match=r"vcpus: needs 2, 1 free; memory_mb: needs 3500"):
            await dst.check_can_live_migrate_destination(other, source_host="host-a",
                                                         block_migration=False)
        await dst.post_live_migration_at_destination(g, data)
        assert await power_of(dst, g.uuid) == RUNNING

    sim(body)


def test_resize_refusals() -> None:
    async def body(rt: Any) -> None:
        drv = fake(rt, capabilities=sorted(ALL_CAPABILITIES - {"resize_same_host"}))
        g = guest_spec(rt)
        await drv.spawn(g)
        with pytest.raises(DriverNotSupported, match="same host"):
            await drv.migrate_disk_and_power_off(g.uuid, "host-a", g)
        with pytest.raises(DriverError, match="disk info"):
            await drv.finish_migration(guest_spec(rt), disk_info="not json", power_on=True)
        await drv.migrate_disk_and_power_off(g.uuid, "host-b", g)
        with pytest.raises(DriverError, match="under way"):
            await drv.migrate_disk_and_power_off(g.uuid, "host-c", g)
        assert await power_of(drv, g.uuid) == SHUTDOWN

    sim(body)
