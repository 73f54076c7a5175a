"""The Identity API through the aiohttp adapter, on a free port, over a SQLite Store.

The last test drives the stock ``openstack`` CLI against it when one is at hand
(``NIMBUS_TEST_OPENSTACK``, the placement test's cached client, or the system
python's ``openstackclient``); it never installs one.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from nimbus.core.api.http import ApiContext
from nimbus.core.api.identity.routes import format_error, make_routes
from nimbus.core.db.store import Store, metadata
from nimbus.core.identity.bootstrap import BootstrapResult, bootstrap
from nimbus.core.identity.catalog import standard_catalog
from nimbus.core.identity.passwords import Passwords
from nimbus.core.identity.service import IdentityLogic
from nimbus.core.identity.tokens import FernetTokens, generate_key
from nimbus.core.metrics import Metrics
from nimbus.db import SqlDatabase
from nimbus.http import bound_port, build_app, start_http
from nimbus.runtime import AsyncioRuntime

pytestmark = pytest.mark.timeout(90)

ADMIN_PW, DEMO_PW = "admin-pw", "demo-pw"
UNAUTHORIZED = {"error": {"code": 401, "title": "Unauthorized",
                          "message": "The request you have made requires authentication."}}


@dataclass
class Cloud:
    """A running identity endpoint and a way to call it."""

    base: str
    boot: BootstrapResult
    logic: IdentityLogic
    call: Callable[..., Awaitable[tuple[int, dict[str, str], Any]]]

    async def token(self, user: str = "admin", password: str = ADMIN_PW,
                    project: str | None = "admin", **kw: Any) -> str:
        status, headers, body = await self.call("POST", "/v3/auth/tokens",
                                                auth_body(user, password, project), **kw)
        assert status == 201, body
        return headers["X-Subject-Token"]


def auth_body(user: str, password: str, project: str | None = None) -> dict[str, Any]:
    auth: dict[str, Any] = {"identity": {"methods": ["password"], "password": {"user": {
        "password": password, "name": user, "domain": {"name": "Default"}}}}}
    auth["scope"] = ("unscoped" if project is None else
                     {"project": {"name": project, "domain": {"name": "Default"}}})
    return {"auth": auth}


@asynccontextmanager
async def serving(tmp_path: Path, expiration: int = 3600) -> AsyncIterator[Cloud]:
    db = SqlDatabase(f"sqlite+aiosqlite:///{tmp_path / 'identity.sqlite'}")
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    store = Store(db)
    rt = AsyncioRuntime(seed=3)
    logic = IdentityLogic(store, rt, tokens=FernetTokens([generate_key()]),
                          passwords=Passwords(rt, time_cost=1, memory_kib=1024),
                          catalog=standard_catalog(), token_expiration=expiration)
    boot = await bootstrap(store, rt, logic.passwords, admin_password=ADMIN_PW,
                           demo_password=DEMO_PW)
    app = build_app(ApiContext(rt, Metrics(), store=store), make_routes(logic),
                    errors=format_error)
    runner = await start_http(app, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{bound_port(runner)}"
    # the catalog names this endpoint, known only once it listens
    logic.catalog = standard_catalog(identity=f"{base}/v3", compute="http://127.0.0.1:8774/v2.1",
                                     image="http://127.0.0.1:9292",
                                     placement="http://127.0.0.1:8778")
    try:
        async with aiohttp.ClientSession() as session:

            async def call(method: str, path: str, json: Any = None, *, token: str = "",
                           subject: str = "", data: bytes | None = None,
                           ) -> tuple[int, dict[str, str], Any]:
                headers = {"Accept": "application/json"}
                if token:
                    headers["X-Auth-Token"] = token
                if subject:
                    headers["X-Subject-Token"] = subject
                async with session.request(method, base + path, json=json, data=data,
                                           headers=headers) as resp:
                    raw = await resp.read()
                    return resp.status, dict(resp.headers), (await resp.json() if raw else None)

            yield Cloud(base, boot, logic, call)
    finally:
        await runner.cleanup()
        await store.close()


def run(tmp_path: Path, test: Callable[[Cloud], Awaitable[None]], **kw: Any) -> None:
    async def main() -> None:
        async with serving(tmp_path, **kw) as cloud:
            await asyncio.wait_for(test(cloud), 60)

    asyncio.run(main())


def test_discovery_and_token_issue(tmp_path: Path) -> None:
    async def body(c: Cloud) -> None:
        status, headers, doc = await c.call("GET", "/")
        assert status == 300
        (v3,) = doc["versions"]["values"]
        assert (v3["id"], v3["status"]) == ("v3.14", "stable")
        assert v3["links"] == [{"rel": "self", "href": f"{c.base}/v3/"}]
        status, _, doc = await c.call("GET", "/v3")
        assert status == 200 and doc["version"]["id"] == "v3.14"
        assert (await c.call("HEAD", "/v3"))[0] == 200

        status, headers, doc = await c.call("POST", "/v3/auth/tokens",
                                            auth_body("admin", ADMIN_PW, "admin"))
        assert status == 201 and len(headers["X-Subject-Token"]) > 100
        assert headers["Vary"] == "X-Auth-Token"
        token = doc["token"]
        assert token["methods"] == ["password"] and token["is_domain"] is False
        assert token["expires_at"].endswith("Z") and len(token["audit_ids"][0]) == 22
        assert token["user"] == {"id": c.boot.admin_user_id, "name": "admin",
                                 "domain": {"id": "default", "name": "Default"},
                                 "password_expires_at": None}
        assert token["project"] == {"id": c.boot.admin_project_id, "name": "admin",
                                    "domain": {"id": "default", "name": "Default"}}
        assert [r["name"] for r in token["roles"]] == ["admin", "member", "reader"]
        by_type = {s["type"]: s for s in token["catalog"]}
        assert set(by_type) == {"identity", "compute", "image", "placement"}
        public = {t: [e["url"] for e in s["endpoints"] if e["interface"] == "public"]
                  for t, s in by_type.items()}
        assert public["identity"] == [f"{c.base}/v3"]
        assert public["compute"] == ["http://127.0.0.1:8774/v2.1"]
        assert by_type["compute"]["endpoints"][0]["region_id"] == "RegionOne"

        status, _, doc = await c.call("POST", "/v3/auth/tokens?nocatalog",
                                      auth_body("demo", DEMO_PW, "demo"))
        assert status == 201 and "catalog" not in doc["token"]
        assert [r["name"] for r in doc["token"]["roles"]] == ["member", "reader"]
        status, _, doc = await c.call("POST", "/v3/auth/tokens", auth_body("admin", ADMIN_PW))
        assert status == 201
        assert not {"project", "roles", "catalog"} & set(doc["token"])

    run(tmp_path, body)


def test_wrong_credentials_are_keystones_401(tmp_path: Path) -> None:
    async def body(c: Cloud) -> None:
        for wrong in (auth_body("admin", "nope", "admin"), auth_body("ghost", ADMIN_PW),
                      auth_body("demo", DEMO_PW, "admin")):
            status, headers, doc = await c.call("POST", "/v3/auth/tokens", wrong)
            assert (status, doc) == (401, UNAUTHORIZED)
            assert headers["WWW-Authenticate"] == f'Keystone uri="{c.base}"'
        assert (await c.call("GET", "/v3/projects"))[2] == UNAUTHORIZED
        assert (await c.call("GET", "/v3/projects", token="garbage"))[0] == 401

    run(tmp_path, body)


def test_validate_revoke_and_rescope(tmp_path: Path) -> None:
    async def body(c: Cloud) -> None:
        admin, demo = await c.token(), await c.token("demo", DEMO_PW, "demo")
        status, headers, doc = await c.call("GET", "/v3/auth/tokens", token=admin,
                                            subject=demo)
        assert status == 200 and headers["X-Subject-Token"] == demo
        assert doc["token"]["project"]["name"] == "demo"
        assert (await c.call("HEAD", "/v3/auth/tokens", token=admin, subject=demo))[0] == 200
        assert (await c.call("GET", "/v3/auth/tokens", token=demo, subject=demo))[0] == 200
        status, _, doc = await c.call("GET", "/v3/auth/tokens", token=demo, subject=admin)
        assert status == 403 and doc["error"]["title"] == "Forbidden"
        status, _, doc = await c.call("GET", "/v3/auth/tokens", token=admin, subject="bogus")
        assert status == 404 and doc["error"] == {"code": 404, "title": "Not Found",
                                                  "message": "Could not find token."}
        assert (await c.call("GET", "/v3/auth/tokens", token=admin))[0] == 400

        unscoped = await c.token(project=None)
        rescope = {"auth": {"identity": {"methods": ["token"], "token": {"id": unscoped}},
                            "scope": {"project": {"id": c.boot.admin_project_id}}}}
        status, headers, doc = await c.call("POST", "/v3/auth/tokens", rescope)
        assert status == 201 and doc["token"]["methods"] == ["token", "password"]
        scoped = headers["X-Subject-Token"]

        assert (await c.call("DELETE", "/v3/auth/tokens", token=admin, subject=demo))[0] == 204
        assert (await c.call("GET", "/v3/auth/tokens", token=admin, subject=demo))[0] == 404
        assert (await c.call("GET", "/v3/auth/projects", token=demo))[0] == 401
        assert (await c.call("DELETE", "/v3/auth/tokens", token=scoped, subject=scoped))[0] \
            == 204
        assert (await c.call("GET", "/v3/auth/tokens", token=admin, subject=unscoped))[0] \
            == 200

    run(tmp_path, body)


def test_expired_token(tmp_path: Path) -> None:
    async def body(c: Cloud) -> None:
        admin = await c.token()
        short = await c.token("demo", DEMO_PW, "demo")
        await asyncio.sleep(1.1)
        # the admin token expired too; get a fresh one at the same short lifetime
        fresh = await c.token()
        assert (await c.call("GET", "/v3/auth/tokens", token=fresh, subject=short))[0] == 404
        assert (await c.call("GET", "/v3/projects", token=admin))[:3:2] == (401, UNAUTHORIZED)

    run(tmp_path, body, expiration=1)


def test_catalog_and_own_projects(tmp_path: Path) -> None:
    async def body(c: Cloud) -> None:
        demo = await c.token("demo", DEMO_PW, "demo")
        status, _, doc = await c.call("GET", "/v3/auth/catalog", token=demo)
        assert status == 200 and len(doc["catalog"]) == 4
        assert doc["links"]["self"] == f"{c.base}/v3/auth/catalog"
        status, _, doc = await c.call("GET", "/v3/auth/projects", token=demo)
        assert [p["name"] for p in doc["projects"]] == ["demo"]
        project = doc["projects"][0]
        assert project["links"]["self"] == f"{c.base}/v3/projects/{project['id']}"
        assert project["parent_id"] == "default" and project["domain_id"] == "default"
        unscoped = await c.token("demo", DEMO_PW, None)
        assert (await c.call("GET", "/v3/auth/catalog", token=unscoped))[0] == 403
        user_projects = f"/v3/users/{c.boot.demo_user_id}/projects"
        assert (await c.call("GET", user_projects, token=unscoped))[0] == 200
        assert (await c.call("GET", f"/v3/users/{c.boot.admin_user_id}/projects",
                             token=unscoped))[0] == 403

    run(tmp_path, body)


def test_admin_crud_and_member_403(tmp_path: Path) -> None:
    async def body(c: Cloud) -> None:
        admin, demo = await c.token(), await c.token("demo", DEMO_PW, "demo")

        async def ok(method: str, path: str, json: Any = None, status: int = 200,
                     token: str = admin) -> Any:
            got, _, doc = await c.call(method, path, json, token=token)
            assert got == status, (method, path, doc)
            return doc

        # names are tried as ids first: a clean JSON 404, then ?name=
        doc = await ok("GET", "/v3/projects/web", status=404)
        assert doc == {"error": {"code": 404, "title": "Not Found",
                                 "message": "Could not find project: web."}}
        web = (await ok("POST", "/v3/projects", {"project": {
            "name": "web", "description": "the web team", "tags": ["a"], "tier": "gold"}},
            201))["project"]
        assert (web["domain_id"], web["enabled"], web["tags"], web["tier"]) == (
            "default", True, ["a"], "gold")
        doc = await ok("POST", "/v3/projects", {"project": {"name": "web"}}, 409)
        assert doc["error"]["title"] == "Conflict"
        assert [p["id"] for p in (await ok("GET", "/v3/projects?name=web"))["projects"]] == [
            web["id"]]
        assert len((await ok("GET", "/v3/projects?domain_id=default"))["projects"]) == 3
        patched = await ok("PATCH", f"/v3/projects/{web['id']}",
                           {"project": {"description": "renamed", "name": "www"}})
        assert (patched["project"]["name"], patched["project"]["tier"]) == ("www", "gold")

        alice = (await ok("POST", "/v3/users", {"user": {
            "name": "alice", "password": "alice-pw", "default_project_id": web["id"],
            "email": "a@example.org", "description": "Alice"}}, 201))["user"]
        assert "password" not in alice and alice["email"] == "a@example.org"
        assert (await ok("GET", "/v3/users/alice", status=404))["error"]["code"] == 404
        assert [u["id"] for u in (await ok("GET", "/v3/users?name=alice"))["users"]] == [
            alice["id"]]
        member = (await ok("GET", "/v3/roles?name=member"))["roles"][0]
        grant = f"/v3/projects/{web['id']}/users/{alice['id']}/roles/{member['id']}"
        assert (await c.call("HEAD", grant, token=admin))[0] == 404
        await ok("PUT", grant, status=204)
        await ok("PUT", grant, status=204)
        assert (await c.call("HEAD", grant, token=admin))[0] == 204
        alice_token = await c.token("alice", "alice-pw", "www")
        doc = await ok("GET", f"/v3/role_assignments?user.id={alice['id']}&include_names",
                       token=alice_token)
        (one,) = doc["role_assignments"]
        assert one["role"] == {"id": member["id"], "name": "member"}
        assert one["scope"]["project"]["name"] == "www"
        assert one["user"]["domain"]["name"] == "Default"
        doc = await ok("GET", f"/v3/role_assignments?scope.project.id={web['id']}&effective")
        assert sorted(a["role"]["id"] for a in doc["role_assignments"]) == sorted(
            [member["id"], c.boot.roles["reader"]])

        # a member may not administer
        for method, path, sent in (("GET", "/v3/projects", None),
                                   ("POST", "/v3/users", {"user": {"name": "x"}}),
                                   ("GET", "/v3/roles", None), ("PUT", grant, None),
                                   ("GET", "/v3/role_assignments", None),
                                   ("GET", f"/v3/projects/{web['id']}", None),
                                   ("PATCH", f"/v3/users/{alice['id']}", {"user": {}})):
            doc = await ok(method, path, sent, 403, token=demo)
            assert doc["error"]["message"].startswith(
                "You are not authorized to perform the requested action: identity:")
        await ok("GET", f"/v3/projects/{c.boot.demo_project_id}", token=demo)
        await ok("GET", f"/v3/users/{c.boot.demo_user_id}", token=demo)

        # an admin's new password revokes alice's tokens; she changes it herself
        await ok("PATCH", f"/v3/users/{alice['id']}", {"user": {"password": "set-by-admin"}})
        assert (await c.call("GET", "/v3/auth/projects", token=alice_token))[0] == 401
        status, _, _ = await c.call("POST", f"/v3/users/{alice['id']}/password", {"user": {
            "password": "mine", "original_password": "wrong"}})
        assert status == 401
        await ok("POST", f"/v3/users/{alice['id']}/password", {"user": {
            "password": "mine", "original_password": "set-by-admin"}}, 204, token="")
        await c.token("alice", "mine", "www")

        # roles and domains
        role = (await ok("POST", "/v3/roles", {"role": {"name": "auditor"}}, 201))["role"]
        await ok("POST", "/v3/roles", {"role": {"name": "auditor"}}, 409)
        await ok("GET", f"/v3/roles/{role['id']}")
        await ok("DELETE", f"/v3/roles/{role['id']}", status=204)
        await ok("DELETE", f"/v3/roles/{role['id']}", status=404)
        await ok("GET", "/v3/domains/Default", status=404)
        (domain,) = (await ok("GET", "/v3/domains?name=Default"))["domains"]
        assert domain["links"]["self"] == f"{c.base}/v3/domains/default"
        await ok("GET", "/v3/domains/default", token=demo)

        # disabling and deleting
        await ok("DELETE", grant, status=204)
        await ok("DELETE", grant, status=404)
        await ok("DELETE", f"/v3/users/{alice['id']}", status=204)
        await ok("DELETE", f"/v3/projects/{web['id']}", status=204)
        await ok("GET", f"/v3/projects/{web['id']}", status=404)
        await ok("PATCH", f"/v3/projects/{c.boot.demo_project_id}",
                 {"project": {"enabled": False}})
        assert (await c.call("GET", "/v3/auth/projects", token=demo))[0] == 401

    run(tmp_path, body)


def test_bad_bodies_are_400_naming_the_field(tmp_path: Path) -> None:
    async def body(c: Cloud) -> None:
        admin = await c.token()
        cases = [
            ("/v3/auth/tokens", {"auth": {"identity": {"methods": ["password"],
                                                       "password": {"user": {"name": "a"}}}}},
             "auth/identity/password/user/domain"),
            ("/v3/auth/tokens", {"nonsense": 1}, "'auth'"),
            ("/v3/projects", {}, "'project'"),
            ("/v3/projects", {"project": {}}, "'project/name'"),
            ("/v3/projects", {"project": {"name": 5}}, "'project/name'"),
            ("/v3/projects", {"project": {"name": "x", "enabled": "yes"}}, "'project/enabled'"),
            ("/v3/projects", {"project": {"name": "x", "domain_id": "nope"}},
             "'project/domain_id'"),
            ("/v3/users", {"user": {"name": "x", "password": 7}}, "'user/password'"),
            ("/v3/roles", {"role": {"name": " "}}, "'role/name'"),
        ]
        for path, sent, field in cases:
            status, _, doc = await c.call("POST", path, sent, token=admin)
            assert status == 400, (path, doc)
            assert doc["error"]["title"] == "Bad Request" and field in doc["error"]["message"]
        status, _, doc = await c.call("POST", "/v3/projects", data=b"{not json", token=admin)
        assert status == 400 and doc["error"]["code"] == 400
        status, _, doc = await c.call("GET", "/v3/nowhere")
        assert status == 404 and doc["error"]["title"] == "Not Found"
        status, _, doc = await c.call("PUT", "/v3/auth/tokens")
        assert status == 405 and doc["error"]["code"] == 405

    run(tmp_path, body)


# -- the stock CLI -----------------------------------------------------------------------

def _openstack() -> str | None:
    """An ``openstack`` executable already at hand, never installed here."""
    given = os.environ.get("NIMBUS_TEST_OPENSTACK")
    if given:
        return given
    cached = Path(__file__).resolve().parents[2] / ".pytest_cache/d/osc-placement-venv"
    if (cached / "ready").exists() and (cached / "venv/bin/openstack").exists():
        return str(cached / "venv/bin/openstack")
    probe = subprocess.run([sys.executable, "-c", "import openstackclient"],
                           capture_output=True)
    return shutil.which("openstack") if probe.returncode == 0 else None


def test_stock_openstack_cli(tmp_path: Path) -> None:
    openstack = _openstack()
    if openstack is None:
        pytest.skip("python-openstackclient is not installed in the system python (and "
                    "NIMBUS_TEST_OPENSTACK is unset); this test does not install it")

    async def body(c: Cloud) -> None:
        env = {**os.environ, "OS_AUTH_URL": c.base, "OS_USERNAME": "admin",
               "OS_PASSWORD": ADMIN_PW, "OS_PROJECT_NAME": "admin",
               "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default",
               "OS_IDENTITY_API_VERSION": "3", "OS_INTERFACE": "public"}
        env.pop("OS_CLOUD", None)

        async def cli(*args: str) -> Any:
            proc = await asyncio.create_subprocess_exec(
                openstack, *args, "-f", "json", env=env, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 0, err.decode()
            return json.loads(out)

        issued = await cli("token", "issue")
        assert issued["project_id"] == c.boot.admin_project_id
        assert issued["user_id"] == c.boot.admin_user_id
        names = {p["Name"] for p in await cli("project", "list")}
        assert names == {"admin", "demo"}

    run(tmp_path, body)
