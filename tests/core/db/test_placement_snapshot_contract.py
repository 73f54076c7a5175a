"""provider_snapshot: every provider's inventories and usage in one read, on every engine."""

from __future__ import annotations

from nimbus.core.db.placement import InventorySpec
from nimbus.core.db.store import Store

from .conftest import StoreRunner

T = 1000.0


def test_provider_snapshot_has_inventories_and_usage(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        assert await store.provider_snapshot() == {}
        for n, name in ((1, "cn1"), (2, "cn2"), (3, "empty")):
            await store.create_resource_provider(uuid=f"rp-{n}", name=name, now=T)
        await store.ensure_resource_class("CUSTOM_GPU", now=T)
        await store.set_inventories("rp-1", 0, {
            "VCPU": InventorySpec(8, reserved=1, allocation_ratio=4.0),
            "MEMORY_MB": InventorySpec(4096, max_unit=2048, step_size=256),
            "CUSTOM_GPU": InventorySpec(2)}, now=T)
        await store.set_inventories("rp-2", 0, {"VCPU": InventorySpec(4)}, now=T)
        await store.claim_allocations("vm-1", {"rp-1": {"VCPU": 3, "CUSTOM_GPU": 1}},
                                      project_id="p", user_id="u", now=T)
        await store.claim_allocations("vm-2", {"rp-1": {"VCPU": 2}, "rp-2": {"VCPU": 4}},
                                      project_id="p", user_id="u", now=T)
        snap = await store.provider_snapshot()
        assert sorted(snap) == ["rp-1", "rp-2"]  # no inventory, no entry
        one = snap["rp-1"]
        assert one.inventories["VCPU"] == InventorySpec(8, reserved=1, allocation_ratio=4.0)
        assert one.inventories["MEMORY_MB"] == InventorySpec(4096, max_unit=2048, step_size=256)
        assert one.used == {"VCPU": 5, "MEMORY_MB": 0, "CUSTOM_GPU": 1}
        assert snap["rp-2"].used == {"VCPU": 4}
        assert one.generation == (await store.get_inventories("rp-1")).generation

    run_store(body)
