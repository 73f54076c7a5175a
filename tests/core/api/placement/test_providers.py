"""``/resource_providers``: create, list with filters, show, rename, delete."""

from __future__ import annotations

import pytest

from .conftest import Placement


def test_create_answers_the_provider_from_1_20(placement: Placement) -> None:
    answer = placement.call("POST", "/resource_providers", {"name": "cn1"})
    assert answer.status == 200
    uuid = answer.body["uuid"]
    assert answer.headers["Location"] == f"/resource_providers/{uuid}"
    assert answer.body["generation"] == 0
    assert answer.body["root_provider_uuid"] == uuid
    assert answer.body["parent_provider_uuid"] is None


def test_create_answers_201_without_a_body_before_1_20(placement: Placement) -> None:
    uuid = "9a3c1f2e-6bd4-4c1e-8f55-1c2d3e4f5a6b"
    answer = placement.call("POST", "/resource_providers", {"name": "cn1", "uuid": uuid},
                            version="1.19")
    assert answer.status == 201
    assert answer.body is None
    assert answer.headers["Location"] == f"/resource_providers/{uuid}"


def test_a_uuid_without_dashes_is_normalized(placement: Placement) -> None:
    answer = placement.call("POST", "/resource_providers",
                            {"name": "cn1", "uuid": "9A3C1F2E6BD44C1E8F551C2D3E4F5A6B"})
    assert answer.body["uuid"] == "9a3c1f2e-6bd4-4c1e-8f55-1c2d3e4f5a6b"


def test_links_grow_with_the_microversion(placement: Placement) -> None:
    uuid = placement.provider("cn1")
    rels = {v: [link["rel"] for link in
                placement.call("GET", f"/resource_providers/{uuid}", version=v).body["links"]]
            for v in ("1.0", "1.6", "1.29")}
    assert rels["1.0"] == ["self", "inventories", "usages"]
    assert rels["1.6"] == ["self", "inventories", "usages", "aggregates", "traits"]
    assert rels["1.29"][-1] == "allocations"
    old = placement.call("GET", f"/resource_providers/{uuid}", version="1.13").body
    assert "root_provider_uuid" not in old


@pytest.mark.parametrize("body", [{"name": "cn1"}, {"name": "other", "uuid": "UUID"}])
def test_duplicates_are_409_duplicate_name(placement: Placement, body: dict[str, str]) -> None:
    first = placement.call("POST", "/resource_providers", {"name": "cn1"})
    body = {k: first.body["uuid"] if v == "UUID" else v for k, v in body.items()}
    again = placement.call("POST", "/resource_providers", body)
    assert again.status == 409
    assert again.error["code"] == "placement.duplicate_name"
    assert "already exists" in again.error["detail"]


@pytest.mark.parametrize(("raw", "detail"), [
    (b"{not json", "Malformed JSON"),
    (b'{"uuid": "9a3c1f2e-6bd4-4c1e-8f55-1c2d3e4f5a6b"}', "'name' is a required property"),
    (b'{"name": 5}', "5 is not of type 'string'"),
    (b'{"name": "cn1", "flavor": "big"}', "Additional properties are not allowed"),
    (b'{"name": "cn1", "uuid": "not-a-uuid"}', "is not a 'uuid'"),
    (b'{"name": "' + b"x" * 201 + b'"}', "is too long"),
    (b"[]", "is not of type 'object'"),
])
def test_bad_bodies_are_400_in_placement_format(placement: Placement, raw: bytes,
                                                detail: str) -> None:
    answer = placement.call("POST", "/resource_providers", raw=raw)
    assert answer.status == 400
    error = answer.error
    assert error["title"] == "Bad Request"
    assert error["code"] == "placement.undefined_code"
    assert detail in error["detail"]


def test_parent_provider_needs_1_14_and_an_existing_parent(placement: Placement) -> None:
    root = placement.provider("root")
    child = placement.call("POST", "/resource_providers",
                           {"name": "child", "parent_provider_uuid": root}).body
    assert child["parent_provider_uuid"] == root
    assert child["root_provider_uuid"] == root
    too_old = placement.call("POST", "/resource_providers",
                             {"name": "c2", "parent_provider_uuid": root}, version="1.13")
    assert too_old.status == 400
    orphan = placement.call("POST", "/resource_providers",
                            {"name": "c3", "parent_provider_uuid": placement.new_id()})
    assert orphan.status == 400
    assert "does not exist" in orphan.error["detail"]


def test_show_unknown_provider_is_404(placement: Placement) -> None:
    answer = placement.call("GET", f"/resource_providers/{placement.new_id()}")
    assert answer.status == 404
    assert answer.error["title"] == "Not Found"


def test_list_filters(placement: Placement) -> None:
    agg1, agg2 = placement.new_id(), placement.new_id()
    a = placement.provider("a", VCPU=8, MEMORY_MB=1024)
    b = placement.provider("b", VCPU=2)
    c = placement.provider("c", parent=a)
    for uuid, aggs in ((a, [agg1]), (b, [agg1, agg2])):
        gen = placement.generation(uuid)
        assert placement.call("PUT", f"/resource_providers/{uuid}/aggregates", {
            "aggregates": aggs, "resource_provider_generation": gen}).status == 200
    placement.call("PUT", "/traits/CUSTOM_GOLD")
    placement.call("PUT", f"/resource_providers/{b}/traits", {
        "traits": ["CUSTOM_GOLD"], "resource_provider_generation": placement.generation(b)})

    def names(**query: str | list[str]) -> list[str]:
        answer = placement.call("GET", "/resource_providers", query=query)
        assert answer.status == 200, answer.body
        return [rp["name"] for rp in answer.body["resource_providers"]]

    assert names() == ["a", "b", "c"]
    assert names(name="b") == ["b"]
    assert names(uuid=c) == ["c"]
    assert names(member_of=agg2) == ["b"]
    assert names(member_of=f"in:{agg1},{agg2}") == ["a", "b"]
    assert names(member_of=[agg1, agg2]) == ["b"]
    assert names(in_tree=c) == ["a", "c"]
    assert names(required="CUSTOM_GOLD") == ["b"]
    assert names(required="!CUSTOM_GOLD") == ["a", "c"]
    assert names(resources="VCPU:4") == ["a"]
    assert names(resources="VCPU:1,MEMORY_MB:512") == ["a"]


@pytest.mark.parametrize(("version", "query", "detail"), [
    ("1.29", {"resources": "VCPU"}, "Badly formed resources"),
    ("1.29", {"resources": "VCPU:0"}, "at least 1"),
    ("1.29", {"resources": "CUSTOM_NOPE:1"}, "Invalid resource class"),
    ("1.29", {"required": "CUSTOM_NOPE"}, "Invalid trait"),
    ("1.29", {"required": "HW_CPU_X86_AVX,"}, "empty trait"),
    ("1.21", {"required": "!HW_CPU_X86_AVX"}, "Invalid query string"),
    ("1.17", {"required": "HW_CPU_X86_AVX"}, "Invalid query string parameters"),
    ("1.29", {"member_of": "not-a-uuid"}, "aggregate UUIDs"),
    ("1.29", {"member_of": "!9a3c1f2e-6bd4-4c1e-8f55-1c2d3e4f5a6b"}, "Forbidden member_of"),
    ("1.23", {"member_of": ["9a3c1f2e-6bd4-4c1e-8f55-1c2d3e4f5a6b"] * 2}, "Multiple member_of"),
    ("1.29", {"in_tree": "x"}, "is not a 'uuid'"),
    ("1.29", {"colour": "red"}, "Additional properties are not allowed"),
])
def test_bad_filters_are_400(placement: Placement, version: str,
                             query: dict[str, str | list[str]], detail: str) -> None:
    answer = placement.call("GET", "/resource_providers", query=query, version=version)
    assert answer.status == 400, answer.body
    assert detail in answer.error["detail"]


def test_rename_and_its_conflicts(placement: Placement) -> None:
    a = placement.provider("a")
    placement.provider("b")
    renamed = placement.call("PUT", f"/resource_providers/{a}", {"name": "a2"})
    assert renamed.status == 200
    assert renamed.body["name"] == "a2"
    clash = placement.call("PUT", f"/resource_providers/{a}", {"name": "b"})
    assert clash.status == 409
    assert clash.error["code"] == "placement.duplicate_name"
    assert placement.call("PUT", f"/resource_providers/{placement.new_id()}",
                          {"name": "z"}).status == 404
    assert placement.call("PUT", f"/resource_providers/{a}", {"name": "a3", "uuid": a}
                          ).status == 400


def test_the_parent_cannot_change_before_1_37(placement: Placement) -> None:
    a, b = placement.provider("a"), placement.provider("b")
    child = placement.provider("child", parent=a)
    same = placement.call("PUT", f"/resource_providers/{child}",
                          {"name": "child", "parent_provider_uuid": a})
    assert same.status == 200
    for parent in (b, None):
        moved = placement.call("PUT", f"/resource_providers/{child}",
                               {"name": "child", "parent_provider_uuid": parent})
        assert moved.status == 400
        assert "parenting" in moved.error["detail"]


def test_delete(placement: Placement) -> None:
    uuid = placement.provider("cn1", VCPU=4)
    assert placement.call("DELETE", f"/resource_providers/{uuid}").status == 204
    again = placement.call("DELETE", f"/resource_providers/{uuid}")
    assert again.status == 404


def test_delete_refuses_providers_in_use_and_parents(placement: Placement) -> None:
    used = placement.provider("used", VCPU=4)
    placement.allocate(placement.new_id(), {used: {"VCPU": 1}})
    busy = placement.call("DELETE", f"/resource_providers/{used}")
    assert busy.status == 409
    assert busy.error["code"] == "placement.resource_provider.inuse"
    parent = placement.provider("parent")
    placement.provider("child", parent=parent)
    proud = placement.call("DELETE", f"/resource_providers/{parent}")
    assert proud.status == 409
    assert proud.error["code"] == "placement.resource_provider.cannot_delete_parent"
