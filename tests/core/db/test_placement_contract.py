"""Placement: providers, inventories, traits, aggregates, claims and candidates, on every engine."""

from __future__ import annotations

import pytest

from nimbus.core.db.placement import (
    MISC_SHARES_VIA_AGGREGATE,
    STANDARD_RESOURCE_CLASSES,
    InventorySpec,
)
from nimbus.core.db.store import Store
from nimbus.core.errors import (
    CapacityExceeded,
    ConflictError,
    DuplicateError,
    InvalidPlacementInput,
    NotFound,
)

from .conftest import StoreRunner

T = 1000.0


def uid(n: int) -> str:
    return f"00000000-0000-0000-0000-{n:012d}"


async def provider(store: Store, n: int, inventory: dict[str, InventorySpec],
                   parent: int | None = None) -> str:
    """A provider named rp<n> with uuid uid(n) and these inventories."""
    await store.create_resource_provider(
        uuid=uid(n), name=f"rp{n}", now=T,
        parent_provider_uuid=uid(parent) if parent is not None else None)
    if inventory:
        await store.set_inventories(uid(n), 0, inventory, now=T)
    return uid(n)


def compute(vcpu: int = 8, ram: int = 4096, disk: int | None = 100) -> dict[str, InventorySpec]:
    inv = {"VCPU": InventorySpec(vcpu, allocation_ratio=2.0),
           "MEMORY_MB": InventorySpec(ram, reserved=512, max_unit=ram, step_size=256)}
    if disk is not None:
        inv["DISK_GB"] = InventorySpec(disk)
    return inv


def test_provider_trees_and_lifecycle(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        root = await store.create_resource_provider(uuid=uid(1), name="cn1", now=T)
        assert (root.generation, root.root_provider_uuid, root.parent_provider_uuid) == (
            0, uid(1), None)
        numa = await store.create_resource_provider(uuid=uid(2), name="cn1_numa0", now=T,
                                                    parent_provider_uuid=uid(1))
        pf = await store.create_resource_provider(uuid=uid(3), name="cn1_pf0", now=T,
                                                  parent_provider_uuid=uid(2))
        assert (numa.root_provider_uuid, numa.parent_provider_uuid) == (uid(1), uid(1))
        assert (pf.root_provider_uuid, pf.parent_provider_uuid) == (uid(1), uid(2))
        await store.create_resource_provider(uuid=uid(4), name="cn2", now=T)
        with pytest.raises(DuplicateError):
            await store.create_resource_provider(uuid=uid(5), name="cn1", now=T)
        with pytest.raises(DuplicateError):
            await store.create_resource_provider(uuid=uid(1), name="other", now=T)
        with pytest.raises(NotFound, match=uid(9)):
            await store.create_resource_provider(uuid=uid(5), name="x", now=T,
                                                 parent_provider_uuid=uid(9))
        assert [p.name for p in await store.list_resource_providers()] == [
            "cn1", "cn1_numa0", "cn1_pf0", "cn2"]
        assert [p.uuid for p in await store.list_resource_providers(in_tree=uid(3))] == [
            uid(1), uid(2), uid(3)]
        assert [p.uuid for p in await store.list_resource_providers(name="cn2")] == [uid(4)]
        assert [p.name for p in await store.list_resource_providers(uuid=uid(2))] == [
            "cn1_numa0"]
        renamed = await store.rename_resource_provider(uid(4), "cn2.example", now=T + 1)
        assert (renamed.name, renamed.updated_at) == ("cn2.example", T + 1)
        with pytest.raises(ConflictError, match="child"):
            await store.delete_resource_provider(uid(2))
        await store.delete_resource_provider(uid(3))
        await store.delete_resource_provider(uid(2))
        with pytest.raises(NotFound, match=uid(2)):
            await store.get_resource_provider(uid(2))
        with pytest.raises(NotFound):
            await store.delete_resource_provider(uid(2))
        assert (await store.get_resource_provider(uid(1))).name == "cn1"

    run_store(body)


def test_inventories_generations_and_limits(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        rp = await provider(store, 1, {})
        gen = await store.set_inventories(rp, 0, compute(), now=T)
        assert gen == 1
        got = await store.get_inventories(rp)
        assert got.generation == 1 and got.inventories == compute()
        assert got.inventories["VCPU"].capacity == 16
        assert got.inventories["MEMORY_MB"].capacity == 3584
        with pytest.raises(ConflictError, match="generation"):
            await store.set_inventories(rp, 0, compute(vcpu=4), now=T)
        with pytest.raises(InvalidPlacementInput, match="reserved"):
            await store.set_inventories(rp, 1, {"VCPU": InventorySpec(4, reserved=5)}, now=T)
        with pytest.raises(InvalidPlacementInput, match="min_unit"):
            await store.update_inventory(rp, 1, "VCPU", InventorySpec(4, min_unit=5,
                                                                      max_unit=4), now=T)
        with pytest.raises(InvalidPlacementInput, match="BOGUS"):
            await store.update_inventory(rp, 1, "BOGUS", InventorySpec(4), now=T)
        with pytest.raises(NotFound, match="CUSTOM_GOLD"):
            await store.update_inventory(rp, 1, "CUSTOM_GOLD", InventorySpec(4), now=T)
        assert await store.ensure_resource_class("CUSTOM_GOLD", now=T) is True
        gen = await store.update_inventory(rp, 1, "CUSTOM_GOLD", InventorySpec(4), now=T)
        gen = await store.update_inventory(rp, gen, "VCPU", InventorySpec(12), now=T)
        inv = (await store.get_inventories(rp)).inventories
        assert (sorted(inv), inv["VCPU"].total, inv["VCPU"].allocation_ratio) == (
            ["CUSTOM_GOLD", "DISK_GB", "MEMORY_MB", "VCPU"], 12, 1.0)
        gen = await store.delete_inventory(rp, gen, "CUSTOM_GOLD", now=T)
        with pytest.raises(NotFound, match="CUSTOM_GOLD"):
            await store.delete_inventory(rp, gen, "CUSTOM_GOLD", now=T)
        # in use: not removable, not shrinkable below what is allocated
        await store.claim_allocations(uid(100), {rp: {"VCPU": 10, "DISK_GB": 50}},
                                      project_id="p", user_id="u", now=T)
        gen = (await store.get_resource_provider(rp)).generation
        with pytest.raises(ConflictError, match=r"DISK_GB.*in use"):
            await store.set_inventories(rp, gen, {"VCPU": InventorySpec(12)}, now=T)
        with pytest.raises(ConflictError, match=r"VCPU.*capacity 8 but 10"):
            await store.update_inventory(rp, gen, "VCPU", InventorySpec(8), now=T)
        with pytest.raises(ConflictError, match="DISK_GB"):
            await store.delete_inventory(rp, gen, "DISK_GB", now=T)
        # shrinking to exactly what is used, and dropping an unused class, are fine
        gen = await store.set_inventories(
            rp, gen, {"VCPU": InventorySpec(5, allocation_ratio=2.0),
                      "DISK_GB": InventorySpec(60, reserved=10)}, now=T)
        assert sorted((await store.get_inventories(rp)).inventories) == ["DISK_GB", "VCPU"]
        assert await store.usages_for_provider(rp) == {"VCPU": 10, "DISK_GB": 50}

    run_store(body)


def test_resource_classes(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        assert await store.list_resource_classes() == list(STANDARD_RESOURCE_CLASSES)
        assert await store.ensure_resource_class("CUSTOM_FPGA_X", now=T) is True
        assert await store.ensure_resource_class("CUSTOM_FPGA_X", now=T) is False
        assert await store.ensure_resource_class("CUSTOM_B", now=T) is True
        assert await store.ensure_resource_class("VCPU", now=T) is False
        assert (await store.list_resource_classes())[-2:] == ["CUSTOM_FPGA_X", "CUSTOM_B"]
        with pytest.raises(InvalidPlacementInput):
            await store.ensure_resource_class("custom_lower", now=T)
        assert await store.sync_standard_resource_classes(now=T) == len(
            STANDARD_RESOURCE_CLASSES) - 1
        assert await store.sync_standard_resource_classes(now=T) == 0
        assert await store.list_resource_classes() == [
            *STANDARD_RESOURCE_CLASSES, "CUSTOM_FPGA_X", "CUSTOM_B"]
        rp = await provider(store, 1, {"CUSTOM_B": InventorySpec(2)})
        await store.claim_allocations(uid(100), {rp: {"CUSTOM_B": 1}}, project_id="p",
                                      user_id="u", now=T)
        assert await store.usages_for_provider(rp) == {"CUSTOM_B": 1}
        with pytest.raises(ConflictError, match="CUSTOM_B"):
            await store.delete_resource_class("CUSTOM_B")
        with pytest.raises(InvalidPlacementInput):
            await store.delete_resource_class("VCPU")
        await store.delete_resource_class("CUSTOM_FPGA_X")
        with pytest.raises(NotFound):
            await store.delete_resource_class("CUSTOM_FPGA_X")
        assert "CUSTOM_FPGA_X" not in await store.list_resource_classes()

    run_store(body)


def test_traits_and_aggregates(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        rp = await provider(store, 1, {})
        other = await provider(store, 2, {})
        gen = await store.set_traits(rp, 0, ["HW_CPU_X86_AVX2", "COMPUTE_NODE"], now=T)
        assert gen == 1
        got = await store.get_traits(rp)
        assert got == type(got)(1, frozenset({"HW_CPU_X86_AVX2", "COMPUTE_NODE"}))
        with pytest.raises(ConflictError):
            await store.set_traits(rp, 0, [], now=T)
        with pytest.raises(NotFound, match="CUSTOM_FAST"):
            await store.set_traits(rp, 1, ["CUSTOM_FAST"], now=T)
        with pytest.raises(InvalidPlacementInput, match="NOT_A_TRAIT"):
            await store.set_traits(rp, 1, ["NOT_A_TRAIT"], now=T)
        await store.ensure_traits(["CUSTOM_FAST", "STORAGE_DISK_SSD"], now=T)
        gen = await store.set_traits(rp, 1, ["CUSTOM_FAST", "COMPUTE_NODE"], now=T)
        await store.set_traits(other, 0, ["COMPUTE_NODE"], now=T)
        assert (await store.get_traits(rp)).traits == {"CUSTOM_FAST", "COMPUTE_NODE"}
        assert await store.list_traits(associated=True) == ["COMPUTE_NODE", "CUSTOM_FAST"]
        assert await store.list_traits(prefix="CUSTOM_") == ["CUSTOM_FAST"]
        unlinked = await store.list_traits(associated=False)
        assert "STORAGE_DISK_SSD" in unlinked and "COMPUTE_NODE" not in unlinked
        assert "HW_CPU_X86_AVX2" in unlinked and "MISC_SHARES_VIA_AGGREGATE" in unlinked
        assert await store.list_traits(names=["CUSTOM_FAST", "CUSTOM_NONE"]) == ["CUSTOM_FAST"]
        with pytest.raises(ConflictError, match="CUSTOM_FAST"):
            await store.delete_trait("CUSTOM_FAST")
        with pytest.raises(InvalidPlacementInput):
            await store.delete_trait("COMPUTE_NODE")
        gen = await store.set_traits(rp, gen, [], now=T)
        await store.delete_trait("CUSTOM_FAST")
        with pytest.raises(NotFound):
            await store.delete_trait("CUSTOM_FAST")

        a1, a2, a3 = uid(901), uid(902), uid(903)
        gen = await store.set_provider_aggregates(rp, gen, [a1, a2], now=T)
        await store.set_provider_aggregates(other, 1, [a2, a3], now=T)
        got_aggs = await store.get_provider_aggregates(rp)
        assert (got_aggs.generation, got_aggs.aggregates) == (gen, {a1, a2})
        with pytest.raises(ConflictError):
            await store.set_provider_aggregates(rp, gen - 1, [a3], now=T)
        assert [p.uuid for p in await store.list_resource_providers(member_of=[[a1]])] == [rp]
        assert [p.uuid for p in await store.list_resource_providers(
            member_of=[[a1, a3]])] == [rp, other]
        assert [p.uuid for p in await store.list_resource_providers(
            member_of=[[a1], [a2]])] == [rp]
        assert [p.uuid for p in await store.list_resource_providers(
            required_traits=["COMPUTE_NODE"])] == [other]
        assert [p.uuid for p in await store.list_resource_providers(
            forbidden_traits=["COMPUTE_NODE"])] == [rp]
        gen = await store.set_provider_aggregates(rp, gen, [], now=T)
        assert (await store.get_provider_aggregates(rp)).aggregates == frozenset()
        # a provider with traits and aggregates can still be deleted
        await store.delete_resource_provider(other)

    run_store(body)


def test_claims_capacity_and_consumer_generations(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        rp = await provider(store, 1, compute())  # VCPU 16, MEMORY_MB 3584 by 256, DISK 100
        inst = uid(100)
        got = await store.claim_allocations(
            inst, {rp: {"VCPU": 4, "MEMORY_MB": 1024}}, project_id="p1", user_id="u1",
            now=T, consumer_type="INSTANCE")
        assert (got.generation, got.allocations) == (1, {rp: {"VCPU": 4, "MEMORY_MB": 1024}})
        assert (await store.get_resource_provider(rp)).generation == 2
        read = await store.get_allocations(inst)
        assert (read.generation, read.project_id, read.user_id, read.consumer_type) == (
            1, "p1", "u1", "INSTANCE")
        assert read.allocations == {rp: {"VCPU": 4, "MEMORY_MB": 1024}}
        # a new consumer must say so; an existing one must give its generation
        with pytest.raises(ConflictError, match="expected a new consumer"):
            await store.claim_allocations(inst, {rp: {"VCPU": 1}}, project_id="p1",
                                          user_id="u1", now=T)
        with pytest.raises(ConflictError, match="expected generation 7"):
            await store.claim_allocations(inst, {rp: {"VCPU": 1}}, project_id="p1",
                                          user_id="u1", now=T, consumer_generation=7)
        # over capacity: the message names provider, class and numbers
        with pytest.raises(CapacityExceeded) as exc:
            await store.claim_allocations(uid(101), {rp: {"VCPU": 13}}, project_id="p1",
                                          user_id="u1", now=T)
        assert exc.value.status == 409
        assert str(exc.value) == (
            f"VCPU on resource provider {rp}: requested 13, used 4, capacity 16 "
            "((total 8 - reserved 0) x allocation_ratio 2)")
        with pytest.raises(CapacityExceeded, match="step_size 256"):
            await store.claim_allocations(uid(101), {rp: {"MEMORY_MB": 100}},
                                          project_id="p1", user_id="u1", now=T)
        with pytest.raises(CapacityExceeded, match="max_unit 4096"):
            await store.claim_allocations(uid(101), {rp: {"MEMORY_MB": 4352}},
                                          project_id="p1", user_id="u1", now=T)
        with pytest.raises(CapacityExceeded, match="no inventory of PCI_DEVICE"):
            await store.claim_allocations(uid(101), {rp: {"PCI_DEVICE": 1}},
                                          project_id="p1", user_id="u1", now=T)
        with pytest.raises(NotFound, match=uid(55)):
            await store.claim_allocations(uid(101), {uid(55): {"VCPU": 1}},
                                          project_id="p1", user_id="u1", now=T)
        with pytest.raises(InvalidPlacementInput, match="VCPU"):
            await store.claim_allocations(uid(101), {rp: {"VCPU": 0}}, project_id="p1",
                                          user_id="u1", now=T)
        assert (await store.get_allocations(uid(101))).generation is None
        # the consumer's own allocations do not count against its new ones (a resize)
        got = await store.claim_allocations(inst, {rp: {"VCPU": 16, "DISK_GB": 10}},
                                            project_id="p1", user_id="u1", now=T,
                                            consumer_generation=1)
        assert got.generation == 2
        assert await store.usages_for_provider(rp) == {"VCPU": 16, "MEMORY_MB": 0,
                                                       "DISK_GB": 10}
        with pytest.raises(CapacityExceeded, match="used 16, capacity 16"):
            await store.claim_allocations(uid(101), {rp: {"VCPU": 1}}, project_id="p1",
                                          user_id="u1", now=T)
        await store.claim_allocations(uid(102), {rp: {"DISK_GB": 90}}, project_id="p1",
                                      user_id="u2", now=T)
        await store.claim_allocations(uid(103), {rp: {"MEMORY_MB": 512}}, project_id="p2",
                                      user_id="u1", now=T)
        assert await store.usages_for_project("p1") == {"VCPU": 16, "DISK_GB": 100}
        assert await store.usages_for_project("p1", "u2") == {"DISK_GB": 90}
        assert await store.usages_for_project("p3") == {}
        assert await store.allocations_for_provider(rp) == {
            inst: {"VCPU": 16, "DISK_GB": 10}, uid(102): {"DISK_GB": 90},
            uid(103): {"MEMORY_MB": 512}}
        with pytest.raises(ConflictError, match="has allocations"):
            await store.delete_resource_provider(rp)
        # an empty claim releases everything; the consumer is gone
        gone = await store.claim_allocations(inst, {}, project_id="p1", user_id="u1", now=T,
                                             consumer_generation=2)
        assert (gone.generation, gone.allocations) == (None, {})
        assert (await store.get_allocations(inst)).generation is None
        await store.delete_allocations(uid(102))
        with pytest.raises(NotFound):
            await store.delete_allocations(uid(102))
        assert await store.usages_for_provider(rp) == {"VCPU": 0, "MEMORY_MB": 512,
                                                       "DISK_GB": 0}

    run_store(body)


def test_claim_on_many_providers_is_atomic(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        cn = await provider(store, 1, compute(disk=None))
        pool = await provider(store, 2, {"DISK_GB": InventorySpec(100)})
        with pytest.raises(CapacityExceeded, match=f"DISK_GB on resource provider {pool}"):
            await store.claim_allocations(uid(100), {cn: {"VCPU": 2}, pool: {"DISK_GB": 101}},
                                          project_id="p", user_id="u", now=T)
        assert await store.usages_for_provider(cn) == {"VCPU": 0, "MEMORY_MB": 0}
        assert (await store.get_allocations(uid(100))).allocations == {}
        gens = [(await store.get_resource_provider(u)).generation for u in (cn, pool)]
        got = await store.claim_allocations(
            uid(100), {cn: {"VCPU": 2}, pool: {"DISK_GB": 40}}, project_id="p", user_id="u",
            now=T)
        assert got.allocations == {cn: {"VCPU": 2}, pool: {"DISK_GB": 40}}
        assert [(await store.get_resource_provider(u)).generation for u in (cn, pool)] == [
            g + 1 for g in gens]
        # moving to one provider frees the other
        await store.claim_allocations(uid(100), {cn: {"VCPU": 3}}, project_id="p",
                                      user_id="u", now=T, consumer_generation=1)
        assert await store.usages_for_provider(pool) == {"DISK_GB": 0}

    run_store(body)


def test_move_allocations(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        src = await provider(store, 1, compute())
        inst, migration = uid(100), uid(200)
        await store.claim_allocations(inst, {src: {"VCPU": 2, "DISK_GB": 20}},
                                      project_id="p", user_id="u", now=T,
                                      consumer_type="INSTANCE")
        gen = (await store.get_resource_provider(src)).generation
        with pytest.raises(ConflictError):
            await store.move_allocations(inst, migration, source_generation=5, now=T)
        moved = await store.move_allocations(inst, migration, source_generation=1, now=T)
        assert (moved.consumer_uuid, moved.generation, moved.project_id, moved.allocations) == (
            migration, 1, "p", {src: {"VCPU": 2, "DISK_GB": 20}})
        assert (await store.get_allocations(inst)).allocations == {}
        assert (await store.get_allocations(migration)).allocations == {
            src: {"VCPU": 2, "DISK_GB": 20}}
        assert (await store.get_resource_provider(src)).generation == gen + 1
        assert await store.usages_for_provider(src) == {"VCPU": 2, "MEMORY_MB": 0,
                                                        "DISK_GB": 20}
        with pytest.raises(NotFound):
            await store.move_allocations(inst, migration, source_generation=1, now=T)
        # back again onto a target that exists: its allocations are replaced
        await store.claim_allocations(inst, {src: {"VCPU": 1}}, project_id="p", user_id="u",
                                      now=T)
        back = await store.move_allocations(migration, inst, source_generation=1,
                                            target_generation=1, now=T)
        assert (back.generation, back.allocations) == (2, {src: {"VCPU": 2, "DISK_GB": 20}})
        assert await store.usages_for_provider(src) == {"VCPU": 2, "MEMORY_MB": 0,
                                                        "DISK_GB": 20}

    run_store(body)


def test_list_providers_by_capacity(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        small = await provider(store, 1, compute(vcpu=2))  # 4 VCPU after ratio
        big = await provider(store, 2, compute(vcpu=8))
        await store.claim_allocations(uid(100), {big: {"VCPU": 14}}, project_id="p",
                                      user_id="u", now=T)
        found = await store.list_resource_providers(resources={"VCPU": 3})
        assert [p.uuid for p in found] == [small]
        found = await store.list_resource_providers(resources={"VCPU": 2, "MEMORY_MB": 512})
        assert [p.uuid for p in found] == [small, big]
        assert await store.list_resource_providers(resources={"MEMORY_MB": 300}) == []
        assert await store.list_resource_providers(resources={"PCI_DEVICE": 1}) == []
        assert await store.list_resource_providers(resources={"CUSTOM_NONE": 1}) == []

    run_store(body)


def test_allocation_candidates(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        cn1 = await provider(store, 1, compute(vcpu=4))
        cn2 = await provider(store, 2, compute(vcpu=8))
        cn3 = await provider(store, 3, compute(vcpu=8, disk=None))  # disk from the pool
        pool = await provider(store, 4, {"DISK_GB": InventorySpec(1000)})
        pf = await provider(store, 5, {"SRIOV_NET_VF": InventorySpec(8)}, parent=2)
        agg = uid(900)
        for rp in (cn3, pool):
            gen = (await store.get_resource_provider(rp)).generation
            await store.set_provider_aggregates(rp, gen, [agg], now=T)
        gen = (await store.get_resource_provider(pool)).generation
        await store.set_traits(pool, gen, [MISC_SHARES_VIA_AGGREGATE], now=T)
        gen = (await store.get_resource_provider(cn2)).generation
        await store.set_traits(cn2, gen, ["HW_CPU_X86_AVX2"], now=T)
        await store.claim_allocations(uid(100), {cn1: {"VCPU": 6}}, project_id="p",
                                      user_id="u", now=T)

        got = await store.allocation_candidates({"VCPU": 4, "MEMORY_MB": 1024, "DISK_GB": 10})
        assert got.allocation_requests == [
            {cn2: {"VCPU": 4, "MEMORY_MB": 1024, "DISK_GB": 10}},
            {cn3: {"VCPU": 4, "MEMORY_MB": 1024}, pool: {"DISK_GB": 10}},
        ]
        summary = got.provider_summaries[cn2]
        assert summary.resources["VCPU"].capacity == 16
        assert summary.traits == {"HW_CPU_X86_AVX2"}
        assert got.provider_summaries[pool].resources["DISK_GB"].used == 0
        assert set(got.provider_summaries) == {cn2, cn3, pool}
        # the pool alone can take disk; cn1 and cn2 too
        only_disk = await store.allocation_candidates({"DISK_GB": 100})
        assert [sorted(r) for r in only_disk.allocation_requests] == [[cn1], [cn2], [pool]]
        small = await store.allocation_candidates({"VCPU": 2})
        assert [list(r) for r in small.allocation_requests] == [[cn1], [cn2], [cn3]]
        assert small.provider_summaries[cn1].resources["VCPU"].used == 6
        limited = await store.allocation_candidates({"VCPU": 2}, limit=2)
        assert len(limited.allocation_requests) == 2
        # nested: the VFs come from the child of cn2
        nested = await store.allocation_candidates({"VCPU": 1, "SRIOV_NET_VF": 2})
        assert nested.allocation_requests == [{cn2: {"VCPU": 1}, pf: {"SRIOV_NET_VF": 2}}]
        assert nested.provider_summaries[pf].root_provider_uuid == cn2
        assert nested.provider_summaries[pf].parent_provider_uuid == cn2
        # traits and aggregates apply to the root
        avx = await store.allocation_candidates({"VCPU": 1}, required_traits=["HW_CPU_X86_AVX2"])
        assert [list(r) for r in avx.allocation_requests] == [[cn2]]
        no_avx = await store.allocation_candidates({"VCPU": 1},
                                                   forbidden_traits=["HW_CPU_X86_AVX2"])
        assert [list(r) for r in no_avx.allocation_requests] == [[cn1], [cn3]]
        in_agg = await store.allocation_candidates({"VCPU": 1, "DISK_GB": 5},
                                                   member_of=[[agg]])
        assert in_agg.allocation_requests == [{cn3: {"VCPU": 1}, pool: {"DISK_GB": 5}}]
        assert (await store.allocation_candidates({"VCPU": 100})).allocation_requests == []
        assert (await store.allocation_candidates({"CUSTOM_X": 1})).allocation_requests == []
        # what a candidate says can be claimed as it is
        await store.claim_allocations(uid(101), got.allocation_requests[1], project_id="p",
                                      user_id="u", now=T)
        assert await store.usages_for_provider(pool) == {"DISK_GB": 10}

    run_store(body)
