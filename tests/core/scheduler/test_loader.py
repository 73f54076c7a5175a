"""HostStatesLoader: host states from the Store, refreshed in place, and compute reports."""

from __future__ import annotations

import pytest

from nimbus.core.db.store import Store
from nimbus.core.scheduler.loader import HostReport, HostStatesLoader, Refreshed, apply_update
from tests.core.db.conftest import StoreRunner
from tests.core.scheduler.store_fleet import T, place_instance, register_fleet, register_host

ENGINES = pytest.mark.parametrize("run_store", ["sim", "postgresql"], indirect=True)


@ENGINES
def test_load_reads_nodes_services_placement_aggregates_and_instances(
        run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        hosts = await register_fleet(store, 4, vcpus=8, memory_mb=4096, reserved_mb=512)
        await store.set_service_status(hosts[1].service_id, disabled=True, reason="maint",
                                       forced_down=False, now=T)
        await store.set_service_status(hosts[2].service_id, disabled=False, reason=None,
                                       forced_down=True, now=T)
        agg = await store.create_aggregate(uuid="agg-1", name="fast", now=T,
                                           availability_zone="az1", metadata={"ssd": "true"})
        await store.add_host(agg.id, "h0", now=T)
        await store.add_host(agg.id, "h3", now=T)
        group = await store.create_server_group(uuid="grp-1", name="g", project_id="p",
                                                user_id="u", policy="anti-affinity", now=T)
        await place_instance(store, "vm-1", "h0")
        await place_instance(store, "vm-2", "h0", task_state="spawning")
        await store.add_members(group.uuid, ["vm-1"], now=T)
        await store.claim_allocations("vm-1", {hosts[0].uuid: {"VCPU": 2, "MEMORY_MB": 1024}},
                                      project_id="p", user_id="u", now=T)

        states = await HostStatesLoader(store, service_down_time=60).load(T + 30)
        assert [states.name(r) for r in states.rows()] == ["h0", "h1", "h2", "h3"]
        h0 = states.index("h0")
        spec = states.specs[h0]
        assert spec is not None and spec.uuid == hosts[0].uuid
        assert (spec.vcpus, spec.memory_mb, spec.memory_mb_reserved) == (8, 4096, 512)
        assert (states.vcpus_used[h0], states.ram_used[h0]) == (2, 1024)
        assert (states.num_instances[h0], states.io_ops[h0]) == (2, 1)
        assert states.group_counts("grp-1").tolist() == [1, 0, 0, 0]
        assert (states.az_name(h0), states.az_name(states.index("h1"))) == ("az1", "nova")
        assert states.aggregate_metadata(states.index("h3")) == [
            {"availability_zone": "az1", "ssd": "true"}]
        assert states.service_ok.tolist() == [True, False, False, True]

    run_store(body)


@ENGINES
def test_refresh_writes_only_what_changed(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        hosts = await register_fleet(store, 3)
        loader = HostStatesLoader(store, service_down_time=60)
        states = await loader.load(T + 10)
        version, touched = states.static_version, states.touch_count
        assert await loader.refresh(states, T + 20) == Refreshed(0, 0, 0)
        assert (states.static_version, states.touch_count) == (version, touched)

        # h1 stops reporting, h2 gets an allocation, h3 appears
        await store.service_heartbeat(hosts[0].service_id, T + 80)
        await store.service_heartbeat(hosts[2].service_id, T + 80)
        await store.claim_allocations("vm-9", {hosts[2].uuid: {"VCPU": 1}}, project_id="p",
                                      user_id="u", now=T)
        await register_host(store, 3, now=T + 80)
        refreshed = await loader.refresh(states, T + 100)
        assert (refreshed.added, refreshed.removed, refreshed.updated) == (1, 0, 2)
        assert states.service_ok.tolist() == [True, False, True, True]
        assert states.vcpus_used.tolist() == [0, 0, 1, 0]

        await store.delete_resource_provider(hosts[1].uuid)
        await store.delete_service(hosts[1].service_id, T + 100)
        refreshed = await loader.refresh(states, T + 110)
        assert refreshed.removed == 1 and len(states) == 3

    run_store(body)


def test_a_compute_report_moves_capacity_and_usage(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        await register_fleet(store, 2, vcpus=4)
        states = await HostStatesLoader(store).load(T)
        apply_update(states, HostReport("h1", 8, 8192, 100, 3, 1024, 10, num_instances=2))
        row = states.index("h1")
        assert (states.vcpus_total[row], states.vcpus_used[row], states.num_instances[row]) == (
            8, 3, 2)
        spec = states.specs[row]
        assert spec is not None and spec.uuid is not None  # the rest of the spec is kept

    if run_store.kind == "sim":
        run_store(body)
