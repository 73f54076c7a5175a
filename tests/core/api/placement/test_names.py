"""Traits, resource classes and provider aggregates."""

from __future__ import annotations

from .conftest import Placement


def test_traits_list_create_show_delete(placement: Placement) -> None:
    made = placement.call("PUT", "/traits/CUSTOM_GOLD")
    assert made.status == 201
    assert made.headers["Location"] == "/traits/CUSTOM_GOLD"
    assert placement.call("PUT", "/traits/CUSTOM_GOLD").status == 204
    assert placement.call("GET", "/traits/CUSTOM_GOLD").status == 204
    assert placement.call("GET", "/traits/HW_CPU_X86_AVX").status == 204
    assert placement.call("GET", "/traits/CUSTOM_NOPE").status == 404
    every = placement.call("GET", "/traits").body["traits"]
    assert "CUSTOM_GOLD" in every and "HW_CPU_X86_AVX" in every
    assert placement.call("GET", "/traits", query={"name": "startswith:CUSTOM_"}
                          ).body == {"traits": ["CUSTOM_GOLD"]}
    assert placement.call("GET", "/traits", query={"name": "in:CUSTOM_GOLD,CUSTOM_NOPE"}
                          ).body == {"traits": ["CUSTOM_GOLD"]}
    assert placement.call("GET", "/traits", query={"associated": "true"}
                          ).body == {"traits": []}
    assert placement.call("DELETE", "/traits/CUSTOM_GOLD").status == 204
    assert placement.call("DELETE", "/traits/CUSTOM_GOLD").status == 404


def test_trait_refusals(placement: Placement) -> None:
    assert placement.call("PUT", "/traits/GOLD").status == 400
    assert placement.call("PUT", "/traits/CUSTOM_gold").status == 400
    assert placement.call("DELETE", "/traits/HW_CPU_X86_AVX").status == 400
    assert placement.call("GET", "/traits", query={"name": "CUSTOM_GOLD"}).status == 400
    assert placement.call("GET", "/traits", query={"associated": "maybe"}).status == 400
    assert placement.call("GET", "/traits", query={"colour": "red"}).status == 400
    placement.call("PUT", "/traits/CUSTOM_GOLD")
    uuid = placement.provider("cn1")
    placement.call("PUT", f"/resource_providers/{uuid}/traits",
                   {"traits": ["CUSTOM_GOLD"], "resource_provider_generation": 0})
    in_use = placement.call("DELETE", "/traits/CUSTOM_GOLD")
    assert in_use.status == 409


def test_provider_traits(placement: Placement) -> None:
    uuid = placement.provider("cn1")
    url = f"/resource_providers/{uuid}/traits"
    assert placement.call("GET", url).body == {"traits": [], "resource_provider_generation": 0}
    placement.call("PUT", "/traits/CUSTOM_GOLD")
    put = placement.call("PUT", url, {"traits": ["HW_CPU_X86_AVX", "CUSTOM_GOLD"],
                                      "resource_provider_generation": 0})
    assert put.status == 200
    assert put.body == {"traits": ["CUSTOM_GOLD", "HW_CPU_X86_AVX"],
                        "resource_provider_generation": 1}
    stale = placement.call("PUT", url, {"traits": [], "resource_provider_generation": 0})
    assert stale.status == 409
    assert stale.error["code"] == "placement.concurrent_update"
    unknown = placement.call("PUT", url, {"traits": ["CUSTOM_NOPE"],
                                          "resource_provider_generation": 1})
    assert unknown.status == 400
    assert "CUSTOM_NOPE" in unknown.error["detail"]
    missing_gen = placement.call("PUT", url, {"traits": []})
    assert missing_gen.status == 400
    assert placement.call("DELETE", url).status == 204
    assert placement.call("GET", url).body == {"traits": [], "resource_provider_generation": 2}
    assert placement.call("GET", f"/resource_providers/{placement.new_id()}/traits"
                          ).status == 404
    assert placement.call("GET", url, version="1.5").status == 404


def test_resource_classes(placement: Placement) -> None:
    listed = placement.call("GET", "/resource_classes").body["resource_classes"]
    assert listed[0] == {"name": "VCPU",
                         "links": [{"rel": "self", "href": "/resource_classes/VCPU"}]}
    made = placement.call("POST", "/resource_classes", {"name": "CUSTOM_FPGA"})
    assert made.status == 201
    assert made.headers["Location"] == "/resource_classes/CUSTOM_FPGA"
    assert placement.call("POST", "/resource_classes", {"name": "CUSTOM_FPGA"}).status == 409
    assert placement.call("POST", "/resource_classes", {"name": "FPGA2"}).status == 400
    assert placement.call("GET", "/resource_classes/CUSTOM_FPGA").body["name"] == "CUSTOM_FPGA"
    assert placement.call("GET", "/resource_classes/CUSTOM_NOPE").status == 404
    assert placement.call("PUT", "/resource_classes/CUSTOM_NEW").status == 201
    assert placement.call("PUT", "/resource_classes/CUSTOM_NEW").status == 204
    assert placement.call("PUT", "/resource_classes/VCPU").status == 400
    uuid = placement.provider("cn1")
    placement.inventory(uuid, CUSTOM_FPGA={"total": 2})
    assert placement.call("DELETE", "/resource_classes/CUSTOM_FPGA").status == 409
    assert placement.call("DELETE", "/resource_classes/VCPU").status == 400
    assert placement.call("DELETE", "/resource_classes/CUSTOM_NEW").status == 204
    assert placement.call("DELETE", "/resource_classes/CUSTOM_NEW").status == 404
    assert placement.call("GET", "/resource_classes", version="1.1").status == 404


def test_resource_class_put_before_1_7_renames(placement: Placement) -> None:
    placement.call("POST", "/resource_classes", {"name": "CUSTOM_A"})
    placement.call("POST", "/resource_classes", {"name": "CUSTOM_B"})
    url = "/resource_classes/CUSTOM_A"
    assert placement.call("PUT", url, {"name": "CUSTOM_B"}, version="1.6").status == 409
    assert placement.call("PUT", "/resource_classes/VCPU", {"name": "CUSTOM_C"},
                          version="1.6").status == 400
    assert placement.call("PUT", "/resource_classes/CUSTOM_X", {"name": "CUSTOM_C"},
                          version="1.6").status == 404
    # Nimbus's Store keeps no way to rename a class: a clear 400, never a silent success
    refused = placement.call("PUT", url, {"name": "CUSTOM_C"}, version="1.6")
    assert refused.status == 400
    assert "not supported" in refused.error["detail"]


def test_aggregates_by_microversion(placement: Placement) -> None:
    uuid = placement.provider("cn1")
    url = f"/resource_providers/{uuid}/aggregates"
    agg1, agg2 = sorted([placement.new_id(), placement.new_id()])
    assert placement.call("GET", url, version="1.0").status == 404
    bare = placement.call("PUT", url, [agg1], version="1.1")
    assert bare.status == 200
    assert bare.body == {"aggregates": [agg1]}
    assert placement.call("GET", url, version="1.18").body == {"aggregates": [agg1]}
    gen = placement.generation(uuid)
    new = placement.call("PUT", url, {"aggregates": [agg1, agg2],
                                      "resource_provider_generation": gen})
    assert new.body == {"aggregates": [agg1, agg2], "resource_provider_generation": gen + 1}
    assert placement.call("GET", url).body == new.body
    stale = placement.call("PUT", url, {"aggregates": [], "resource_provider_generation": gen})
    assert stale.status == 409
    assert stale.error["code"] == "placement.concurrent_update"
    assert placement.call("PUT", url, [agg1], version="1.19").status == 400
    assert placement.call("PUT", url, {"aggregates": ["nope"],
                                       "resource_provider_generation": gen + 1}).status == 400
    assert placement.call("PUT", url, {"aggregates": [agg1, agg1],
                                       "resource_provider_generation": gen + 1}).status == 400
