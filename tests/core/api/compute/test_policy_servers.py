"""The servers side of the Compute API under the policy, route by route: another
project's server is a 404 and stays as it was, a reader reads but may not act, a
member may not do what is for admins and an admin may, and a ``[policy]`` override
changes each decision."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nimbus.core.api.compute import server_actions
from nimbus.core.compute import states as s
from nimbus.core.context import RequestContext
from nimbus.core.policy import Policy
from tests.core.api.compute.harness import ADMIN_TOKEN, OTHER, READER_TOKEN, USER, Answer, Api, run
from tests.core.compute.cloud import footprint

IMAGE = "70a599e0-31e7-49b7-b260-868f441e862b"
C = "os_compute_api:"


@dataclass(frozen=True)
class Call:
    """One request on p1's server ``{id}``: ``kind`` is "read" (readers of the project),
    "write" (members) or "admin"; ``rule`` the rule a refusal names."""

    name: str
    method: str
    path: str
    kind: str
    rule: str
    body: Any = None
    version: str | None = None


def action(key: str, body: Any, rule: str, kind: str = "write",
           version: str | None = None) -> Call:
    return Call(key, "POST", "/servers/{id}/action", kind, C + rule, {key: body}, version)


CALLS = [
    Call("show", "GET", "/servers/{id}", "read", C + "servers:show"),
    Call("update", "PUT", "/servers/{id}", "write", C + "servers:update",
         {"server": {"name": "renamed"}}),
    Call("delete", "DELETE", "/servers/{id}", "write", C + "servers:delete"),
    Call("ips", "GET", "/servers/{id}/ips", "read", C + "ips:index"),
    Call("ips one", "GET", "/servers/{id}/ips/{label}", "read", C + "ips:show"),
    Call("metadata", "GET", "/servers/{id}/metadata", "read", C + "server-metadata:index"),
    Call("metadata item", "GET", "/servers/{id}/metadata/k", "read",
         C + "server-metadata:show"),
    Call("metadata merge", "POST", "/servers/{id}/metadata", "write",
         C + "server-metadata:create", {"metadata": {"a": "b"}}),
    Call("metadata replace", "PUT", "/servers/{id}/metadata", "write",
         C + "server-metadata:update_all", {"metadata": {"a": "b"}}),
    Call("metadata set", "PUT", "/servers/{id}/metadata/k", "write",
         C + "server-metadata:update", {"meta": {"k": "w"}}),
    Call("metadata delete", "DELETE", "/servers/{id}/metadata/k", "write",
         C + "server-metadata:delete"),
    Call("instance actions", "GET", "/servers/{id}/os-instance-actions", "read",
         C + "os-instance-actions:list"),
    Call("instance action", "GET", "/servers/{id}/os-instance-actions/{request}", "read",
         C + "os-instance-actions:show"),
    Call("remote console", "POST", "/servers/{id}/remote-consoles", "write",
         C + "os-remote-consoles", {"remote_console": {"protocol": "vnc", "type": "novnc"}},
         "2.6"),
    Call("server migrations", "GET", "/servers/{id}/migrations", "admin",
         C + "servers:migrations:index", version="2.24"),
    Call("server migration", "GET", "/servers/{id}/migrations/1", "admin",
         C + "servers:migrations:show", version="2.24"),
    Call("abort migration", "DELETE", "/servers/{id}/migrations/1", "admin",
         C + "servers:migrations:delete", version="2.24"),
    Call("force complete", "POST", "/servers/{id}/migrations/1/action", "admin",
         C + "servers:migrations:force_complete", {"force_complete": None}, "2.24"),
    action("reboot", {"type": "SOFT"}, "servers:reboot"),
    action("os-stop", None, "servers:stop"),
    action("os-start", None, "servers:start"),
    action("pause", None, "os-pause-server:pause"),
    action("unpause", None, "os-pause-server:unpause"),
    action("suspend", None, "os-suspend-server:suspend"),
    action("resume", None, "os-suspend-server:resume"),
    action("rescue", None, "os-rescue"),
    action("unrescue", None, "os-unrescue"),
    action("lock", None, "os-lock-server:lock"),
    action("unlock", None, "os-lock-server:unlock"),
    action("shelve", None, "os-shelve:shelve"),
    action("shelveOffload", None, "os-shelve:shelve_offload", "admin"),
    action("unshelve", None, "os-shelve:unshelve"),
    action("unshelve", {"host": "host-1"}, "os-shelve:unshelve_to_host", "admin", "2.91"),
    action("restore", None, "os-deferred-delete:restore"),
    action("forceDelete", None, "os-deferred-delete:force"),
    action("os-resetState", {"state": "error"}, "os-admin-actions:reset_state", "admin"),
    action("changePassword", {"adminPass": "s3cret"}, "os-admin-password"),
    action("trigger_crash_dump", None, "servers:trigger_crash_dump", version="2.17"),
    action("os-getConsoleOutput", {}, "os-console-output"),
    action("os-getVNCConsole", {"type": "novnc"}, "os-remote-consoles"),
    action("os-getSPICEConsole", {"type": "spice-html5"}, "os-remote-consoles"),
    action("os-getSerialConsole", {"type": "serial"}, "os-remote-consoles"),
    action("resize", {"flavorRef": "2"}, "servers:resize"),
    action("confirmResize", None, "servers:confirm_resize"),
    action("revertResize", None, "servers:revert_resize"),
    action("migrate", None, "os-migrate-server:migrate", "admin"),
    action("migrate", {"host": "host-1"}, "os-migrate-server:migrate:host", "admin", "2.56"),
    action("os-migrateLive", {"block_migration": "auto", "host": None},
           "os-migrate-server:migrate_live", "admin", "2.25"),
    action("evacuate", {}, "os-evacuate", "admin", "2.14"),
    action("rebuild", {"imageRef": IMAGE}, "servers:rebuild"),
    action("createImage", {"name": "snap"}, "servers:create_image"),
]


def test_every_action_is_in_the_table() -> None:
    assert {c.name for c in CALLS if c.path.endswith("/action")} >= (
        set(server_actions.ACTIONS) - {"force_complete"})


async def setup(api: Api) -> tuple[str, dict[str, str]]:
    """A p1 server with a metadata item and an address; the values of the paths."""
    cloud = api.cloud
    await cloud.store.create_flavor(flavorid="2", name="m1.big", vcpus=2, memory_mb=1024,
                                    root_gb=2, now=cloud.rt.wall_time())
    await cloud.store.create_image(id=IMAGE, owner="p1", now=cloud.rt.wall_time(),
                                   name="cirros", visibility="public", status="active")
    uuid = (await cloud.boot(metadata={"k": "v"}, networks="auto")).uuid
    labels = (await api.get(f"/servers/{uuid}/ips")).body["addresses"]
    request = (await cloud.store.list_actions(uuid))[0].request_id
    return uuid, {"id": uuid, "label": next(iter(labels)), "request": request}


async def call(api: Api, c: Call, values: dict[str, str], token: str) -> Answer:
    return await api.request(c.method, c.path.format(**values), c.body, token=token,
                             version=c.version)


def refused(got: Answer, rule: str | None = None) -> bool:
    """A 403 from the policy (naming ``rule`` if given)."""
    if got.status != 403:
        return False
    message = got.body["forbidden"]["message"]
    wanted = f"Policy doesn't allow {rule} to be performed." if rule else "Policy doesn't allow"
    return wanted in message


def test_strangers_get_404_readers_read_members_stay_out_of_admin_calls() -> None:
    async def scenario(api: Api) -> None:
        uuid, values = await setup(api)
        before = await footprint(api.cloud, uuid)
        for c in CALLS:
            got = await call(api, c, values, OTHER)
            assert got.status == 404, (c, got.body)
            assert got.body["itemNotFound"]["message"] == f"Instance {uuid} could not be found."
            got = await call(api, c, values, READER_TOKEN)
            if c.kind == "read":
                assert got.status == 200, (c, got.body)
            else:
                assert refused(got, c.rule if c.kind == "write" else None), (c, got.body)
            if c.kind == "admin":
                got = await call(api, c, values, USER)
                assert refused(got, c.rule), (c, got.body)
        got = await api.get("/os-migrations", token=READER_TOKEN)
        assert refused(got, C + "os-migrations:index")
        assert refused(await api.get("/os-migrations"), C + "os-migrations:index")
        got = await api.post("/servers", {"server": {"name": "x", "imageRef": IMAGE,
                                                     "flavorRef": "1"}}, token=READER_TOKEN)
        assert refused(got, C + "servers:create")
        assert await footprint(api.cloud, uuid) == before

    run(scenario, hosts=2)


def test_members_may_not_choose_hosts_on_create() -> None:
    async def scenario(api: Api) -> None:
        base = {"name": "x", "imageRef": IMAGE, "flavorRef": "1"}
        got = await api.post("/servers", {"server": {**base, "availability_zone": "nova:h1"}})
        assert refused(got, C + "servers:create:forced_host"), got.body
        got = await api.post("/servers", {"server": {**base, "host": "h1", "networks": "auto"}},
                             version="2.74")
        assert refused(got, C + "servers:create:requested_destination"), got.body
        assert (await api.get("/servers", token=ADMIN_TOKEN,
                              query={"all_tenants": "1"})).body["servers"] == []

    run(scenario, hosts=1)


def test_admins_pass_the_admin_rules() -> None:
    async def scenario(api: Api) -> None:
        cloud = api.cloud
        uuid, values = await setup(api)
        by_name = {(c.name, c.version): c for c in CALLS}

        async def admin(name: str, version: str | None = None) -> Answer:
            return await call(api, by_name[name, version], values, ADMIN_TOKEN)

        assert (await admin("server migrations", "2.24")).body == {"migrations": []}
        got = await admin("server migration", "2.24")
        assert got.status == 404 and "migration" in got.body["itemNotFound"]["message"]
        for name in ("abort migration", "force complete"):
            assert (await admin(name, "2.24")).status == 409, name  # not migrating
        assert (await admin("shelveOffload")).status == 409  # not shelved
        assert (await admin("evacuate", "2.14")).status == 400  # its host is up
        assert (await api.get("/os-migrations", token=ADMIN_TOKEN)).status == 200
        assert (await admin("os-resetState")).status == 202
        assert (await cloud.store.get_instance(uuid)).vm_state == s.ERROR
        await cloud.store.update_instance(uuid, now=cloud.rt.wall_time(), vm_state=s.ACTIVE)
        assert (await admin("os-migrateLive", "2.25")).status == 202
        inst = await cloud.wait_for(uuid, vm_state=s.ACTIVE, task_state=None)
        assert (await admin("migrate")).status == 202
        assert (await cloud.wait_for(uuid, vm_state=s.RESIZED)).host != inst.host
        # admin-only fields of the view
        shown = (await api.get(f"/servers/{uuid}", token=ADMIN_TOKEN, version="2.16")).body
        assert "OS-EXT-SRV-ATTR:host" in shown["server"] and "host_status" in shown["server"]
        shown = (await api.get(f"/servers/{uuid}", version="2.16")).body
        assert "OS-EXT-SRV-ATTR:host" not in shown["server"]
        assert "host_status" not in shown["server"]
        # an admin's lock holds against the owner (unlock_override)
        assert (await admin("confirmResize")).status == 204
        await cloud.wait_for(uuid, vm_state=s.ACTIVE, task_state=None)
        assert (await admin("lock")).status == 202
        assert refused(await call(api, by_name["unlock", None], values, USER),
                       C + "os-lock-server:unlock:unlock_override")
        assert (await admin("unlock")).status == 202

    run(scenario, hosts=2)


def test_lists_show_only_the_callers_project() -> None:
    async def scenario(api: Api) -> None:
        cloud = api.cloud
        mine = {(await cloud.boot()).uuid for _ in range(2)}
        theirs = (await cloud.boot(cloud.as_user(RequestContext("u2", "p2", "r")))).uuid

        async def listed(path: str, token: str, **query: str) -> set[str]:
            got = await api.get(path, token=token, query=query)
            assert got.status == 200, got.body
            return {srv["id"] for srv in got.body["servers"]}

        for path in ("/servers", "/servers/detail"):
            assert await listed(path, OTHER) == {theirs}
            assert await listed(path, OTHER, project_id="p1", tenant_id="p1") == {theirs}
            assert await listed(path, OTHER, all_tenants="0") == {theirs}
            assert await listed(path, READER_TOKEN) == mine
            rule = C + ("servers:index" if path == "/servers" else "servers:detail")
            for value in ("1", "", "True"):
                got = await api.get(path, token=OTHER, query={"all_tenants": value})
                assert refused(got, rule + ":get_all_tenants"), got.body
            assert await listed(path, ADMIN_TOKEN, all_tenants="1") == mine | {theirs}
            assert await listed(path, ADMIN_TOKEN, all_tenants="1", project_id="p1") == mine
        # a member's admin-only filters are dropped, not obeyed
        assert await listed("/servers", OTHER, host="host-1", deleted="true") == {theirs}

    run(scenario, hosts=1)


def test_policy_overrides_change_the_decisions() -> None:
    overrides = {C + "servers:create": "role:admin",
                 C + "os-migrate-server:migrate": "rule:project_member_or_admin",
                 C + "os-extended-server-attributes": "rule:project_reader_or_admin",
                 C + "os-lock-server:unlock:unlock_override": "rule:project_member_or_admin",
                 C + "servers:show": "rule:project_member_or_admin",
                 C + "servers:index": "!"}

    async def scenario(api: Api) -> None:
        cloud = api.cloud
        uuid = (await cloud.boot()).uuid
        got = await api.post("/servers", {"server": {"name": "x", "imageRef": IMAGE,
                                                     "flavorRef": "1"}})
        assert refused(got, C + "servers:create"), got.body
        assert refused(await api.get("/servers"), C + "servers:index")
        assert refused(await api.get(f"/servers/{uuid}", token=READER_TOKEN),
                       C + "servers:show")
        shown = (await api.get(f"/servers/{uuid}")).body["server"]
        assert shown["OS-EXT-SRV-ATTR:host"] == (await cloud.store.get_instance(uuid)).host
        assert (await api.get(f"/servers/{uuid}", token=OTHER)).status == 404
        got = await api.post(f"/servers/{uuid}/action", {"lock": None}, token=ADMIN_TOKEN)
        assert got.status == 202
        assert (await api.post(f"/servers/{uuid}/action", {"unlock": None})).status == 202
        assert (await api.post(f"/servers/{uuid}/action", {"migrate": None})).status == 202
        await cloud.wait_for(uuid, vm_state=s.RESIZED)

    run(scenario, policy=Policy(overrides), hosts=2)

