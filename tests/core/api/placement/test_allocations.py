"""Allocations per consumer, per provider, several at once, and usages per project."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Placement


def test_claim_read_replace_release(placement: Placement) -> None:
    rp = placement.provider("cn1", VCPU=8, MEMORY_MB=4096)
    consumer = placement.new_id()
    assert placement.allocate(consumer, {rp: {"VCPU": 2, "MEMORY_MB": 512}}).status == 204
    got = placement.call("GET", f"/allocations/{consumer}").body
    assert got == {"allocations": {rp: {"generation": placement.generation(rp),
                                        "resources": {"VCPU": 2, "MEMORY_MB": 512}}},
                   "project_id": "proj", "user_id": "user", "consumer_generation": 1}
    stale = placement.allocate(consumer, {rp: {"VCPU": 4}}, generation=None)
    assert stale.status == 409
    assert stale.error["code"] == "placement.concurrent_update"
    assert placement.allocate(consumer, {rp: {"VCPU": 4}}, generation=1).status == 204
    released = placement.call("PUT", f"/allocations/{consumer}", {
        "allocations": {}, "project_id": "proj", "user_id": "user",
        "consumer_generation": 2})
    assert released.status == 204
    assert placement.call("GET", f"/allocations/{consumer}").body == {"allocations": {}}


def test_body_forms_by_microversion(placement: Placement) -> None:
    rp = placement.provider("cn1", VCPU=8)
    consumer = placement.new_id()
    listed = {"allocations": [{"resource_provider": {"uuid": rp}, "resources": {"VCPU": 1}}]}
    assert placement.call("PUT", f"/allocations/{consumer}", listed,
                          version="1.0").status == 204
    old = placement.call("GET", f"/allocations/{consumer}", version="1.11").body
    assert old == {"allocations": {rp: {"generation": placement.generation(rp),
                                        "resources": {"VCPU": 1}}}}
    incomplete = placement.call("GET", f"/allocations/{consumer}", version="1.12").body
    assert incomplete["project_id"] == "00000000-0000-0000-0000-000000000000"
    assert "consumer_generation" not in incomplete
    # project and user are required from 1.8; no generation is needed before 1.28
    assert placement.call("PUT", f"/allocations/{consumer}", listed,
                          version="1.8").status == 400
    assert placement.call("PUT", f"/allocations/{consumer}",
                          {**listed, "project_id": "p", "user_id": "u"},
                          version="1.8").status == 204
    as_dict = {"allocations": {rp: {"resources": {"VCPU": 3}}}, "project_id": "p",
               "user_id": "u"}
    assert placement.call("PUT", f"/allocations/{consumer}", as_dict,
                          version="1.12").status == 204
    assert placement.call("PUT", f"/allocations/{consumer}", as_dict,
                          version="1.28").status == 400  # consumer_generation missing
    assert placement.call("GET", f"/resource_providers/{rp}/usages").body["usages"] == {
        "VCPU": 3}


@pytest.mark.parametrize(("body", "detail"), [
    ({"allocations": {"RP": {"resources": {"VCPU": 0}}}}, "less than the minimum"),
    ({"allocations": {"RP": {"resources": {}}}}, "should be non-empty"),
    ({"allocations": {"RP": {"resources": {"VCPU": "1"}}}}, "is not of type 'integer'"),
    ({"allocations": {"RP": {"resources": {"VCPU": 1}, "extra": 1}}},
     "Additional properties are not allowed"),
    ({"allocations": {"RP": {"resources": {"VCPU": 1}}}, "colour": "red"},
     "Additional properties are not allowed"),
    ({"allocations": {"not-a-uuid": {"resources": {"VCPU": 1}}}}, "does not match any"),
    ({"allocations": [], "consumer_generation": None}, "is not of type 'object'"),
])
def test_bad_allocation_bodies_are_400(placement: Placement, body: dict[str, Any],
                                       detail: str) -> None:
    rp = placement.provider("cn1", VCPU=8)
    full = {"project_id": "p", "user_id": "u", "consumer_generation": None, **body}
    if isinstance(full["allocations"], dict):
        full["allocations"] = {rp if k == "RP" else k: v for k, v in full["allocations"].items()}
    answer = placement.call("PUT", f"/allocations/{placement.new_id()}", full)
    assert answer.status == 400, answer.body
    assert detail in answer.error["detail"]


def test_claim_refusals(placement: Placement) -> None:
    rp = placement.provider("cn1", VCPU=2)
    over = placement.allocate(placement.new_id(), {rp: {"VCPU": 3}})
    assert over.status == 409
    assert over.error["code"] == "placement.undefined_code"
    no_class = placement.allocate(placement.new_id(), {rp: {"DISK_GB": 1}})
    assert no_class.status == 409
    unknown_rp = placement.allocate(placement.new_id(), {placement.new_id(): {"VCPU": 1}})
    assert unknown_rp.status == 400
    bad_consumer = placement.call("PUT", "/allocations/not-a-uuid", {
        "allocations": {}, "project_id": "p", "user_id": "u", "consumer_generation": None})
    assert bad_consumer.status == 400
    assert "Malformed consumer_uuid" in bad_consumer.error["detail"]


def test_delete(placement: Placement) -> None:
    rp = placement.provider("cn1", VCPU=2)
    consumer = placement.new_id()
    placement.allocate(consumer, {rp: {"VCPU": 1}})
    assert placement.call("DELETE", f"/allocations/{consumer}").status == 204
    missing = placement.call("DELETE", f"/allocations/{consumer}")
    assert missing.status == 404


def test_provider_allocations(placement: Placement) -> None:
    rp = placement.provider("cn1", VCPU=8)
    a, b = placement.new_id(), placement.new_id()
    placement.allocate(a, {rp: {"VCPU": 1}})
    placement.allocate(b, {rp: {"VCPU": 2}})
    body = placement.call("GET", f"/resource_providers/{rp}/allocations").body
    assert body == {"resource_provider_generation": placement.generation(rp), "allocations": {
        a: {"resources": {"VCPU": 1}, "consumer_generation": 1},
        b: {"resources": {"VCPU": 2}, "consumer_generation": 1}}}
    old = placement.call("GET", f"/resource_providers/{rp}/allocations", version="1.27").body
    assert old["allocations"][a] == {"resources": {"VCPU": 1}}
    assert placement.call("GET", f"/resource_providers/{placement.new_id()}/allocations"
                          ).status == 404


def _post_part(allocations: dict[str, dict[str, int]], generation: int | None) -> dict[str, Any]:
    return {"allocations": {rp: {"resources": res} for rp, res in allocations.items()},
            "project_id": "proj", "user_id": "user", "consumer_generation": generation}


def test_post_moves_allocations_between_consumers(placement: Placement) -> None:
    rp = placement.provider("cn1", VCPU=4)
    instance, migration = placement.new_id(), placement.new_id()
    placement.allocate(instance, {rp: {"VCPU": 4}})
    moved = placement.call("POST", "/allocations", {
        migration: _post_part({rp: {"VCPU": 4}}, None),
        instance: _post_part({}, 1)})
    assert moved.status == 204, moved.body
    assert placement.call("GET", f"/allocations/{instance}").body == {"allocations": {}}
    held = placement.call("GET", f"/allocations/{migration}").body
    assert held["allocations"][rp]["resources"] == {"VCPU": 4}


def test_post_is_all_or_nothing(placement: Placement) -> None:
    rp = placement.provider("cn1", VCPU=4)
    a, b = placement.new_id(), placement.new_id()
    failed = placement.call("POST", "/allocations", {
        a: _post_part({rp: {"VCPU": 2}}, None),
        b: _post_part({rp: {"VCPU": 3}}, None)})
    assert failed.status == 409
    assert placement.call("GET", f"/resource_providers/{rp}/usages").body["usages"] == {
        "VCPU": 0}
    stale = placement.call("POST", "/allocations", {a: _post_part({rp: {"VCPU": 1}}, 5)})
    assert stale.status == 409
    assert stale.error["code"] == "placement.concurrent_update"
    unknown = placement.call("POST", "/allocations", {
        a: _post_part({placement.new_id(): {"VCPU": 1}}, None)})
    assert unknown.status == 400
    assert placement.call("POST", "/allocations", {a: _post_part({rp: {"VCPU": 1}}, None)},
                          version="1.12").status == 404
    empty_body = placement.call("POST", "/allocations", {})
    assert empty_body.status == 400


def test_project_usages(placement: Placement) -> None:
    rp = placement.provider("cn1", VCPU=8, MEMORY_MB=1024)
    placement.allocate(placement.new_id(), {rp: {"VCPU": 2, "MEMORY_MB": 128}})
    assert placement.call("GET", "/usages", query={"project_id": "proj"}).body == {
        "usages": {"VCPU": 2, "MEMORY_MB": 128}}
    assert placement.call("GET", "/usages", query={"project_id": "proj", "user_id": "x"}
                          ).body == {"usages": {}}
    missing = placement.call("GET", "/usages")
    assert missing.status == 400
    assert "project_id" in missing.error["detail"]
