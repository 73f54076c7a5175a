"""The root API handlers and the sans-IO HTTP types, called as plain functions."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

import pytest

from nimbus.core.api import root
from nimbus.core.api.http import (
    UNEXPECTED_ERROR,
    ApiContext,
    Request,
    Response,
    error_response,
    fault,
    fault_name,
)
from nimbus.core.api.routes import ROUTES
from nimbus.core.api.versions import MAX_MICROVERSION
from nimbus.core.errors import ApiError, ConfigError, NoValidHost, RpcTimeout
from nimbus.core.metrics import CONTENT_TYPE, Metrics
from nimbus.sim.runtime import SimRuntime


def call(coro: Coroutine[Any, Any, Response]) -> Response:
    """Drive a handler that never waits: one step, no event loop, no sockets."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise AssertionError("the handler waited on something")


def make_ctx(base_url: str = "") -> ApiContext:
    return ApiContext(SimRuntime(seed=1), Metrics(), base_url)


def test_versions_document_has_nova_shape() -> None:
    resp = call(root.list_versions(make_ctx("http://cloud:8774"), Request("GET", "/")))
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert resp.body == {
        "versions": [
            {
                "id": "v2.0",
                "links": [{"href": "http://cloud:8774/v2/", "rel": "self"}],
                "status": "SUPPORTED",
                "version": "",
                "min_version": "",
                "updated": "2011-01-21T11:33:21Z",
            },
            {
                "id": "v2.1",
                "links": [{"href": "http://cloud:8774/v2.1/", "rel": "self"}],
                "status": "CURRENT",
                "version": MAX_MICROVERSION,
                "min_version": "2.1",
                "updated": "2013-07-23T11:33:21Z",
            },
        ]
    }


def test_versions_links_follow_host_header_without_a_base_url() -> None:
    req = Request("GET", "/", headers={"host": "10.0.0.5:9000"})
    resp = call(root.list_versions(make_ctx(), req))
    links = [v["links"][0]["href"] for v in resp.body["versions"]]
    assert links == ["http://10.0.0.5:9000/v2/", "http://10.0.0.5:9000/v2.1/"]


def test_configured_base_url_wins_and_loses_its_trailing_slash() -> None:
    req = Request("GET", "/", headers={"host": "ignored"})
    resp = call(root.list_versions(make_ctx("https://api.example/"), req))
    assert resp.body["versions"][1]["links"][0]["href"] == "https://api.example/v2.1/"


def test_healthz() -> None:
    resp = call(root.healthz(make_ctx(), Request("GET", "/healthz")))
    assert (resp.status, resp.body) == (200, {"status": "ok"})
    assert resp.encoded() == b'{"status":"ok"}'


def test_metrics_is_prometheus_text() -> None:
    ctx = make_ctx()
    ctx.metrics.http_requests.labels("GET", "/", "200").inc()
    resp = call(root.metrics(ctx, Request("GET", "/metrics")))
    assert resp.status == 200
    assert resp.content_type == CONTENT_TYPE
    text = resp.encoded().decode()
    assert 'nimbus_http_requests_total{method="GET",route="/",status="200"} 1.0' in text


def test_routes_are_data_with_documented_handlers() -> None:
    table = {(r.method, r.path): r for r in ROUTES}
    assert set(table) == {("GET", "/"), ("GET", "/healthz"), ("GET", "/metrics")}
    for route in ROUTES:
        assert route.name
        assert route.handler.__doc__


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (400, "badRequest"),
        (401, "unauthorized"),
        (403, "forbidden"),
        (404, "itemNotFound"),
        (405, "badMethod"),
        (409, "conflictingRequest"),
        (413, "overLimit"),
        (415, "badMediaType"),
        (429, "overLimit"),
        (500, "computeFault"),
        (501, "notImplemented"),
        (503, "serviceUnavailable"),
        (504, "computeFault"),
    ],
)
def test_fault_names_are_novas(status: int, name: str) -> None:
    assert fault_name(status) == name
    resp = fault(status, "why")
    assert resp.status == status
    assert resp.body == {name: {"code": status, "message": "why"}}


def test_error_response_uses_the_error_status_and_message() -> None:
    assert error_response(ApiError(404, "Server x could not be found.")).body == {
        "itemNotFound": {"code": 404, "message": "Server x could not be found."}
    }
    assert error_response(NoValidHost("no host")).body == {
        "badRequest": {"code": 400, "message": "no host"}
    }
    assert error_response(RpcTimeout("slow")).status == 504
    assert error_response(ConfigError("bad")).status == 500


def test_unexpected_errors_reveal_nothing() -> None:
    resp = error_response(RuntimeError("secret path /etc/x"))
    assert resp.body == {"computeFault": {"code": 500, "message": UNEXPECTED_ERROR}}


def test_request_helpers() -> None:
    req = Request(
        "POST",
        "/v2.1/servers",
        query={"name": ["a", "b"]},
        headers={"x-auth-token": "t"},
        body=b'{"server": {"name": "vm"}}',
    )
    assert req.json() == {"server": {"name": "vm"}}
    assert req.header("X-Auth-Token") == "t"
    assert req.header("missing", "d") == "d"
    assert req.query_one("name") == "b"
    assert req.query_one("other") is None


@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff"])
def test_malformed_json_is_a_400(body: bytes) -> None:
    with pytest.raises(ApiError) as err:
        Request("POST", "/", body=body).json()
    assert err.value.status == 400
    assert err.value.message == "Malformed request body"


def test_response_encodings() -> None:
    assert Response(200, b"raw").encoded() == b"raw"
    assert Response(200, "text").encoded() == b"text"
    assert Response(204).encoded() == b""
    assert Response(200, [1, "a"]).encoded() == b'[1,"a"]'
