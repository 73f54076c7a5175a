"""The scheduler service end to end, in simulation: RPC over the sim transport, a fleet
registered in the Store on the sim database, claims in placement."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from nimbus.core.db.store import Store
from nimbus.core.errors import RemoteError
from nimbus.core.messages import Codec, Envelope, Kind
from nimbus.core.rpc import RpcEndpoint
from nimbus.core.scheduler import RequestSpec, ServerGroupSpec
from nimbus.core.scheduler.loader import HostReport
from nimbus.core.scheduler.service import (
    Destinations,
    SchedulerService,
    SchedulerServiceConfig,
    SelectDestinations,
)
from nimbus.core.service import ServiceContext, ServiceHost
from nimbus.sim.db import SimDatabase
from nimbus.sim.runtime import SimRuntime
from nimbus.sim.transport import SimTransport, constant_latency
from tests.core.scheduler.store_fleet import Host, register_fleet, register_host

Scenario = Callable[[RpcEndpoint, SchedulerService, Store, list[Host]], Awaitable[Any]]


def run(scenario: Scenario, *, hosts: int = 3, seed: int = 0,
        config: SchedulerServiceConfig | None = None) -> Any:
    """``scenario(client, service, store, hosts)`` with a started scheduler service."""
    rt = SimRuntime(seed)
    transport = SimTransport(rt, latency=constant_latency(0.001))
    store = Store(SimDatabase())

    async def main() -> Any:
        fleet = await register_fleet(store, hosts, vcpus=4)
        service = SchedulerService(ServiceContext(rt, transport, "sched-1", store=store),
                                   config or SchedulerServiceConfig(refresh_interval=30.0))
        client = RpcEndpoint(rt, transport, default_timeout=5.0)
        await client.start()
        host = ServiceHost([service])
        await host.start()
        try:
            return await scenario(client, service, store, fleet)
        finally:
            await host.stop()
            await client.stop()
            await store.close()

    return rt.run(main())


def spec(count: int = 1, **kw: Any) -> RequestSpec:
    return RequestSpec.build(1, 512, 1, num_instances=count, project_id="p", user_id="u", **kw)


def test_select_destinations_over_rpc_claims_in_placement() -> None:
    async def scenario(client: RpcEndpoint, service: SchedulerService, store: Store,
                       fleet: list[Host]) -> None:
        group = ServerGroupSpec("grp-1", "anti-affinity")
        got = await client.call("scheduler", SelectDestinations(spec(3, group=group)))
        assert isinstance(got, Destinations) and len(got.selections) == 3
        assert sorted(s.host for s in got.selections) == ["h0", "h1", "h2"]  # anti-affinity
        by_name = {h.name: h.uuid for h in fleet}
        for s in got.selections:
            assert s.instance_uuid  # drawn by the service: the request named none
            held = await store.get_allocations(s.instance_uuid)
            assert held.allocations == {by_name[s.host]: {"VCPU": 1, "MEMORY_MB": 512,
                                                          "DISK_GB": 1}}
            assert held.project_id == "p" and held.consumer_type == "INSTANCE"
        named = await client.call("scheduler", SelectDestinations(
            spec(1, instance_uuids=["vm-named"])))
        assert named.selections[0].instance_uuid == "vm-named"
        assert (await store.get_allocations("vm-named")).allocations
        metrics = service.ctx.metrics.render().decode()
        assert 'nimbus_scheduler_requests_total{outcome="placed"} 2.0' in metrics
        assert "nimbus_scheduler_instances_placed_total 4.0" in metrics

    run(scenario)


def test_no_valid_host_comes_back_as_a_remote_error_naming_the_filters() -> None:
    async def scenario(client: RpcEndpoint, service: SchedulerService, store: Store,
                       fleet: list[Host]) -> None:
        with pytest.raises(RemoteError) as err:
            await client.call("scheduler", SelectDestinations(
                RequestSpec.build(64, 512, 1, project_id="p")))
        assert err.value.exc_type == "HostsFilteredOut" and err.value.status == 400
        assert "ResourceFit removed 3 of 3 hosts" in err.value.remote_message
        with pytest.raises(RemoteError, match="AvailabilityZoneFilter removed 3 of 3 hosts"):
            await client.call("scheduler", SelectDestinations(spec(availability_zone="az9")))
        metrics = service.ctx.metrics.render().decode()
        assert 'nimbus_scheduler_requests_total{outcome="no_valid_host"} 2.0' in metrics

    run(scenario)


def test_the_host_states_follow_the_store_and_compute_reports() -> None:
    async def scenario(client: RpcEndpoint, service: SchedulerService, store: Store,
                       fleet: list[Host]) -> None:
        rt = service.runtime
        # a new host registers; it and h0 keep reporting; h1 and h2 fall silent
        new = await register_host(store, 3, vcpus=64, now=rt.wall_time())
        await rt.sleep(70.0)  # past service_down_time (60 s), two refreshes (every 30 s)
        for svc in (fleet[0].service_id, new.service_id):
            await store.service_heartbeat(svc, rt.wall_time())
        await rt.sleep(31.0)
        got = await client.call("scheduler", SelectDestinations(spec(1)))
        assert got.selections[0].host == "h3"  # the big new host, up
        assert set(got.selections[0].alternates) == {"h0"}  # h1, h2 are down
        # a compute report between refreshes: h0 now has room to spare
        await client.cast("scheduler", HostReport("h0", 128, 65536, 1000, 0, 0, 0))
        await rt.sleep(0.01)
        row = service.states.index("h0")
        assert service.states.vcpus_total[row] == 128
        assert service.last_refresh is not None

    run(scenario)


def test_the_messages_cross_a_byte_transport() -> None:
    """What ZeroMQ carries: the request spec and the selections as MessagePack."""
    codec = Codec()
    request = SelectDestinations(RequestSpec.build(
        2, 4096, 20, extra_specs={"trait:CUSTOM_GPU": "required", "hw:cpu_policy": "shared"},
        image_properties={"hw_architecture": "x86_64"}, scheduler_hints={"same_host": ["a"]},
        group=ServerGroupSpec("g", "soft-anti-affinity"), num_instances=2, min_count=1,
        instance_uuids=["u1", "u2"], member_of=[["agg-1", "agg-2"]], project_id="p",
        user_id="u"))
    env = Envelope(Kind.CALL, "m1", "scheduler", "me", "scheduler.select_destinations", 1,
                   request)
    assert codec.decode(codec.encode(env)).body == request

    async def answer(client: RpcEndpoint, service: SchedulerService, store: Store,
                     fleet: list[Host]) -> Destinations:
        got: Destinations = await client.call("scheduler", SelectDestinations(spec(2)))
        return got

    destinations = run(answer)
    reply = Envelope(Kind.REPLY, "m1", "me", "", "scheduler.destinations", 1, destinations)
    assert codec.decode(codec.encode(reply)).body == destinations

    bad = Envelope(Kind.CALL, "m2", "scheduler", "me", "scheduler.select_destinations", 1,
                   {"spec": {"vcpus": 1, "memory_mb": 1, "num_instances": 0}})
    decoded = codec.decode_lenient(codec.encode(bad))  # a validation error, not a crash
    assert "num_instances must be at least 1" in decoded.body.reason
