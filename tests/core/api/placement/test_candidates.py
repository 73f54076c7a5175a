"""``GET /allocation_candidates``: single and granular requests, answer shapes by version."""

from __future__ import annotations

import pytest

from .conftest import Placement


def _providers(answer_body: dict[str, object]) -> list[list[str]]:
    requests = answer_body["allocation_requests"]
    assert isinstance(requests, list)
    return [sorted(r["allocations"]) for r in requests]


def test_single_group(placement: Placement) -> None:
    small = placement.provider("small", VCPU=2, MEMORY_MB=1024)
    big = placement.provider("big", VCPU=16, MEMORY_MB=8192, DISK_GB=100)
    answer = placement.call("GET", "/allocation_candidates",
                            query={"resources": "VCPU:4,MEMORY_MB:2048"})
    assert answer.status == 200
    assert answer.body["allocation_requests"] == [
        {"allocations": {big: {"resources": {"VCPU": 4, "MEMORY_MB": 2048}}}}]
    assert answer.body["provider_summaries"] == {big: {
        "resources": {"VCPU": {"capacity": 16, "used": 0},
                      "MEMORY_MB": {"capacity": 8192, "used": 0},
                      "DISK_GB": {"capacity": 100, "used": 0}},
        "traits": [], "parent_provider_uuid": None, "root_provider_uuid": big}}
    both = placement.call("GET", "/allocation_candidates", query={"resources": "VCPU:1"})
    assert _providers(both.body) == [[small], [big]]
    one = placement.call("GET", "/allocation_candidates",
                         query={"resources": "VCPU:1", "limit": "1"})
    assert _providers(one.body) == [[small]]


def test_shapes_by_microversion(placement: Placement) -> None:
    rp = placement.provider("cn1", VCPU=4, DISK_GB=10)
    query = {"resources": "VCPU:1"}
    v10 = placement.call("GET", "/allocation_candidates", query=query, version="1.10").body
    assert v10["allocation_requests"] == [
        {"allocations": [{"resource_provider": {"uuid": rp}, "resources": {"VCPU": 1}}]}]
    assert v10["provider_summaries"] == {rp: {"resources": {
        "VCPU": {"capacity": 4, "used": 0}}}}
    v17 = placement.call("GET", "/allocation_candidates", query=query, version="1.17").body
    assert v17["provider_summaries"][rp]["traits"] == []
    v27 = placement.call("GET", "/allocation_candidates", query=query, version="1.27").body
    assert set(v27["provider_summaries"][rp]["resources"]) == {"VCPU", "DISK_GB"}
    assert "root_provider_uuid" not in v27["provider_summaries"][rp]
    assert placement.call("GET", "/allocation_candidates", query={**query, "limit": "1"},
                          version="1.15").status == 400


def test_traits_and_aggregates(placement: Placement) -> None:
    agg = placement.new_id()
    plain = placement.provider("plain", VCPU=4)
    fast = placement.provider("fast", VCPU=4)
    placement.call("PUT", f"/resource_providers/{fast}/traits",
                   {"traits": ["HW_CPU_X86_AVX2"], "resource_provider_generation": 1})
    placement.call("PUT", f"/resource_providers/{plain}/aggregates",
                   {"aggregates": [agg], "resource_provider_generation": 1})

    def providers(**query: str) -> list[list[str]]:
        answer = placement.call("GET", "/allocation_candidates",
                                query={"resources": "VCPU:1", **query})
        assert answer.status == 200, answer.body
        return _providers(answer.body)

    assert providers(required="HW_CPU_X86_AVX2") == [[fast]]
    assert providers(required="!HW_CPU_X86_AVX2") == [[plain]]
    assert providers(member_of=agg) == [[plain]]
    assert providers(member_of=f"in:{agg},{placement.new_id()}") == [[plain]]
    summary = placement.call("GET", "/allocation_candidates", query={
        "resources": "VCPU:1", "required": "HW_CPU_X86_AVX2"}).body["provider_summaries"]
    assert summary[fast]["traits"] == ["HW_CPU_X86_AVX2"]


@pytest.mark.parametrize(("query", "detail"), [
    ({}, "At least one request group"),
    ({"resources": "CUSTOM_NOPE:1"}, "Invalid resource class"),
    ({"resources": "VCPU:1", "required": "CUSTOM_NOPE"}, "Invalid trait"),
    ({"resources": "VCPU:1", "required": "HW_CPU_X86_AVX,!HW_CPU_X86_AVX"}, "Conflicting"),
    ({"resources": "VCPU:1", "limit": "0"}, "does not match"),
    ({"resources": "VCPU:x"}, "positive integer"),
    ({"resources1": "VCPU:1", "resources2": "VCPU:1"}, "group_policy"),
    ({"resources": "VCPU:1", "required1": "HW_CPU_X86_AVX"}, "orphaned: required1"),
    ({"resources": "VCPU:1", "group_policy": "sometimes"}, "is not one of"),
    ({"resources": "VCPU:1", "in_tree": "x"}, "'in_tree' does not match"),
])
def test_bad_requests_are_400(placement: Placement, query: dict[str, str],
                              detail: str) -> None:
    placement.provider("cn1", VCPU=4)
    answer = placement.call("GET", "/allocation_candidates", query=query)
    assert answer.status == 400, answer.body
    assert detail in answer.error["detail"]


def _nested(placement: Placement) -> tuple[str, str, str]:
    """A compute node with two NIC providers below it, each with 4 VFs."""
    root = placement.provider("cn1", VCPU=8, MEMORY_MB=4096)
    pf1 = placement.provider("cn1_pf1", parent=root, SRIOV_NET_VF=4)
    pf2 = placement.provider("cn1_pf2", parent=root, SRIOV_NET_VF=4)
    return root, pf1, pf2


def test_nested_trees_from_1_29(placement: Placement) -> None:
    root, pf1, pf2 = _nested(placement)
    query = {"resources": "VCPU:1,SRIOV_NET_VF:1"}
    answer = placement.call("GET", "/allocation_candidates", query=query)
    assert answer.status == 200
    assert answer.body["allocation_requests"] == [{"allocations": {
        root: {"resources": {"VCPU": 1}}, pf1: {"resources": {"SRIOV_NET_VF": 1}}}}]
    summaries = answer.body["provider_summaries"]
    assert set(summaries) == {root, pf1, pf2}  # the whole tree, as Placement shows it
    assert summaries[pf2]["parent_provider_uuid"] == root
    assert summaries[pf2]["root_provider_uuid"] == root
    blind = placement.call("GET", "/allocation_candidates", query=query, version="1.28")
    assert blind.body == {"allocation_requests": [], "provider_summaries": {}}
    flat = placement.provider("flat", VCPU=2)
    old = placement.call("GET", "/allocation_candidates", query={"resources": "VCPU:1"},
                         version="1.28")
    assert _providers(old.body) == [[flat]]


def test_granular_groups(placement: Placement) -> None:
    root, pf1, pf2 = _nested(placement)
    query = {"resources": "VCPU:2", "resources1": "SRIOV_NET_VF:1",
             "resources2": "SRIOV_NET_VF:1"}
    isolate = placement.call("GET", "/allocation_candidates",
                             query={**query, "group_policy": "isolate"})
    assert isolate.status == 200, isolate.body
    assert _providers(isolate.body) == [sorted([root, pf1, pf2])] * 2
    shared = placement.call("GET", "/allocation_candidates",
                            query={**query, "group_policy": "none"})
    requests = [r["allocations"] for r in shared.body["allocation_requests"]]
    assert {root: {"resources": {"VCPU": 2}},
            pf1: {"resources": {"SRIOV_NET_VF": 2}}} in requests
    assert len(requests) == 4
    big = placement.call("GET", "/allocation_candidates", query={
        "resources1": "SRIOV_NET_VF:3", "resources2": "SRIOV_NET_VF:3",
        "group_policy": "none"})
    assert _providers(big.body) == [sorted([pf1, pf2])] * 2  # 6 VFs fit no single NIC
    limited = placement.call("GET", "/allocation_candidates",
                             query={**query, "group_policy": "none", "limit": "1"})
    assert len(limited.body["allocation_requests"]) == 1


def test_granular_traits_apply_to_the_provider_of_the_group(placement: Placement) -> None:
    root, _pf1, pf2 = _nested(placement)
    placement.call("PUT", "/traits/CUSTOM_PHYSNET_A")
    placement.call("PUT", f"/resource_providers/{pf2}/traits",
                   {"traits": ["CUSTOM_PHYSNET_A"], "resource_provider_generation": 1})
    answer = placement.call("GET", "/allocation_candidates", query={
        "resources": "VCPU:1", "resources1": "SRIOV_NET_VF:1",
        "required1": "CUSTOM_PHYSNET_A"})
    assert answer.status == 200, answer.body
    assert [r["allocations"] for r in answer.body["allocation_requests"]] == [
        {root: {"resources": {"VCPU": 1}}, pf2: {"resources": {"SRIOV_NET_VF": 1}}}]


def test_sharing_providers(placement: Placement) -> None:
    agg = placement.new_id()
    cn = placement.provider("cn1", VCPU=4)
    pool = placement.provider("pool", DISK_GB=1000)
    for uuid in (cn, pool):
        placement.call("PUT", f"/resource_providers/{uuid}/aggregates",
                       {"aggregates": [agg], "resource_provider_generation":
                        placement.generation(uuid)})
    placement.call("PUT", f"/resource_providers/{pool}/traits",
                   {"traits": ["MISC_SHARES_VIA_AGGREGATE"],
                    "resource_provider_generation": placement.generation(pool)})
    single = placement.call("GET", "/allocation_candidates",
                            query={"resources": "VCPU:1,DISK_GB:100"})
    assert [r["allocations"] for r in single.body["allocation_requests"]] == [
        {cn: {"resources": {"VCPU": 1}}, pool: {"resources": {"DISK_GB": 100}}}]
    assert set(single.body["provider_summaries"]) == {cn, pool}
    granular = placement.call("GET", "/allocation_candidates",
                              query={"resources": "VCPU:1", "resources1": "DISK_GB:100"})
    assert [r["allocations"] for r in granular.body["allocation_requests"]] == [
        {cn: {"resources": {"VCPU": 1}}, pool: {"resources": {"DISK_GB": 100}}}]
