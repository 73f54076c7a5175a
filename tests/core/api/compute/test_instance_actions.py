"""``/servers/{id}/os-instance-actions`` over a simulated cloud: actions listed newest first
with paging from 2.58, events shown per role and microversion, isolation."""

from __future__ import annotations

from nimbus.core.compute import states as s
from tests.core.api.compute.harness import ADMIN_TOKEN, OTHER, Api, run
from tests.core.compute.cloud import settled


async def rebooted(api: Api) -> tuple[str, str]:
    """A server that was created and then rebooted; its uuid and the reboot's request id."""
    cloud = api.cloud
    uuid = (await cloud.boot()).uuid
    got = await api.post(f"/servers/{uuid}/action", {"reboot": {"type": "SOFT"}})
    assert got.status == 202
    await cloud.wait_for(uuid, vm_state=s.ACTIVE)
    action, events = await settled(cloud, uuid)
    assert action == "reboot" and events
    return uuid, got.headers["x-openstack-request-id"]


def test_a_reboot_is_listed_with_its_events() -> None:
    async def scenario(api: Api) -> None:
        uuid, request_id = await rebooted(api)
        got = await api.get(f"/servers/{uuid}/os-instance-actions")
        assert got.status == 200
        listed = got.body["instanceActions"]
        assert [a["action"] for a in listed] == ["reboot", "create"]
        first = listed[0]
        assert set(first) == {"action", "instance_uuid", "request_id", "user_id",
                              "project_id", "start_time", "message"}
        assert (first["request_id"], first["user_id"], first["project_id"]) == (
            request_id, "u1", "p1")
        # a user sees events from 2.51, without traceback and host
        got = await api.get(f"/servers/{uuid}/os-instance-actions/{request_id}")
        assert got.status == 200 and "events" not in got.body["instanceAction"]
        got = await api.get(f"/servers/{uuid}/os-instance-actions/{request_id}",
                            version="2.51")
        events = got.body["instanceAction"]["events"]
        assert [e["event"] for e in events] == ["compute_reboot_instance"]
        assert events[0]["result"] == "Success" and events[0]["finish_time"]
        assert set(events[0]) == {"event", "start_time", "finish_time", "result"}
        got = await api.get(f"/servers/{uuid}/os-instance-actions/{request_id}",
                            version="2.84")
        event = got.body["instanceAction"]["events"][0]
        assert set(event) == {"event", "start_time", "finish_time", "result", "hostId"}
        assert len(event["hostId"]) == 56 and "updated_at" in got.body["instanceAction"]
        # an admin sees traceback at every version, host from 2.62 and details from 2.84
        got = await api.get(f"/servers/{uuid}/os-instance-actions/{request_id}",
                            token=ADMIN_TOKEN)
        assert set(got.body["instanceAction"]["events"][0]) == {
            "event", "start_time", "finish_time", "result", "traceback"}
        got = await api.get(f"/servers/{uuid}/os-instance-actions/{request_id}",
                            token=ADMIN_TOKEN, version="2.84")
        event = got.body["instanceAction"]["events"][0]
        inst = await api.cloud.store.get_instance(uuid)
        assert event["host"] == inst.host and "details" in event and "traceback" in event
        got = await api.get(f"/servers/{uuid}/os-instance-actions/req-nothing")
        assert got.status == 404 and got.body["itemNotFound"]["message"] == (
            "Action req-nothing not found")

    run(scenario)


def test_paging_and_changes_since_from_2_58() -> None:
    async def scenario(api: Api) -> None:
        uuid, request_id = await rebooted(api)
        path = f"/servers/{uuid}/os-instance-actions"
        got = await api.get(path, version="2.58", query={"limit": "1"})
        assert got.status == 200 and len(got.body["instanceActions"]) == 1
        assert got.body["instanceActions"][0]["updated_at"]
        assert got.body["links"] == [{"rel": "next", "href": (
            f"http://nimbus.test:8774/v2.1/p1{path}?limit=1&marker={request_id}")}]
        got = await api.get(path, version="2.58", query={"limit": "1", "marker": request_id})
        assert [a["action"] for a in got.body["instanceActions"]] == ["create"]
        got = await api.get(path, version="2.58", query={"marker": "req-nothing"})
        assert got.status == 400
        got = await api.get(path, version="2.58", query={"changes-since": "2999-01-01T00:00:00Z"})
        assert got.status == 200 and got.body["instanceActions"] == []
        assert "links" not in got.body
        # query parameters are checked from 2.58; changes-before is one of 2.66
        assert (await api.get(path, version="2.58", query={"limit": "-1"})).status == 400
        assert (await api.get(path, version="2.58", query={"foo": "1"})).status == 400
        assert (await api.get(path, version="2.57", query={"foo": "1"})).status == 200
        when = {"changes-before": "2000-01-01T00:00:00Z"}
        assert (await api.get(path, version="2.65", query=when)).status == 400
        got = await api.get(path, version="2.66", query=when)
        assert got.status == 200 and got.body["instanceActions"] == []
        got = await api.get(path, version="2.66", query={**when,
                                                          "changes-since": "2001-01-01T00:00:00Z"})
        assert got.status == 400

    run(scenario)


def test_another_project_sees_nothing_and_deleted_servers_show_from_2_21() -> None:
    async def scenario(api: Api) -> None:
        cloud = api.cloud
        uuid, request_id = await rebooted(api)
        for path in (f"/servers/{uuid}/os-instance-actions",
                     f"/servers/{uuid}/os-instance-actions/{request_id}"):
            got = await api.get(path, token=OTHER)
            assert got.status == 404, path
            assert got.body["itemNotFound"]["message"] == f"Instance {uuid} could not be found."
            assert (await api.get(path, token=ADMIN_TOKEN)).status == 200
        assert (await api.post(f"/servers/{uuid}/action", {"forceDelete": None})).status == 202
        await cloud.wait_for(uuid, deleted=True)
        path = f"/servers/{uuid}/os-instance-actions"
        assert (await api.get(path, version="2.20")).status == 404
        got = await api.get(path, version="2.21")
        assert got.status == 200
        assert got.body["instanceActions"][0]["action"] == "forceDelete"

    run(scenario)
