"""Services and compute nodes, on every engine."""

from __future__ import annotations

import pytest

from nimbus.core.db.store import Store
from nimbus.core.errors import DuplicateError, NotFound

from .conftest import StoreRunner


def test_services_lifecycle(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        svc = await store.create_service(uuid="u1", host="h1", binary="nimbus-compute",
                                         topic="compute", now=100.0)
        assert (svc.host, svc.binary, svc.disabled, svc.forced_down) == (
            "h1", "nimbus-compute", False, False)
        assert svc.last_seen_up == 100.0 and svc.is_up(150.0, 60.0)
        assert not svc.is_up(161.0, 60.0)
        with pytest.raises(DuplicateError):
            await store.create_service(uuid="u2", host="h1", binary="nimbus-compute",
                                       topic="compute", now=100.0)
        other = await store.create_service(uuid="u3", host="h2", binary="nimbus-compute",
                                           topic="compute", now=100.0)
        await store.service_heartbeat(svc.id, 200.0)
        got = await store.get_service(svc.id)
        assert got.last_seen_up == 200.0 and got.report_count == 1
        off = await store.set_service_status(svc.id, disabled=True, reason="maintenance",
                                             forced_down=True, now=201.0)
        assert off.disabled and off.disabled_reason == "maintenance" and off.forced_down
        assert not off.is_up(201.0, 60.0)
        assert [s.host for s in await store.list_services()] == ["h1", "h2"]
        assert [s.id for s in await store.list_services(host="h2")] == [other.id]
        assert await store.list_services(binary="nimbus-scheduler") == []
        found = await store.service_by_host_binary("h1", "nimbus-compute")
        assert found is not None and found.id == svc.id
        await store.delete_service(svc.id, 300.0)
        with pytest.raises(NotFound):
            await store.get_service(svc.id)
        with pytest.raises(NotFound):
            await store.service_heartbeat(svc.id, 301.0)
        # a deleted service's (host, binary) can be registered again
        again = await store.create_service(uuid="u4", host="h1", binary="nimbus-compute",
                                           topic="compute", now=400.0)
        assert again.id != svc.id

    run_store(body)


def test_compute_nodes(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        svc = await store.create_service(uuid="s", host="h1", binary="nimbus-compute",
                                         topic="compute", now=1.0)
        node = await store.create_compute_node(
            uuid="n1", service_id=svc.id, host="h1", hypervisor_hostname="h1.local",
            hypervisor_type="fake", vcpus=16, memory_mb=65536, local_gb=1000, now=1.0)
        assert (node.vcpus, node.memory_mb, node.stats) == (16, 65536, {})
        await store.update_compute_node_usage(
            node.id, vcpus=16, memory_mb=65536, local_gb=1000, vcpus_used=4,
            memory_mb_used=8192, local_gb_used=40, running_vms=2, stats={"io": 1}, now=2.0)
        got = await store.get_compute_node("n1")
        assert (got.vcpus_used, got.running_vms, got.stats, got.updated_at) == (
            4, 2, {"io": 1}, 2.0)
        assert [n.uuid for n in await store.list_compute_nodes(host="h1")] == ["n1"]
        assert await store.compute_node_by_host("h1", "h1.local") is not None
        with pytest.raises(DuplicateError):
            await store.create_compute_node(
                uuid="n2", service_id=svc.id, host="h1", hypervisor_hostname="h1.local",
                hypervisor_type="fake", vcpus=1, memory_mb=1, local_gb=1, now=1.0)
        await store.delete_service(svc.id, 5.0)
        assert await store.list_compute_nodes() == []
        with pytest.raises(NotFound):
            await store.get_compute_node("n1")

    run_store(body)
