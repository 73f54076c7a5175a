"""Flavors, extra specs, flavor access and keypairs, on every engine."""

from __future__ import annotations

import pytest

from nimbus.core.db.store import Store
from nimbus.core.errors import ApiError, ConflictError, DuplicateError, NotFound

from .conftest import StoreRunner


async def _flavors(store: Store) -> None:
    """tiny (public), small (public, disabled), big (private), huge (private, specs)."""
    await store.create_flavor(flavorid="1", name="tiny", vcpus=1, memory_mb=512, root_gb=1,
                              now=10.0)
    await store.create_flavor(flavorid="2", name="small", vcpus=1, memory_mb=2048, root_gb=20,
                              disabled=True, description="b", now=11.0)
    await store.create_flavor(flavorid="3", name="big", vcpus=4, memory_mb=8192, root_gb=40,
                              is_public=False, description="a", now=12.0)
    await store.create_flavor(flavorid="4", name="huge", vcpus=8, memory_mb=8192, root_gb=80,
                              is_public=False, vcpu_weight=5, now=13.0,
                              extra_specs={"hw:cpu_policy": "dedicated"})


def test_flavor_create_get_delete(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        f = await store.create_flavor(
            flavorid="f1", name="m1.small", vcpus=2, memory_mb=2048, root_gb=20,
            ephemeral_gb=5, swap=512, rxtx_factor=1.5, vcpu_weight=3, description="two",
            extra_specs={"hw:mem_page_size": "large", "quota:cpu_shares": "1024"}, now=5.0)
        assert (f.flavorid, f.name, f.vcpus, f.memory_mb, f.root_gb, f.ephemeral_gb, f.swap,
                f.rxtx_factor, f.vcpu_weight, f.disabled, f.is_public, f.description) == (
            "f1", "m1.small", 2, 2048, 20, 5, 512, 1.5, 3, False, True, "two")
        assert f.extra_specs == {"hw:mem_page_size": "large", "quota:cpu_shares": "1024"}
        assert f.created_at == 5.0
        assert await store.get_flavor("f1") == f
        with pytest.raises(DuplicateError, match="f1"):
            await store.create_flavor(flavorid="f1", name="other", vcpus=1, memory_mb=1,
                                      now=6.0)
        with pytest.raises(DuplicateError):
            await store.create_flavor(flavorid="f2", name="m1.small", vcpus=1, memory_mb=1,
                                      now=6.0)
        # a failed create leaves nothing behind: no flavor f2, no stray specs
        with pytest.raises(NotFound, match="f2"):
            await store.get_flavor("f2")
        updated = await store.update_flavor_description("f1", "new", 7.0)
        assert (updated.description, updated.updated_at) == ("new", 7.0)
        await store.delete_flavor("f1", 8.0)
        with pytest.raises(NotFound, match="flavor f1"):
            await store.get_flavor("f1")
        with pytest.raises(NotFound):
            await store.delete_flavor("f1", 9.0)
        # id and name can be reused once deleted, starting with no specs
        again = await store.create_flavor(flavorid="f1", name="m1.small", vcpus=1,
                                          memory_mb=1, now=10.0)
        assert again.id != f.id and again.extra_specs == {}

    run_store(body)


def test_flavor_extra_specs(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        await store.create_flavor(flavorid="f", name="f", vcpus=1, memory_mb=1,
                                  extra_specs={"a": "1"}, now=1.0)
        merged = await store.set_flavor_extra_specs("f", {"a": "2", "b": "3"}, 2.0)
        assert merged == {"a": "2", "b": "3"}
        assert await store.get_flavor_extra_specs("f") == {"a": "2", "b": "3"}
        await store.delete_flavor_extra_spec("f", "a")
        assert await store.get_flavor_extra_specs("f") == {"b": "3"}
        with pytest.raises(NotFound, match="'a'"):
            await store.delete_flavor_extra_spec("f", "a")
        with pytest.raises(NotFound, match="flavor nope"):
            await store.set_flavor_extra_specs("nope", {"x": "y"}, 3.0)

    run_store(body)


def test_flavor_access(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        await _flavors(store)
        assert await store.add_flavor_access("3", "p1", 20.0) == ["p1"]
        assert await store.add_flavor_access("3", "p2", 20.0) == ["p1", "p2"]
        with pytest.raises(DuplicateError, match="p1"):
            await store.add_flavor_access("3", "p1", 21.0)
        with pytest.raises(ConflictError, match="public") as err:
            await store.add_flavor_access("1", "p1", 21.0)
        assert err.value.status == 409 and not isinstance(err.value, DuplicateError)
        with pytest.raises(NotFound):
            await store.add_flavor_access("nope", "p1", 21.0)
        assert await store.list_flavor_access("3") == ["p1", "p2"]
        assert await store.remove_flavor_access("3", "p1") == ["p2"]
        with pytest.raises(NotFound, match="p1"):
            await store.remove_flavor_access("3", "p1")
        # what a project sees: public flavors (enabled ones, as a non-admin) and its own
        seen = await store.list_flavors(is_public=True, project_id="p2", disabled=False)
        assert [f.flavorid for f in seen] == ["1", "3"]
        assert [f.flavorid for f in await store.list_flavors(is_public=True,
                                                             project_id="p9")] == ["1", "2"]
        await store.delete_flavor("3", 30.0)
        assert await store.list_flavors(is_public=True, project_id="p2") != []
        assert "3" not in [f.flavorid for f in await store.list_flavors()]

    run_store(body)


def test_list_flavors_filters_and_paging(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        await _flavors(store)
        ids = [f.flavorid for f in await store.list_flavors()]
        assert ids == ["1", "2", "3", "4"]
        assert [f.flavorid for f in await store.list_flavors(is_public=True)] == ["1", "2"]
        assert [f.flavorid for f in await store.list_flavors(is_public=False)] == ["3", "4"]
        assert [f.flavorid for f in await store.list_flavors(min_ram=2048)] == ["2", "3", "4"]
        assert [f.flavorid for f in await store.list_flavors(min_ram=2048,
                                                             min_disk=40)] == ["3", "4"]
        listed = await store.list_flavors(is_public=False)
        assert listed[1].extra_specs == {"hw:cpu_policy": "dedicated"}
        assert listed[0].extra_specs == {}
        by_ram = await store.list_flavors(sort_key="memory_mb", sort_dir="desc")
        assert [f.flavorid for f in by_ram] == ["4", "3", "2", "1"]  # ties by id, desc
        # pages by marker, with ties in the sort key
        page1 = await store.list_flavors(sort_key="memory_mb", limit=3)
        assert [f.flavorid for f in page1] == ["1", "2", "3"]
        page2 = await store.list_flavors(sort_key="memory_mb", marker="3", limit=3)
        assert [f.flavorid for f in page2] == ["4"]
        desc = await store.list_flavors(sort_key="memory_mb", sort_dir="desc", marker="4")
        assert [f.flavorid for f in desc] == ["3", "2", "1"]
        # nullable sort keys page alike on every engine (NULL sorts first)
        by_desc = [f.flavorid for f in await store.list_flavors(sort_key="description")]
        assert by_desc == ["1", "4", "3", "2"]
        after = await store.list_flavors(sort_key="description", marker="1", limit=2)
        assert [f.flavorid for f in after] == ["4", "3"]
        by_weight = await store.list_flavors(sort_key="vcpu_weight", marker="3")
        assert [f.flavorid for f in by_weight] == ["4"]
        by_flag = await store.list_flavors(sort_key="is_public", marker="4")
        assert [f.flavorid for f in by_flag] == ["1", "2"]
        by_name = await store.list_flavors(sort_key="name", sort_dir="desc", limit=2)
        assert [f.name for f in by_name] == ["tiny", "small"]
        with pytest.raises(ApiError, match="marker") as err:
            await store.list_flavors(marker="nope")
        assert err.value.status == 400
        with pytest.raises(ApiError, match="sort key"):
            await store.list_flavors(sort_key="extra_specs")
        with pytest.raises(ApiError, match="sort direction"):
            await store.list_flavors(sort_dir="up")

    run_store(body)


def test_keypairs(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        kp = await store.create_keypair(name="k1", user_id="u1", public_key="ssh-ed25519 AAA",
                                        fingerprint="aa:bb", now=1.0)
        assert (kp.name, kp.user_id, kp.type, kp.fingerprint, kp.public_key, kp.created_at) == (
            "k1", "u1", "ssh", "aa:bb", "ssh-ed25519 AAA", 1.0)
        assert await store.get_keypair("u1", "k1") == kp
        with pytest.raises(DuplicateError, match="k1"):
            await store.create_keypair(name="k1", user_id="u1", public_key="x",
                                       fingerprint=None, now=2.0)
        # the same name for another user is fine
        await store.create_keypair(name="k1", user_id="u2", public_key="x", fingerprint=None,
                                   now=2.0)
        for name in ("k3", "k2"):
            await store.create_keypair(name=name, user_id="u1", public_key="x",
                                       fingerprint=None, type="x509", now=3.0)
        assert [k.name for k in await store.list_keypairs("u1")] == ["k1", "k2", "k3"]
        assert [k.name for k in await store.list_keypairs("u1", limit=2)] == ["k1", "k2"]
        assert [k.name for k in await store.list_keypairs("u1", marker="k1")] == ["k2", "k3"]
        with pytest.raises(ApiError, match="marker"):
            await store.list_keypairs("u1", marker="zz")
        assert await store.count_keypairs("u1") == 3
        assert await store.count_keypairs("nobody") == 0
        with pytest.raises(ApiError, match="type"):
            await store.create_keypair(name="k9", user_id="u1", public_key="x",
                                       fingerprint=None, type="rsa", now=4.0)
        await store.delete_keypair("u1", "k1", 5.0)
        with pytest.raises(NotFound, match="k1"):
            await store.get_keypair("u1", "k1")
        with pytest.raises(NotFound):
            await store.delete_keypair("u1", "k1", 6.0)
        assert await store.count_keypairs("u1") == 2
        again = await store.create_keypair(name="k1", user_id="u1", public_key="y",
                                           fingerprint=None, now=7.0)
        assert again.id != kp.id

    run_store(body)
