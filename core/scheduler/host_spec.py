"""What a compute host reports: its capacity and static attributes, and its usage."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

SupportedInstance = tuple[str, str, str]  # (architecture, hypervisor type, vm mode)


@dataclass(frozen=True, slots=True)
class HostSpec:
    """What a compute host reports about itself: capacity and static attributes.

    ``cpu_info`` may be a dict or Nova's JSON string; ``stats`` are extra
    key/values (Nova's compute stats) that ComputeCapabilitiesFilter can match.
    ``uuid`` is the compute node's, which is also its resource provider's in placement.
    """

    name: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    vcpus_reserved: int = 0
    memory_mb_reserved: int = 0
    disk_gb_reserved: int = 0
    cpu_allocation_ratio: float = 4.0
    ram_allocation_ratio: float = 1.0
    disk_allocation_ratio: float = 1.0
    availability_zone: str | None = None
    hypervisor_type: str = "QEMU"
    hypervisor_version: int = 0
    cpu_info: Mapping[str, object] | str | None = None
    supported_instances: tuple[SupportedInstance, ...] = ()
    stats: Mapping[str, object] = field(default_factory=dict)
    uuid: str | None = None

    def capabilities(self) -> dict[str, object]:
        """The values ComputeCapabilitiesFilter looks up (stats first, attributes over them)."""
        caps: dict[str, object] = dict(self.stats)
        caps.update(hypervisor_type=self.hypervisor_type,
                    hypervisor_version=self.hypervisor_version)
        if self.cpu_info is not None:
            caps["cpu_info"] = self.cpu_info
        return caps


@dataclass(frozen=True, slots=True)
class HostUsage:
    """What is allocated on a host, and its activity counters."""

    vcpus_used: float = 0
    memory_mb_used: float = 0
    disk_gb_used: float = 0
    num_instances: int = 0
    io_ops: int = 0
    failed_builds: int = 0
