"""Instances, their disks and faults, on every engine."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from nimbus.core.db.block_devices import BlockDeviceSpec, image_root_disk
from nimbus.core.db.instances import NewInstance, StaleVersionError, UnexpectedStateError
from nimbus.core.db.store import Store
from nimbus.core.errors import ConflictError, DuplicateError, NotFound

from .conftest import StoreRunner

TINY = {"id": 1, "flavorid": "tiny", "name": "m1.tiny", "vcpus": 1, "memory_mb": 512,
        "root_gb": 1, "ephemeral_gb": 0, "swap": 0, "extra_specs": {"hw:cpu_policy": "shared"}}
LARGE = {"id": 4, "flavorid": "large", "name": "m1.large", "vcpus": 4, "memory_mb": 8192,
         "root_gb": 80, "ephemeral_gb": 10, "swap": 0, "extra_specs": {}}


def spec(uuid: str, *, project: str = "p1", user: str = "u1", flavor: dict[str, Any] = TINY,
         **kw: Any) -> NewInstance:
    kw.setdefault("image_ref", "img-1")
    return NewInstance(uuid=uuid, project_id=project, user_id=user, flavor=flavor, **kw)


async def boot(store: Store, uuid: str, now: float = 10.0, **kw: Any) -> Any:
    return await store.create_instance(spec(uuid, **kw), now=now, request_id=f"req-{uuid}",
                                       block_devices=[image_root_disk(f"bdm-{uuid}", "img-1")])


def test_create_and_get(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        inst = await store.create_instance(
            spec("i1", display_name="web", metadata={"role": "web"}, key_name="k",
                 user_data="#!/bin/sh\n" + "x" * 70_000, config_drive=True),
            now=10.0, request_id="req-1",
            block_devices=[image_root_disk("b1", "img-1", size_gb=1)])
        assert (inst.uuid, inst.vm_state, inst.task_state, inst.power_state) == (
            "i1", "building", "scheduling", 0)
        assert (inst.vcpus, inst.memory_mb, inst.root_gb, inst.flavor_id) == (1, 512, 1, "tiny")
        assert inst.flavor == TINY and inst.version == 1 and not inst.deleted
        assert inst.name == f"instance-{inst.id:08x}"
        got = await store.get_instance("i1")
        assert got == inst
        assert got.metadata == {"role": "web"} and got.config_drive and not got.locked
        assert len(got.user_data or "") == 70_010
        [bdm] = await store.bdms_for_instance("i1")
        assert (bdm.uuid, bdm.source_type, bdm.destination_type, bdm.boot_index,
                bdm.image_id, bdm.delete_on_termination) == (
            "b1", "image", "local", 0, "img-1", True)
        [act] = await store.list_actions("i1")
        assert (act.action, act.request_id, act.user_id, act.project_id, act.start_time) == (
            "create", "req-1", "u1", "p1", 10.0)
        with pytest.raises(NotFound, match="instance nope"):
            await store.get_instance("nope")
        with pytest.raises(ValueError, match="vcpus"):
            await store.create_instance(
                NewInstance(uuid="i2", project_id="p", user_id="u", flavor={"flavorid": "x"}),
                now=1.0, request_id="r")

    run_store(body)


def test_create_is_all_or_nothing(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        await boot(store, "i1")
        # the instance row clashes: no second disk, no second action
        with pytest.raises(DuplicateError):
            await store.create_instance(spec("i1"), now=11.0, request_id="req-again",
                                        block_devices=[image_root_disk("b-other", "img-1")])
        assert [b.uuid for b in await store.bdms_for_instance("i1")] == ["bdm-i1"]
        assert [a.request_id for a in await store.list_actions("i1")] == ["req-i1"]
        # the disk clashes after the instance row was written: the row goes too
        with pytest.raises(DuplicateError):
            await store.create_instance(spec("i2"), now=11.0, request_id="req-2",
                                        block_devices=[image_root_disk("bdm-i1", "img-1")])
        with pytest.raises(NotFound):
            await store.get_instance("i2", read_deleted=True)
        with pytest.raises(NotFound):
            await store.list_actions("i2")
        assert await store.bdms_for_instance("i2") == []
        assert (await store.count_instances_for_quota("p1")).instances == 1

    run_store(body)


def test_update_compare_and_swap(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        inst = await boot(store, "i1")
        moved = await store.update_instance("i1", now=20.0, expected_version=inst.version,
                                            host="h1", node="n1", vm_state="active",
                                            task_state=None, power_state=1, launched_at=20.0)
        assert (moved.host, moved.vm_state, moved.task_state, moved.power_state) == (
            "h1", "active", None, 1)
        assert moved.version == inst.version + 1 and moved.updated_at == 20.0
        with pytest.raises(StaleVersionError, match="version is 2, expected 1") as err:
            await store.update_instance("i1", now=21.0, expected_version=inst.version,
                                        host="h2")
        assert isinstance(err.value, ConflictError)
        assert (await store.get_instance("i1")).host == "h1"
        # no guard: last writer wins, still bumps the version
        again = await store.update_instance("i1", now=22.0, display_name="renamed",
                                            metadata={"a": "1"})
        assert again.version == 3 and again.metadata == {"a": "1"}
        resized = await store.update_instance("i1", now=23.0, flavor=LARGE, old_flavor=TINY)
        assert (resized.vcpus, resized.memory_mb, resized.root_gb, resized.ephemeral_gb,
                resized.flavor_id) == (4, 8192, 80, 10, "large")
        assert resized.old_flavor == TINY and resized.new_flavor is None
        with pytest.raises(ValueError, match="uuid"):
            await store.update_instance("i1", now=24.0, uuid="other", version=9)
        with pytest.raises(NotFound):
            await store.update_instance("nope", now=24.0, host="h")
        with pytest.raises(NotFound):
            await store.update_instance("nope", now=24.0, expected_version=1, host="h")

    run_store(body)


def test_a_new_flavor_is_stored_whole(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        await boot(store, "vm-f")
        got = await store.update_instance("vm-f", now=11.0, flavor=LARGE, old_flavor=TINY)
        again = await store.get_instance("vm-f")
        for inst in (got, again):
            assert inst.flavor == LARGE and inst.old_flavor == TINY
            assert (inst.vcpus, inst.memory_mb, inst.flavor_id) == (4, 8192, "large")

    run_store(body)


def test_expected_task_state_guard(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        await boot(store, "i1")
        with pytest.raises(UnexpectedStateError, match="task_state is 'scheduling'") as err:
            await store.update_instance("i1", now=11.0, expected_task_states=[None],
                                        task_state="deleting")
        assert err.value.actual == "scheduling" and err.value.expected == (None,)
        assert (await store.get_instance("i1")).task_state == "scheduling"
        spawning = await store.update_instance(
            "i1", now=12.0, expected_task_states=["scheduling"], task_state="spawning")
        assert spawning.task_state == "spawning"
        active = await store.update_instance(
            "i1", now=13.0, expected_task_states=[None, "spawning"],
            expected_vm_states=["building"], vm_state="active", task_state=None)
        assert (active.vm_state, active.task_state) == ("active", None)
        rebooting = await store.update_instance("i1", now=14.0, expected_task_states=[None],
                                                task_state="rebooting")
        assert rebooting.task_state == "rebooting"
        with pytest.raises(UnexpectedStateError, match="vm_state is 'active'"):
            await store.update_instance("i1", now=15.0, expected_task_states=["rebooting"],
                                        expected_vm_states=["stopped"], task_state=None)
        # version and task state together: the task state is named first
        with pytest.raises(UnexpectedStateError):
            await store.update_instance("i1", now=16.0, expected_version=1,
                                        expected_task_states=["spawning"], task_state=None)

    run_store(body)


def test_list_filters(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        await boot(store, "a", now=1.0, display_name="Web-1", project="p1", user="u1")
        await boot(store, "b", now=2.0, display_name="web_2", project="p1", user="u2")
        await boot(store, "c", now=3.0, display_name="db-1", project="p2", user="u3")
        await boot(store, "d", now=4.0, display_name="100%", project="p2", user="u3")
        await store.update_instance("a", now=5.0, host="h1", vm_state="active", task_state=None)
        await store.update_instance("b", now=6.0, host="h2", vm_state="active",
                                    task_state="rebooting")
        await store.soft_delete_instance("d", now=7.0)

        async def uuids(**kw: Any) -> list[str]:
            return sorted(i.uuid for i in await store.list_instances(**kw))

        assert await uuids() == ["a", "b", "c"]
        assert await uuids(project_id="p1") == ["a", "b"]
        assert await uuids(project_id="p1", user_id="u2") == ["b"]
        assert await uuids(host="h1") == ["a"]
        assert await uuids(vm_states=["active"]) == ["a", "b"]
        assert await uuids(vm_states=["active", "building"]) == ["a", "b", "c"]
        assert await uuids(task_states=[None]) == ["a"]
        assert await uuids(task_states=[None, "rebooting"]) == ["a", "b"]
        assert await uuids(name="WEB") == ["a", "b"]
        assert await uuids(name="b_") == ["b"]  # _ is literal, not a wildcard
        assert await uuids(name="%", deleted=None) == ["d"]
        assert await uuids(changes_since=5.0) == ["a", "b"]
        assert await uuids(changes_since=5.0, changes_before=5.5) == ["a"]
        assert await uuids(deleted=True) == ["d"]
        assert await uuids(deleted=None, changes_since=6.0) == ["b", "d"]
        assert await uuids(image_ref="img-1", flavor_id="tiny", locked=False) == ["a", "b", "c"]
        assert await uuids(reservation_id="nope") == []

    run_store(body)


def test_list_sort_and_pages(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        hosts = ["h2", None, "h1", None, "h2", "h1", None]
        for n, host in enumerate(hosts):
            await boot(store, f"i{n}", now=float(n // 2), display_name=f"vm{6 - n}")
            if host is not None:
                await store.update_instance(f"i{n}", now=10.0, host=host)

        async def pages(size: int, **kw: Any) -> list[str]:
            seen: list[str] = []
            marker = None
            while True:
                page = await store.list_instances(marker=marker, limit=size, **kw)
                seen += [i.uuid for i in page]
                if len(page) < size:
                    return seen
                marker = page[-1].uuid

        newest = [i.uuid for i in await store.list_instances()]
        assert newest == ["i6", "i5", "i4", "i3", "i2", "i1", "i0"]  # created_at, then id
        assert await pages(2) == newest
        by_name = [i.uuid for i in await store.list_instances(sort=[("display_name", "asc")])]
        assert by_name == ["i6", "i5", "i4", "i3", "i2", "i1", "i0"]
        assert await pages(3, sort=[("display_name", "asc")]) == by_name
        # a nullable key: NULL is the smallest value on every engine
        up = [i.uuid for i in await store.list_instances(sort=[("host", "asc")])]
        assert up == ["i1", "i3", "i6", "i2", "i5", "i0", "i4"]
        assert await pages(2, sort=[("host", "asc")]) == up
        down = [i.uuid for i in await store.list_instances(sort=[("host", "desc")])]
        assert down == ["i4", "i0", "i5", "i2", "i6", "i3", "i1"]
        assert await pages(2, sort=[("host", "desc")]) == down
        mixed = [("host", "desc"), ("display_name", "asc")]
        assert await pages(1, sort=mixed) == [
            i.uuid for i in await store.list_instances(sort=mixed)]
        assert [i.uuid for i in await store.list_instances(limit=0)] == []
        with pytest.raises(NotFound, match="marker"):
            await store.list_instances(marker="nope")
        with pytest.raises(ValueError, match="valid"):
            await store.list_instances(sort=[("user_data", "asc")])
        with pytest.raises(ValueError, match="direction"):
            await store.list_instances(sort=[("host", "up")])

    run_store(body)


def test_quota_counts_live_rows(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        assert tuple(await store.count_instances_for_quota("p1")) == (0, 0, 0)
        await boot(store, "a", user="u1")
        await boot(store, "b", user="u2", flavor=LARGE)
        await boot(store, "c", user="u2", flavor=LARGE)
        await boot(store, "d", user="u1")
        await boot(store, "other", project="p2")
        await store.soft_delete_instance("c", now=20.0)
        await store.update_instance("d", now=20.0, vm_state="soft-delete")
        usage = await store.count_instances_for_quota("p1")
        assert (usage.instances, usage.cores, usage.ram) == (2, 5, 8704)
        assert tuple(await store.count_instances_for_quota("p1", "u2")) == (1, 4, 8192)
        assert tuple(await store.count_instances_for_quota("p1", "nobody")) == (0, 0, 0)

    run_store(body)


def test_by_host_and_metadata(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        for uuid, node in (("a", "n1"), ("b", "n2"), ("c", "n1")):
            await boot(store, uuid)
            await store.update_instance(uuid, now=11.0, host="h1", node=node)
        await store.soft_delete_instance("c", now=12.0)
        assert [i.uuid for i in await store.instances_by_host("h1")] == ["a", "b"]
        assert [i.uuid for i in await store.instances_by_host("h1", "n2")] == ["b"]
        assert await store.instances_by_host("h9") == []
        assert await store.host_instance_counts("h1", ["spawning"]) == (2, 2)  # building
        await store.update_instance("b", now=12.5, vm_state="active", task_state=None)
        assert await store.host_instance_counts("h1", ["spawning"]) == (2, 1)
        await store.update_instance("a", now=12.6, vm_state="active", task_state="spawning")
        assert await store.host_instance_counts("h1", ["rebooting"]) == (2, 0)
        assert await store.host_instance_counts("h9", ["spawning"]) == (0, 0)
        # a watcher's look: every instance changed since, deleted ones too, by last change
        assert [(s.uuid, s.vm_state, s.task_state, s.deleted)
                for s in await store.instance_states_since(12.0)] == [
            ("c", "deleted", None, True), ("b", "active", None, False),
            ("a", "active", "spawning", False)]
        assert [s.uuid for s in await store.instance_states_since(12.55)] == ["a"]
        assert await store.instance_states_since(99.0) == []
        await boot(store, "d")  # not on a host yet: not placed
        assert await store.placed_instances() == [
            ("a", "h1", "active", "spawning"), ("b", "h1", "active", None)]

        got = await store.update_instance_metadata("a", now=13.0, updates={"k1": "v1", "k2": "v2"})
        assert got.metadata == {"k1": "v1", "k2": "v2"}
        got = await store.update_instance_metadata("a", now=14.0, updates={"k3": "v3"},
                                                   deletes=["k1"])
        assert got.metadata == {"k2": "v2", "k3": "v3"} and got.updated_at == 14.0
        got = await store.update_instance_metadata("a", now=15.0, updates={"only": "1"},
                                                   replace_all=True)
        assert got.metadata == {"only": "1"}
        with pytest.raises(NotFound, match="k2"):
            await store.update_instance_metadata("a", now=16.0, deletes=["k2"])
        with pytest.raises(NotFound):
            await store.update_instance_metadata("c", now=16.0, updates={"x": "y"})

    run_store(body)


def test_soft_delete_and_purge(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        await boot(store, "a")
        await boot(store, "b")
        await boot(store, "keep")
        await store.add_instance_fault("a", code=500, message="boom", now=11.0)
        await store.start_event("a", "req-a", "compute_build", now=11.0)
        await store.create_migration(uuid="m-a", instance_uuid="a", migration_type="resize",
                                     now=11.0, source_compute="h1")
        with pytest.raises(UnexpectedStateError, match="scheduling"):
            await store.soft_delete_instance("a", now=12.0, expected_task_states=["deleting"])
        gone = await store.soft_delete_instance("a", now=12.0,
                                                expected_task_states=["scheduling"])
        assert gone.deleted and gone.deleted_at == 12.0 and gone.terminated_at == 12.0
        assert (gone.vm_state, gone.task_state) == ("deleted", None)
        with pytest.raises(NotFound):
            await store.get_instance("a")
        assert (await store.get_instance("a", read_deleted=True)).uuid == "a"
        with pytest.raises(NotFound):
            await store.soft_delete_instance("a", now=13.0)
        with pytest.raises(NotFound):
            await store.update_instance("a", now=13.0, host="h")
        assert await store.bdms_for_instance("a") == []
        assert await store.migrations_by_instance("a") == []
        # what happened to it stays visible until it is purged
        assert [a.action for a in await store.list_actions("a")] == ["create"]
        assert (await store.latest_fault("a")) is not None
        await store.soft_delete_instance("b", now=30.0)

        assert await store.purge_deleted_instances(before=12.0) == 0
        assert await store.purge_deleted_instances(before=20.0) == 1
        with pytest.raises(NotFound):
            await store.get_instance("a", read_deleted=True)
        with pytest.raises(NotFound):
            await store.list_actions("a")
        assert await store.latest_fault("a") is None
        assert (await store.get_instance("b", read_deleted=True)).deleted
        assert await store.purge_deleted_instances(before=31.0) == 1
        assert [i.uuid for i in await store.list_instances(deleted=None)] == ["keep"]
        assert len(await store.bdms_for_instance("keep")) == 1

    run_store(body)


def test_faults(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        await boot(store, "a")
        await boot(store, "b")
        await boot(store, "c")
        assert await store.latest_fault("a") is None
        first = await store.add_instance_fault("a", code=500, message="no valid host",
                                               now=11.0, details="trace", host="h1")
        assert (first.code, first.message, first.details, first.host) == (
            500, "no valid host", "trace", "h1")
        await store.add_instance_fault("a", code=400, message="m" * 300, now=12.0)
        await store.add_instance_fault("b", code=503, message="down", now=13.0)
        latest = await store.latest_fault("a")
        assert latest is not None and latest.code == 400 and latest.message == "m" * 255
        many = await store.latest_faults(["a", "b", "c", "zzz"])
        assert {k: v.code for k, v in many.items()} == {"a": 400, "b": 503}
        assert await store.latest_faults([]) == {}
        with pytest.raises(NotFound):
            await store.add_instance_fault("zzz", code=500, message="x", now=1.0)

    run_store(body)


def test_boot_from_volume_disks(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        disks = [
            BlockDeviceSpec(uuid="root", source_type="volume", destination_type="volume",
                            boot_index=0, volume_id="vol-1", device_name="/dev/vda"),
            BlockDeviceSpec(uuid="eph", source_type="blank", destination_type="local",
                            boot_index=None, volume_size=10, guest_format="ext4",
                            delete_on_termination=True),
        ]
        await store.create_instance(spec("v", image_ref=None), now=1.0, request_id="r",
                                    block_devices=disks)
        got = await store.bdms_for_instance("v")
        assert [(b.uuid, b.boot_index, b.volume_id, b.volume_size) for b in got] == [
            ("root", 0, "vol-1", None), ("eph", None, None, 10)]
        assert got[1].guest_format == "ext4" and got[1].delete_on_termination

    run_store(body)


def test_concurrent_writers(run_store: StoreRunner) -> None:
    """Many writers at once: one compare-and-swap wins per version; metadata loses nothing."""
    async def each(coros: list[Any]) -> list[Any]:
        if run_store.kind == "sim":  # one task at a time in simulation
            return [await _outcome(c) for c in coros]
        return await asyncio.gather(*(_outcome(c) for c in coros))

    async def body(store: Store) -> None:
        inst = await boot(store, "i1")
        results = await each([
            store.update_instance("i1", now=20.0 + n, expected_version=inst.version,
                                  host=f"h{n}") for n in range(6)])
        winners = [r for r in results if not isinstance(r, Exception)]
        assert len(winners) == 1
        assert all(isinstance(r, StaleVersionError) for r in results if r not in winners)
        assert (await store.get_instance("i1")).host == winners[0].host
        await each([store.update_instance_metadata("i1", now=30.0, updates={f"k{n}": "v"})
                    for n in range(6)])
        got = await store.get_instance("i1")
        assert got.metadata == {f"k{n}": "v" for n in range(6)}
        assert got.version == inst.version + 7

    run_store(body)


async def _outcome(coro: Any) -> Any:
    try:
        return await coro
    except ConflictError as exc:
        return exc
