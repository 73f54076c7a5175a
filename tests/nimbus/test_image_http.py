"""The image API through aiohttp on a free port, with real tokens and files on disk.

An identity endpoint and the image endpoint share one SQLite Store; the image
API checks tokens with ``IdentityLogic.context_for``, keeps data in a
``FileBlobStore`` under the test's folder, and is bound by
``nimbus.image_http.build_image_app`` (streaming uploads and downloads). The
last test drives the stock ``openstack`` CLI when one is at hand; it never
installs one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from nimbus.core.api.http import ApiContext
from nimbus.core.api.identity.routes import format_error, make_routes
from nimbus.core.api.image.wire import ImageEnv
from nimbus.core.db.store import Store, metadata
from nimbus.core.identity.bootstrap import BootstrapResult, bootstrap
from nimbus.core.identity.catalog import standard_catalog
from nimbus.core.identity.passwords import Passwords
from nimbus.core.identity.service import IdentityLogic
from nimbus.core.identity.tokens import FernetTokens, generate_key
from nimbus.core.image.config import ImageConfig
from nimbus.core.metrics import Metrics
from nimbus.db import SqlDatabase
from nimbus.http import bound_port, build_app, start_http
from nimbus.image_files import FileBlobStore
from nimbus.image_http import build_image_app
from nimbus.runtime import AsyncioRuntime

pytestmark = pytest.mark.timeout(120)

ADMIN_PW, DEMO_PW = "admin-pw", "demo-pw"
PATCH_TYPE = "application/openstack-images-v2.1-json-patch"
SIZE_CAP = 8 << 20


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def body(self) -> Any:
        return json.loads(self.raw) if self.raw else None


@dataclass
class Cloud:
    """A running identity and image endpoint, tokens for admin and demo, a client."""

    identity: str
    image: str
    data_dir: Path
    boot: BootstrapResult
    admin: str
    demo: str
    session: aiohttp.ClientSession

    async def call(self, method: str, path: str, body: Any = None, *, token: str | None = None,
                   data: Any = None, headers: dict[str, str] | None = None) -> Reply:
        sent = {"Accept": "application/json"}
        if token is not None:
            sent["X-Auth-Token"] = token
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        async with self.session.request(method, self.image + path, data=data,
                                        headers=sent) as resp:
            return Reply(resp.status, dict(resp.headers), await resp.read())

    async def create(self, token: str | None = None, **fields: Any) -> dict[str, Any]:
        reply = await self.call("POST", "/v2/images", {"disk_format": "raw",
                                                       "container_format": "bare", **fields},
                                token=token or self.admin)
        assert reply.status == 201, reply.raw
        return reply.body  # type: ignore[no-any-return]

    async def upload(self, image_id: str, data: Any, token: str | None = None,
                     headers: dict[str, str] | None = None) -> Reply:
        return await self.call("PUT", f"/v2/images/{image_id}/file", data=data,
                               token=token or self.admin,
                               headers={"Content-Type": "application/octet-stream",
                                        **(headers or {})})

    async def names(self, token: str | None = None, **query: str) -> list[str]:
        path = "/v2/images" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        reply = await self.call("GET", path, token=token or self.admin)
        assert reply.status == 200, reply.raw
        return [i["name"] for i in reply.body["images"]]


async def _token(session: aiohttp.ClientSession, identity: str, user: str, password: str,
                 project: str) -> str:
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "password": password, "domain": {"name": "Default"}}}},
        "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}}
    async with session.post(f"{identity}/v3/auth/tokens", json=body) as resp:
        assert resp.status == 201, await resp.text()
        return resp.headers["X-Subject-Token"]


@asynccontextmanager
async def serving(tmp_path: Path) -> AsyncIterator[Cloud]:
    db = SqlDatabase(f"sqlite+aiosqlite:///{tmp_path / 'cloud.sqlite'}")
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    store = Store(db)
    rt = AsyncioRuntime(seed=5)
    logic = IdentityLogic(store, rt, tokens=FernetTokens([generate_key()]),
                          passwords=Passwords(rt, time_cost=1, memory_kib=1024),
                          catalog=standard_catalog())
    boot = await bootstrap(store, rt, logic.passwords, admin_password=ADMIN_PW,
                           demo_password=DEMO_PW)
    id_runner = await start_http(build_app(ApiContext(rt, Metrics(), store=store),
                                           make_routes(logic), errors=format_error),
                                 "127.0.0.1", 0)
    identity = f"http://127.0.0.1:{bound_port(id_runner)}"
    data_dir = tmp_path / "images"
    config = ImageConfig(image_size_cap=SIZE_CAP, auth_url=f"{identity}/v3", chunk_size=4096)
    env = ImageEnv(store, FileBlobStore(data_dir, rt), rt, logic.context_for, config)
    img_runner = await start_http(build_image_app(ApiContext(rt, Metrics()), env),
                                  "127.0.0.1", 0)
    image = f"http://127.0.0.1:{bound_port(img_runner)}"
    logic.catalog = standard_catalog(identity=f"{identity}/v3", image=image,
                                     compute="http://127.0.0.1:1/v2.1")
    try:
        async with aiohttp.ClientSession() as session:
            admin = await _token(session, identity, "admin", ADMIN_PW, "admin")
            demo = await _token(session, identity, "demo", DEMO_PW, "demo")
            yield Cloud(identity, image, data_dir, boot, admin, demo, session)
    finally:
        await img_runner.cleanup()
        await id_runner.cleanup()
        await store.close()


def run(tmp_path: Path, test: Callable[[Cloud], Awaitable[None]]) -> None:
    async def main() -> None:
        async with serving(tmp_path) as cloud:
            await asyncio.wait_for(test(cloud), 90)

    asyncio.run(main())


async def chunked(data: bytes, size: int = 100_000) -> AsyncIterator[bytes]:
    """An upload body sent in chunks (no Content-Length: chunked transfer encoding)."""
    for start in range(0, len(data), size):
        yield data[start:start + size]


def test_discovery_and_tokens(tmp_path: Path) -> None:
    async def body(c: Cloud) -> None:
        root = await c.call("GET", "/")
        assert root.status == 300
        assert root.body["versions"][0]["links"][0]["href"] == f"{c.image}/v2/"
        for token in (None, "forged"):
            denied = await c.call("GET", "/v2/images", token=token)
            assert denied.status == 401
            assert denied.body["error"]["code"] == 401
            assert denied.headers["WWW-Authenticate"] == f'Keystone uri="{c.identity}/v3"'
        unknown = await c.call("GET", "/v2/nothing", token=c.admin)
        assert unknown.status == 404 and unknown.body["code"] == "404 Not Found"

    run(tmp_path, body)


def test_upload_download_round_trip(tmp_path: Path) -> None:
    payload = os.urandom(3 << 20) + b"end"

    async def body(c: Cloud) -> None:
        image = await c.create(name="acc-img", **{"owner_specified.openstack.md5": ""})
        iid = image["id"]
        empty = await c.call("GET", f"/v2/images/{iid}/file", token=c.admin)
        assert empty.status == 204
        uploaded = await c.upload(iid, chunked(payload))
        assert uploaded.status == 204, uploaded.raw
        shown = (await c.call("GET", f"/v2/images/{iid}", token=c.admin)).body
        assert shown["status"] == "active" and shown["size"] == len(payload)
        assert shown["checksum"] == hashlib.md5(payload).hexdigest()
        assert shown["os_hash_algo"] == "sha512"
        assert shown["os_hash_value"] == hashlib.sha512(payload).hexdigest()
        assert shown["owner_specified.openstack.md5"] == ""
        assert (c.data_dir / iid).read_bytes() == payload
        got = await c.call("GET", f"/v2/images/{iid}/file", token=c.admin)
        assert got.status == 200
        assert got.headers["Content-Type"] == "application/octet-stream"
        assert got.headers["Content-MD5"] == shown["checksum"]
        assert hashlib.sha512(got.raw).hexdigest() == shown["os_hash_value"]
        again = await c.upload(iid, b"more")
        assert again.status == 409
        # over the cap: streamed, and announced
        big = await c.create(name="big")
        over = await c.upload(big["id"], chunked(b"z" * (SIZE_CAP + 1)))
        assert over.status == 413
        assert (await c.call("GET", f"/v2/images/{big['id']}", token=c.admin)
                ).body["status"] == "queued"
        announced = await c.upload(big["id"], b"z" * 10,
                                   headers={"x-openstack-image-size": str(SIZE_CAP + 1)})
        assert announced.status == 413
        assert [p.name for p in c.data_dir.iterdir()] == [iid]
        assert (await c.upload(big["id"], b"small")).status == 204

    run(tmp_path, body)


def test_list_filters_sort_pagination(tmp_path: Path) -> None:
    async def body(c: Cloud) -> None:
        ids = {}
        for name, fmt in (("a", "raw"), ("b", "qcow2"), ("c", "raw"), ("d", "iso")):
            ids[name] = (await c.create(name=name, disk_format=fmt, tags=[fmt]))["id"]
        assert await c.names(sort="name:asc") == ["a", "b", "c", "d"]
        assert await c.names(disk_format="raw", sort_key="name", sort_dir="desc") == ["c", "a"]
        assert await c.names(tag="qcow2") == ["b"]
        assert sorted(await c.names(id=f"in:{ids['a']},{ids['d']}")) == ["a", "d"]
        assert await c.names(name="c") == ["c"]
        seen: list[str] = []
        path = "/v2/images?limit=3&sort=name:asc"
        while path:
            page = (await c.call("GET", path, token=c.admin)).body
            seen += [i["name"] for i in page["images"]]
            path = page.get("next", "")
        assert seen == ["a", "b", "c", "d"]
        assert (await c.call("GET", "/v2/images?sort_key=owner", token=c.admin)).status == 400

    run(tmp_path, body)


def test_patch_and_protected_delete(tmp_path: Path) -> None:
    async def body(c: Cloud) -> None:
        iid = (await c.create(name="p", protected=True, os_distro="cirros"))["id"]
        ops = [{"op": "replace", "path": "/name", "value": "q"},
               {"op": "add", "path": "/hw_disk_bus", "value": "scsi"},
               {"op": "remove", "path": "/os_distro"}]
        patched = await c.call("PATCH", f"/v2/images/{iid}", token=c.admin,
                               data=json.dumps(ops), headers={"Content-Type": PATCH_TYPE})
        assert patched.status == 200, patched.raw
        assert patched.body["name"] == "q" and patched.body["hw_disk_bus"] == "scsi"
        assert "os_distro" not in patched.body
        plain_json = await c.call("PATCH", f"/v2/images/{iid}", ops, token=c.admin)
        assert plain_json.status == 415 and "Accept-Patch" in plain_json.headers
        readonly = await c.call("PATCH", f"/v2/images/{iid}", token=c.admin, data=json.dumps(
            [{"op": "replace", "path": "/status", "value": "active"}]),
            headers={"Content-Type": PATCH_TYPE})
        assert readonly.status == 403
        refused = await c.call("DELETE", f"/v2/images/{iid}", token=c.admin)
        assert refused.status == 403 and "protected" in refused.body["message"]
        unprotect = [{"op": "replace", "path": "/protected", "value": False}]
        assert (await c.call("PATCH", f"/v2/images/{iid}", token=c.admin,
                             data=json.dumps(unprotect),
                             headers={"Content-Type": PATCH_TYPE})).status == 200
        assert (await c.call("DELETE", f"/v2/images/{iid}", token=c.admin)).status == 204
        assert (await c.call("GET", f"/v2/images/{iid}", token=c.admin)).status == 404

    run(tmp_path, body)


def test_members_flow(tmp_path: Path) -> None:
    async def body(c: Cloud) -> None:
        demo_project = c.boot.demo_project_id
        assert demo_project is not None
        iid = (await c.create(name="shared-img", visibility="private"))["id"]
        assert (await c.call("GET", f"/v2/images/{iid}", token=c.demo)).status == 404
        share = [{"op": "add", "path": "/visibility", "value": "shared"}]  # image set --shared
        assert (await c.call("PATCH", f"/v2/images/{iid}", token=c.admin,
                             data=json.dumps(share),
                             headers={"Content-Type": PATCH_TYPE})).status == 200
        added = await c.call("POST", f"/v2/images/{iid}/members", {"member": demo_project},
                             token=c.admin)
        assert added.status == 200 and added.body["status"] == "pending"
        assert (await c.call("GET", f"/v2/images/{iid}", token=c.demo)).status == 200
        assert await c.names(c.demo) == []
        accept = await c.call("PUT", f"/v2/images/{iid}/members/{demo_project}",
                              {"status": "accepted", "member": demo_project}, token=c.demo)
        assert accept.status == 200 and accept.body["status"] == "accepted"
        assert await c.names(c.demo) == ["shared-img"]
        assert await c.names(c.demo, visibility="shared") == ["shared-img"]
        members = await c.call("GET", f"/v2/images/{iid}/members", token=c.admin)
        assert [m["member_id"] for m in members.body["members"]] == [demo_project]
        assert (await c.call("DELETE", f"/v2/images/{iid}/members/{demo_project}",
                             token=c.admin)).status == 204
        assert (await c.call("GET", f"/v2/images/{iid}", token=c.demo)).status == 404

    run(tmp_path, body)


def test_deactivate_reactivate(tmp_path: Path) -> None:
    async def body(c: Cloud) -> None:
        iid = (await c.create(name="pub", visibility="public"))["id"]
        assert (await c.upload(iid, b"public bytes")).status == 204
        actions = f"/v2/images/{iid}/actions"
        assert (await c.call("POST", f"{actions}/deactivate", token=c.demo)).status == 403
        assert (await c.call("POST", f"{actions}/deactivate", token=c.admin)).status == 204
        blocked = await c.call("GET", f"/v2/images/{iid}/file", token=c.demo)
        assert blocked.status == 403
        assert (await c.call("POST", f"{actions}/reactivate", token=c.admin)).status == 204
        got = await c.call("GET", f"/v2/images/{iid}/file", token=c.demo)
        assert got.status == 200 and got.raw == b"public bytes"

    run(tmp_path, body)


def test_bad_bodies(tmp_path: Path) -> None:
    async def body(c: Cloud) -> None:
        malformed = await c.call("POST", "/v2/images", token=c.admin, data=b"{oops",
                                 headers={"Content-Type": "application/json"})
        assert malformed.status == 400
        assert malformed.body["message"].startswith("Malformed JSON in request body.")
        assert malformed.body["code"] == "400 Bad Request"
        wrong = await c.call("POST", "/v2/images", {"min_ram": "lots"}, token=c.admin)
        assert wrong.status == 400
        huge = await c.call("POST", "/v2/images", {"name": "x" * 200_000}, token=c.admin)
        assert huge.status == 413
        member = await c.call("POST", "/v2/images/x/members", {}, token=c.admin)
        assert member.status == 400
        html = await c.call("GET", "/v2/images/nope", token=c.admin, headers={"Accept": "*/*"})
        assert html.status == 404 and html.headers["Content-Type"].startswith("text/html")

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


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_stock_openstack_cli(tmp_path: Path) -> None:
    openstack = _openstack()
    if openstack is None:
        pytest.skip("python-openstackclient is not installed in the system python (and "
                    "NIMBUS_TEST_OPENSTACK is unset); this test does not install it")
    payload = os.urandom(200_000)
    source = tmp_path / "disk.raw"
    source.write_bytes(payload)

    async def body(c: Cloud) -> None:
        env = {**os.environ, "OS_AUTH_URL": c.identity, "OS_USERNAME": "admin",
               "OS_PASSWORD": ADMIN_PW, "OS_PROJECT_NAME": "admin",
               "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default",
               "OS_IDENTITY_API_VERSION": "3", "OS_INTERFACE": "public"}
        env.pop("OS_CLOUD", None)

        async def cli(*args: str, as_json: bool = True) -> Any:
            proc = await asyncio.create_subprocess_exec(
                openstack, *args, *(("-f", "json") if as_json else ()), env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 0, err.decode()
            return json.loads(out) if as_json else out.decode()

        created = await cli("image", "create", "--file", str(source), "--disk-format", "raw",
                            "--container-format", "bare", "acc-img")
        assert created["name"] == "acc-img"
        listed = await cli("image", "list")
        assert [i["Name"] for i in listed] == ["acc-img"]
        shown = await cli("image", "show", "acc-img")
        assert shown["status"] == "active" and shown["size"] == len(payload)
        assert shown["checksum"] == hashlib.md5(payload).hexdigest()
        # the CLI files the hash among the properties
        assert shown["properties"]["os_hash_value"] == hashlib.sha512(payload).hexdigest()
        assert shown["properties"]["owner_specified.openstack.object"] == "images/acc-img"
        saved = tmp_path / "saved.raw"
        await cli("image", "save", "--file", str(saved), "acc-img", as_json=False)
        assert saved.read_bytes() == payload
        # share it with demo, who accepts (the CLI's JSON-patch and member calls)
        await cli("image", "set", "--shared", "--property", "os_distro=cirros", "acc-img",
                  as_json=False)
        await cli("image", "add", "project", "acc-img", "demo")
        env.update(OS_USERNAME="demo", OS_PASSWORD=DEMO_PW, OS_PROJECT_NAME="demo")
        assert await cli("image", "list", "--shared") == []
        await cli("image", "set", "--accept", created["id"], as_json=False)
        listed = await cli("image", "list", "--shared")
        assert [i["Name"] for i in listed] == ["acc-img"]
        shown = await cli("image", "show", created["id"])
        assert shown["properties"]["os_distro"] == "cirros"

    run(tmp_path, body)
