"""The invariant checker over a cloud that really ran: silent when all is well, and
each invariant caught, alone, when the Store is broken behind the services' backs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import and_, update

from nimbus.core.compute import states
from nimbus.core.db.placement import STANDARD_CLASS_IDS, allocations, inventories
from nimbus.core.db.placement_sql import provider_id_gen
from nimbus.sim import invariants
from nimbus.sim.invariants import check
from nimbus.sim.outcome import Violation
from tests.core.compute.cloud import BIG, SimCloud, run, wait_for_migration

#: flavor m1.small of the harness, as placement holds it
SMALL = {"VCPU": 1, "MEMORY_MB": 512, "DISK_GB": 1}


@dataclass
class Fleet:
    """What the healthy scenario made: uuids by role."""

    grouped: list[str]  # the two members of anti-affinity group g-anti
    resized: str  # resized, awaiting confirmation: its migration holds the source
    stopped: str
    gone: str  # deleted
    plain: list[str]


async def healthy(cloud: SimCloud) -> Fleet:
    """Boot a small, varied fleet on 3 hosts and let it settle."""
    assert cloud.api is not None
    now = cloud.rt.wall_time()
    group = await cloud.store.create_server_group(
        uuid="g-anti", name="spread", project_id="p1", user_id="u1", policy="anti-affinity",
        now=now)
    soft = await cloud.store.create_server_group(
        uuid="g-soft", name="pack", project_id="p1", user_id="u1",
        policy="soft-anti-affinity", now=now)
    grouped = [(await cloud.boot(group_uuid=group.uuid)).uuid for _ in range(2)]
    resized = (await cloud.boot()).uuid
    await cloud.api.resize(cloud.as_user(), resized, BIG)
    await cloud.wait_for(resized, vm_state=states.RESIZED)
    await wait_for_migration(cloud, resized, "finished")
    stopped = (await cloud.boot()).uuid
    await cloud.api.stop(cloud.as_user(), stopped)
    await cloud.wait_for(stopped, vm_state=states.STOPPED)
    gone = (await cloud.boot()).uuid
    await cloud.api.delete(cloud.as_user(), gone)
    await cloud.wait_for(gone, deleted=True)
    plain = [(await cloud.boot(group_uuid=soft.uuid)).uuid for _ in range(2)]
    await cloud.rt.sleep(5.0)
    return Fleet(grouped, resized, stopped, gone, plain)


Breaker = Callable[[SimCloud, Fleet], Awaitable[object]]


def violations(breaker: Breaker | None = None, *, settle: float = 0.0,
               ) -> tuple[list[Violation], object]:
    """Run the healthy scenario, break it with ``breaker``, then check; the violations
    and what the breaker returned."""
    async def scenario(cloud: SimCloud) -> tuple[list[Violation], object]:
        fleet = await healthy(cloud)
        made = None if breaker is None else await breaker(cloud, fleet)
        return await check(cloud.store, now=cloud.rt.wall_time(), settle=settle), made

    result: tuple[list[Violation], object] = run(scenario, hosts=3)
    return result


def only(found: list[Violation], invariant: str, subject: str) -> Violation:
    assert [(v.invariant, v.subject) for v in found] == [(invariant, subject)], found
    return found[0]


async def provider_id(cloud: SimCloud, host: str) -> int:
    rp = (await cloud.store.list_resource_providers(name=host))[0]
    return (await cloud.store.db.transact(lambda tx: provider_id_gen(tx, rp.uuid)))[0]


def test_a_healthy_cloud_breaks_no_invariant() -> None:
    found, _ = violations()
    assert found == []
    assert invariants.describe(found) == ""


def test_an_allocation_past_capacity_is_over_allocated() -> None:
    async def shrink(cloud: SimCloud, fleet: Fleet) -> str:
        inst = await cloud.store.get_instance(fleet.stopped)
        host = inst.host or ""
        rp = await provider_id(cloud, host)
        inv = inventories.c
        # all of the host's memory reserved: what its instances hold no longer fits
        await cloud.store.db.transact(lambda tx: tx.run(
            update(inventories).where(and_(
                inv.resource_provider_id == rp,
                inv.resource_class_id == STANDARD_CLASS_IDS["MEMORY_MB"]))
            .values(reserved=inv.total), {}))
        return host

    found, host = violations(shrink)
    v = only(found, invariants.OVER_ALLOCATED, str(host))
    assert "MEMORY_MB allocated" in v.detail and "capacity 0" in v.detail
    assert "reserved 8192" in v.detail


def test_an_allocation_of_nobody_is_reported() -> None:
    async def ghost(cloud: SimCloud, fleet: Fleet) -> None:
        inst = await cloud.store.get_instance(fleet.stopped)
        rp = await provider_id(cloud, inst.host or "")
        await cloud.store.db.transact(lambda tx: tx.run(allocations.insert(), {
            "resource_provider_id": rp, "consumer_id": "ghost-1",
            "resource_class_id": STANDARD_CLASS_IDS["VCPU"], "used": 1,
            "created_at": 0.0, "updated_at": 0.0}))

    found, _ = violations(ghost)
    v = only(found, invariants.ALLOCATIONS_MATCH, "ghost-1")
    assert "no instance or migration" in v.detail and "VCPU: 1" in v.detail


def test_a_deleted_instance_still_holding_is_reported_once_settled() -> None:
    async def leak(cloud: SimCloud, fleet: Fleet) -> str:
        inst = await cloud.store.get_instance(fleet.stopped)
        rp = (await cloud.store.list_resource_providers(name=inst.host))[0].uuid
        await cloud.store.claim_allocations(fleet.gone, {rp: SMALL}, project_id="p1",
                                            user_id="u1", now=cloud.rt.wall_time())
        return fleet.gone

    found, uuid = violations(leak)
    v = only(found, invariants.ALLOCATIONS_MATCH, str(uuid))
    assert f"deleted instance {uuid} still holds cmp" in v.detail
    # deleted a few virtual seconds ago: within a minute's settling it may still be freed
    assert violations(leak, settle=60.0)[0] == []


def test_a_finished_move_still_holding_its_source_is_reported() -> None:
    async def forget(cloud: SimCloud, fleet: Fleet) -> str:
        mig = (await cloud.store.migrations_by_instance(fleet.resized))[-1]
        await cloud.store.update_migration_status(mig.id, "confirmed",
                                                  now=cloud.rt.wall_time())
        return mig.uuid

    found, mig_uuid = violations(forget)
    v = only(found, invariants.ALLOCATIONS_MATCH, str(mig_uuid))
    assert "confirmed but still holds" in v.detail and "of instance " in v.detail


def test_an_idle_instance_holding_the_wrong_amounts_is_reported() -> None:
    async def shrink_claim(cloud: SimCloud, fleet: Fleet) -> str:
        held = await cloud.store.get_allocations(fleet.stopped)
        ((rp, _),) = held.allocations.items()
        await cloud.store.claim_allocations(
            fleet.stopped, {rp: {"VCPU": 1, "MEMORY_MB": 256, "DISK_GB": 1}}, project_id="p1",
            user_id="u1", now=cloud.rt.wall_time(), consumer_generation=held.generation)
        return fleet.stopped

    found, uuid = violations(shrink_claim)
    v = only(found, invariants.ALLOCATIONS_MATCH, str(uuid))
    assert "MEMORY_MB: 256" in v.detail and "should hold its flavor" in v.detail
    assert "MEMORY_MB: 512" in v.detail
    assert "vm_state stopped" in v.detail


def test_an_instance_busy_for_too_long_is_stuck_unless_within_settle() -> None:
    async def freeze(cloud: SimCloud, fleet: Fleet) -> str:
        await cloud.store.update_instance(fleet.stopped, now=cloud.rt.wall_time() - 600.0,
                                          task_state=states.POWERING_ON)
        return fleet.stopped

    found, uuid = violations(freeze, settle=60.0)
    v = only(found, invariants.STUCK, str(uuid))
    assert "task_state powering-on" in v.detail and "vm_state stopped" in v.detail
    assert "600" in v.detail
    assert violations(freeze, settle=1000.0)[0] == []


def test_instances_beyond_a_quota_are_reported_per_project_and_per_user() -> None:
    async def lower(cloud: SimCloud, fleet: Fleet) -> None:
        now = cloud.rt.wall_time()
        await cloud.store.set_project_quotas("p1", {"instances": 3}, now)
        await cloud.store.set_user_quotas("p1", "u1", {"ram": 1024}, now)

    found, _ = violations(lower)
    assert [(v.invariant, v.subject) for v in found] == [
        (invariants.QUOTA, "p1"), (invariants.QUOTA, "p1/u1")]
    assert "project p1 uses 6 instances, over its limit of 3" in found[0].detail
    assert "user u1 of project p1 uses 3584 MB of RAM, over its limit of 1024" in found[1].detail


async def move_beside(cloud: SimCloud, mover: str, anchor: str) -> None:
    """Put instance ``mover`` on ``anchor``'s host, allocations and all."""
    first = await cloud.store.get_instance(anchor)
    target = (await cloud.store.list_resource_providers(name=first.host))[0].uuid
    held = await cloud.store.get_allocations(mover)
    await cloud.store.claim_allocations(
        mover, {target: SMALL}, project_id="p1", user_id="u1",
        now=cloud.rt.wall_time(), consumer_generation=held.generation)
    await cloud.store.update_instance(mover, now=cloud.rt.wall_time(),
                                      host=first.host, node=first.node)


def test_anti_affinity_members_sharing_a_host_are_reported() -> None:
    async def squeeze(cloud: SimCloud, fleet: Fleet) -> None:
        await move_beside(cloud, fleet.grouped[1], fleet.grouped[0])

    found, _ = violations(squeeze)
    v = only(found, invariants.SERVER_GROUP, "g-anti")
    assert "2 members on cmp" in v.detail and "(at most 1)" in v.detail


def test_soft_anti_affinity_members_may_share_a_host() -> None:
    async def squeeze(cloud: SimCloud, fleet: Fleet) -> None:
        await move_beside(cloud, fleet.plain[1], fleet.plain[0])

    assert violations(squeeze)[0] == []


def test_affinity_members_on_two_hosts_are_reported() -> None:
    async def split(cloud: SimCloud, fleet: Fleet) -> list[str]:
        group = await cloud.store.create_server_group(
            uuid="g-aff", name="together", project_id="p1", user_id="u1", policy="affinity",
            now=cloud.rt.wall_time())
        await cloud.store.add_members(group.uuid, fleet.grouped, cloud.rt.wall_time())
        return fleet.grouped

    found, members = violations(split)
    v = only(found, invariants.SERVER_GROUP, "g-aff")
    assert "members on 2 hosts" in v.detail
    assert isinstance(members, list) and all(uuid in v.detail for uuid in members)


def test_describe_gives_one_line_per_violation() -> None:
    found = [Violation(invariant="quota", subject="p1", detail="too many", t=5.0),
             Violation(invariant="stuck", subject="i-1", detail="busy", t=5.0)]
    assert invariants.describe(found).splitlines() == [
        "[5.0] quota p1: too many", "[5.0] stuck i-1: busy"]
