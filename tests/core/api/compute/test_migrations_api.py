"""``os-migrations`` and ``/servers/{id}/migrations`` over a simulated cloud: a cold migration
is listed with the fields of each microversion, filters and paging work, a live migration in
progress is shown and its abort and force-complete are refused with 409."""

from __future__ import annotations

from typing import Any

from nimbus.core.compute import states as s
from tests.core.api.compute.harness import ADMIN_TOKEN, OTHER, USER, Api, run
from tests.core.compute.cloud import guests_by_host, wait_for_migration

BASE_FIELDS = {"id", "instance_uuid", "status", "source_compute", "source_node",
               "dest_compute", "dest_node", "dest_host", "old_instance_type_id",
               "new_instance_type_id", "created_at", "updated_at"}
SLOW_LIVE = {"vcpus": 4, "memory_mb": 8192, "local_gb": 100,
             "timings": {"live_migration": 30.0}}


async def migrated(api: Api) -> Any:
    """A server cold-migrated by the admin (and confirmed); its instance record."""
    cloud = api.cloud
    inst = await cloud.boot()
    got = await api.post(f"/servers/{inst.uuid}/action", {"migrate": None}, token=ADMIN_TOKEN)
    assert got.status == 202
    moved = await cloud.wait_for(inst.uuid, vm_state=s.RESIZED)
    assert moved.host != inst.host
    got = await api.post(f"/servers/{inst.uuid}/action", {"confirmResize": None})
    assert got.status == 204
    moved = await cloud.wait_for(inst.uuid, vm_state=s.ACTIVE)
    assert list(await guests_by_host(cloud, inst.uuid)) == [moved.host]
    await wait_for_migration(cloud, inst.uuid, "confirmed")
    return inst


def test_a_cold_migration_is_listed_with_the_fields_of_each_version() -> None:
    async def scenario(api: Api) -> None:
        inst = await migrated(api)
        got = await api.get("/os-migrations", token=ADMIN_TOKEN)
        assert got.status == 200 and len(got.body["migrations"]) == 1
        row = got.body["migrations"][0]
        assert set(row) == BASE_FIELDS
        assert (row["instance_uuid"], row["status"], row["source_compute"]) == (
            inst.uuid, "confirmed", inst.host)
        assert row["created_at"].count(".") == 1 and not row["created_at"].endswith("Z")
        got = await api.get("/os-migrations", token=ADMIN_TOKEN, version="2.23")
        assert got.body["migrations"][0]["migration_type"] == "migration"
        assert "links" not in got.body["migrations"][0]  # only live migrations under way
        got = await api.get("/os-migrations", token=ADMIN_TOKEN, version="2.59")
        assert set(got.body["migrations"][0]) == BASE_FIELDS | {"migration_type", "uuid"}
        got = await api.get("/os-migrations", token=ADMIN_TOKEN, version="2.80")
        row = got.body["migrations"][0]
        assert set(row) == BASE_FIELDS | {"migration_type", "uuid", "user_id", "project_id"}

    run(scenario)


def test_filters_and_paging() -> None:
    async def scenario(api: Api) -> None:
        first = await migrated(api)
        second = await migrated(api)

        async def listed(version: str = "2.59", **query: str) -> Any:
            got = await api.get("/os-migrations", token=ADMIN_TOKEN, version=version,
                                query=query)
            assert got.status == 200, got.body
            return got.body

        body = await listed()
        assert [m["instance_uuid"] for m in body["migrations"]] == [second.uuid, first.uuid]
        assert [m["instance_uuid"] for m in (await listed(instance_uuid=first.uuid))[
            "migrations"]] == [first.uuid]
        assert (await listed(status="error"))["migrations"] == []
        assert (await listed(migration_type="resize"))["migrations"] == []
        assert len((await listed(host=first.host or ""))["migrations"]) >= 1
        page = await listed(limit="1")
        newest = page["migrations"][0]["uuid"]
        assert page["migrations_links"][0]["href"].endswith(f"limit=1&marker={newest}")
        rest = await listed(limit="1", marker=newest)
        assert [m["instance_uuid"] for m in rest["migrations"]] == [first.uuid]
        got = await api.get("/os-migrations", token=ADMIN_TOKEN, version="2.59",
                            query={"changes-since": "2999-01-01T00:00:00Z"})
        assert got.body["migrations"] == []
        got = await api.get("/os-migrations", token=ADMIN_TOKEN, version="2.59",
                            query={"marker": "nothing"})
        assert got.status == 400
        # paging and user/project filters are checked from their versions on
        got = await api.get("/os-migrations", token=ADMIN_TOKEN, version="2.59",
                            query={"user_id": "u1"})
        assert got.status == 400
        got = await api.get("/os-migrations", token=ADMIN_TOKEN, version="2.80",
                            query={"project_id": "nobody"})
        assert got.status == 200 and got.body["migrations"] == []
        got = await api.get("/os-migrations", token=ADMIN_TOKEN, query={"anything": "x"})
        assert got.status == 200 and len(got.body["migrations"]) == 2

    run(scenario)


def test_migrations_are_for_admins() -> None:
    async def scenario(api: Api) -> None:
        inst = await api.cloud.boot()
        for token in (USER, OTHER):
            got = await api.get("/os-migrations", token=token)
            assert got.status == 403
        got = await api.get(f"/servers/{inst.uuid}/migrations", version="2.23")
        assert got.status == 403
        got = await api.get(f"/servers/{inst.uuid}/migrations", token=OTHER, version="2.23")
        assert got.status == 404
        got = await api.get(f"/servers/{inst.uuid}/migrations", token=ADMIN_TOKEN,
                            version="2.22")
        assert got.status == 404  # the resource is one of 2.23
        got = await api.get(f"/servers/{inst.uuid}/migrations", token=ADMIN_TOKEN,
                            version="2.23")
        assert got.status == 200 and got.body == {"migrations": []}

    run(scenario)


def test_a_live_migration_in_progress_is_shown_and_cannot_be_aborted_yet() -> None:
    async def scenario(api: Api) -> None:
        cloud = api.cloud
        inst = await cloud.boot()
        got = await api.post(f"/servers/{inst.uuid}/action", {"os-migrateLive": {
            "host": None, "block_migration": "auto"}}, token=ADMIN_TOKEN, version="2.30")
        assert got.status == 202
        mig = await wait_for_migration(cloud, inst.uuid, "running")
        path = f"/servers/{inst.uuid}/migrations"
        got = await api.get(path, token=ADMIN_TOKEN, version="2.80")
        assert got.status == 200
        [row] = got.body["migrations"]
        assert (row["id"], row["server_uuid"], row["status"]) == (mig.id, inst.uuid, "running")
        assert {"uuid", "user_id", "project_id", "memory_total_bytes"} <= set(row)
        got = await api.get(f"{path}/{mig.id}", token=ADMIN_TOKEN, version="2.23")
        assert got.status == 200 and "uuid" not in got.body["migration"]
        assert (await api.get(f"{path}/99999", token=ADMIN_TOKEN, version="2.23")
                ).status == 404
        got = await api.get("/os-migrations", token=ADMIN_TOKEN, version="2.23")
        assert got.body["migrations"][0]["links"][0]["href"].endswith(f"{path}/{mig.id}")
        got = await api.delete(f"{path}/{mig.id}", token=ADMIN_TOKEN, version="2.24")
        assert got.status == 409
        got = await api.post(f"{path}/{mig.id}/action", {"force_complete": None},
                             token=ADMIN_TOKEN, version="2.22")
        assert got.status == 409
        got = await api.post(f"{path}/{mig.id}/action", {"force_complete": {}},
                             token=ADMIN_TOKEN, version="2.22")
        assert got.status == 400
        moved = await cloud.wait_for(inst.uuid, vm_state=s.ACTIVE)
        assert moved.host != inst.host
        assert list(await guests_by_host(cloud, inst.uuid)) == [moved.host]
        await wait_for_migration(cloud, inst.uuid, "completed")
        got = await api.get(f"{path}/{mig.id}", token=ADMIN_TOKEN, version="2.23")
        assert got.status == 404  # no longer in progress
        got = await api.delete(f"{path}/{mig.id}", token=ADMIN_TOKEN, version="2.24")
        assert got.status == 409  # the server is not migrating any more

    run(scenario, driver_config=SLOW_LIVE)


def test_a_cold_migration_to_a_named_host_from_2_56() -> None:
    async def scenario(api: Api) -> None:
        cloud = api.cloud
        inst = await cloud.boot()
        target = next(h for h in ("cmp0", "cmp1", "cmp2") if h != inst.host)
        path = f"/servers/{inst.uuid}/action"
        got = await api.post(path, {"migrate": {"host": "nowhere"}}, token=ADMIN_TOKEN,
                             version="2.56")
        assert got.status == 400
        got = await api.post(path, {"migrate": {"host": inst.host}}, token=ADMIN_TOKEN,
                             version="2.56")
        assert got.status == 400
        got = await api.post(path, {"migrate": {"host": target}}, token=ADMIN_TOKEN,
                             version="2.56")
        assert got.status == 202
        moved = await cloud.wait_for(inst.uuid, vm_state=s.RESIZED)
        assert moved.host == target
        got = await api.get("/os-migrations", token=ADMIN_TOKEN, version="2.23",
                            query={"instance_uuid": inst.uuid})
        [row] = got.body["migrations"]
        assert (row["dest_compute"], row["status"]) == (target, "finished")

    run(scenario)


def test_an_id_too_large_for_the_database_is_404_not_500() -> None:
    # found by tests/nimbus/test_schemathesis.py: such an id reached the database driver
    async def scenario(api: Api) -> None:
        inst = await api.cloud.boot()
        path = f"/servers/{inst.uuid}/migrations/{10**30}"
        got = await api.get(path, token=ADMIN_TOKEN, version="2.23")
        assert got.status == 404, got.body

    run(scenario)
