"""PlacementClaimer: the scheduler claiming in placement through the Store, on the sim
database and on PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable
from typing import Any

import numpy as np
import pytest

from nimbus.core.db.store import Store
from nimbus.core.errors import ConflictError, NoValidHost
from nimbus.core.scheduler import RequestSpec, Scheduler, SchedulerConfig, Selection
from nimbus.core.scheduler.host_state import HostStates
from nimbus.core.scheduler.loader import HostStatesLoader
from nimbus.core.scheduler.placement_claimer import PlacementClaimer
from tests.core.db.conftest import StoreRunner
from tests.core.scheduler.store_fleet import T, register_fleet, usage_by_host

ENGINES = pytest.mark.parametrize("run_store", ["sim", "postgresql"], indirect=True)


class Clock:
    """The part of a Runtime the claimer reads."""

    def wall_time(self) -> float:
        return T


def scheduler(store: Store, states: HostStates,
              config: SchedulerConfig | None = None) -> tuple[Scheduler, PlacementClaimer]:
    claimer = PlacementClaimer(store, states, Clock())  # type: ignore[arg-type]
    return Scheduler(states, config or SchedulerConfig(), claimer, random.Random(0)), claimer


def batch(prefix: str, count: int, *, vcpus: int = 1, min_count: int | None = None,
          **kw: Any) -> RequestSpec:
    return RequestSpec.build(vcpus, 512, 1, num_instances=count, min_count=min_count,
                             instance_uuids=[f"{prefix}{i}" for i in range(count)],
                             project_id="p", user_id="u", **kw)


async def together(*calls: Awaitable[list[Selection]]) -> list[list[Selection] | BaseException]:
    """Run the calls at once on a real engine; one after the other in the simulation
    (it has no event loop to interleave them: its transactions never wait)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        out: list[list[Selection] | BaseException] = []
        for call in calls:
            try:
                out.append(await call)
            except NoValidHost as exc:
                out.append(exc)
        return out
    return list(await asyncio.gather(*calls, return_exceptions=True))


@ENGINES
def test_two_schedulers_fill_the_fleet_without_over_allocation(run_store: StoreRunner) -> None:
    """Two schedulers, each blind to the other's claims, place multi-create batches on the
    same hosts: placement refuses what no longer fits, each picks again, nothing exceeds
    capacity, and every placed instance holds its allocation on its host."""
    async def body(store: Store) -> None:
        hosts = await register_fleet(store, 3, vcpus=4)
        loader = HostStatesLoader(store)
        a, _ = scheduler(store, await loader.load(T))
        b, _ = scheduler(store, await loader.load(T))
        got = await together(a.select_destinations_async(batch("a", 8, min_count=1)),
                             b.select_destinations_async(batch("b", 8, min_count=1)))
        placed = [s for r in got if isinstance(r, list) for s in r]
        assert len(placed) == 12  # the fleet's 12 VCPUs
        usage = await usage_by_host(store, hosts)
        assert all(u["VCPU"] == 4 for u in usage.values()), usage
        assert a.conflicts + b.conflicts > 0  # someone found a host full in placement
        by_name = {h.name: h.uuid for h in hosts}
        for s in placed:
            assert s.instance_uuid is not None
            held = await store.get_allocations(s.instance_uuid)
            assert held.allocations == {by_name[s.host]: {"VCPU": 1, "MEMORY_MB": 512,
                                                          "DISK_GB": 1}}
        # one more finds nothing: the hosts are full in the columns or in placement
        with pytest.raises(NoValidHost, match=r"(ResourceFit|Placement) removed 3 of 3 hosts"):
            await a.select_destinations_async(batch("c", 1))

    run_store(body)


@ENGINES
def test_a_generation_conflict_moves_the_claim_to_the_next_host(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        hosts = await register_fleet(store, 3, vcpus=4)
        states = await HostStatesLoader(store).load(T)
        sched, claimer = scheduler(store, states)
        real = store.claim_allocations
        tried: list[str] = []

        async def lost_race(consumer: str, allocations: dict[str, dict[str, int]],
                            **kw: Any) -> Any:
            tried.append(next(iter(allocations)))
            if len(tried) == 1:
                raise ConflictError("resource provider generation conflict (injected)")
            return await real(consumer, allocations, **kw)

        store.claim_allocations = lost_race  # type: ignore[method-assign]
        [sel] = await sched.select_destinations_async(batch("x", 1))
        assert (sched.conflicts, claimer.refused, claimer.claims) == (1, 1, 1)
        assert tried == [hosts[0].uuid, hosts[1].uuid]  # equal hosts: the lowest row first
        assert sel.host == "h1" and "h0" in sel.alternates  # a loser may take a reschedule
        held = await store.get_allocations("x0")
        assert list(held.allocations) == [hosts[1].uuid]
        assert states.vcpus_used.tolist() == [0, 1, 0]

    run_store(body)


@ENGINES
def test_room_taken_under_the_scheduler_refreshes_the_host(run_store: StoreRunner) -> None:
    """Between ranking and claim another consumer fills the best host: placement says it
    is over capacity, the claimer reads the host's usage again, the scheduler moves on."""
    async def body(store: Store) -> None:
        hosts = await register_fleet(store, 3, vcpus=4)
        states = await HostStatesLoader(store).load(T)
        sched, claimer = scheduler(store, states)
        real = store.claim_allocations

        async def thief_first(consumer: str, allocations: dict[str, dict[str, int]],
                              **kw: Any) -> Any:
            if consumer == "x0" and claimer.refused == 0:
                await real("thief", {next(iter(allocations)): {"VCPU": 4}}, project_id="p",
                           user_id="u", now=T)
            return await real(consumer, allocations, **kw)

        store.claim_allocations = thief_first  # type: ignore[method-assign]
        [sel] = await sched.select_destinations_async(batch("x", 1))
        assert sel.host == "h1" and sched.conflicts == 1
        assert states.vcpus_used.tolist() == [4, 1, 0]  # h0 as placement has it now
        usage = await usage_by_host(store, hosts)
        assert [u["VCPU"] for u in usage.values()] == [4, 1, 0]

    run_store(body)


@ENGINES
def test_a_batch_that_fails_gives_every_claim_back(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        hosts = await register_fleet(store, 3, vcpus=4)
        states = await HostStatesLoader(store).load(T)
        sched, _ = scheduler(store, states)
        with pytest.raises(NoValidHost, match="instance 13 of 13"):
            await sched.select_destinations_async(batch("x", 13))
        usage = await usage_by_host(store, hosts)
        assert all(u["VCPU"] == 0 for u in usage.values())
        assert not states.vcpus_used.any() and not states.num_instances.any()
        for i in range(12):
            assert (await store.get_allocations(f"x{i}")).allocations == {}

    run_store(body)


@ENGINES
def test_placement_prefilter_reads_traits_and_aggregates(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        hosts = await register_fleet(store, 3, vcpus=4)
        await store.ensure_traits(["CUSTOM_GPU"], now=T)
        gen = (await store.get_traits(hosts[2].uuid)).generation
        await store.set_traits(hosts[2].uuid, gen, ["CUSTOM_GPU"], now=T)
        agg = "00000000-aaaa-0000-0000-000000000001"
        gen = (await store.get_provider_aggregates(hosts[1].uuid)).generation
        await store.set_provider_aggregates(hosts[1].uuid, gen, [agg], now=T)
        states = await HostStatesLoader(store).load(T)
        sched, claimer = scheduler(store, states)
        offered = await claimer.candidates(batch("q", 1, extra_specs={
            "trait:CUSTOM_GPU": "required"}))
        assert offered is not None and offered.tolist() == [2]
        [gpu] = await sched.select_destinations_async(batch("g", 1, extra_specs={
            "trait:CUSTOM_GPU": "required"}))
        [plain] = await sched.select_destinations_async(batch("n", 1, extra_specs={
            "trait:CUSTOM_GPU": "forbidden"}))
        [member] = await sched.select_destinations_async(batch("m", 1, member_of=[[agg]]))
        assert (gpu.host, plain.host, member.host) == ("h2", "h0", "h1")
        with pytest.raises(NoValidHost, match="Placement removed 3 of 3 hosts"):
            await sched.select_destinations_async(batch("z", 1, extra_specs={
                "trait:CUSTOM_FPGA": "required"}))
        assert np.array_equal(states.vcpus_used, [1, 1, 1])

    run_store(body)
