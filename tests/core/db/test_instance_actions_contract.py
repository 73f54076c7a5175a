"""Instance actions and their events, on every engine."""

from __future__ import annotations

from typing import Any

import pytest

from nimbus.core.db.instances import NewInstance
from nimbus.core.db.store import Store
from nimbus.core.errors import NotFound

from .conftest import StoreRunner

FLAVOR = {"flavorid": "1", "vcpus": 1, "memory_mb": 64, "root_gb": 1}


async def boot(store: Store, uuid: str) -> None:
    await store.create_instance(NewInstance(uuid=uuid, project_id="p", user_id="u",
                                            flavor=FLAVOR), now=1.0, request_id=f"req-{uuid}")


def test_actions_and_events(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        await boot(store, "i1")
        act = await store.start_action("i1", action="reboot", request_id="r2", user_id="admin",
                                       project_id="admin-p", now=5.0)
        assert (act.action, act.finish_time, act.message, act.user_id) == (
            "reboot", None, None, "admin")
        ev = await store.start_event("i1", "r2", "compute_reboot_instance", now=6.0, host="h1")
        assert (ev.action_id, ev.event, ev.start_time, ev.host, ev.result) == (
            act.id, "compute_reboot_instance", 6.0, "h1", None)
        done = await store.finish_event("i1", "r2", "compute_reboot_instance", now=7.0)
        assert (done.finish_time, done.result, done.traceback) == (7.0, "Success", None)
        fin = await store.finish_action("i1", "r2", now=8.0)
        assert (fin.finish_time, fin.updated_at, fin.message) == (8.0, 8.0, None)

        got, events = await store.get_action("i1", "r2")
        assert got == fin and [e.event for e in events] == ["compute_reboot_instance"]

        # a failed step marks its action
        await store.start_action("i1", action="resize", request_id="r3", user_id="u",
                                 project_id="p", now=10.0)
        await store.start_event("i1", "r3", "conductor_migrate_server", now=10.0)
        await store.start_event("i1", "r3", "compute_prep_resize", now=11.0, host="h2")
        failed = await store.finish_event("i1", "r3", "compute_prep_resize", now=12.0,
                                          result="Error", traceback="Traceback ...",
                                          details="No valid host")
        assert (failed.result, failed.traceback, failed.details) == (
            "Error", "Traceback ...", "No valid host")
        got, events = await store.get_action("i1", "r3")
        assert got.message == "Error" and got.updated_at == 12.0
        assert events[-1] == failed  # what finish_event returned is what was written
        # details given once stay when a later finish gives none
        again = await store.finish_event("i1", "r3", "compute_prep_resize", now=13.0)
        assert (again.details, again.result, again.finish_time, again.updated_at) == (
            "No valid host", "Success", 13.0, 13.0)
        assert (await store.get_action("i1", "r3"))[1][-1] == again
        assert [(e.event, e.result) for e in events] == [
            ("conductor_migrate_server", None), ("compute_prep_resize", "Error")]

        with pytest.raises(NotFound, match="request nope"):
            await store.start_event("i1", "nope", "x", now=1.0)
        with pytest.raises(NotFound, match="event never"):
            await store.finish_event("i1", "r3", "never", now=1.0)
        with pytest.raises(NotFound, match="request nope"):
            await store.finish_event("i1", "nope", "compute_prep_resize", now=1.0)
        with pytest.raises(NotFound):
            await store.get_action("i1", "nope")
        with pytest.raises(NotFound):
            await store.finish_action("other", "r2", now=1.0)
        with pytest.raises(NotFound, match="instance ghost"):
            await store.start_action("ghost", action="stop", request_id="r", user_id="u",
                                     project_id="p", now=1.0)

    run_store(body)


def test_list_actions_pages_and_changes(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        await boot(store, "i1")
        await boot(store, "i2")
        for n in range(2, 6):
            await store.start_action("i1", action=f"a{n}", request_id=f"r{n}", user_id="u",
                                     project_id="p", now=float(n))
        await store.start_event("i1", "r2", "e", now=9.0)  # touches r2

        async def ids(**kw: Any) -> list[str]:
            return [a.request_id for a in await store.list_actions("i1", **kw)]

        assert await ids() == ["r5", "r4", "r3", "r2", "req-i1"]
        assert await ids(limit=2) == ["r5", "r4"]
        assert await ids(marker="r4", limit=2) == ["r3", "r2"]
        assert await ids(marker="r2") == ["req-i1"]
        assert await ids(changes_since=4.0) == ["r5", "r4", "r2"]
        assert await ids(changes_since=4.0, changes_before=5.0) == ["r5", "r4"]
        assert [a.request_id for a in await store.list_actions("i2")] == ["req-i2"]
        with pytest.raises(NotFound, match="request nope"):
            await store.list_actions("i1", marker="nope")
        with pytest.raises(NotFound):
            await store.list_actions("ghost")
        # actions of a deleted instance stay listed, and its steps can still finish
        await store.start_action("i2", action="delete", request_id="rd", user_id="u",
                                 project_id="p", now=20.0)
        await store.start_event("i2", "rd", "compute_terminate_instance", now=20.0)
        await store.soft_delete_instance("i2", now=21.0)
        await store.finish_event("i2", "rd", "compute_terminate_instance", now=22.0)
        assert [a.request_id for a in await store.list_actions("i2")] == ["rd", "req-i2"]

    run_store(body)
