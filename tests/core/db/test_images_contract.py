"""Images, properties, tags and members, and Glance's visibility rules, on every engine."""

from __future__ import annotations

import pytest

from nimbus.core.db.images import ImageForbidden, InvalidImageQuery
from nimbus.core.db.store import Store
from nimbus.core.errors import ConflictError, DuplicateError, NotFound

from .conftest import StoreRunner

OWNER, VIEWER = "p-owner", "p-viewer"

# (visibility, the viewer's member status or None, viewer owns it, viewer is admin)
#   -> (visible: get / boot, listed by default, listed with member_status="all")
VISIBILITY = [
    (("public", None, False, False), (True, True, True)),
    (("community", None, False, False), (True, False, False)),
    (("community", None, True, False), (True, True, True)),
    (("shared", None, True, False), (True, True, True)),
    (("shared", None, False, False), (False, False, False)),
    (("shared", "pending", False, False), (True, False, True)),
    (("shared", "accepted", False, False), (True, True, True)),
    (("shared", "rejected", False, False), (True, False, True)),
    (("private", None, True, False), (True, True, True)),
    (("private", None, False, False), (False, False, False)),
    # a member row left from when the image was shared grants nothing now
    (("private", "accepted", False, False), (False, False, False)),
    (("private", None, False, True), (True, True, True)),
    (("shared", None, False, True), (True, True, True)),
    (("public", None, False, True), (True, True, True)),
    # Glance lists community images to admins only when asked for, too
    (("community", None, False, True), (True, False, False)),
]


def test_visibility(run_store: StoreRunner) -> None:
    """Every row of ``VISIBILITY`` at once: one image, owner and viewer per row, each
    listing narrowed to the row's image by its name."""
    async def body(store: Store) -> None:
        for n, (case, expected) in enumerate(VISIBILITY):
            visibility, member_status, owns, admin = case
            visible, listed, listed_all = expected
            iid, viewer = f"i{n}", f"viewer{n}"
            # shared first so that members can be added, then the visibility under test
            await store.create_image(id=iid, owner=viewer if owns else f"owner{n}",
                                     name=iid, now=1.0, visibility="shared")
            if member_status is not None:
                await store.add_image_member(iid, viewer, 2.0)
                await store.update_image_member_status(iid, viewer, member_status, 3.0)
            image = await store.update_image(iid, now=4.0, visibility=visibility)

            async def listed_to(**kw: object) -> bool:
                found = await store.list_images_visible_to(
                    viewer, admin, name=iid, **kw)  # noqa: B023 (awaited within the loop)
                assert [i.id for i in found] in ([], [iid])  # noqa: B023
                return bool(found)

            got = (await store.image_visible_to(image, viewer, admin), await listed_to(),
                   await listed_to(member_status="all"),
                   # asking for the visibility lists every image of it the viewer may see
                   await listed_to(visibility=visibility, member_status="all"),
                   await listed_to(visibility="all", member_status="all"))
            assert got == (visible, listed, listed_all, visible, visible), case
            if visible:
                assert (await store.get_visible_image(iid, viewer, admin)).id == iid
            else:
                with pytest.raises(NotFound):
                    await store.get_visible_image(iid, viewer, admin)

    run_store(body)


def test_visible_without_project_and_without_owner(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        await store.create_image(id="a", owner=None, visibility="private", now=1.0)
        await store.create_image(id="b", owner=OWNER, visibility="private", now=2.0)
        await store.create_image(id="c", owner=OWNER, visibility="public", now=3.0)
        await store.create_image(id="d", owner=OWNER, visibility="community", now=4.0)
        a, b = await store.get_image("a"), await store.get_image("b")
        # Glance: an image without owner is visible to all; no project sees only public
        assert await store.image_visible_to(a, VIEWER, False)
        assert not await store.image_visible_to(b, None, False)
        assert [i.id for i in await store.list_images_visible_to(None, False)] == ["c"]
        assert [i.id for i in await store.list_images_visible_to(
            None, False, visibility="community")] == ["d"]

    run_store(body)


def test_image_lifecycle(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        img = await store.create_image(
            id="i1", owner=OWNER, name="cirros", now=1.0, disk_format="qcow2",
            container_format="bare", min_disk=1, min_ram=64, properties={"os_distro": "cirros",
                                                                         "hw_arch": "x86_64"},
            tags=["small", "test", "small"])
        assert (img.status, img.visibility, img.protected, img.size, img.version,
                img.properties, img.tags) == (
            "queued", "shared", False, None, 0,
            {"os_distro": "cirros", "hw_arch": "x86_64"}, ("small", "test"))
        with pytest.raises(DuplicateError):
            await store.create_image(id="i1", owner=OWNER, now=1.0)
        with pytest.raises(InvalidImageQuery):
            await store.create_image(id="i2", owner=OWNER, now=1.0, visibility="secret")

        up = await store.update_image("i1", now=2.0, name="cirros-0.6", min_ram=128,
                                      set_properties={"hw_arch": "aarch64", "new": "x"},
                                      remove_properties=["os_distro"])
        assert (up.name, up.min_ram, up.min_disk, up.version, up.updated_at, up.properties) \
            == ("cirros-0.6", 128, 1, 1, 2.0, {"hw_arch": "aarch64", "new": "x"})
        with pytest.raises(ConflictError):
            await store.update_image("i1", now=3.0, expected_version=0, name="stale")
        up = await store.update_image("i1", now=3.0, expected_version=1, disk_format=None)
        assert (up.disk_format, up.version, up.name) == (None, 2, "cirros-0.6")

        # upload: queued -> saving -> active with its data
        with pytest.raises(ConflictError, match="queued"):
            await store.set_image_data("i1", size=1, checksum="c", os_hash_algo="sha512",
                                       os_hash_value="h", location="/x", now=4.0)
        saving = await store.set_image_status("i1", "saving", now=4.0,
                                              expected_status="queued")
        assert saving.status == "saving"
        with pytest.raises(ConflictError):
            await store.set_image_status("i1", "saving", now=4.0, expected_status="queued")
        active = await store.set_image_data(
            "i1", size=5 * 2**30, virtual_size=10 * 2**30, checksum="0" * 32,
            os_hash_algo="sha512", os_hash_value="f" * 128, location="/images/i1", now=5.0)
        assert (active.status, active.size, active.virtual_size, active.checksum,
                active.os_hash_value, active.location) == (
            "active", 5 * 2**30, 10 * 2**30, "0" * 32, "f" * 128, "/images/i1")
        assert (await store.set_image_status("i1", "deactivated", now=6.0)).status == \
            "deactivated"
        with pytest.raises(InvalidImageQuery):
            await store.set_image_status("i1", "exploded", now=6.0)

        await store.add_image_tag("i1", "new", 7.0)
        await store.add_image_tag("i1", "new", 7.0)  # idempotent
        await store.remove_image_tag("i1", "small", 8.0)
        with pytest.raises(NotFound):
            await store.remove_image_tag("i1", "small", 8.0)
        got = await store.get_image("i1")
        assert got.tags == ("new", "test") and got.updated_at == 8.0

        await store.update_image("i1", now=9.0, protected=True)
        with pytest.raises(ImageForbidden):
            await store.delete_image("i1", 10.0)
        await store.update_image("i1", now=10.0, protected=False)
        gone = await store.delete_image("i1", 11.0)
        assert gone.location == "/images/i1"
        for call in (store.get_image("i1"), store.delete_image("i1", 12.0),
                     store.set_image_status("i1", "active", now=12.0),
                     store.update_image("i1", now=12.0, name="x"),
                     store.add_image_tag("i1", "t", 12.0)):
            with pytest.raises(NotFound, match="image i1"):
                await call
        assert await store.list_images_visible_to(OWNER, True) == []

    run_store(body)


def test_members(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        await store.create_image(id="s", owner=OWNER, visibility="shared", now=1.0)
        await store.create_image(id="pub", owner=OWNER, visibility="public", now=1.0)
        m = await store.add_image_member("s", "p2", 2.0)
        assert (m.image_id, m.member, m.status, m.created_at) == ("s", "p2", "pending", 2.0)
        await store.add_image_member("s", "p3", 3.0)
        with pytest.raises(DuplicateError):
            await store.add_image_member("s", "p2", 4.0)
        with pytest.raises(ImageForbidden):
            await store.add_image_member("pub", "p2", 4.0)
        with pytest.raises(NotFound):
            await store.add_image_member("nope", "p2", 4.0)
        up = await store.update_image_member_status("s", "p2", "accepted", 5.0)
        assert (up.status, up.updated_at) == ("accepted", 5.0)
        with pytest.raises(InvalidImageQuery):
            await store.update_image_member_status("s", "p2", "maybe", 5.0)
        with pytest.raises(NotFound):
            await store.update_image_member_status("s", "p9", "accepted", 5.0)
        assert (await store.get_image_member("s", "p3")).status == "pending"
        with pytest.raises(NotFound, match="member p9"):
            await store.get_image_member("s", "p9")
        assert [(x.member, x.status) for x in await store.list_image_members("s")] == [
            ("p2", "accepted"), ("p3", "pending")]
        await store.delete_image_member("s", "p3")
        with pytest.raises(NotFound):
            await store.delete_image_member("s", "p3")
        assert [x.member for x in await store.list_image_members("s")] == ["p2"]
        await store.delete_image("s", 6.0)
        with pytest.raises(NotFound):
            await store.list_image_members("s")

    run_store(body)


async def _catalog(store: Store) -> None:
    """Six images the viewer may list, one it may not."""
    specs = [
        ("a", "ubuntu", VIEWER, "private", "qcow2", 100, 10.0, {"os": "linux"}, ["lts"]),
        ("b", "fedora", OWNER, "public", "raw", 300, 20.0, {"os": "linux"}, ["lts", "new"]),
        ("c", None, OWNER, "public", "qcow2", None, 30.0, {}, []),
        ("d", "windows", OWNER, "shared", "vhd", 200, 40.0, {"os": "windows"}, ["new"]),
        ("e", "alpine", VIEWER, "shared", "qcow2", 50, 50.0, {"os": "linux"}, []),
        ("f", "fedora", OWNER, "public", "qcow2", 400, 50.0, {}, []),
        ("hidden", "secret", OWNER, "private", "raw", 1, 60.0, {}, []),
    ]
    for iid, name, owner, vis, disk, size, at, props, tags in specs:
        await store.create_image(id=iid, name=name, owner=owner, visibility=vis, now=at,
                                 disk_format=disk, container_format="bare",
                                 properties=props, tags=tags)
        if size is not None:
            await store.set_image_status(iid, "saving", now=at)
            await store.set_image_data(iid, size=size, checksum="c", os_hash_algo="sha512",
                                       os_hash_value="h", location=f"/i/{iid}", now=at)
    await store.add_image_member("d", VIEWER, 1.0)
    await store.update_image_member_status("d", VIEWER, "accepted", 1.0)


def test_list_filters(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        await _catalog(store)

        async def ids(**kw: object) -> list[str]:
            return [i.id for i in await store.list_images_visible_to(VIEWER, False, **kw)]

        # newest first by default, ties broken by id (descending)
        assert await ids() == ["f", "e", "d", "c", "b", "a"]
        assert await ids(name="fedora") == ["f", "b"]
        assert await ids(owner=VIEWER) == ["e", "a"]
        assert await ids(visibility="public") == ["f", "c", "b"]
        assert await ids(visibility="shared") == ["e", "d"]
        assert await ids(visibility="private") == ["a"]
        assert await ids(disk_format="qcow2", container_format="bare") == ["f", "e", "c", "a"]
        assert await ids(status="queued") == ["c"]
        assert await ids(size_min=100, size_max=300) == ["d", "b", "a"]
        assert await ids(tags=["lts"]) == ["b", "a"]
        assert await ids(tags=["lts", "new"]) == ["b"]
        assert await ids(properties={"os": "linux"}) == ["e", "b", "a"]
        assert await ids(properties={"os": "linux"}, tags=["new"]) == ["b"]
        assert await ids(os_hidden=False) == ["f", "e", "d", "c", "b", "a"]
        await store.update_image("b", now=70.0, os_hidden=True)
        assert await ids(os_hidden=False) == ["f", "e", "d", "c", "a"]
        all_ids = [i.id for i in await store.list_images_visible_to(VIEWER, True)]
        assert all_ids == ["hidden", "f", "e", "d", "c", "b", "a"]
        listed = await store.list_images_visible_to(VIEWER, False, name="ubuntu")
        assert listed[0].properties == {"os": "linux"} and listed[0].tags == ("lts",)
        for bad in ({"visibility": "secret"}, {"member_status": "maybe"},
                    {"sort_keys": ["owner"]}, {"sort_dirs": ["up"]},
                    {"sort_keys": ["name", "size"], "sort_dirs": ["asc", "desc", "asc"]}):
            with pytest.raises(InvalidImageQuery):
                await store.list_images_visible_to(VIEWER, False, **bad)

    run_store(body)


def test_sort_and_pages(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        await _catalog(store)

        async def ids(**kw: object) -> list[str]:
            return [i.id for i in await store.list_images_visible_to(VIEWER, False, **kw)]

        # NULL name sorts as the empty string, first ascending, on every engine
        assert await ids(sort_keys=["name"], sort_dirs=["asc"]) == [
            "c", "e", "b", "f", "a", "d"]
        assert await ids(sort_keys=["name", "created_at"], sort_dirs=["desc", "asc"]) == [
            "d", "a", "b", "f", "e", "c"]
        assert await ids(sort_keys=["size"], sort_dirs=["asc"]) == [
            "c", "e", "a", "d", "b", "f"]
        assert await ids(sort_keys=["disk_format", "size"]) == [
            "d", "b", "f", "a", "e", "c"]
        assert await ids(limit=2) == ["f", "e"]
        assert await ids(limit=2, marker="e") == ["d", "c"]
        assert await ids(marker="a") == []
        # walk every sort in pages of 2 and get the same order as unpaged
        for keys, dirs in ((["name"], ["asc"]), (["name", "created_at"], ["desc", "asc"]),
                           (["size"], ["asc"]), (["disk_format", "size"], [])):
            whole = await ids(sort_keys=keys, sort_dirs=dirs)
            paged: list[str] = []
            marker = None
            while True:
                page = await ids(sort_keys=keys, sort_dirs=dirs, limit=2, marker=marker)
                if not page:
                    break
                paged += page
                marker = page[-1]
            assert paged == whole, (keys, dirs)
        with pytest.raises(NotFound, match="marker"):
            await ids(marker="hidden")
        with pytest.raises(NotFound):
            await ids(marker="nope")

    run_store(body)
