"""Server groups and their members, on every engine."""

from __future__ import annotations

import asyncio

import pytest

from nimbus.core.db.store import Store
from nimbus.core.errors import ApiError, DuplicateError, NotFound, QuotaExceeded

from .conftest import StoreRunner


def test_server_groups(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        g = await store.create_server_group(
            uuid="g1", name="web", project_id="p1", user_id="u1", policy="anti-affinity",
            rules={"max_server_per_host": 2}, now=1.0)
        assert (g.name, g.project_id, g.user_id, g.policy, g.rules, g.members) == (
            "web", "p1", "u1", "anti-affinity", {"max_server_per_host": 2}, ())
        await store.create_server_group(uuid="g2", name="db", project_id="p1", user_id="u2",
                                        policy="affinity", now=2.0)
        await store.create_server_group(uuid="g3", name="x", project_id="p2", user_id="u3",
                                        policy="soft-affinity", now=3.0)
        with pytest.raises(ApiError, match="policy"):
            await store.create_server_group(uuid="g4", name="x", project_id="p2",
                                            user_id="u3", policy="spread", now=3.0)
        with pytest.raises(DuplicateError):
            await store.create_server_group(uuid="g1", name="y", project_id="p2",
                                            user_id="u3", policy="affinity", now=3.0)
        after = await store.add_members("g1", ["i1", "i2", "i1"], 4.0)
        assert after.members == ("i1", "i2")
        assert (await store.add_members("g1", ["i2", "i3"], 5.0)).members == ("i1", "i2", "i3")
        await store.add_members("g2", ["i9"], 5.0)
        got = await store.get_server_group("g1")
        assert got.members == ("i1", "i2", "i3") and got.rules == {"max_server_per_host": 2}
        assert [x.uuid for x in await store.list_server_groups("p1")] == ["g1", "g2"]
        listed = await store.list_server_groups()
        assert [(x.uuid, x.members) for x in listed] == [
            ("g1", ("i1", "i2", "i3")), ("g2", ("i9",)), ("g3", ())]
        found = await store.group_for_instance("i2")
        assert found is not None and (found.uuid, found.policy) == ("g1", "anti-affinity")
        assert await store.group_for_instance("nobody") is None
        assert (await store.remove_member("g1", "i2")).members == ("i1", "i3")
        with pytest.raises(NotFound, match="i2"):
            await store.remove_member("g1", "i2")
        assert await store.group_for_instance("i2") is None
        assert await store.remove_instance_from_groups("i3") == 1
        assert (await store.get_server_group("g1")).members == ("i1",)
        await store.delete_server_group("g1", 6.0)
        with pytest.raises(NotFound, match="g1"):
            await store.get_server_group("g1")
        with pytest.raises(NotFound):
            await store.delete_server_group("g1", 7.0)
        with pytest.raises(NotFound):
            await store.add_members("g1", ["i5"], 7.0)
        assert await store.group_for_instance("i1") is None
        assert [x.uuid for x in await store.list_server_groups("p1")] == ["g2"]

    run_store(body)


def test_add_members_respects_quota(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        await store.create_server_group(uuid="g", name="g", project_id="p", user_id="u",
                                        policy="affinity", now=1.0)
        await store.set_project_quotas("p", {"server_group_members": 3}, 1.0)
        await store.add_members("g", ["a", "b"], 2.0)
        with pytest.raises(QuotaExceeded) as err:
            await store.add_members("g", ["c", "d"], 3.0)
        assert err.value.status == 403
        assert str(err.value) == ("Quota exceeded for server_group_members: Requested 2, "
                                  "but already used 2 of 3 server_group_members")
        # nothing of the refused request was added; one more still fits
        assert (await store.get_server_group("g")).members == ("a", "b")
        assert (await store.add_members("g", ["c", "a"], 4.0)).members == ("a", "b", "c")
        # a user's own limit wins over the project's; -1 is unlimited
        await store.set_user_quotas("p", "u", {"server_group_members": -1}, 5.0)
        await store.add_members("g", ["d", "e"], 6.0)

    run_store(body)


def test_concurrent_add_members_never_pass_quota(run_store: StoreRunner) -> None:
    """Adds racing on one group take turns (the group row is locked), so at most the
    limit get in; in simulation a transaction is atomic anyway."""
    if run_store.kind == "sim":
        pytest.skip("no concurrent transactions in simulation")

    async def body(store: Store) -> None:
        await store.create_server_group(uuid="g", name="g", project_id="p", user_id="u",
                                        policy="anti-affinity", now=1.0)
        await store.set_project_quotas("p", {"server_group_members": 3}, 1.0)
        results = await asyncio.gather(
            *(store.add_members("g", [f"i{n}"], 2.0) for n in range(8)),
            return_exceptions=True)
        refused = [r for r in results if isinstance(r, QuotaExceeded)]
        assert len(refused) == 5, results
        assert len((await store.get_server_group("g")).members) == 3

    run_store(body)


def test_soft_deleting_an_instance_takes_it_out_of_its_groups(run_store: StoreRunner) -> None:
    from .test_instances_contract import boot

    async def body(store: Store) -> None:
        await store.create_server_group(uuid="g1", name="web", project_id="p1", user_id="u1",
                                        policy="anti-affinity", now=1.0)
        for uuid in ("i1", "i2"):
            await boot(store, uuid)
        await store.add_members("g1", ["i1", "i2"], 2.0)
        await store.soft_delete_instance("i1", now=3.0)
        assert (await store.get_server_group("g1")).members == ("i2",)
        assert await store.group_for_instance("i1") is None

    run_store(body)
