"""The Placement API through the aiohttp adapter, on a free port, over a SQLite Store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from nimbus.config import load_config
from nimbus.core.api.http import ApiContext
from nimbus.core.api.placement.routes import ROUTES
from nimbus.core.api.placement.wire import format_error
from nimbus.core.db.store import Store, metadata
from nimbus.core.metrics import Metrics
from nimbus.db import SqlDatabase
from nimbus.http import bound_port, build_app, start_http
from nimbus.runtime import AsyncioRuntime
from nimbus.serve import serve

pytestmark = pytest.mark.timeout(30)

V = {"OpenStack-API-Version": "placement 1.29"}

Client = Callable[..., Awaitable[tuple[int, dict[str, str], Any]]]


@asynccontextmanager
async def serving(tmp_path: Path, max_body_bytes: int = 114688) -> AsyncIterator[Client]:
    db = SqlDatabase(f"sqlite+aiosqlite:///{tmp_path / 'placement.sqlite'}")
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    store = Store(db)
    ctx = ApiContext(AsyncioRuntime(seed=3), Metrics(), store=store)
    app = build_app(ctx, ROUTES, max_body_bytes=max_body_bytes, errors=format_error)
    runner = await start_http(app, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{bound_port(runner)}"
    try:
        async with aiohttp.ClientSession() as session:

            async def request(method: str, path: str, json: Any = None, *,
                              headers: dict[str, str] | None = None,
                              **kw: Any) -> tuple[int, dict[str, str], Any]:
                sent = {**V, **(headers or {})}
                async with session.request(method, base + path, json=json, headers=sent,
                                           **kw) as resp:
                    raw = await resp.read()
                    body = await resp.json() if raw else None
                    return resp.status, dict(resp.headers), body

            yield request
    finally:
        await runner.cleanup()
        await store.close()


def run(tmp_path: Path, test: Callable[[Client], Awaitable[None]], **kw: Any) -> None:
    async def main() -> None:
        async with serving(tmp_path, **kw) as client:
            await asyncio.wait_for(test(client), 20)

    asyncio.run(main())


def test_every_endpoint(tmp_path: Path) -> None:
    async def body(req: Client) -> None:
        seen: list[tuple[str, str, int]] = []

        async def ok(method: str, path: str, json: Any = None, status: int = 200,
                     **kw: Any) -> Any:
            got, headers, doc = await req(method, path, json, **kw)
            assert got == status, (method, path, doc)
            assert headers["OpenStack-API-Version"] == "placement 1.29"
            assert headers["Vary"] == "openstack-api-version"
            assert headers["x-openstack-request-id"].startswith("req-")
            seen.append((method, path, got))
            return doc

        rp_uuid = "8f1c1c7e-4a55-4c9b-9d2e-000000000001"
        rp = f"/resource_providers/{rp_uuid}"
        agg = "8f1c1c7e-4a55-4c9b-9d2e-0000000000a1"
        consumer, other = ("8f1c1c7e-4a55-4c9b-9d2e-0000000000c1",
                           "8f1c1c7e-4a55-4c9b-9d2e-0000000000c2")
        assert (await ok("GET", "/"))["versions"][0]["max_version"] == "1.29"
        await ok("POST", "/resource_providers", {"name": "cn1", "uuid": rp_uuid})
        assert len((await ok("GET", "/resource_providers"))["resource_providers"]) == 1
        await ok("GET", rp)
        assert (await ok("PUT", rp, {"name": "compute-1"}))["name"] == "compute-1"
        await ok("PUT", f"{rp}/inventories", {"resource_provider_generation": 0,
                                              "inventories": {"VCPU": {"total": 8}}})
        await ok("POST", f"{rp}/inventories", {"resource_class": "MEMORY_MB", "total": 4096},
                 status=201)
        assert set((await ok("GET", f"{rp}/inventories"))["inventories"]) == {
            "VCPU", "MEMORY_MB"}
        await ok("GET", f"{rp}/inventories/VCPU")
        await ok("PUT", f"{rp}/inventories/VCPU", {"resource_provider_generation": 2,
                                                   "total": 16})
        await ok("PUT", f"{rp}/aggregates", {"aggregates": [agg],
                                             "resource_provider_generation": 3})
        assert (await ok("GET", f"{rp}/aggregates"))["aggregates"] == [agg]
        await ok("PUT", "/traits/CUSTOM_GOLD", status=201)
        assert "CUSTOM_GOLD" in (await ok("GET", "/traits"))["traits"]
        await ok("GET", "/traits/CUSTOM_GOLD", status=204)
        await ok("PUT", f"{rp}/traits", {"traits": ["CUSTOM_GOLD"],
                                         "resource_provider_generation": 4})
        assert (await ok("GET", f"{rp}/traits"))["traits"] == ["CUSTOM_GOLD"]
        await ok("POST", "/resource_classes", {"name": "CUSTOM_FPGA"}, status=201)
        assert {"name": "CUSTOM_FPGA", "links": [
            {"rel": "self", "href": "/resource_classes/CUSTOM_FPGA"}]} in (
            await ok("GET", "/resource_classes"))["resource_classes"]
        await ok("GET", "/resource_classes/CUSTOM_FPGA")
        await ok("PUT", "/resource_classes/CUSTOM_ASIC", status=201)
        candidates = await ok("GET", "/allocation_candidates?resources=VCPU:2,MEMORY_MB:512"
                                     "&required=CUSTOM_GOLD&limit=5")
        claim = candidates["allocation_requests"][0]
        await ok("PUT", f"/allocations/{consumer}", {
            **claim, "project_id": "p1", "user_id": "u1", "consumer_generation": None},
            status=204)
        assert (await ok("GET", f"/allocations/{consumer}"))["consumer_generation"] == 1
        await ok("POST", "/allocations", {
            other: {**claim, "project_id": "p1", "user_id": "u1", "consumer_generation": None},
            consumer: {"allocations": {}, "project_id": "p1", "user_id": "u1",
                       "consumer_generation": 1}}, status=204)
        assert set((await ok("GET", f"{rp}/allocations"))["allocations"]) == {other}
        assert (await ok("GET", f"{rp}/usages"))["usages"] == {"VCPU": 2, "MEMORY_MB": 512}
        assert (await ok("GET", "/usages?project_id=p1"))["usages"] == {
            "VCPU": 2, "MEMORY_MB": 512}
        await ok("DELETE", f"/allocations/{other}", status=204)
        await ok("DELETE", f"{rp}/inventories/MEMORY_MB", status=204)
        await ok("DELETE", f"{rp}/inventories", status=204)
        await ok("DELETE", f"{rp}/traits", status=204)
        await ok("DELETE", "/traits/CUSTOM_GOLD", status=204)
        await ok("DELETE", "/resource_classes/CUSTOM_FPGA", status=204)
        await ok("DELETE", rp, status=204)
        assert (await req("GET", rp))[0] == 404
        served = {(m, p) for m, p, _ in seen}
        assert len(served) >= 30

    run(tmp_path, body)


def test_errors_come_in_placement_format(tmp_path: Path) -> None:
    async def body(req: Client) -> None:
        status, headers, doc = await req("GET", "/nowhere")
        assert status == 404
        error = doc["errors"][0]
        assert error["code"] == "placement.undefined_code"
        assert error["request_id"] == headers["x-openstack-request-id"]
        assert headers["OpenStack-API-Version"] == "placement 1.29"

        status, headers, doc = await req("DELETE", "/resource_classes")
        assert status == 405
        assert "GET" in headers["Allow"] and "POST" in headers["Allow"]
        assert doc["errors"][0]["title"] == "Method Not Allowed"

        status, _, doc = await req("POST", "/resource_providers", data=b"{nope",
                                   headers={"Content-Type": "application/json"})
        assert status == 400
        assert doc["errors"][0]["detail"].startswith("Malformed JSON")

        status, _, doc = await req("POST", "/resource_providers", data=b'{"name": "x"}',
                                   headers={"Content-Type": "text/plain"})
        assert status == 415

        status, headers, doc = await req("GET", "/", headers={
            "OpenStack-API-Version": "placement 1.99"})
        assert status == 406
        assert doc["errors"][0]["max_version"] == "1.29"
        assert "OpenStack-API-Version" not in headers

        status, _, doc = await req("PUT", "/resource_providers/x/inventories",
                                   data=b"x" * 200,
                                   headers={"Content-Type": "application/json"})
        assert status == 413
        assert doc["errors"][0]["status"] == 413

        uuid = "8f1c1c7e-4a55-4c9b-9d2e-000000000002"
        await req("POST", "/resource_providers", {"name": "cn", "uuid": uuid})
        status, _, doc = await req("PUT", f"/resource_providers/{uuid}/inventories",
                                   {"resource_provider_generation": 7, "inventories": {}})
        assert status == 409
        assert doc["errors"][0]["code"] == "placement.concurrent_update"

    run(tmp_path, body, max_body_bytes=150)


def test_serve_runs_the_placement_service(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    config = load_config(None, {}, ["serve.services=placement", "placement.port=0",
                                    f"serve.state_dir={tmp_path}"])

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(serve(config, stop=stop))
        lines: list[str] = []
        while not lines:
            assert not task.done(), task.exception()
            await asyncio.sleep(0.01)
            lines += capsys.readouterr().out.splitlines()
        assert len(lines) == 1
        assert lines[0].startswith("nimbus: Placement API on http://127.0.0.1:")
        url = lines[0].split(" on ")[1]
        async with aiohttp.ClientSession() as session:
            async with session.get(url, headers=V) as resp:
                assert resp.status == 200
                assert (await resp.json())["versions"][0]["max_version"] == "1.29"
            async with session.post(url + "resource_providers", json={"name": "cn1"},
                                    headers=V) as resp:
                assert resp.status == 200
        stop.set()
        assert await asyncio.wait_for(task, 5) == 0

    asyncio.run(asyncio.wait_for(main(), 20))
