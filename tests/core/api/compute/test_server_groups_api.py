"""``/os-server-groups`` over a simulated cloud: create, show, list and delete with the shapes
of each microversion, quota, and isolation between projects."""

from __future__ import annotations

from typing import Any

from tests.core.api.compute.harness import ADMIN_TOKEN, OTHER, Api, run


async def create(api: Api, group: dict[str, Any], *, token: str | None = None,
                 version: str | None = None) -> Any:
    kw: dict[str, Any] = {"version": version}
    if token is not None:
        kw["token"] = token
    return await api.post("/os-server-groups", {"server_group": group}, **kw)


def test_create_show_list_delete_before_and_after_2_64() -> None:
    async def scenario(api: Api) -> None:
        got = await create(api, {"name": "web", "policies": ["anti-affinity"]})
        assert got.status == 200
        group = got.body["server_group"]
        assert set(group) == {"id", "name", "policies", "members", "metadata"}
        assert (group["policies"], group["metadata"], group["members"]) == (
            ["anti-affinity"], {}, [])
        got = await api.get(f"/os-server-groups/{group['id']}", version="2.13")
        assert got.body["server_group"]["project_id"] == "p1"
        assert got.body["server_group"]["user_id"] == "u1"
        got = await create(api, {"name": "db", "policy": "anti-affinity",
                                 "rules": {"max_server_per_host": 2}}, version="2.64")
        assert got.status == 200
        new = got.body["server_group"]
        assert set(new) == {"id", "name", "policy", "rules", "members", "project_id",
                            "user_id"}
        assert (new["policy"], new["rules"]) == ("anti-affinity", {"max_server_per_host": 2})
        got = await api.get("/os-server-groups", version="2.64")
        assert [g["name"] for g in got.body["server_groups"]] == ["web", "db"]
        got = await api.get("/os-server-groups", query={"limit": "1", "offset": "1"})
        assert [g["name"] for g in got.body["server_groups"]] == ["db"]
        got = await api.delete(f"/os-server-groups/{group['id']}")
        assert got.status == 204 and got.body == b""
        assert (await api.get(f"/os-server-groups/{group['id']}")).status == 404
        assert (await api.delete(f"/os-server-groups/{group['id']}")).status == 404

    run(scenario)


def test_members_are_the_servers_that_are_not_deleted() -> None:
    async def scenario(api: Api) -> None:
        cloud = api.cloud
        got = await create(api, {"name": "g", "policy": "soft-affinity"}, version="2.64")
        gid = got.body["server_group"]["id"]
        first = await cloud.boot(group_uuid=gid)
        second = await cloud.boot(group_uuid=gid)
        got = await api.get(f"/os-server-groups/{gid}")
        assert sorted(got.body["server_group"]["members"]) == sorted([first.uuid, second.uuid])
        assert (await api.post(f"/servers/{first.uuid}/action", {"forceDelete": None})
                ).status == 202
        await cloud.wait_for(first.uuid, deleted=True)
        got = await api.get(f"/os-server-groups/{gid}")
        assert got.body["server_group"]["members"] == [second.uuid]

    run(scenario)


def test_bad_bodies_and_version_gates_are_400() -> None:
    async def scenario(api: Api) -> None:
        bad: list[tuple[dict[str, Any], str | None]] = [
            ({"name": "g"}, None),                                       # no policies
            ({"name": "g", "policies": ["affinity", "anti-affinity"]}, None),
            ({"name": "g", "policies": ["spread"]}, None),
            ({"name": "g", "policies": ["soft-affinity"]}, "2.14"),     # soft from 2.15
            ({"name": "g", "policy": "affinity"}, "2.63"),              # policy from 2.64
            ({"name": "g", "policies": ["affinity"]}, "2.64"),
            ({"name": "g", "policy": "affinity", "rules": {"max_server_per_host": 2}},
             "2.64"),                                                    # anti-affinity only
            ({"name": "g", "policy": "anti-affinity", "rules": {"max_server_per_host": 0}},
             "2.64"),
            ({"name": "", "policy": "affinity"}, "2.64"),
        ]
        for group, version in bad:
            got = await create(api, group, version=version)
            assert got.status == 400, (group, version, got.body)
        assert (await create(api, {"name": "g", "policies": ["soft-affinity"]},
                             version="2.15")).status == 200
        assert (await api.get("/os-server-groups", query={"foo": "1"},
                              version="2.75")).status == 400
        assert (await api.get("/os-server-groups", query={"foo": "1"},
                              version="2.74")).status == 200
        assert len((await api.get("/os-server-groups")).body["server_groups"]) == 1

    run(scenario)


def test_groups_are_isolated_by_project_and_admins_list_all() -> None:
    async def scenario(api: Api) -> None:
        gid = (await create(api, {"name": "mine", "policies": ["affinity"]})).body[
            "server_group"]["id"]
        await create(api, {"name": "theirs", "policies": ["affinity"]}, token=OTHER)
        got = await api.get(f"/os-server-groups/{gid}", token=OTHER)
        assert got.status == 404
        assert got.body["itemNotFound"]["message"] == f"Server group {gid} could not be found."
        assert (await api.delete(f"/os-server-groups/{gid}", token=OTHER)).status == 404
        got = await api.get("/os-server-groups", token=OTHER, query={"all_projects": "True"})
        assert [g["name"] for g in got.body["server_groups"]] == ["theirs"]
        got = await api.get("/os-server-groups", token=ADMIN_TOKEN,
                            query={"all_projects": "True"})
        assert sorted(g["name"] for g in got.body["server_groups"]) == ["mine", "theirs"]
        got = await api.get("/os-server-groups", token=ADMIN_TOKEN)
        assert got.body["server_groups"] == []
        assert (await api.get(f"/os-server-groups/{gid}", token=ADMIN_TOKEN)).status == 200

    run(scenario)


def test_the_server_groups_quota_is_403() -> None:
    async def scenario(api: Api) -> None:
        await api.cloud.store.set_project_quotas("p1", {"server_groups": 2},
                                                 api.cloud.rt.wall_time())
        for name in ("a", "b"):
            assert (await create(api, {"name": name, "policies": ["affinity"]})).status == 200
        got = await create(api, {"name": "c", "policies": ["affinity"]})
        assert got.status == 403
        assert got.body["forbidden"]["message"] == "Quota exceeded, too many server groups."
        assert len((await api.get("/os-server-groups")).body["server_groups"]) == 2
        assert (await create(api, {"name": "c", "policies": ["affinity"]},
                             token=OTHER)).status == 200

    run(scenario)
