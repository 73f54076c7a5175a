"""``POST /servers/{id}/action`` over a simulated cloud: every action reaches its end state,
refusals are Nova's (409 state and lock, 404 another project, 403 admin actions, 400 bodies),
and fields appear and go with their microversions."""

from __future__ import annotations

from typing import Any

from nimbus.core.compute import states as s
from nimbus.core.compute.config import ComputeConfig
from tests.core.api.compute.harness import ADMIN_TOKEN, OTHER, USER, Answer, Api, run
from tests.core.compute.cloud import footprint, guests_by_host

IMAGE = "70a599e0-31e7-49b7-b260-868f441e862b"


async def act(api: Api, uuid: str, body: Any, *, token: str = USER,
              version: str | None = None) -> Answer:
    return await api.post(f"/servers/{uuid}/action", body, token=token, version=version)


async def add_flavor(api: Api, flavorid: str = "2", vcpus: int = 2) -> None:
    await api.cloud.store.create_flavor(flavorid=flavorid, name=f"flavor-{flavorid}",
                                        vcpus=vcpus, memory_mb=1024, root_gb=2,
                                        now=api.cloud.rt.wall_time())


async def add_image(api: Api, image_id: str = IMAGE) -> None:
    await api.cloud.store.create_image(id=image_id, owner="p1", now=api.cloud.rt.wall_time(),
                                       name="cirros", visibility="public", status="active")


def test_power_actions_reach_their_end_states() -> None:
    async def scenario(api: Api) -> None:
        cloud = api.cloud
        uuid = (await cloud.boot()).uuid
        steps: list[tuple[Any, str, int]] = [
            ({"os-stop": None}, s.STOPPED, s.SHUTDOWN),
            ({"os-start": None}, s.ACTIVE, s.RUNNING),
            ({"pause": None}, s.PAUSED, s.POWER_PAUSED),
            ({"unpause": None}, s.ACTIVE, s.RUNNING),
            ({"suspend": None}, s.SUSPENDED, s.POWER_SUSPENDED),
            ({"resume": None}, s.ACTIVE, s.RUNNING),
            ({"reboot": {"type": "SOFT"}}, s.ACTIVE, s.RUNNING),
            ({"reboot": {"type": "hard"}}, s.ACTIVE, s.RUNNING),
        ]
        for body, vm_state, power in steps:
            got = await act(api, uuid, body)
            assert got.status == 202 and got.body == b"", (body, got.body)
            inst = await cloud.wait_for(uuid, vm_state=vm_state)
            assert inst.power_state == power
            assert (await guests_by_host(cloud, uuid))[inst.host or ""][0] == power
        got = await act(api, uuid, {"rescue": None})
        assert got.status == 200 and len(got.body["adminPass"]) == 12
        await cloud.wait_for(uuid, vm_state=s.RESCUED)
        assert (await act(api, uuid, {"unrescue": None})).status == 202
        await cloud.wait_for(uuid, vm_state=s.ACTIVE)
        names = [a.action for a in await cloud.store.list_actions(uuid)]
        assert names[:3] == ["unrescue", "rescue", "reboot"] and "stop" in names

    run(scenario)


def test_lock_unlock_and_a_locked_server_refuses_its_owner() -> None:
    async def scenario(api: Api) -> None:
        cloud = api.cloud
        uuid = (await cloud.boot()).uuid
        got = await act(api, uuid, {"lock": {"locked_reason": "maintenance"}}, version="2.73")
        assert got.status == 202
        inst = await cloud.store.get_instance(uuid)
        assert inst.locked and inst.system_metadata["locked_reason"] == "maintenance"
        before = await footprint(cloud, uuid)
        got = await act(api, uuid, {"os-stop": None})
        assert got.status == 409 and "is locked" in got.body["conflictingRequest"]["message"]
        assert await footprint(cloud, uuid) == before
        # the admin is not held by a user's lock
        assert (await act(api, uuid, {"pause": None}, token=ADMIN_TOKEN)).status == 202
        await cloud.wait_for(uuid, vm_state=s.PAUSED)
        assert (await act(api, uuid, {"unlock": None})).status == 202
        assert not (await cloud.store.get_instance(uuid)).locked
        # locked_reason is a field of 2.73: before, Nova reads no lock body at all
        assert (await act(api, uuid, {"lock": {"locked_reason": ""}}, version="2.73")
                ).status == 400
        assert (await act(api, uuid, {"lock": None}, version="2.72")).status == 202

    run(scenario)


def test_a_wrong_state_is_409_in_novas_words_and_changes_nothing() -> None:
    async def scenario(api: Api) -> None:
        cloud = api.cloud
        uuid = (await cloud.boot()).uuid
        assert (await act(api, uuid, {"os-stop": None})).status == 202
        await cloud.wait_for(uuid, vm_state=s.STOPPED)
        before = await footprint(cloud, uuid)
        for body, name in (({"os-stop": None}, "stop"), ({"pause": None}, "pause"),
                           ({"reboot": {"type": "SOFT"}}, "reboot"),
                           ({"confirmResize": None}, "confirmResize"),
                           ({"unshelve": None}, "unshelve")):
            got = await act(api, uuid, body)
            assert got.status == 409, body
            assert got.body["conflictingRequest"]["message"] == (
                f"Cannot '{name}' instance {uuid} while it is in vm_state stopped")
        assert await footprint(cloud, uuid) == before

    run(scenario)


def test_another_projects_server_is_404_and_a_missing_one_too() -> None:
    async def scenario(api: Api) -> None:
        cloud = api.cloud
        uuid = (await cloud.boot()).uuid
        before = await footprint(cloud, uuid)
        for body in ({"os-stop": None}, {"reboot": {"type": "HARD"}}, {"createImage": {
                "name": "x"}}, {"os-getConsoleOutput": {}}, {"lock": None}):
            got = await act(api, uuid, body, token=OTHER)
            assert got.status == 404, body
            assert got.body["itemNotFound"]["message"] == f"Instance {uuid} could not be found."
        assert (await act(api, "no-such-server", {"os-stop": None})).status == 404
        got = await api.post(f"/servers/{uuid}/remote-consoles", {"remote_console": {
            "protocol": "vnc", "type": "novnc"}}, token=OTHER, version="2.6")
        assert got.status == 404
        assert await footprint(cloud, uuid) == before

    run(scenario)


def test_admin_actions_are_403_for_users() -> None:
    async def scenario(api: Api) -> None:
        cloud = api.cloud
        uuid = (await cloud.boot()).uuid
        before = await footprint(cloud, uuid)
        for body in ({"migrate": None},
                     {"os-migrateLive": {"host": None, "block_migration": "auto"}},
                     {"evacuate": {}}, {"os-resetState": {"state": "error"}},
                     {"shelveOffload": None}):
            got = await act(api, uuid, body, version="2.60")
            assert got.status == 403, (body, got.body)
            assert "Policy doesn't allow" in got.body["forbidden"]["message"]
        assert await footprint(cloud, uuid) == before

    run(scenario)


def test_bad_bodies_are_400() -> None:
    async def scenario(api: Api) -> None:
        cloud = api.cloud
        uuid = (await cloud.boot()).uuid
        before = await footprint(cloud, uuid)
        cases = [
            ({"os-stop": None, "pause": None}, "too many body keys"),
            ({}, "Malformed request body"),
            ([1], "Malformed request body"),
            ({"fly": None}, "There is no such action: fly"),
            ({"reboot": {"type": "MEDIUM"}}, "reboot/type"),
            ({"reboot": {"type": 1}}, "reboot/type"),
            ({"reboot": {}}, "'type' is a required property"),
            ({"resize": {}}, "'flavorRef' is a required property"),
            ({"resize": {"flavorRef": "no-such-flavor"}}, "Unable to locate requested flavor."),
            ({"createImage": {"name": ""}}, "createImage/name"),
            ({"os-resetState": {"state": "paused"}}, "os-resetState/state"),
            ({"changePassword": {}}, "'adminPass' is a required property"),
            ({"rebuild": {"imageRef": "no-such-image"}}, "Image no-such-image could not be"),
        ]
        for body, text in cases:
            got = await act(api, uuid, body)
            assert got.status == 400, (body, got.body)
            assert text in got.body["badRequest"]["message"], (body, got.body)
        assert await footprint(cloud, uuid) == before

    run(scenario)


def test_fields_and_actions_come_with_their_microversions() -> None:
    async def scenario(api: Api) -> None:
        cloud = api.cloud
        uuid = (await cloud.boot()).uuid
        before = await footprint(cloud, uuid)
        await add_image(api)
        gated = [
            ({"os-migrateLive": {"host": None, "block_migration": "auto"}}, "2.24"),
            ({"os-migrateLive": {"host": None, "block_migration": False}}, "2.24"),  # no d_o_c
            ({"os-migrateLive": {"host": None, "block_migration": True, "force": True}},
             "2.68"),
            ({"evacuate": {"onSharedStorage": False}}, "2.14"),
            ({"evacuate": {"force": False}}, "2.68"),
            ({"rebuild": {"imageRef": IMAGE, "description": "d"}}, "2.18"),
            ({"rebuild": {"imageRef": IMAGE, "key_name": None}}, "2.53"),
            ({"unshelve": {}}, "2.77"),
        ]
        for body, version in gated:
            got = await act(api, uuid, body, token=ADMIN_TOKEN, version=version)
            assert got.status == 400, (body, version, got.body)
        for body, version in (({"trigger_crash_dump": None}, "2.16"),
                              ({"os-getVNCConsole": {"type": "novnc"}}, "2.6")):
            assert (await act(api, uuid, body, version=version)).status == 404
        got = await act(api, uuid, {"trigger_crash_dump": None}, version="2.17")
        assert got.status == 409 and "crash dump" in got.body["conflictingRequest"]["message"]
        assert (await act(api, uuid, {"trigger_crash_dump": {}}, version="2.17")).status == 400
        got = await api.post(f"/servers/{uuid}/remote-consoles", {"remote_console": {
            "protocol": "vnc", "type": "novnc"}}, version="2.5")
        assert got.status == 404
        assert await footprint(cloud, uuid) == before

    run(scenario)


def test_consoles_and_password() -> None:
    async def scenario(api: Api) -> None:
        cloud = api.cloud
        uuid = (await cloud.boot()).uuid
        got = await act(api, uuid, {"os-getConsoleOutput": {"length": "1"}})
        assert got.status == 200 and got.body["output"].count("\n") == 1
        got = await act(api, uuid, {"os-getConsoleOutput": {}})
        assert got.status == 200 and "vm" in got.body["output"]
        got = await act(api, uuid, {"os-getVNCConsole": {"type": "novnc"}}, version="2.5")
        assert got.status == 200 and got.body["console"]["type"] == "novnc"
        assert got.body["console"]["url"].startswith(
            "http://nimbus.test:8774/vnc_auto.html?path=%3Ftoken%3D")
        got = await api.post(f"/servers/{uuid}/remote-consoles", {"remote_console": {
            "protocol": "vnc", "type": "novnc"}}, version="2.6")
        assert got.status == 200
        assert set(got.body["remote_console"]) == {"protocol", "type", "url"}
        got = await api.post(f"/servers/{uuid}/remote-consoles", {"remote_console": {
            "protocol": "vnc", "type": "spice-html5"}}, version="2.6")
        assert got.status == 400
        got = await api.post(f"/servers/{uuid}/remote-consoles", {"remote_console": {
            "protocol": "mks", "type": "webmks"}}, version="2.6")
        assert got.status == 400  # mks is a protocol of 2.8
        got = await act(api, uuid, {"changePassword": {"adminPass": "s3cret"}})
        assert got.status == 202
        assert (await cloud.store.list_actions(uuid))[0].action == "changePassword"

    run(scenario, driver_config={"vcpus": 4, "memory_mb": 8192, "local_gb": 100})


def test_reset_state_and_force_delete() -> None:
    async def scenario(api: Api) -> None:
        cloud = api.cloud
        uuid = (await cloud.boot()).uuid
        got = await act(api, uuid, {"os-resetState": {"state": "error"}}, token=ADMIN_TOKEN)
        assert got.status == 202
        inst = await cloud.store.get_instance(uuid)
        assert (inst.vm_state, inst.task_state) == (s.ERROR, None)
        assert (await cloud.store.list_actions(uuid))[0].action == "resetState"
        assert (await act(api, uuid, {"os-resetState": {"state": "active"}},
                          token=ADMIN_TOKEN)).status == 202
        got = await act(api, uuid, {"restore": None})
        assert got.status == 409  # only a soft-deleted server comes back
        assert (await act(api, uuid, {"forceDelete": None})).status == 202
        await cloud.wait_for(uuid, deleted=True)
        assert await guests_by_host(cloud, uuid) == {}

    run(scenario)


def test_shelve_unshelve_and_create_image() -> None:
    async def scenario(api: Api) -> None:
        cloud = api.cloud
        uuid = (await cloud.boot()).uuid
        got = await act(api, uuid, {"createImage": {"name": "snap", "metadata": {"k": "v"}}},
                        version="2.44")
        assert got.status == 202 and got.body == b""
        image_id = got.headers["Location"].rsplit("/", 1)[-1]
        assert (await cloud.store.get_image(image_id)).properties["k"] == "v"
        await cloud.wait_for(uuid, vm_state=s.ACTIVE)
        got = await act(api, uuid, {"createImage": {"name": "snap2"}}, version="2.45")
        assert got.status == 202 and "Location" not in got.headers
        assert (await cloud.store.get_image(got.body["image_id"])).name == "snap2"
        await cloud.wait_for(uuid, vm_state=s.ACTIVE)
        assert (await act(api, uuid, {"shelve": None})).status == 202
        await cloud.wait_for(uuid, vm_state=s.SHELVED)
        assert (await act(api, uuid, {"shelveOffload": None}, token=ADMIN_TOKEN)).status == 202
        inst = await cloud.wait_for(uuid, vm_state=s.SHELVED_OFFLOADED)
        assert inst.host is None and await guests_by_host(cloud, uuid) == {}
        got = await act(api, uuid, {"unshelve": {"availability_zone": "nova"}}, version="2.77")
        assert got.status == 202
        inst = await cloud.wait_for(uuid, vm_state=s.ACTIVE)
        assert inst.host is not None and inst.power_state == s.RUNNING

    run(scenario, compute_config=ComputeConfig(reserved_host_memory_mb=0))


def test_resize_confirm_and_revert() -> None:
    async def scenario(api: Api) -> None:
        cloud = api.cloud
        await add_flavor(api)
        uuid = (await cloud.boot()).uuid
        assert (await act(api, uuid, {"resize": {"flavorRef": "2"}})).status == 202
        inst = await cloud.wait_for(uuid, vm_state=s.RESIZED)
        assert inst.vcpus == 2
        got = await act(api, uuid, {"confirmResize": None})
        assert got.status == 204 and got.body == b""
        inst = await cloud.wait_for(uuid, vm_state=s.ACTIVE)
        assert inst.flavor["flavorid"] == "2"
        assert list((await guests_by_host(cloud, uuid)).values()) == [(s.RUNNING, 2)]
        await add_flavor(api, "3", vcpus=3)
        source = inst.host
        assert (await act(api, uuid, {"resize": {"flavorRef": 3}})).status == 202
        await cloud.wait_for(uuid, vm_state=s.RESIZED)
        assert (await act(api, uuid, {"revertResize": None})).status == 202
        inst = await cloud.wait_for(uuid, vm_state=s.ACTIVE)
        assert (inst.host, inst.vcpus) == (source, 2)
        got = await act(api, uuid, {"resize": {"flavorRef": "2"}})
        assert got.status == 400  # the same flavor

    run(scenario)


def test_rebuild_answers_the_server_and_ends_active() -> None:
    async def scenario(api: Api) -> None:
        cloud = api.cloud
        await add_image(api)
        uuid = (await cloud.boot()).uuid
        got = await act(api, uuid, {"rebuild": {"imageRef": IMAGE, "name": "renamed",
                                                "description": "again",
                                                "metadata": {"a": "b"}}}, version="2.73")
        assert got.status == 202, got.body
        server = got.body["server"]
        assert (server["id"], server["status"], server["name"]) == (uuid, "REBUILD", "renamed")
        assert server["description"] == "again" and server["metadata"] == {"a": "b"}
        assert server["image"]["id"] == IMAGE and len(server["adminPass"]) == 12
        assert server["locked"] is False and "locked_reason" in server
        assert set(server["flavor"]) >= {"vcpus", "ram", "original_name"}
        inst = await cloud.wait_for(uuid, vm_state=s.ACTIVE)
        assert (inst.image_ref, inst.display_description) == (IMAGE, "again")
        got = await act(api, uuid, {"rebuild": {"imageRef": IMAGE}}, version="2.46")
        assert "id" in got.body["server"]["flavor"]
        assert "OS-EXT-STS:task_state" not in got.body["server"]
        await cloud.wait_for(uuid, vm_state=s.ACTIVE)
        # from 2.75 a rebuild answers the whole server, as GET /servers/{id} shows it
        got = await act(api, uuid, {"rebuild": {"imageRef": IMAGE}}, version="2.75")
        assert got.body["server"]["OS-EXT-STS:task_state"] == s.REBUILDING
        await cloud.wait_for(uuid, vm_state=s.ACTIVE)

    run(scenario)


def test_evacuate_from_a_down_host() -> None:
    async def scenario(api: Api) -> None:
        cloud = api.cloud
        inst = await cloud.boot()
        source = inst.host or ""
        got = await act(api, inst.uuid, {"evacuate": {}}, token=ADMIN_TOKEN, version="2.14")
        assert got.status == 400 and "still in use" in got.body["badRequest"]["message"]
        await cloud.stop_compute(source)
        await cloud.rt.sleep(75.0)
        got = await act(api, inst.uuid, {"evacuate": {"host": "nowhere"}}, token=ADMIN_TOKEN,
                        version="2.14")
        assert got.status == 404
        got = await act(api, inst.uuid, {"evacuate": {"onSharedStorage": False}},
                        token=ADMIN_TOKEN, version="2.13")
        assert got.status == 200 and len(got.body["adminPass"]) == 12
        moved = await cloud.wait_for(inst.uuid, vm_state=s.ACTIVE)
        assert moved.host not in (None, source)
        migration = (await cloud.store.migrations_by_instance(inst.uuid))[-1]
        assert migration.migration_type == "evacuation"

    run(scenario)


def test_restore_and_force_delete_a_soft_deleted_server() -> None:
    async def scenario(api: Api) -> None:
        cloud = api.cloud
        assert cloud.api is not None
        cloud.api.reclaim_instance_interval = 3600.0  # deletes are soft from now on
        first, second = (await cloud.boot()).uuid, (await cloud.boot()).uuid
        for uuid in (first, second):
            await cloud.api.delete(cloud.as_user(), uuid)
            inst = await cloud.wait_for(uuid, vm_state=s.SOFT_DELETED)
            assert inst.power_state == s.SHUTDOWN
        assert (await act(api, first, {"restore": None}, token=OTHER)).status == 404
        assert (await act(api, first, {"restore": None})).status == 202
        inst = await cloud.wait_for(first, vm_state=s.ACTIVE)
        assert (await guests_by_host(cloud, first))[inst.host or ""][0] == s.RUNNING
        assert (await act(api, second, {"forceDelete": None})).status == 202
        await cloud.wait_for(second, deleted=True)
        assert await guests_by_host(cloud, second) == {}

    run(scenario)
