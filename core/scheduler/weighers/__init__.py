"""The host weighers, one per module, and their registry (names as Nova spells them)."""

from __future__ import annotations

from nimbus.core.registry import Registry
from nimbus.core.scheduler.plugins import HostWeigher
from nimbus.core.scheduler.weighers.build_failure import BuildFailureWeigher
from nimbus.core.scheduler.weighers.cpu import CPUWeigher
from nimbus.core.scheduler.weighers.disk import DiskWeigher
from nimbus.core.scheduler.weighers.io_ops import IoOpsWeigher
from nimbus.core.scheduler.weighers.ram import RAMWeigher
from nimbus.core.scheduler.weighers.soft_affinity import ServerGroupSoftAffinityWeigher
from nimbus.core.scheduler.weighers.soft_anti_affinity import ServerGroupSoftAntiAffinityWeigher

__all__ = [
    "WEIGHERS",
    "BuildFailureWeigher",
    "CPUWeigher",
    "DiskWeigher",
    "IoOpsWeigher",
    "RAMWeigher",
    "ServerGroupSoftAffinityWeigher",
    "ServerGroupSoftAntiAffinityWeigher",
]

#: Weighers that ``[filter_scheduler] weighers`` may name.
WEIGHERS: Registry[type[HostWeigher]] = Registry("weigher", {
    cls.name: cls for cls in (
        BuildFailureWeigher,
        CPUWeigher,
        DiskWeigher,
        IoOpsWeigher,
        RAMWeigher,
        ServerGroupSoftAffinityWeigher,
        ServerGroupSoftAntiAffinityWeigher,
    )
})
