"""Policy over the Compute API resources other than servers: admin-only routes,
project and user isolation, the reader role, and operator overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from nimbus.core.policy import ADMIN_API, DEFAULT_POLICY, Policy
from tests.core.api.compute.harness import (
    ADMIN_TOKEN,
    OTHER,
    READER_TOKEN,
    USER,
    Answer,
    Api,
    run,
)

_C = "os_compute_api:"
_SG = {"server_group": {"name": "g1", "policy": "affinity"}}
_IMAGE = "6b5b7d4c-0a34-4a1e-9d52-3a9f1f6e2c10"
_SERVICE = "0b7a1e4e-3f7d-4d33-8c51-7f3c59f5e0aa"


def _public_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(serialization.Encoding.OpenSSH,
                            serialization.PublicFormat.OpenSSH).decode()


@dataclass(frozen=True)
class Call:
    """One request of the table and the rule that guards it."""

    rule: str
    method: str
    path: str
    body: Any = None
    version: str | None = None
    query: dict[str, str] = field(default_factory=dict)

    async def send(self, api: Api, token: str) -> Answer:
        return await api.request(self.method, self.path, self.body, token=token,
                                 version=self.version, query=self.query or None)


#: Every route (or admin-only variant of one) of these resources that only an admin may use
#: under the default policy; ids that do not exist, so that the admin's calls change little.
ADMIN_ONLY = (
    Call("os-flavor-manage:create", "POST", "/flavors", {"flavor": {
        "name": "pol", "id": "pol", "ram": 512, "vcpus": 1, "disk": 1}}),
    Call("os-flavor-manage:update", "PUT", "/flavors/nosuch",
         {"flavor": {"description": "d"}}, "2.55"),
    Call("os-flavor-manage:delete", "DELETE", "/flavors/nosuch"),
    Call("os-flavor-extra-specs:create", "POST", "/flavors/nosuch/os-extra_specs",
         {"extra_specs": {"k": "v"}}),
    Call("os-flavor-extra-specs:update", "PUT", "/flavors/nosuch/os-extra_specs/k",
         {"k": "v"}),
    Call("os-flavor-extra-specs:delete", "DELETE", "/flavors/nosuch/os-extra_specs/k"),
    Call("os-flavor-access", "GET", "/flavors/nosuch/os-flavor-access"),
    Call("os-flavor-access:add_tenant_access", "POST", "/flavors/nosuch/action",
         {"addTenantAccess": {"tenant": "p2"}}),
    Call("os-flavor-access:remove_tenant_access", "POST", "/flavors/nosuch/action",
         {"removeTenantAccess": {"tenant": "p2"}}),
    Call("os-keypairs:index", "GET", "/os-keypairs", version="2.10",
         query={"user_id": "u2"}),
    Call("os-keypairs:show", "GET", "/os-keypairs/k", version="2.10",
         query={"user_id": "u2"}),
    Call("os-keypairs:create", "POST", "/os-keypairs", {"keypair": {
        "name": "k", "public_key": _public_key(), "user_id": "u2"}}, "2.10"),
    Call("os-keypairs:delete", "DELETE", "/os-keypairs/nosuch", version="2.10",
         query={"user_id": "u2"}),
    Call("limits:other_project", "GET", "/limits", query={"tenant_id": "p1"}),
    Call("os-quota-sets:update", "PUT", "/os-quota-sets/p1", {"quota_set": {"cores": 30}}),
    Call("os-quota-sets:delete", "DELETE", "/os-quota-sets/p9"),
    Call("os-quota-class-sets:show", "GET", "/os-quota-class-sets/default"),
    Call("os-quota-class-sets:update", "PUT", "/os-quota-class-sets/polclass",
         {"quota_class_set": {"cores": 30}}),
    Call("os-hypervisors:list", "GET", "/os-hypervisors"),
    Call("os-hypervisors:list-detail", "GET", "/os-hypervisors/detail"),
    Call("os-hypervisors:statistics", "GET", "/os-hypervisors/statistics", version="2.87"),
    Call("os-hypervisors:uptime", "GET", "/os-hypervisors/999/uptime", version="2.87"),
    Call("os-hypervisors:search", "GET", "/os-hypervisors/nosuch/search", version="2.52"),
    Call("os-hypervisors:servers", "GET", "/os-hypervisors/nosuch/servers", version="2.52"),
    Call("os-hypervisors:show", "GET", "/os-hypervisors/999"),
    Call("os-services:list", "GET", "/os-services"),
    Call("os-services:update", "PUT", "/os-services/enable",
         {"host": "nosuch", "binary": "nova-compute"}),
    Call("os-services:update", "PUT", f"/os-services/{_SERVICE}", {"status": "enabled"},
         "2.53"),
    Call("os-services:delete", "DELETE", "/os-services/999"),
    Call("os-availability-zone:detail", "GET", "/os-availability-zone/detail"),
    Call("os-aggregates:index", "GET", "/os-aggregates"),
    Call("os-aggregates:create", "POST", "/os-aggregates", {"aggregate": {"name": "pol"}}),
    Call("os-aggregates:show", "GET", "/os-aggregates/999"),
    Call("os-aggregates:update", "PUT", "/os-aggregates/999", {"aggregate": {"name": "n"}}),
    Call("os-aggregates:delete", "DELETE", "/os-aggregates/999"),
    Call("os-aggregates:add_host", "POST", "/os-aggregates/999/action",
         {"add_host": {"host": "nosuch"}}),
    Call("os-aggregates:remove_host", "POST", "/os-aggregates/999/action",
         {"remove_host": {"host": "nosuch"}}),
    Call("os-aggregates:set_metadata", "POST", "/os-aggregates/999/action",
         {"set_metadata": {"metadata": {"k": "v"}}}),
    Call("os-aggregates:images", "POST", "/os-aggregates/999/images",
         {"cache": [{"id": _IMAGE}]}, "2.81"),
    Call("os-simple-tenant-usage:list", "GET", "/os-simple-tenant-usage"),
)
#: The resources this table speaks for (servers and server groups have no admin-only route).
_RESOURCES = ("os-flavor-manage:", "os-flavor-extra-specs:", "os-flavor-access",
              "limits:", "os-quota-sets:", "os-quota-class-sets:", "os-hypervisors:",
              "os-services:", "os-availability-zone:", "os-aggregates:",
              "os-simple-tenant-usage:")


def refused(answer: Answer, rule: str) -> bool:
    """Whether ``answer`` is Nova's 403 fault naming ``rule``."""
    message = f"Policy doesn't allow {_C}{rule} to be performed."
    return answer.status == 403 and answer.body == {
        "forbidden": {"code": 403, "message": message}}


def test_the_table_has_every_admin_only_rule_of_these_resources() -> None:
    admin_rules = {name.removeprefix(_C) for name, check in DEFAULT_POLICY.checks.items()
                   if check == ADMIN_API and name.removeprefix(_C).startswith(_RESOURCES)}
    assert admin_rules <= {call.rule for call in ADMIN_ONLY}


def test_admin_only_routes_refuse_members_and_readers_not_admins() -> None:
    async def scenario(api: Api) -> list[str]:
        wrong = []
        for token in (USER, READER_TOKEN, ADMIN_TOKEN):
            for call in ADMIN_ONLY:
                got = await call.send(api, token)
                ok = got.status != 403 if token == ADMIN_TOKEN else refused(got, call.rule)
                if not ok:
                    wrong.append(f"{token} {call.method} {call.path} {call.query}: "
                                 f"{got.status} {got.body}")
        return wrong

    assert run(scenario) == []


async def _p1_objects(api: Api) -> str:
    """p1's key pair ``k1``, server group (its id returned) and a private flavor ``priv``
    shared with p1."""
    made = await api.post("/os-keypairs", {"keypair": {"name": "k1",
                                                        "public_key": _public_key()}})
    assert made.status == 200, made.body
    group = await api.post("/os-server-groups", _SG, version="2.64")
    assert group.status == 200, group.body
    flavor = await api.post("/flavors", {"flavor": {
        "name": "priv", "id": "priv", "ram": 512, "vcpus": 1, "disk": 1,
        "os-flavor-access:is_public": False}}, token=ADMIN_TOKEN)
    assert flavor.status == 200, flavor.body
    shared = await api.post("/flavors/priv/action", {"addTenantAccess": {"tenant": "p1"}},
                            token=ADMIN_TOKEN)
    assert shared.status == 200, shared.body
    return str(group.body["server_group"]["id"])


def _flavor_ids(answer: Answer) -> set[str]:
    return {f["id"] for f in answer.body["flavors"]}


def test_another_project_cannot_see_or_change_p1s_objects() -> None:
    async def scenario(api: Api) -> None:
        gid = await _p1_objects(api)
        # key pairs belong to their user: another user's name is not found
        assert (await api.get("/os-keypairs/k1", token=OTHER)).status == 404
        assert (await api.delete("/os-keypairs/k1", token=OTHER)).status == 404
        assert (await api.get("/os-keypairs", token=OTHER)).body == {"keypairs": []}
        assert refused(await api.get("/os-keypairs/k1", token=OTHER, version="2.10",
                                     query={"user_id": "u1"}), "os-keypairs:show")
        mine = await api.get("/os-keypairs", token=ADMIN_TOKEN, version="2.10",
                             query={"user_id": "u1"})
        assert [k["keypair"]["name"] for k in mine.body["keypairs"]] == ["k1"]
        # server groups: scoped to the project, even with all_projects
        assert (await api.get(f"/os-server-groups/{gid}", token=OTHER)).status == 404
        assert (await api.delete(f"/os-server-groups/{gid}", token=OTHER)).status == 404
        for query in (None, {"all_projects": "True"}):
            listed = await api.get("/os-server-groups", token=OTHER, query=query)
            assert listed.body == {"server_groups": []}
        every = await api.get("/os-server-groups", token=ADMIN_TOKEN,
                              query={"all_projects": "True"})
        assert [g["id"] for g in every.body["server_groups"]] == [gid]
        # quotas and usage of p1: 403; the defaults are anyone's
        assert refused(await api.get("/os-quota-sets/p1", token=OTHER), "os-quota-sets:show")
        assert refused(await api.get("/os-quota-sets/p1/detail", token=OTHER),
                       "os-quota-sets:detail")
        assert (await api.get("/os-quota-sets/p1/defaults", token=OTHER)).status == 200
        assert refused(await api.get("/os-simple-tenant-usage/p1", token=OTHER),
                       "os-simple-tenant-usage:show")
        assert (await api.get("/os-simple-tenant-usage/p1")).status == 200
        # limits of another project: 403, as Nova (even naming one's own)
        assert refused(await api.get("/limits", token=OTHER, query={"tenant_id": "p1"}),
                       "limits:other_project")
        # a private flavor shared with p1 does not exist for p2
        assert (await api.get("/flavors/priv")).status == 200
        assert "priv" in _flavor_ids(await api.get("/flavors"))
        for path in ("/flavors/priv", "/flavors/priv/os-extra_specs"):
            assert (await api.get(path, token=OTHER)).status == 404
        for path in ("/flavors", "/flavors/detail"):
            assert "priv" not in _flavor_ids(await api.get(path, token=OTHER))

    run(scenario)


def test_a_reader_looks_but_does_not_touch() -> None:
    async def scenario(api: Api) -> None:
        gid = await _p1_objects(api)
        for path in ("/os-keypairs", "/os-server-groups", f"/os-server-groups/{gid}",
                     "/os-quota-sets/p1", "/os-quota-sets/p1/detail", "/limits",
                     "/flavors/detail", "/flavors/priv", "/flavors/priv/os-extra_specs",
                     "/os-simple-tenant-usage/p1", "/os-availability-zone"):
            got = await api.get(path, token=READER_TOKEN)
            assert got.status == 200, (path, got.body)
        groups = await api.get("/os-server-groups", token=READER_TOKEN)
        assert [g["id"] for g in groups.body["server_groups"]] == [gid]
        assert refused(await api.post("/os-server-groups", _SG, token=READER_TOKEN,
                                      version="2.64"), "os-server-groups:create")
        assert refused(await api.delete(f"/os-server-groups/{gid}", token=READER_TOKEN),
                       "os-server-groups:delete")
        assert refused(await api.delete("/os-keypairs/k1", token=READER_TOKEN,
                                        version="2.10", query={"user_id": "u1"}),
                       "os-keypairs:delete")
        # Nova's key pair rules ask only that the key pair is the caller's: a reader
        # keeps key pairs of their own (test_policy_overrides narrows that)
        own = await api.post("/os-keypairs", {"keypair": {
            "name": "mine", "public_key": _public_key()}}, token=READER_TOKEN)
        assert own.status == 200, own.body
        assert (await api.delete("/os-keypairs/mine", token=READER_TOKEN)).status == 202
        assert (await api.get(f"/os-server-groups/{gid}")).status == 200

    run(scenario)


def test_policy_overrides() -> None:
    async def opened(api: Api) -> None:
        assert (await api.get("/os-hypervisors", token=READER_TOKEN)).status == 200
        assert refused(await api.get("/os-hypervisors/detail", token=READER_TOKEN),
                       "os-hypervisors:list-detail")
        assert refused(await api.get("/os-quota-sets/p1"), "os-quota-sets:show")
        assert (await api.get("/os-quota-sets/p1", token=ADMIN_TOKEN)).status == 200
        body = {"keypair": {"name": "k", "public_key": _public_key()}}
        assert refused(await api.post("/os-keypairs", body, token=READER_TOKEN),
                       "os-keypairs:create")
        assert (await api.post("/os-keypairs", body)).status == 200
        # flavors still show, without the specs the caller may not list (2.61)
        made = await api.post("/flavors", {"flavor": {
            "name": "f", "id": "f", "ram": 512, "vcpus": 1, "disk": 1}}, token=ADMIN_TOKEN)
        assert made.status == 200, made.body
        for token, specs in ((USER, False), (ADMIN_TOKEN, True)):
            shown = await api.get("/flavors/f", token=token, version="2.61")
            assert ("extra_specs" in shown.body["flavor"]) is specs
        assert refused(await api.get("/flavors/f/os-extra_specs"),
                       "os-flavor-extra-specs:index")

    run(opened, policy=Policy({
        f"{_C}os-flavor-extra-specs:index": "rule:admin_api",
        f"{_C}os-hypervisors:list": "role:reader",
        f"{_C}os-quota-sets:show": "rule:admin_api",
        f"{_C}os-keypairs:create": "rule:admin_api or (role:member and user_id:%(user_id)s)",
    }))

    async def closed(api: Api) -> None:
        body = {"keypair": {"name": "k", "public_key": _public_key()}}
        for token in (USER, READER_TOKEN, ADMIN_TOKEN):
            assert refused(await api.post("/os-keypairs", body, token=token),
                           "os-keypairs:create")
        assert (await api.get("/os-keypairs")).status == 200

    run(closed, policy=Policy({f"{_C}os-keypairs:create": "!"}))
