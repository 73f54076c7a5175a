"""Migrations (moves and resizes), on every engine."""

from __future__ import annotations

from typing import Any

import pytest

from nimbus.core.db.instances import NewInstance
from nimbus.core.db.store import Store
from nimbus.core.errors import ConflictError, NotFound

from .conftest import StoreRunner

FLAVOR = {"flavorid": "1", "vcpus": 1, "memory_mb": 64, "root_gb": 1}


async def boot(store: Store, uuid: str) -> None:
    await store.create_instance(NewInstance(uuid=uuid, project_id="p", user_id="u",
                                            flavor=FLAVOR), now=1.0, request_id=f"req-{uuid}")


def test_migration_lifecycle(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        await boot(store, "i1")
        mig = await store.create_migration(
            uuid="m1", instance_uuid="i1", migration_type="resize", now=5.0,
            source_compute="h1", source_node="n1", old_instance_type_id=1,
            new_instance_type_id=2, user_id="u", project_id="p")
        assert (mig.status, mig.dest_compute, mig.hidden, mig.cross_cell_move) == (
            "pre-migrating", None, False, False)
        assert mig.in_progress
        assert await store.get_migration(mig.id) == mig
        assert await store.get_migration_by_uuid("m1") == mig
        placed = await store.update_migration(mig.id, now=6.0, dest_compute="h2",
                                              dest_node="n2", dest_host="10.0.0.2")
        assert (placed.dest_compute, placed.dest_node, placed.updated_at) == ("h2", "n2", 6.0)
        moving = await store.update_migration_status(mig.id, "migrating", now=7.0,
                                                     expected_statuses=["pre-migrating"])
        assert moving.status == "migrating"
        with pytest.raises(ConflictError, match="'migrating', expected one of 'finished'"):
            await store.update_migration_status(mig.id, "confirmed", now=8.0,
                                                expected_statuses=["finished"])
        await store.update_migration_status(mig.id, "finished", now=9.0)
        found = await store.migration_by_instance_and_status("i1", "finished")
        assert found.id == mig.id
        with pytest.raises(NotFound):
            await store.migration_by_instance_and_status("i1", "confirmed")
        done = await store.update_migration_status(mig.id, "confirmed", now=10.0,
                                                   expected_statuses=["finished"])
        assert not done.in_progress
        progress = await store.update_migration(mig.id, now=11.0, memory_total=8 << 30,
                                                memory_processed=3 << 30,
                                                memory_remaining=5 << 30)
        assert (progress.memory_total, progress.memory_remaining) == (8 << 30, 5 << 30)
        with pytest.raises(ValueError, match="instance_uuid"):
            await store.update_migration(mig.id, now=12.0, instance_uuid="x")
        with pytest.raises(ValueError, match="valid: migration"):
            await store.create_migration(uuid="m2", instance_uuid="i1",
                                         migration_type="teleport", now=1.0)
        with pytest.raises(NotFound):
            await store.create_migration(uuid="m2", instance_uuid="ghost",
                                         migration_type="migration", now=1.0)
        with pytest.raises(NotFound):
            await store.get_migration(9999)
        with pytest.raises(NotFound):
            await store.update_migration_status(9999, "error", now=1.0)

    run_store(body)


def test_migrations_by_host_and_lists(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        for uuid in ("a", "b", "c"):
            await boot(store, uuid)

        async def move(uuid: str, inst: str, kind: str, now: float, **kw: Any) -> int:
            m = await store.create_migration(uuid=uuid, instance_uuid=inst, migration_type=kind,
                                             now=now, **kw)
            return m.id

        await move("m1", "a", "live-migration", 1.0, source_compute="h1", source_node="n1",
                   dest_compute="h2", dest_node="n2", status="running")
        await move("m2", "b", "resize", 2.0, source_compute="h2", source_node="n2",
                   dest_compute="h3", dest_node="n3", status="finished")
        m3 = await move("m3", "c", "migration", 2.0, source_compute="h1", source_node="n1",
                        dest_compute="h3", dest_node="n3", status="error")
        await move("m4", "a", "evacuation", 3.0, source_compute="h3", source_node="n3",
                   dest_compute="h1", dest_node="n1", status="accepted", hidden=True)

        async def uuids(**kw: Any) -> list[str]:
            return [m.uuid for m in await store.list_migrations(**kw)]

        assert [m.uuid for m in await store.in_progress_migrations_by_host("h2")] == [
            "m1", "m2"]
        assert [m.uuid for m in await store.in_progress_migrations_by_host("h1", "n1")] == [
            "m1", "m4"]
        assert await store.in_progress_migrations_by_host("h1", "other") == []
        assert [m.uuid for m in await store.migrations_by_instance("a")] == ["m1", "m4"]

        assert await uuids() == ["m3", "m2", "m1"]  # newest first, hidden left out
        assert await uuids(include_hidden=True) == ["m4", "m3", "m2", "m1"]
        assert await uuids(host="h3") == ["m3", "m2"]
        assert await uuids(status="running") == ["m1"]
        assert await uuids(instance_uuid="a", include_hidden=True) == ["m4", "m1"]
        assert await uuids(migration_type="resize", project_id=None) == ["m2"]
        await store.update_migration_status(m3, "error", now=9.0)
        assert await uuids(changes_since=5.0) == ["m3"]
        assert await uuids(changes_before=1.5) == ["m1"]
        assert await uuids(limit=2) == ["m3", "m2"]
        assert await uuids(marker="m3", limit=1) == ["m2"]
        assert await uuids(marker="m2") == ["m1"]
        assert await uuids(marker="m4", include_hidden=True) == ["m3", "m2", "m1"]
        with pytest.raises(NotFound, match="marker"):
            await uuids(marker="nope")
        # a deleted instance takes its migrations with it
        await store.soft_delete_instance("a", now=10.0)
        assert await store.migrations_by_instance("a") == []
        assert await uuids(include_hidden=True) == ["m3", "m2"]
        with pytest.raises(NotFound):
            await store.create_migration(uuid="m5", instance_uuid="a",
                                         migration_type="migration", now=11.0)

    run_store(body)
