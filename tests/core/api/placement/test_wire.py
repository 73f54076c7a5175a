"""Microversion negotiation, the headers every answer carries, and Placement's error format."""

from __future__ import annotations

import pytest

from nimbus.core.api.http import ApiContext, Request, Response
from nimbus.core.api.placement import microversion
from nimbus.core.api.placement.errors import error_body
from nimbus.core.api.placement.wire import (
    PlacementRequest,
    accepts_json,
    format_error,
    json_response,
    route,
)

from .conftest import LATEST, Placement, drive


def test_root_is_the_version_document(placement: Placement) -> None:
    answer = placement.call("GET", "/", version=None)
    assert answer.status == 200
    assert answer.body == {"versions": [{
        "id": "v1.0", "max_version": LATEST, "min_version": "1.0", "status": "CURRENT",
        "links": [{"rel": "self", "href": ""}]}]}
    assert answer.headers["OpenStack-API-Version"] == "placement 1.0"
    assert answer.headers["Vary"] == "openstack-api-version"


@pytest.mark.parametrize(("header", "served"), [
    (None, "1.0"),
    ("placement 1.29", "1.29"),
    ("placement latest", LATEST),
    ("placement 1.14", "1.14"),
    ("compute 2.1, placement 1.17", "1.17"),
    ("placement 1.6, compute 2.60", "1.6"),
    ("compute 2.60", "1.0"),
    ("PLACEMENT 1.010", "1.10"),
])
def test_the_answer_says_which_version_served_it(placement: Placement, header: str | None,
                                                 served: str) -> None:
    headers = {"OpenStack-API-Version": header} if header else {}
    answer = placement.call("GET", "/resource_providers", version=None, headers=headers)
    assert answer.status == 200
    assert answer.headers["OpenStack-API-Version"] == f"placement {served}"


@pytest.mark.parametrize("version", ["1.30", "1.39", "2.0", "0.9", "1.-1"])
def test_a_version_out_of_range_is_406_with_the_range(placement: Placement,
                                                      version: str) -> None:
    answer = placement.call("GET", "/resource_providers", version=version)
    assert answer.status == 406
    error = answer.error
    assert error["status"] == 406
    assert error["title"] == "Not Acceptable"
    assert error["max_version"] == LATEST
    assert error["min_version"] == "1.0"
    assert error["request_id"] == answer.headers["x-openstack-request-id"]
    assert error["request_id"].startswith("req-")
    assert "code" not in error  # no version was negotiated, so no code either


@pytest.mark.parametrize("version", ["one", "1", "1.x", "latest1"])
def test_a_malformed_version_is_400(placement: Placement, version: str) -> None:
    answer = placement.call("GET", "/resource_providers", version=version)
    assert answer.status == 400
    assert "Invalid microversion" in answer.error["detail"]


def test_osc_placement_fallback_reads_max_version_of_the_406(placement: Placement) -> None:
    """osc-placement sends its own maximum and falls back to the 406's ``max_version``."""
    answer = placement.call("GET", "/", version="1.39")
    assert answer.status == 406
    assert answer.body["errors"][0]["max_version"] == LATEST


def test_error_code_appears_from_1_23(placement: Placement) -> None:
    missing = "/resource_providers/" + placement.new_id()
    old = placement.call("GET", missing, version="1.22")
    new = placement.call("GET", missing, version="1.23")
    assert old.status == new.status == 404
    assert "code" not in old.error
    assert new.error["code"] == "placement.undefined_code"
    assert set(new.error) == {"status", "title", "detail", "code", "request_id"}


def test_routes_below_their_first_version(placement: Placement) -> None:
    assert placement.call("GET", "/traits", version="1.5").status == 404
    assert placement.call("GET", "/traits", version="1.6").status == 200
    assert placement.call("GET", "/allocation_candidates", version="1.9",
                          query={"resources": "VCPU:1"}).status == 404
    assert placement.call("GET", "/usages", version="1.8",
                          query={"project_id": "p"}).status == 404
    uuid = placement.provider("cn1")
    gone = placement.call("DELETE", f"/resource_providers/{uuid}/inventories", version="1.4")
    assert gone.status == 405
    assert gone.error["status"] == 405


def test_accept_must_allow_json(placement: Placement) -> None:
    html = placement.call("GET", "/resource_providers", headers={"Accept": "text/html"})
    assert html.status == 406
    assert html.error["detail"] == "Only application/json is provided"
    for accept in ("application/json", "*/*", "text/html, application/*;q=0.5", ""):
        assert placement.call("GET", "/resource_providers",
                              headers={"Accept": accept}).status == 200
    assert not accepts_json("application/json;q=0")
    assert accepts_json("text/plain;q=0.9, application/json")


def test_bodies_need_a_json_content_type(placement: Placement) -> None:
    text = placement.call("POST", "/resource_providers", raw=b'{"name": "x"}',
                          headers={"Content-Type": "text/plain"})
    assert text.status == 415
    assert "text/plain" in text.error["detail"]
    none = placement.call("POST", "/resource_providers", raw=b'{"name": "x"}',
                          headers={"Content-Type": ""})
    assert none.status == 400
    charset = placement.call("POST", "/resource_providers", raw=b'{"name": "x"}',
                             headers={"Content-Type": "application/json; charset=UTF-8"})
    assert charset.status == 200


def test_last_modified_and_cache_control_from_1_15(placement: Placement) -> None:
    old = placement.call("GET", "/resource_providers", version="1.14")
    new = placement.call("GET", "/resource_providers", version="1.15")
    assert "Last-Modified" not in old.headers
    assert new.headers["Cache-Control"] == "no-cache"
    assert new.headers["Last-Modified"].endswith(" GMT")


def test_request_ids_differ_per_request(placement: Placement) -> None:
    ids = {placement.call("GET", "/").headers["x-openstack-request-id"] for _ in range(3)}
    assert len(ids) == 3


def test_the_token_is_read_but_not_required(placement: Placement) -> None:
    seen: list[str | None] = []

    async def echo(ctx: ApiContext, preq: PlacementRequest) -> Response:
        seen.append(preq.token)
        return json_response({})

    handler = route("GET", "/echo", echo).handler
    drive(handler(placement.ctx, Request("GET", "/echo", headers={"x-auth-token": "t0k"})))
    drive(handler(placement.ctx, Request("GET", "/echo")))
    assert seen == ["t0k", None]


def test_errors_outside_handlers_use_placement_format(placement: Placement) -> None:
    req = Request("GET", "/nope", headers={"openstack-api-version": "placement 1.29"})
    resp = format_error(placement.ctx, req, 404, "The resource could not be found.")
    assert resp.status == 404
    assert resp.body["errors"][0]["code"] == "placement.undefined_code"
    assert resp.headers["OpenStack-API-Version"] == "placement 1.29"
    unversioned = format_error(placement.ctx, Request("GET", "/x"), 405, "no")
    assert "code" not in unversioned.body["errors"][0]


def test_error_body_shape() -> None:
    body = error_body(409, "taken", code="placement.duplicate_name", request_id="req-1",
                      version=microversion.Version(1, 29))
    assert body == {"errors": [{"status": 409, "title": "Conflict", "detail": "taken",
                                "code": "placement.duplicate_name", "request_id": "req-1"}]}
