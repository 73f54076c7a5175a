"""The resource tracker's usage report in one transaction, on every engine."""

from __future__ import annotations

import pytest

from nimbus.core.db.placement import InventorySpec
from nimbus.core.db.store import Store
from nimbus.core.errors import NotFound

from .conftest import StoreRunner
from .test_instances_contract import boot

PROVIDER = "00000000-0000-0000-0000-0000000000c1"


def test_record_node_usage(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        svc = await store.create_service(uuid="s", host="h1", binary="nimbus-compute",
                                         topic="compute", now=1.0)
        node = await store.create_compute_node(
            uuid=PROVIDER, service_id=svc.id, host="h1", hypervisor_hostname="h1",
            hypervisor_type="fake", vcpus=16, memory_mb=65536, local_gb=1000, now=1.0)
        await store.create_resource_provider(uuid=PROVIDER, name="h1", now=1.0)
        await store.set_inventories(PROVIDER, 0, {
            "VCPU": InventorySpec(16), "MEMORY_MB": InventorySpec(65536),
            "DISK_GB": InventorySpec(1000)}, now=1.0)
        for uuid in ("a", "b", "c"):
            await boot(store, uuid)
            await store.update_instance(uuid, now=11.0, host="h1", node="h1")
        await store.update_instance("a", now=12.0, vm_state="active", task_state=None)
        await store.soft_delete_instance("c", now=12.5)
        await store.claim_allocations("a", {PROVIDER: {"VCPU": 2, "MEMORY_MB": 2048}},
                                      project_id="p1", user_id="u1", now=13.0)

        got = await store.record_node_usage(
            node.id, PROVIDER, "h1", vcpus=16, memory_mb=65536, local_gb=1000,
            busy_task_states=["spawning"], stats={"failed_builds": 1}, now=20.0)
        # a is active, b still building (busy); c is deleted and not counted
        assert (got.used, got.running, got.busy) == (
            {"VCPU": 2, "MEMORY_MB": 2048, "DISK_GB": 0}, 2, 1)
        written = await store.get_compute_node(PROVIDER)
        assert (written.vcpus_used, written.memory_mb_used, written.local_gb_used,
                written.running_vms, written.updated_at) == (2, 2048, 0, 2, 20.0)
        assert written.stats == {"failed_builds": 1, "io_workload": 1}

        with pytest.raises(NotFound, match="resource provider"):
            await store.record_node_usage(
                node.id, "00000000-0000-0000-0000-00000000dead", "h1", vcpus=16,
                memory_mb=65536, local_gb=1000, busy_task_states=[], stats={}, now=21.0)
        with pytest.raises(NotFound, match="compute node"):
            await store.record_node_usage(
                node.id + 99, PROVIDER, "h1", vcpus=16, memory_mb=65536, local_gb=1000,
                busy_task_states=[], stats={}, now=21.0)
        assert (await store.get_compute_node(PROVIDER)).updated_at == 20.0  # nothing written

    run_store(body)
