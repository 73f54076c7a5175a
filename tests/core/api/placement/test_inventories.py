"""A provider's inventories and usages."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Placement

DEFAULTS = {"reserved": 0, "min_unit": 1, "max_unit": 2147483647, "step_size": 1,
            "allocation_ratio": 1.0}


def test_replace_list_and_show(placement: Placement) -> None:
    uuid = placement.provider("cn1")
    put = placement.call("PUT", f"/resource_providers/{uuid}/inventories", {
        "resource_provider_generation": 0,
        "inventories": {"VCPU": {"total": 8, "allocation_ratio": 16.0},
                        "MEMORY_MB": {"total": 4096, "reserved": 512}}})
    assert put.status == 200
    assert put.body["resource_provider_generation"] == 1
    listed = placement.call("GET", f"/resource_providers/{uuid}/inventories").body
    assert listed == {"resource_provider_generation": 1, "inventories": {
        "VCPU": {**DEFAULTS, "total": 8, "allocation_ratio": 16.0},
        "MEMORY_MB": {**DEFAULTS, "total": 4096, "reserved": 512}}}
    one = placement.call("GET", f"/resource_providers/{uuid}/inventories/MEMORY_MB").body
    assert one == {**DEFAULTS, "total": 4096, "reserved": 512,
                   "resource_provider_generation": 1}
    assert placement.call("GET", f"/resource_providers/{uuid}/inventories/DISK_GB"
                          ).status == 404
    assert placement.call("GET", f"/resource_providers/{placement.new_id()}/inventories"
                          ).status == 404


def test_post_one_class(placement: Placement) -> None:
    uuid = placement.provider("cn1", VCPU=4)
    made = placement.call("POST", f"/resource_providers/{uuid}/inventories",
                          {"resource_class": "DISK_GB", "total": 100})
    assert made.status == 201
    assert made.headers["Location"] == f"/resource_providers/{uuid}/inventories/DISK_GB"
    assert made.body == {**DEFAULTS, "total": 100, "resource_provider_generation": 2}
    again = placement.call("POST", f"/resource_providers/{uuid}/inventories",
                           {"resource_class": "DISK_GB", "total": 100})
    assert again.status == 409
    assert again.error["code"] == "placement.concurrent_update"
    unknown = placement.call("POST", f"/resource_providers/{uuid}/inventories",
                             {"resource_class": "CUSTOM_NOPE", "total": 1})
    assert unknown.status == 400


def test_update_one_class(placement: Placement) -> None:
    uuid = placement.provider("cn1", VCPU=4)
    url = f"/resource_providers/{uuid}/inventories/VCPU"
    changed = placement.call("PUT", url, {"resource_provider_generation": 1, "total": 16})
    assert changed.status == 200
    assert changed.body["total"] == 16
    assert changed.body["resource_provider_generation"] == 2
    stale = placement.call("PUT", url, {"resource_provider_generation": 1, "total": 32})
    assert stale.status == 409
    assert stale.error["code"] == "placement.concurrent_update"
    absent = placement.call("PUT", f"/resource_providers/{uuid}/inventories/DISK_GB",
                            {"resource_provider_generation": 2, "total": 32})
    assert absent.status == 400


def test_stale_generation_on_replace_is_409(placement: Placement) -> None:
    uuid = placement.provider("cn1", VCPU=4)
    answer = placement.call("PUT", f"/resource_providers/{uuid}/inventories", {
        "resource_provider_generation": 0, "inventories": {"VCPU": {"total": 8}}})
    assert answer.status == 409
    assert answer.error["code"] == "placement.concurrent_update"


def test_inventory_in_use_is_409(placement: Placement) -> None:
    uuid = placement.provider("cn1", VCPU=4, MEMORY_MB=1024)
    placement.allocate(placement.new_id(), {uuid: {"VCPU": 3}})
    gen = placement.generation(uuid)
    drop = placement.call("PUT", f"/resource_providers/{uuid}/inventories", {
        "resource_provider_generation": gen, "inventories": {"MEMORY_MB": {"total": 1024}}})
    assert drop.status == 409
    assert drop.error["code"] == "placement.inventory.inuse"
    shrink = placement.call("PUT", f"/resource_providers/{uuid}/inventories/VCPU",
                            {"resource_provider_generation": gen, "total": 2})
    assert shrink.status == 409
    assert shrink.error["code"] == "placement.inventory.inuse"
    delete_all = placement.call("DELETE", f"/resource_providers/{uuid}/inventories")
    assert delete_all.status == 409
    assert delete_all.error["code"] == "placement.inventory.inuse"
    delete_one = placement.call("DELETE", f"/resource_providers/{uuid}/inventories/VCPU")
    assert delete_one.status == 409
    # Placement answers this one with its concurrent-update code
    assert delete_one.error["code"] == "placement.concurrent_update"
    free = placement.call("DELETE", f"/resource_providers/{uuid}/inventories/MEMORY_MB")
    assert free.status == 204


def test_delete_all_and_missing(placement: Placement) -> None:
    uuid = placement.provider("cn1", VCPU=4, DISK_GB=10)
    assert placement.call("DELETE", f"/resource_providers/{uuid}/inventories").status == 204
    listed = placement.call("GET", f"/resource_providers/{uuid}/inventories").body
    assert listed["inventories"] == {}
    missing = placement.call("DELETE", f"/resource_providers/{uuid}/inventories/VCPU")
    assert missing.status == 404


def test_reserved_may_equal_total_from_1_26(placement: Placement) -> None:
    uuid = placement.provider("cn1")
    full = {"resource_provider_generation": 0,
            "inventories": {"VCPU": {"total": 4, "reserved": 4}}}
    old = placement.call("PUT", f"/resource_providers/{uuid}/inventories", full,
                         version="1.25")
    assert old.status == 400
    new = placement.call("PUT", f"/resource_providers/{uuid}/inventories", full,
                         version="1.26")
    assert new.status == 200
    over = placement.call("PUT", f"/resource_providers/{uuid}/inventories", {
        "resource_provider_generation": 1, "inventories": {"VCPU": {"total": 4,
                                                                     "reserved": 5}}})
    assert over.status == 400


@pytest.mark.parametrize(("body", "detail"), [
    ({"inventories": {}}, "'resource_provider_generation' is a required property"),
    ({"resource_provider_generation": 0, "inventories": {"VCPU": {"total": 0}}},
     "less than the minimum"),
    ({"resource_provider_generation": 0, "inventories": {"VCPU": {"total": "8"}}},
     "is not of type 'integer'"),
    ({"resource_provider_generation": 0, "inventories": {"VCPU": {"reserved": 1}}},
     "'total' is a required property"),
    ({"resource_provider_generation": 0, "inventories": {"VCPU": {"total": 8, "size": 1}}},
     "Additional properties are not allowed"),
    ({"resource_provider_generation": 0, "inventories": {"VCPU": {"total": 2 ** 31}}},
     "greater than the maximum"),
    ({"resource_provider_generation": 0, "inventories": {"vcpu": {"total": 8}}},
     "invalid resource class"),
])
def test_bad_inventory_bodies_are_400(placement: Placement, body: dict[str, Any],
                                      detail: str) -> None:
    uuid = placement.provider("cn1")
    answer = placement.call("PUT", f"/resource_providers/{uuid}/inventories", body)
    assert answer.status == 400, answer.body
    assert detail in answer.error["detail"]


def test_usages(placement: Placement) -> None:
    uuid = placement.provider("cn1", VCPU=4, MEMORY_MB=1024)
    placement.allocate(placement.new_id(), {uuid: {"VCPU": 1, "MEMORY_MB": 256}})
    placement.allocate(placement.new_id(), {uuid: {"VCPU": 2}})
    answer = placement.call("GET", f"/resource_providers/{uuid}/usages")
    assert answer.body == {"resource_provider_generation": placement.generation(uuid),
                           "usages": {"VCPU": 3, "MEMORY_MB": 256}}
    assert placement.call("GET", f"/resource_providers/{placement.new_id()}/usages"
                          ).status == 404
