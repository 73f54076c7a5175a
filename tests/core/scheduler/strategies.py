"""Hypothesis strategies: random fleets, configs and requests small enough to tie often."""

from __future__ import annotations

import json

from hypothesis import strategies as st

from nimbus.core.scheduler import (
    HostSpec,
    HostUsage,
    RequestSpec,
    SchedulerConfig,
    ServerGroupSpec,
)
from nimbus.core.scheduler.config import DEFAULT_WEIGHERS
from nimbus.core.scheduler.filters import FILTERS
from tests.core.scheduler.reference import Fleet, FleetHost

TRIPLES = [("x86_64", "qemu", "hvm"), ("x86_64", "kvm", "hvm"), ("i686", "xen", "xen"),
           ("aarch64", "qemu", "hvm")]
CPU_INFOS = [None, {"arch": "x86_64", "features": ["avx", "sse4"], "maxphysaddr": {"bits": 46}},
             json.dumps({"arch": "aarch64", "features": ["neon"]}),
             {"arch": "x86_64", "features": ["avx2"], "maxphysaddr": {"bits": 39}}]
GROUPS = ["g1", "g2"]
AGG_METADATA = {
    "ssd": ["true", "false", "true, false"],
    "filter_tenant_id": ["p1", "p1,p2"],
    "filter_tenant_id2": ["p3"],
    "ram_weight_multiplier": ["2.0", "-1", "zero"],
    "io_ops_weight_multiplier": ["0", "-3"],
    "gpu": ["1", "4"],
}
EXTRA_SPECS = {
    "capabilities:hypervisor_type": ["s== QEMU", "<or> kvm <or> xen", "QEMU"],
    "capabilities:cpu_info:arch": ["x86_64", "s!= aarch64"],
    "capabilities:cpu_info:features": ["<in> avx", "<all-in> avx sse4"],
    "capabilities:hypervisor_version": [">= 6000000", "<= 2012000", "= 3"],
    "ssd": ["true", "s== false"],
    "aggregate_instance_extra_specs:ssd": ["true", "<in> fa"],
    "aggregate_instance_extra_specs:gpu": [">= 2", "== 1"],
    "gpus": [">= 1", "0"],
    "hw:maxphysaddr_bits": ["40"],
    "hw:cpu_policy": ["dedicated"],
}
IMAGE_PROPS = {
    "hw_architecture": ["x86_64", "i386", "AArch64"],
    "img_hv_type": ["qemu", "KVM", "xapi"],
    "hw_vm_mode": ["hvm", "pv"],
    "img_hv_requested_version": [">= 6.0", "< 7, >= 2.12", "bogus"],
    "hw_maxphysaddr_bits": ["42"],
}
RATIOS = [0.5, 1.0, 1.3, 2.0, 16.0]


def _pick_dict(options: dict[str, list[str]], most: int) -> st.SearchStrategy[dict[str, str]]:
    keys = st.lists(st.sampled_from(sorted(options)), unique=True, max_size=most)
    return keys.flatmap(lambda ks: st.fixed_dictionaries(
        {k: st.sampled_from(options[k]) for k in ks}))


@st.composite
def fleet_hosts(draw: st.DrawFn, name: str) -> FleetHost:
    vcpus = draw(st.sampled_from([1, 2, 4, 8, 16]))
    ram = draw(st.sampled_from([512, 1024, 2048, 4096, 8192]))
    disk = draw(st.sampled_from([0, 20, 40, 100, 200]))
    spec = HostSpec(
        name, vcpus, ram, disk,
        vcpus_reserved=draw(st.sampled_from([0, 0, 1])),
        memory_mb_reserved=draw(st.sampled_from([0, 0, 256])),
        disk_gb_reserved=draw(st.sampled_from([0, 0, 5])),
        cpu_allocation_ratio=draw(st.sampled_from(RATIOS)),
        ram_allocation_ratio=draw(st.sampled_from(RATIOS)),
        disk_allocation_ratio=draw(st.sampled_from(RATIOS)),
        availability_zone=draw(st.sampled_from([None, "az1", "az2"])),
        hypervisor_type=draw(st.sampled_from(["QEMU", "kvm", "xen"])),
        hypervisor_version=draw(st.sampled_from([0, 2012000, 6002000, 8000000])),
        cpu_info=draw(st.sampled_from(CPU_INFOS)),
        supported_instances=tuple(draw(st.lists(st.sampled_from(TRIPLES), unique=True,
                                                max_size=2))),
        stats=draw(_pick_dict({"ssd": ["true", "false"], "gpus": ["0", "2"]}, 2)),
    )
    usage = HostUsage(
        vcpus_used=draw(st.integers(0, vcpus)),
        memory_mb_used=draw(st.sampled_from([0, 0, 256, 512, 1024, 4096])),
        disk_gb_used=draw(st.sampled_from([0, 0, 5, 10, 50])),
        num_instances=draw(st.integers(0, 4)),
        io_ops=draw(st.integers(0, 3)),
        failed_builds=draw(st.sampled_from([0, 0, 0, 1, 2])),
    )
    up = draw(st.sampled_from([True, True, True, False]))
    disabled = draw(st.sampled_from([False, False, False, True]))
    return FleetHost(spec, usage, up=up, disabled=disabled)


@st.composite
def fleets(draw: st.DrawFn, max_hosts: int = 12) -> Fleet:
    size = draw(st.integers(0, max_hosts))
    hosts: list[FleetHost | None] = []
    for i in range(size):
        hosts.append(None if draw(st.integers(0, 9)) == 0 else draw(fleet_hosts(f"h{i}")))
    names = [h.spec.name for h in hosts if h is not None]
    aggregates = []
    for a in range(draw(st.integers(0, 3))):
        members = draw(st.lists(st.sampled_from(names), unique=True)) if names else []
        aggregates.append((f"agg{a}", draw(_pick_dict(AGG_METADATA, 2)), members))
    instances = []
    for k in range(draw(st.integers(0, 6)) if names else 0):
        instances.append((draw(st.sampled_from(names)), f"old{k}",
                          draw(st.sampled_from([None, *GROUPS]))))
    return Fleet(hosts, aggregates, instances)


@st.composite
def configs(draw: st.DrawFn) -> SchedulerConfig:
    names = draw(st.lists(st.sampled_from(FILTERS.names()), unique=True, max_size=10))
    weighers = draw(st.lists(st.sampled_from(DEFAULT_WEIGHERS), unique=True, max_size=7))
    mult = st.sampled_from([-2.0, -1.0, 0.0, 0.5, 1.0, 1.0, 2.0, 1000000.0])
    return SchedulerConfig(
        enabled_filters=tuple(names), weighers=tuple(weighers),
        ram_weight_multiplier=draw(mult), cpu_weight_multiplier=draw(mult),
        disk_weight_multiplier=draw(mult), io_ops_weight_multiplier=draw(mult),
        soft_affinity_weight_multiplier=draw(mult),
        soft_anti_affinity_weight_multiplier=draw(mult),
        build_failure_weight_multiplier=draw(mult),
        host_subset_size=draw(st.sampled_from([1, 1, 2, 3])),
        max_attempts=draw(st.integers(1, 4)),
        shuffle_best_same_weighed_hosts=draw(st.booleans()),
        image_properties_default_architecture=draw(st.sampled_from([None, "x86_64"])),
    )


@st.composite
def requests(draw: st.DrawFn, serial: int, old_uuids: list[str]) -> RequestSpec:
    count = draw(st.integers(1, 4))
    group = None
    if draw(st.booleans()):
        group = ServerGroupSpec(draw(st.sampled_from(GROUPS)), draw(st.sampled_from(
            ["affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"])),
            draw(st.sampled_from([1, 1, 2])))
    hints: dict[str, list[str]] = {}
    if old_uuids:
        for hint in ("same_host", "different_host"):
            if draw(st.integers(0, 3)) == 0:
                hints[hint] = draw(st.lists(st.sampled_from([*old_uuids, "nowhere"]),
                                            min_size=1, max_size=2))
    return RequestSpec.build(
        draw(st.sampled_from([0, 1, 1, 2, 4])), draw(st.sampled_from([128, 256, 512, 1024])),
        draw(st.sampled_from([0, 0, 1, 1, 10, 30])),
        swap_mb=draw(st.sampled_from([0, 0, 0, 512])),
        extra_specs=draw(st.just({}) | _pick_dict(EXTRA_SPECS, 2)),
        image_properties=draw(st.just({}) | _pick_dict(IMAGE_PROPS, 2)),
        project_id=draw(st.sampled_from(["p1", "p2", "p3"])),
        availability_zone=draw(st.sampled_from([None, None, None, "az1", "az2", "nova", "az9"])),
        scheduler_hints=hints, group=group, num_instances=count,
        min_count=draw(st.none() | st.integers(1, count)),
        instance_uuids=[f"r{serial}-{i}" for i in range(count)] if draw(st.booleans()) else (),
    )
