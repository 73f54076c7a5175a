"""``/os-services``: listing, up and down, enabling and disabling (both styles), deleting."""

from __future__ import annotations

from typing import Any

from tests.core.api.compute.harness import ADMIN_TOKEN, USER, Api, run

BINARY = "nimbus-compute"
KEYS = {"binary", "host", "id", "zone", "status", "state", "updated_at", "disabled_reason"}
MISSING = "0b7e8f4e-9c1a-4c3e-8f7c-3c1e2f1a0d9b"


async def services(api: Api, version: str = "2.69", **query: str) -> list[dict[str, Any]]:
    got = await api.get("/os-services", token=ADMIN_TOKEN, version=version, query=query)
    assert got.status == 200, got.body
    body: list[dict[str, Any]] = got.body["services"]
    return body


async def by_host(api: Api, version: str = "2.69") -> dict[str, dict[str, Any]]:
    return {s["host"]: s for s in await services(api, version)}


def test_list_shapes_filters_and_admin_only() -> None:
    async def scenario(api: Api) -> None:
        old = await services(api, "2.1")
        assert len(old) == 3 and all(set(s) == KEYS for s in old)
        assert all(isinstance(s["id"], int) and s["zone"] == "nova" and s["binary"] == BINARY
                   for s in old)
        assert {(s["state"], s["status"]) for s in old} == {("up", "enabled")}
        assert all(s["updated_at"] and s["updated_at"].count(".") == 1 for s in old)
        forced = await services(api, "2.11")
        assert all(set(s) == KEYS | {"forced_down"} for s in forced)
        new = await services(api, "2.53")
        records = {s.uuid for s in await api.cloud.store.list_services()}
        assert {s["id"] for s in new} == records
        assert [s["host"] for s in await services(api, host="cmp1")] == ["cmp1"]
        assert await services(api, binary="nimbus-scheduler") == []
        assert len(await services(api, "2.74", other="x")) == 3
        strict = await api.get("/os-services", token=ADMIN_TOKEN, version="2.75",
                               query={"other": "x"})
        assert strict.status == 400
        denied = await api.get("/os-services", token=USER, version="2.69")
        assert denied.status == 403

    run(scenario)


def test_a_stopped_service_is_down_once_the_down_time_has_passed() -> None:
    async def scenario(api: Api) -> None:
        cloud = api.cloud
        await cloud.stop_compute("cmp2")
        await cloud.rt.sleep(30)
        assert (await by_host(api))["cmp2"]["state"] == "up"
        await cloud.rt.sleep(35)
        states = {h: s["state"] for h, s in (await by_host(api)).items()}
        assert states == {"cmp0": "up", "cmp1": "up", "cmp2": "down"}
        await cloud.start_compute("cmp2")
        assert (await by_host(api))["cmp2"]["state"] == "up"

    run(scenario)


def test_update_by_uuid_from_2_53() -> None:
    async def scenario(api: Api) -> None:
        svc = (await by_host(api))["cmp0"]
        path = f"/os-services/{svc['id']}"

        async def put(body: Any, version: str = "2.53") -> Any:
            return await api.put(path, body, token=ADMIN_TOKEN, version=version)

        off = await put({"status": "disabled", "disabled_reason": "maintenance"})
        assert off.status == 200
        assert off.body["service"]["status"] == "disabled"
        assert off.body["service"]["disabled_reason"] == "maintenance"
        assert off.body["service"]["id"] == svc["id"]
        down = await put({"forced_down": True}, "2.69")
        assert down.body["service"]["state"] == "down"
        assert down.body["service"]["forced_down"] is True
        assert down.body["service"]["status"] == "disabled"
        on = await put({"status": "enabled", "forced_down": "false"})
        assert on.body["service"]["status"] == "enabled"
        assert on.body["service"]["disabled_reason"] is None
        assert on.body["service"]["state"] == "up"
        for bad in ({}, {"status": "enabled", "disabled_reason": "x"}, {"status": "off"},
                    {"status": "disabled", "extra": 1}, {"forced_down": "perhaps"}):
            assert (await put(bad)).status == 400, bad
        assert (await api.put("/os-services/1", {"status": "disabled"}, token=ADMIN_TOKEN,
                              version="2.53")).status == 400
        assert (await api.put(f"/os-services/{MISSING}", {"status": "disabled"},
                              token=ADMIN_TOKEN, version="2.53")).status == 404
        assert (await api.put(path, {"status": "disabled"}, token=USER,
                              version="2.53")).status == 403

    run(scenario)


def test_update_by_action_before_2_53() -> None:
    async def scenario(api: Api) -> None:
        async def put(action: str, body: Any, version: str = "2.11") -> Any:
            return await api.put(f"/os-services/{action}", body, token=ADMIN_TOKEN,
                                 version=version)

        who = {"host": "cmp1", "binary": BINARY}
        off = await put("disable", who)
        assert off.body == {"service": {**who, "status": "disabled"}}
        why = await put("disable-log-reason", {**who, "disabled_reason": "broken fan"})
        assert why.body["service"]["disabled_reason"] == "broken fan"
        listed = (await by_host(api, "2.11"))["cmp1"]
        assert (listed["status"], listed["disabled_reason"]) == ("disabled", "broken fan")
        assert (await put("disable-log-reason", who)).status == 400
        on = await put("enable", who)
        assert on.body == {"service": {**who, "status": "enabled"}}
        forced = await put("force-down", {**who, "forced_down": True})
        assert forced.body == {"service": {**who, "forced_down": True}}
        assert (await by_host(api, "2.11"))["cmp1"]["state"] == "down"
        assert (await put("force-down", who)).status == 400
        assert (await put("force-down", {**who, "forced_down": True}, "2.10")).status == 404
        assert (await put("reboot", who)).status == 404
        assert (await put("disable", {"host": "nowhere", "binary": BINARY})).status == 404
        assert (await put("disable", {"host": "cmp1", "binary": "nimbus-api"})).status == 400
        assert (await put("disable", {"host": "cmp1"})).status == 400

    run(scenario)


def test_the_scheduler_avoids_a_service_disabled_through_the_api() -> None:
    async def scenario(api: Api) -> None:
        cloud = api.cloud
        hosts = await by_host(api)
        for name in ("cmp0", "cmp1"):
            got = await api.put(f"/os-services/{hosts[name]['id']}",
                                {"status": "disabled", "disabled_reason": "drain"},
                                token=ADMIN_TOKEN, version="2.53")
            assert got.status == 200
        # no refresh: the API tells the scheduler at once (a fanout)
        await cloud.rt.sleep(0.1)
        placed = {(await cloud.boot()).host for _ in range(3)}
        assert placed == {"cmp2"}

    run(scenario)


def test_delete_refuses_a_busy_compute_and_cleans_up_an_idle_one() -> None:
    async def scenario(api: Api) -> None:
        cloud, store = api.cloud, api.cloud.store
        inst = await cloud.boot()
        hosts = await by_host(api)
        busy = await api.delete(f"/os-services/{hosts[inst.host or '']['id']}",
                                token=ADMIN_TOKEN, version="2.53")
        assert busy.status == 409
        idle = next(h for h in hosts if h != inst.host)
        created = await api.post("/os-aggregates", {"aggregate": {"name": "a1"}},
                                 token=ADMIN_TOKEN, version="2.41")
        agg = created.body["aggregate"]
        await api.post(f"/os-aggregates/{agg['id']}/action", {"add_host": {"host": idle}},
                       token=ADMIN_TOKEN)
        node = (await store.list_compute_nodes(host=idle))[0]
        await cloud.stop_compute(idle)
        gone = await api.delete(f"/os-services/{hosts[idle]['id']}", token=ADMIN_TOKEN,
                                version="2.53")
        assert gone.status == 204
        assert idle not in await by_host(api)
        assert (await store.aggregates_for_host(idle)) == []
        assert await store.list_compute_nodes(host=idle) == []
        assert node.uuid not in {p.uuid for p in await store.list_resource_providers()}
        again = await api.delete(f"/os-services/{hosts[idle]['id']}", token=ADMIN_TOKEN,
                                 version="2.53")
        assert again.status == 404
        assert (await api.delete("/os-services/x", token=ADMIN_TOKEN,
                                 version="2.1")).status == 400
        assert (await api.delete("/os-services/1", token=ADMIN_TOKEN,
                                 version="2.53")).status == 400
        assert (await api.delete("/os-services/1", token=USER, version="2.1")).status == 403

    run(scenario)


def test_an_id_too_large_for_the_database_is_404_and_a_unicode_digit_400() -> None:
    # found by tests/nimbus/test_schemathesis.py: such an id reached the database driver
    async def scenario(api: Api) -> None:
        for big in (10**30, -(10**30)):
            got = await api.delete(f"/os-services/{big}", token=ADMIN_TOKEN, version="2.1")
            assert got.status == 404, got.body
        got = await api.delete("/os-services/\u00b2", token=ADMIN_TOKEN, version="2.1")
        assert got.status == 400, got.body

    run(scenario)
