"""The aiohttp adapter, on a real server on a free port of 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from nimbus.core.api.http import ApiContext, Request, Response, Route
from nimbus.core.api.routes import ROUTES
from nimbus.core.errors import ApiError
from nimbus.core.metrics import CONTENT_TYPE, Metrics
from nimbus.http import ListenError, bound_port, build_app, start_http
from nimbus.runtime import AsyncioRuntime

pytestmark = pytest.mark.timeout(20)


async def echo(ctx: ApiContext, req: Request) -> Response:
    """Answer with what the adapter made of the request."""
    return Response(
        201,
        {
            "method": req.method,
            "path": req.path,
            "params": dict(req.path_params),
            "query": dict(req.query),
            "token": req.header("x-auth-token"),
            "upper_headers": [h for h in req.headers if h != h.lower()],
            "body": req.json() if req.body else None,
        },
        headers={"X-Compute-Request-Id": "req-1"},
    )


async def boom(ctx: ApiContext, req: Request) -> Response:
    """Fail as a bug would."""
    raise RuntimeError("bug")


async def conflict(ctx: ApiContext, req: Request) -> Response:
    """Fail on purpose."""
    raise ApiError(409, "Cannot 'reboot' instance while it is in task_state deleting")


async def text(ctx: ApiContext, req: Request) -> Response:
    """Answer plain text."""
    return Response(200, "hello", "text/plain")


TEST_ROUTES = (
    *ROUTES,
    Route("POST", "/v2.1/servers/{server_id}/action", echo, "server-action"),
    Route("GET", "/boom", boom, "boom"),
    Route("POST", "/conflict", conflict, "conflict"),
    Route("GET", "/text", text, "text"),
)

Client = Callable[..., Awaitable[tuple[int, dict[str, str], Any]]]


@asynccontextmanager
async def serving(max_body_bytes: int = 1000) -> AsyncIterator[tuple[Client, ApiContext]]:
    ctx = ApiContext(AsyncioRuntime(seed=1), Metrics())
    app = build_app(ctx, TEST_ROUTES, max_body_bytes=max_body_bytes)
    runner = await start_http(app, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{bound_port(runner)}"
    try:
        async with aiohttp.ClientSession() as session:

            async def request(method: str, path: str, **kw: Any) -> tuple[int, dict[str, str], Any]:
                async with session.request(method, base + path, **kw) as resp:
                    raw = await resp.read()
                    ctype = resp.headers.get("Content-Type", "")
                    body: Any = await resp.json() if ctype == "application/json" else raw
                    return resp.status, dict(resp.headers), body

            yield request, ctx
    finally:
        await runner.cleanup()


def run(test: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(test(), 10)

    asyncio.run(bounded())


def test_root_healthz_and_metrics() -> None:
    async def body() -> None:
        async with serving() as (get, _ctx):
            status, headers, doc = await get("GET", "/")
            assert status == 200
            assert headers["Content-Type"] == "application/json"
            assert [v["id"] for v in doc["versions"]] == ["v2.0", "v2.1"]
            assert doc["versions"][1]["links"][0]["href"].startswith("http://127.0.0.1:")
            assert doc["versions"][1]["links"][0]["href"].endswith("/v2.1/")

            assert (await get("GET", "/healthz"))[::2] == (200, {"status": "ok"})
            await get("GET", "/nowhere")

            status, headers, metrics = await get("GET", "/metrics")
            assert status == 200
            assert headers["Content-Type"] == CONTENT_TYPE
            text = metrics.decode()
            assert 'nimbus_http_requests_total{method="GET",route="/",status="200"} 1.0' in text
            assert (
                'nimbus_http_requests_total{method="GET",route="/healthz",status="200"} 1.0'
                in text
            )
            assert (
                'nimbus_http_requests_total{method="GET",route="unmatched",status="404"} 1.0'
                in text
            )
            assert 'nimbus_http_request_seconds_bucket{le="0.1",method="GET",route="/"}' in text
            assert 'nimbus_http_request_seconds_count{method="GET",route="/healthz"} 1.0' in text

    run(body)


def test_request_translation_and_response_headers() -> None:
    async def body() -> None:
        async with serving() as (req, ctx):
            status, headers, got = await req(
                "POST",
                "/v2.1/servers/abc/action?a=1&a=2&b=x",
                json={"reboot": {"type": "SOFT"}},
                headers={"X-Auth-Token": "tok"},
            )
            assert status == 201
            assert headers["X-Compute-Request-Id"] == "req-1"
            assert got == {
                "method": "POST",
                "path": "/v2.1/servers/abc/action",
                "params": {"server_id": "abc"},
                "query": {"a": ["1", "2"], "b": ["x"]},
                "token": "tok",
                "upper_headers": [],
                "body": {"reboot": {"type": "SOFT"}},
            }
            text = ctx.metrics.render().decode()
            # labelled by template, not by the concrete path
            assert 'route="/v2.1/servers/{server_id}/action",status="201"' in text

            status, headers, raw = await req("GET", "/text")
            assert (status, raw) == (200, b"hello")
            assert headers["Content-Type"].startswith("text/plain")

    run(body)


def test_nova_faults_for_404_405_and_409() -> None:
    async def body() -> None:
        async with serving() as (req, _ctx):
            status, _, doc = await req("GET", "/v2.1/nothing")
            assert status == 404
            assert doc == {
                "itemNotFound": {"code": 404, "message": "The resource could not be found."}
            }

            status, headers, doc = await req("DELETE", "/healthz")
            assert status == 405
            assert doc["badMethod"]["code"] == 405
            assert "DELETE" in doc["badMethod"]["message"]
            assert "GET" in headers["Allow"]

            status, _, doc = await req("POST", "/conflict")
            assert status == 409
            assert doc == {
                "conflictingRequest": {
                    "code": 409,
                    "message": "Cannot 'reboot' instance while it is in task_state deleting",
                }
            }

            status, _, doc = await req("POST", "/v2.1/servers/x/action", data=b"{not json")
            assert status == 400
            assert doc == {"badRequest": {"code": 400, "message": "Malformed request body"}}

            assert (await req("HEAD", "/healthz"))[0] == 200

    run(body)


def test_body_over_the_limit_is_413() -> None:
    async def body() -> None:
        async with serving(max_body_bytes=100) as (req, _ctx):
            status, _, doc = await req("POST", "/v2.1/servers/x/action", data=b"x" * 101)
            assert status == 413
            assert doc == {"overLimit": {"code": 413, "message": "Request is too large."}}

            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(10):
                    yield b"y" * 50

            status, _, doc = await req("POST", "/v2.1/servers/x/action", data=chunks())
            assert status == 413
            assert doc["overLimit"]["code"] == 413

            status, _, _ = await req("POST", "/v2.1/servers/x/action", json={"a": "b" * 50})
            assert status == 201

    run(body)


def test_a_bug_is_a_500_and_the_server_keeps_serving(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        async with serving() as (req, ctx):
            for _ in range(2):
                status, _, doc = await req("GET", "/boom")
                assert status == 500
                assert list(doc) == ["computeFault"]
                assert doc["computeFault"]["code"] == 500
                assert "bug" not in doc["computeFault"]["message"]
            assert (await req("GET", "/healthz"))[0] == 200
            text = ctx.metrics.render().decode()
            assert 'nimbus_http_requests_total{method="GET",route="/boom",status="500"} 2.0' in text

    run(body)
    failures = [r for r in caplog.records if r.name == "nimbus.http" and r.exc_info]
    assert len(failures) == 2
    assert "RuntimeError: bug" in caplog.text


def test_port_in_use_is_a_one_line_listen_error() -> None:
    async def body() -> None:
        with socket.socket() as held:
            held.bind(("127.0.0.1", 0))
            held.listen()
            port = held.getsockname()[1]
            app = build_app(ApiContext(AsyncioRuntime(seed=1), Metrics()), ROUTES)
            with pytest.raises(ListenError) as err:
                await start_http(app, "127.0.0.1", port)
            assert str(err.value) == f"cannot listen on 127.0.0.1:{port}: address already in use"

    run(body)
