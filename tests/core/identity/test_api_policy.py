"""The identity API under the policy: every admin route refuses a project member or
reader with Keystone's 403, a user reads themself but nobody else, and an operator's
rule changes a decision."""

from __future__ import annotations

import json
import re
from typing import Any

from nimbus.core.api.http import ApiContext, Request, Route
from nimbus.core.api.identity.routes import make_routes
from nimbus.core.identity.authbody import parse_auth
from nimbus.core.identity.bootstrap import BootstrapResult
from nimbus.core.identity.service import IdentityLogic
from nimbus.core.metrics import Metrics
from nimbus.core.policy import Policy

from .conftest import ADMIN_PASSWORD, DEMO_PASSWORD, run_identity

DENIED = "You are not authorized to perform the requested action: identity:"


class Keystone:
    """Calls the identity routes as a client would, in the simulation's loop."""

    def __init__(self, logic: IdentityLogic, boot: BootstrapResult) -> None:
        self.logic, self.boot = logic, boot
        self.ctx = ApiContext(logic.runtime, Metrics(), base_url="http://h:5000")
        self.routes: list[tuple[Route, re.Pattern[str]]] = [
            (r, re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", r.path) + "$"))
            for r in make_routes(logic)]

    async def call(self, method: str, path: str, body: Any = None, *, token: str,
                   subject: str = "", query: dict[str, str] | None = None) -> tuple[int, Any]:
        headers = {"x-auth-token": token, "x-subject-token": subject}
        data = b"" if body is None else json.dumps(body).encode()
        for route, pattern in self.routes:
            match = pattern.match(path)
            if match and route.method == method:
                req = Request(method, path, match.groupdict(),
                              {k: [v] for k, v in (query or {}).items()}, headers, data)
                resp = await route.handler(self.ctx, req)
                return resp.status, resp.body
        raise AssertionError(f"no route for {method} {path}")

    async def token(self, name: str, password: str, project: str | None) -> str:
        auth: dict[str, Any] = {"identity": {"methods": ["password"], "password": {"user": {
            "name": name, "domain": {"name": "Default"}, "password": password}}}}
        if project is not None:
            auth["scope"] = {"project": {"name": project, "domain": {"name": "Default"}}}
        return (await self.logic.authenticate(parse_auth({"auth": auth}))).token_id

    async def reader(self, admin: str) -> tuple[str, str]:
        """A user with only the reader role on the demo project: their id and token."""
        status, doc = await self.call("POST", "/v3/users", {"user": {
            "name": "rita", "password": "rita-pw"}}, token=admin)
        assert status == 201, doc
        user_id = doc["user"]["id"]
        grant = (f"/v3/projects/{self.boot.demo_project_id}/users/{user_id}/roles/"
                 f"{self.boot.roles['reader']}")
        assert (await self.call("PUT", grant, token=admin))[0] == 204
        return user_id, await self.token("rita", "rita-pw", "demo")


def run(test: Any, overrides: dict[str, str] | None = None) -> None:
    async def body(logic: IdentityLogic, boot: BootstrapResult) -> None:
        logic.policy = Policy(overrides or {})
        await test(Keystone(logic, boot))

    run_identity(body)


def test_every_admin_route_refuses_members_and_readers() -> None:
    async def body(k: Keystone) -> None:
        admin = await k.token("admin", ADMIN_PASSWORD, "admin")
        demo = await k.token("demo", DEMO_PASSWORD, "demo")
        reader_id, reader = await k.reader(admin)
        boot = k.boot
        grant = (f"/v3/projects/{boot.demo_project_id}/users/{boot.demo_user_id}/roles/"
                 f"{boot.roles['admin']}")
        project, user = f"/v3/projects/{boot.admin_project_id}", f"/v3/users/{reader_id}"
        calls: list[tuple[str, str, Any, str]] = [
            ("GET", "/v3/projects", None, "list_projects"),
            ("POST", "/v3/projects", {"project": {"name": "x"}}, "create_project"),
            ("PATCH", project, {"project": {}}, "update_project"),
            ("DELETE", project, None, "delete_project"),
            ("GET", project, None, "get_project"),
            ("GET", "/v3/users", None, "list_users"),
            ("POST", "/v3/users", {"user": {"name": "x"}}, "create_user"),
            ("PATCH", f"/v3/users/{boot.admin_user_id}", {"user": {}}, "update_user"),
            ("DELETE", f"/v3/users/{boot.admin_user_id}", None, "delete_user"),
            ("GET", "/v3/roles", None, "list_roles"),
            ("POST", "/v3/roles", {"role": {"name": "x"}}, "create_role"),
            ("GET", f"/v3/roles/{boot.roles['member']}", None, "get_role"),
            ("DELETE", f"/v3/roles/{boot.roles['member']}", None, "delete_role"),
            ("PUT", grant, None, "create_grant"),
            ("GET", grant, None, "check_grant"),
            ("DELETE", grant, None, "revoke_grant"),
            ("GET", "/v3/role_assignments", None, "list_role_assignments"),
            ("GET", "/v3/domains", None, "list_domains"),
        ]
        for token in (demo, reader):
            for method, path, sent, action in calls:
                status, doc = await k.call(method, path, sent, token=token)
                assert status == 403, (method, path, doc)
                assert doc["error"]["message"] == f"{DENIED}{action}.", doc
        # a member may not even update themself (Keystone's update_user is admin only)
        status, _ = await k.call("PATCH", user, {"user": {"enabled": False}}, token=reader)
        assert status == 403
        # the admin may do all of it
        assert (await k.call("GET", "/v3/projects", token=admin))[0] == 200
        assert (await k.call("GET", grant, token=admin))[0] == 404
        assert (await k.call("GET", "/v3/domains/default", token=admin))[0] == 200

    run(body)


def test_a_user_reads_themself_but_nobody_else() -> None:
    async def body(k: Keystone) -> None:
        admin = await k.token("admin", ADMIN_PASSWORD, "admin")
        demo = await k.token("demo", DEMO_PASSWORD, "demo")
        reader_id, reader = await k.reader(admin)
        boot = k.boot
        me, other = f"/v3/users/{boot.demo_user_id}", f"/v3/users/{boot.admin_user_id}"
        assert (await k.call("GET", me, token=demo))[0] == 200
        assert (await k.call("GET", f"{me}/projects", token=demo))[0] == 200
        assert (await k.call("GET", f"/v3/projects/{boot.demo_project_id}",
                             token=reader))[0] == 200
        assert (await k.call("GET", "/v3/role_assignments", token=demo,
                             query={"user.id": str(boot.demo_user_id)}))[0] == 200
        for method, path, query, action in (
                ("GET", other, None, "get_user"),
                ("GET", f"/v3/users/{reader_id}", None, "get_user"),
                ("GET", f"{other}/projects", None, "list_user_projects"),
                ("GET", "/v3/role_assignments", {"user.id": boot.admin_user_id},
                 "list_role_assignments")):
            status, doc = await k.call(method, path, token=demo, query=query)
            assert (status, doc["error"]["message"]) == (403, f"{DENIED}{action}."), path
        # tokens: one's own, not another user's
        assert (await k.call("GET", "/v3/auth/tokens", token=demo, subject=demo))[0] == 200
        status, doc = await k.call("GET", "/v3/auth/tokens", token=demo, subject=admin)
        assert (status, doc["error"]["message"]) == (403, f"{DENIED}validate_token.")
        status, doc = await k.call("DELETE", "/v3/auth/tokens", token=demo, subject=reader)
        assert (status, doc["error"]["message"]) == (403, f"{DENIED}revoke_token.")
        assert (await k.call("GET", "/v3/auth/tokens", token=admin, subject=demo))[0] == 200

    run(body)


def test_an_operator_rule_changes_the_decision() -> None:
    async def body(k: Keystone) -> None:
        admin = await k.token("admin", ADMIN_PASSWORD, "admin")
        _, reader = await k.reader(admin)
        status, doc = await k.call("GET", "/v3/projects", token=reader)
        assert status == 200 and {p["name"] for p in doc["projects"]} >= {"admin", "demo"}
        status, doc = await k.call("GET", "/v3/users", token=admin)
        assert status == 403 and doc["error"]["message"] == f"{DENIED}list_users."

    run(body, {"identity:list_projects": "role:reader", "identity:list_users": "!"})
