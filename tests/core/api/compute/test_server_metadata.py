"""``/servers/{id}/metadata``: list, merge, replace, one item's show/set/delete, the
state, lock and quota rules, isolation and bad input."""

from __future__ import annotations

from nimbus.core.compute import states
from tests.core.api.compute.harness import ADMIN_TOKEN, OTHER, Api, run
from tests.core.api.compute.test_servers import boot, prepare


def test_metadata_crud() -> None:
    async def scenario(api: Api) -> None:
        await prepare(api)
        uuid = (await boot(api, metadata={"a": "1"}))["id"]
        base = f"/servers/{uuid}/metadata"
        assert (await api.get(base)).body == {"metadata": {"a": "1"}}
        merged = await api.post(base, {"metadata": {"b": "2"}})
        assert merged.status == 200 and merged.body == {"metadata": {"a": "1", "b": "2"}}
        replaced = await api.put(base, {"metadata": {"c": "3"}})
        assert replaced.body == {"metadata": {"c": "3"}}
        one = await api.put(f"{base}/d", {"meta": {"d": "4"}})
        assert one.status == 200 and one.body == {"meta": {"d": "4"}}
        assert (await api.get(f"{base}/d")).body == {"meta": {"d": "4"}}
        assert (await api.delete(f"{base}/c")).status == 204
        assert (await api.get(base)).body == {"metadata": {"d": "4"}}
        assert (await api.get(f"{base}/c")).status == 404
        assert (await api.delete(f"{base}/c")).status == 404
        inst = await api.cloud.store.get_instance(uuid)
        assert inst.metadata == {"d": "4"}
        shown = (await api.get(f"/servers/{uuid}")).body["server"]
        assert shown["metadata"] == {"d": "4"}

    run(scenario)


def test_bad_metadata_bodies_are_refused() -> None:
    async def scenario(api: Api) -> None:
        await prepare(api)
        uuid = (await boot(api))["id"]
        base = f"/servers/{uuid}/metadata"
        mismatch = await api.put(f"{base}/x", {"meta": {"y": "1"}})
        assert mismatch.body == {"badRequest": {"code": 400,
                                                "message": "Request body and URI mismatch"}}
        two = await api.put(f"{base}/x", {"meta": {"x": "1", "y": "2"}})
        assert two.status == 400
        assert (await api.post(base, {"meta": {"x": "1"}})).status == 400
        assert (await api.post(base, {"metadata": {"x": 1}})).status == 400
        assert (await api.post(base, {"metadata": {"k": "v" * 256}})).status == 400
        assert (await api.request("POST", base, b"nope")).status == 400
        assert (await api.cloud.store.get_instance(uuid)).metadata == {}

    run(scenario)


def test_metadata_quota_lock_and_state() -> None:
    async def scenario(api: Api) -> None:
        await prepare(api)
        cloud = api.cloud
        uuid = (await boot(api))["id"]
        base = f"/servers/{uuid}/metadata"
        await cloud.store.set_project_quotas("p1", {"metadata_items": 2},
                                             cloud.rt.wall_time())
        over = await api.post(base, {"metadata": {"a": "1", "b": "2", "c": "3"}})
        assert over.status == 403
        assert over.body["forbidden"]["message"] == "Maximum number of metadata items exceeds 2"
        assert (await api.post(base, {"metadata": {"a": "1", "b": "2"}})).status == 200
        assert cloud.api is not None
        await cloud.api.lock(cloud.as_user(), uuid)
        locked = await api.post(base, {"metadata": {"a": "9"}})
        assert locked.status == 409
        admin = await api.put(f"{base}/a", {"meta": {"a": "8"}}, token=ADMIN_TOKEN)
        assert admin.status == 200
        await cloud.api.unlock(cloud.as_user(), uuid)
        await cloud.store.update_instance(uuid, now=cloud.rt.wall_time(),
                                          task_state=states.REBOOTING)
        busy = await api.delete(f"{base}/a")
        assert busy.status == 409 and "task_state rebooting" in busy.body[
            "conflictingRequest"]["message"]
        assert (await cloud.store.get_instance(uuid)).metadata == {"a": "8", "b": "2"}

    run(scenario)


def test_another_project_cannot_read_or_change_metadata() -> None:
    async def scenario(api: Api) -> None:
        await prepare(api)
        uuid = (await boot(api, metadata={"a": "1"}))["id"]
        base = f"/servers/{uuid}/metadata"
        for method, path, payload in (("GET", base, None),
                                      ("POST", base, {"metadata": {"x": "1"}}),
                                      ("PUT", base, {"metadata": {}}),
                                      ("GET", f"{base}/a", None),
                                      ("PUT", f"{base}/a", {"meta": {"a": "2"}}),
                                      ("DELETE", f"{base}/a", None)):
            got = await api.request(method, path, payload, token=OTHER)
            assert got.status == 404, (method, path)
        assert (await api.cloud.store.get_instance(uuid)).metadata == {"a": "1"}

    run(scenario)
