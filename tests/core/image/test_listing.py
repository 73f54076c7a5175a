"""``GET /v2/images``: filters, operators, sorting, pagination and bad queries."""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest

from .conftest import OTHER, Glance


def tick(glance: Glance, seconds: float = 10) -> None:
    """Let virtual time pass, so that images get distinct creation times."""
    glance.runtime.env.run(until=glance.runtime.env.now + seconds)


@pytest.fixture
def catalog(glance: Glance) -> dict[str, str]:
    """Five images of varied formats, sizes, tags and properties, a few seconds apart;
    their ids by name."""
    ids = {}
    specs: list[dict[str, Any]] = [
        {"name": "alpha", "disk_format": "qcow2", "tags": ["linux"], "os_distro": "ubuntu"},
        {"name": "beta", "disk_format": "raw", "tags": ["linux", "big"]},
        {"name": "gamma", "disk_format": "raw", "container_format": "ovf",
         "os_distro": "fedora", "protected": True},
        {"name": "delta", "disk_format": "iso", "os_hidden": True},
        {"name": "epsilon", "disk_format": "raw", "visibility": "private"},
    ]
    for n, spec in enumerate(specs):
        image = glance.create(**spec)
        ids[spec["name"]] = image["id"]
        if n < 3:
            assert glance.upload(image["id"], b"x" * (10 ** (n + 1))).status == 204
        tick(glance)
    return ids


def test_filters(glance: Glance, catalog: dict[str, str]) -> None:
    names = glance.names
    assert names() == ["epsilon", "gamma", "beta", "alpha"]  # newest first, hidden not
    assert names(name="beta") == ["beta"]
    assert names(name="eq:beta") == ["beta"]
    assert names(name="in:alpha,\"gamma\",nope") == ["gamma", "alpha"]
    assert names(status="active") == ["gamma", "beta", "alpha"]
    assert names(status="in:queued") == ["epsilon"]
    assert names(disk_format="raw") == ["epsilon", "gamma", "beta"]
    assert names(disk_format="in:qcow2,iso") == ["alpha"]
    assert names(container_format="ovf") == ["gamma"]
    assert names(tag="linux") == ["beta", "alpha"]
    assert names(tag=["linux", "big"]) == ["beta"]
    assert names(size_min="100") == ["gamma", "beta"]
    assert names(size_max="100") == ["beta", "alpha"]
    assert names(os_distro="ubuntu") == ["alpha"]
    assert names(os_hidden="true") == ["delta"]
    assert names(protected="true") == ["gamma"]
    assert names(protected="false") == ["epsilon", "beta", "alpha"]
    assert names(visibility="private") == ["epsilon"]
    assert names(owner="p-owner", name="alpha") == ["alpha"]
    assert names(owner=OTHER) == []
    both = f"in:{catalog['alpha']},{catalog['gamma']}"
    assert names(id=both) == ["gamma", "alpha"]
    assert names(id=catalog["beta"]) == ["beta"]
    assert names(checksum="nope") == []


def test_time_filters(glance: Glance, catalog: dict[str, str]) -> None:
    beta = glance.call("GET", f"/v2/images/{catalog['beta']}").body["created_at"]
    assert glance.names(created_at=f"gt:{beta}") == ["epsilon", "gamma"]
    assert glance.names(created_at=f"lte:{beta}") == ["beta", "alpha"]
    assert glance.names(created_at=beta) == ["beta"]
    assert glance.call("GET", "/v2/images", query={"created_at": "gt:yesterday"}
                       ).status == 400


def test_sorting(glance: Glance, catalog: dict[str, str]) -> None:
    assert glance.names(sort_key="name", sort_dir="asc") == [
        "alpha", "beta", "epsilon", "gamma"]
    assert glance.names(sort="name:desc") == ["gamma", "epsilon", "beta", "alpha"]
    assert glance.names(sort="disk_format:asc,name:desc") == [
        "alpha", "gamma", "epsilon", "beta"]
    assert glance.names(sort_key=["disk_format", "name"], sort_dir=["asc", "asc"]) == [
        "alpha", "beta", "epsilon", "gamma"]
    assert glance.names(sort_key="created_at", sort_dir="asc") == [
        "alpha", "beta", "gamma", "epsilon"]


def test_pagination(glance: Glance, catalog: dict[str, str]) -> None:
    seen: list[str] = []
    query: dict[str, Any] = {"limit": "2", "sort": "name:asc"}
    pages = 0
    while True:
        answer = glance.call("GET", "/v2/images", query=query)
        assert answer.status == 200
        seen += [i["name"] for i in answer.body["images"]]
        pages += 1
        assert answer.body["first"] == "/v2/images?limit=2&sort=name%3Aasc"
        if "next" not in answer.body:
            break
        url = urllib.parse.urlsplit(answer.body["next"])
        assert url.path == "/v2/images"
        query = dict(urllib.parse.parse_qsl(url.query))
    assert seen == ["alpha", "beta", "epsilon", "gamma"]
    assert pages == 3  # the second page is full, so a third (empty) one is asked for
    # a filter applied after the Store pages by hand, with the same links
    page = glance.call("GET", "/v2/images", query={"limit": "1", "status": "in:active,queued"})
    assert [i["name"] for i in page.body["images"]] == ["epsilon"]
    marker = urllib.parse.parse_qs(urllib.parse.urlsplit(page.body["next"]).query)["marker"]
    assert marker == [catalog["epsilon"]]
    rest = glance.names(status="in:active,queued", marker=marker[0])
    assert rest == ["gamma", "beta", "alpha"]
    assert glance.call("GET", "/v2/images").body.get("next") is None


def test_default_and_max_limits(glance: Glance) -> None:
    from nimbus.core.image.config import ImageConfig

    api = Glance(ImageConfig(limit_param_default=2, api_limit_max=3))
    for n in range(5):
        api.create(name=f"i{n}")
    assert len(api.call("GET", "/v2/images").body["images"]) == 2
    assert len(api.call("GET", "/v2/images", query={"limit": "50"}).body["images"]) == 3


@pytest.mark.parametrize(("query", "words"), [
    ({"limit": "x"}, "limit param must be an integer"),
    ({"limit": "-1"}, "limit param must be positive"),
    ({"sort_key": "owner"}, "Invalid sort key: owner"),
    ({"sort_dir": "up"}, "Invalid sort direction: up"),
    ({"sort": "name", "sort_key": "name"}, "cannot be combined"),
    ({"sort_key": ["name", "size"], "sort_dir": ["asc", "asc", "desc"]},
     "does not match the number of sort keys"),
    ({"visibility": "everyone"}, "Invalid visibility value: everyone"),
    ({"member_status": "maybe"}, "Invalid status: maybe"),
    ({"os_hidden": "perhaps"}, "Invalid value 'perhaps' for 'os_hidden' filter"),
    ({"size_min": "big"}, "non-numeric"),
    ({"changes-since": "2020-01-01T00:00:00Z"}, "no longer available"),
    ({"marker": "9f1d3c52-0b1e-4f7a-9d0e-3c2b1a4f5e6d"}, "No image found with ID"),
    ({"name": "in:\"open"}, "quotes"),
])
def test_bad_queries_are_400(glance: Glance, query: dict[str, Any], words: str) -> None:
    answer = glance.call("GET", "/v2/images", query=query)
    assert answer.status == 400, answer.body
    assert words in answer.message
