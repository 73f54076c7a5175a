"""Each filter on a small fleet."""

from __future__ import annotations

import json

import numpy as np

from nimbus.core.scheduler import (
    HostStates,
    RequestSpec,
    ScheduleContext,
    SchedulerConfig,
    ServerGroupSpec,
)
from nimbus.core.scheduler.filters import FILTERS
from nimbus.core.scheduler.filters.image_properties import version_satisfies
from tests.core.scheduler.conftest import mask_of, spec


def test_compute_filter_passes_up_and_enabled_hosts(states: HostStates) -> None:
    for name in ("ok", "down", "off"):
        states.add_host(spec(name))
    states.set_service(1, up=False)
    states.set_service(2, disabled=True)
    assert mask_of(states, "ComputeFilter", RequestSpec.build(1, 1)) == [True, False, False]


def test_availability_zone_filter(states: HostStates) -> None:
    states.add_host(spec("a", availability_zone="az1"))
    states.add_host(spec("b", availability_zone="az2"))
    states.add_host(spec("c"))  # in the default zone
    assert mask_of(states, "AvailabilityZoneFilter", RequestSpec.build(
        1, 1, availability_zone="az1")) == [True, False, False]
    assert mask_of(states, "AvailabilityZoneFilter", RequestSpec.build(
        1, 1, availability_zone="nova")) == [False, False, True]
    assert mask_of(states, "AvailabilityZoneFilter", RequestSpec.build(
        1, 1, availability_zone="nowhere")) == [False, False, False]
    assert mask_of(states, "AvailabilityZoneFilter", RequestSpec.build(1, 1)) == [True] * 3


def test_compute_capabilities_scoped_unscoped_and_nested(states: HostStates) -> None:
    states.add_host(spec("kvm", hypervisor_type="QEMU", hypervisor_version=6002000,
                         cpu_info=json.dumps({"arch": "x86_64", "features": ["avx", "sse"],
                                              "maxphysaddr": {"bits": 46}}),
                         stats={"ssd": "true"}))
    states.add_host(spec("xen", hypervisor_type="xen", hypervisor_version=4000000,
                         cpu_info={"arch": "x86_64", "maxphysaddr": {"bits": 39}}))

    def passes(**extra: str) -> list[bool]:
        return mask_of(states, "ComputeCapabilitiesFilter",
                       RequestSpec.build(1, 1, extra_specs=extra))

    assert passes(**{"capabilities:hypervisor_type": "s== QEMU"}) == [True, False]
    assert passes(**{"capabilities:hypervisor_version": ">= 5000000"}) == [True, False]
    assert passes(**{"capabilities:cpu_info:arch": "x86_64"}) == [True, True]
    assert passes(**{"capabilities:cpu_info:features": "<in> avx"}) == [True, False]
    assert passes(**{"capabilities:cpu_info:nothing": "1"}) == [False, False]
    assert passes(ssd="true") == [True, True]  # unscoped: only hosts reporting it check it
    assert passes(ssd="false") == [False, True]
    assert passes(**{"hw:cpu_policy": "dedicated", "trait:X": "required"}) == [True, True]
    assert passes(**{"hw:maxphysaddr_bits": "42"}) == [True, False]


def test_image_properties_filter(states: HostStates) -> None:
    states.add_host(spec("kvm", hypervisor_version=6002000,
                         supported_instances=(("x86_64", "qemu", "hvm"),)))
    states.add_host(spec("xen", hypervisor_version=4001000,
                         supported_instances=(("i686", "xen", "xen"), ("x86_64", "xen", "hvm"))))
    states.add_host(spec("bare"))  # advertises nothing

    def passes(**props: str) -> list[bool]:
        return mask_of(states, "ImagePropertiesFilter",
                       RequestSpec.build(1, 1, image_properties=props))

    assert passes() == [True, True, True]
    assert passes(img_hv_requested_version=">= 9") == [True, True, True]  # alone: ignored
    assert passes(hw_architecture="x86_64") == [True, True, False]
    assert passes(hw_architecture="i386") == [False, True, False]  # canonicalized to i686
    assert passes(img_hv_type="xapi") == [False, True, False]  # xapi is xen
    assert passes(hw_vm_mode="pv") == [False, True, False]  # pv is xen
    assert passes(hw_architecture="x86_64", img_hv_type="qemu") == [True, False, False]
    assert passes(hw_architecture="x86_64", img_hv_requested_version=">= 6.0") == [
        True, False, False]
    assert passes(hw_architecture="x86_64", img_hv_requested_version="< 5, >= 4.1") == [
        False, True, False]


def test_image_default_architecture() -> None:
    states = HostStates()
    states.add_host(spec("arm", supported_instances=(("aarch64", "qemu", "hvm"),)))
    config = SchedulerConfig(image_properties_default_architecture="x86_64")
    f = FILTERS["ImagePropertiesFilter"](config)
    m = f.mask(states, RequestSpec.build(1, 1), ScheduleContext(config))
    assert m is not None and not m[0]


def test_version_predicates() -> None:
    assert version_satisfies(6002000, ">= 6.2")
    assert version_satisfies(6002000, "== 6.2.0")
    assert not version_satisfies(6002000, "> 6.2")
    assert version_satisfies(6002000, "> 6.1, < 7")
    assert not version_satisfies(6002000, "nonsense")


def test_aggregate_instance_extra_specs(states: HostStates) -> None:
    for name in ("fast", "slow", "none"):
        states.add_host(spec(name))
    states.set_aggregate("a1", {"ssd": "true", "gpu": "2, 4"}, ["fast"])
    states.set_aggregate("a2", {"ssd": "false"}, ["slow"])

    def passes(**extra: str) -> list[bool]:
        return mask_of(states, "AggregateInstanceExtraSpecsFilter",
                       RequestSpec.build(1, 1, extra_specs=extra))

    assert passes() == [True, True, True]
    assert passes(**{"aggregate_instance_extra_specs:ssd": "true"}) == [True, False, False]
    assert passes(ssd="false") == [False, True, False]  # unscoped keys count here too
    assert passes(**{"aggregate_instance_extra_specs:gpu": ">= 3"}) == [True, False, False]
    assert passes(**{"capabilities:ssd": "true", "hw:x": "1"}) == [True, True, True]
    states.set_aggregate("a2", {"ssd": "true"}, ["slow"])  # the cache must not matter here
    assert passes(**{"aggregate_instance_extra_specs:ssd": "true"}) == [True, True, False]


def test_aggregate_multi_tenancy_isolation(states: HostStates) -> None:
    for name in ("private", "shared", "open"):
        states.add_host(spec(name))
    states.set_aggregate("p", {"filter_tenant_id": "t1"}, ["private"])
    states.set_aggregate("s", {"filter_tenant_id": "t1, t2", "filter_tenant_id_2": "t3"},
                         ["shared"])

    def passes(project: str) -> list[bool]:
        return mask_of(states, "AggregateMultiTenancyIsolation",
                       RequestSpec.build(1, 1, project_id=project))

    assert passes("t1") == [True, True, True]
    assert passes("t2") == [False, True, True]
    assert passes("t3") == [False, True, True]
    assert passes("t9") == [False, False, True]


def test_server_group_filters(states: HostStates) -> None:
    for name in ("a", "b", "c"):
        states.add_host(spec(name))
    states.set_instances(0, [("i1", "g"), ("i2", "g")])
    states.set_instances(1, [("i3", "g"), ("i4", None)])
    config = SchedulerConfig()
    ctx = ScheduleContext(config, group=states.group_members("g"), group_total=3)
    anti = RequestSpec.build(1, 1, group=ServerGroupSpec("g", "anti-affinity"))
    assert mask_of(states, "ServerGroupAntiAffinityFilter", anti, ctx) == [False, False, True]
    anti2 = RequestSpec.build(1, 1, group=ServerGroupSpec("g", "anti-affinity", 2))
    assert mask_of(states, "ServerGroupAntiAffinityFilter", anti2, ctx) == [False, True, True]
    ctx.instance_uuid = "i1"  # a move: the instance's own host passes
    assert mask_of(states, "ServerGroupAntiAffinityFilter", anti, ctx) == [True, False, True]
    aff = RequestSpec.build(1, 1, group=ServerGroupSpec("g", "affinity"))
    assert mask_of(states, "ServerGroupAffinityFilter", aff, ctx) == [True, True, False]
    assert mask_of(states, "ServerGroupAffinityFilter", aff, ScheduleContext(config)) == [
        True, True, True]  # the first member goes anywhere
    assert mask_of(states, "ServerGroupAffinityFilter", anti, ctx) == [True, True, True]


def test_same_and_different_host(states: HostStates) -> None:
    for name in ("a", "b", "c"):
        states.add_host(spec(name))
    states.set_instances(0, [("i1", None)])
    states.set_instances(2, [("i2", None)])
    same = RequestSpec.build(1, 1, scheduler_hints={"same_host": ["i1", "i2", "gone"]})
    assert mask_of(states, "SameHostFilter", same) == [True, False, True]
    diff = RequestSpec.build(1, 1, scheduler_hints={"different_host": "i1"})
    assert mask_of(states, "DifferentHostFilter", diff) == [False, True, True]
    none = RequestSpec.build(1, 1, scheduler_hints={"same_host": ["gone"]})
    assert mask_of(states, "SameHostFilter", none) == [False, False, False]


def test_resource_fit_uses_reserved_ratio_and_max_unit(states: HostStates) -> None:
    from nimbus.core.scheduler.filters.resource_fit import ResourceFit

    states.add_host(spec("a", vcpus=4, vcpus_reserved=1, cpu_allocation_ratio=2.0,
                         memory_mb=1024, memory_mb_reserved=512, disk_gb=10))
    config = SchedulerConfig()
    fit = ResourceFit(config)

    def passes(v: int, m: int, d: int) -> bool:
        mask = fit.mask(states, RequestSpec.build(v, m, d), ScheduleContext(config))
        return bool(np.asarray(mask)[0])

    assert passes(4, 512, 10)
    assert not passes(5, 512, 10)  # max_unit: more than the host's 4 VCPUs
    assert not passes(1, 513, 10)  # (1024 - 512) * 1.0
    assert not passes(1, 1, 11)
    states.apply_claim(0, 3, 0, 0)
    assert passes(3, 1, 0)  # (4 - 1) * 2 = 6 VCPUs in all
    assert not passes(4, 1, 0)
    assert passes(1, 1, 0)  # a disk request of 0 is not checked
    states.apply_claim(0, 0, 0, 20)  # disk overcommitted
    assert passes(1, 1, 0) and not passes(1, 1, 1)
