"""Compute services up and down, end to end in simulation: heartbeats, a stopped service
seen down after ``service_down_time``, and hosts that are down, disabled or forced down
never chosen for a build."""

from __future__ import annotations

from nimbus.core.compute import states
from nimbus.core.compute.config import ComputeConfig
from tests.core.compute.cloud import SimCloud, run

BINARY = "nimbus-compute"


async def hosts_of(cloud: SimCloud, n: int) -> set[str]:
    """Boot ``n`` instances; the hosts they landed on."""
    return {(await cloud.boot()).host or "" for _ in range(n)}


async def service_id(cloud: SimCloud, host: str) -> int:
    svc = await cloud.store.service_by_host_binary(host, BINARY)
    assert svc is not None
    return svc.id


def test_a_compute_service_reports_every_report_interval() -> None:
    async def scenario(cloud: SimCloud) -> None:
        first = await cloud.store.service_by_host_binary("cmp0", BINARY)
        assert first is not None
        await cloud.rt.sleep(100.0)
        later = await cloud.store.service_by_host_binary("cmp0", BINARY)
        assert later is not None and later.last_seen_up is not None
        assert later.report_count - first.report_count in (9, 10, 11)
        assert cloud.rt.wall_time() - later.last_seen_up <= 10.0
        assert later.is_up(cloud.rt.wall_time(), 60.0)

    run(scenario, hosts=1, compute_config=ComputeConfig(reserved_host_memory_mb=0,
                                                        report_interval=10.0))


def test_a_stopped_compute_is_seen_down_after_service_down_time_and_avoided() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        assert await hosts_of(cloud, 3) == {"cmp0", "cmp1", "cmp2"}  # builds spread
        await cloud.stop_compute("cmp0")
        await cloud.rt.sleep(30.0)
        assert await cloud.api.host_is_up("cmp0")  # not yet: heard from 30-40 s ago
        await cloud.rt.sleep(41.0)
        assert not await cloud.api.host_is_up("cmp0")
        await cloud.refresh_scheduler()
        assert await hosts_of(cloud, 4) == {"cmp1", "cmp2"}

    run(scenario)


def test_disabled_and_forced_down_services_are_never_chosen() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        now = cloud.rt.wall_time()
        await cloud.store.set_service_status(await service_id(cloud, "cmp0"), disabled=True,
                                             reason="maintenance", forced_down=False, now=now)
        await cloud.store.set_service_status(await service_id(cloud, "cmp1"), disabled=False,
                                             reason=None, forced_down=True, now=now)
        await cloud.refresh_scheduler()
        assert await hosts_of(cloud, 4) == {"cmp2"}
        assert await cloud.api.host_is_up("cmp0")  # disabled: up, only not scheduled to
        assert not await cloud.api.host_is_up("cmp1")  # heard from, but forced down

        await cloud.store.set_service_status(await service_id(cloud, "cmp2"), disabled=True,
                                             reason=None, forced_down=False, now=now)
        await cloud.refresh_scheduler()
        nowhere = await cloud.boot(wait=False)
        failed = await cloud.wait_for(nowhere.uuid, vm_state=states.ERROR)
        assert failed.host is None
        fault = await cloud.store.latest_fault(nowhere.uuid)
        assert fault is not None and fault.message.startswith("No valid host")

    run(scenario)
