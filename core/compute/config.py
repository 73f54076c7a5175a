"""The ``[compute]`` section: how a compute service reports, tracks and tidies up."""

from __future__ import annotations

from dataclasses import dataclass, field


def _positive(value: float) -> str | None:
    return None if value > 0 else "expected a number above 0"


def _not_negative(value: float) -> str | None:
    return None if value >= 0 else "expected 0 or more (0: never)"


def _ratio(value: float) -> str | None:
    return None if value > 0 else "expected an allocation ratio above 0"


@dataclass(frozen=True, slots=True)
class ComputeConfig:
    """Nova's compute options of the same names (seconds unless said otherwise).

    ``report_interval``: heartbeat period; ``update_resources_interval``: resource
    tracker period (inventory, usage and allocation healing); ``sync_power_state_interval``:
    how often the driver's power states are compared with the records;
    ``resize_confirm_window``: resized instances are confirmed automatically after
    this long (0: never); ``shelved_offload_time``: shelved instances are offloaded
    after this long (0: at once; -1: never); ``reclaim_instance_interval``: soft-deleted
    instances are deleted for good after this long (0: deletes are immediate);
    ``instance_build_timeout``: a build still running after this long is failed (0: no
    limit); the ``*_allocation_ratio`` and ``reserved_host_*`` options shape the inventory
    reported to placement.
    """

    binary: str = "nimbus-compute"
    report_interval: float = field(default=10.0, metadata={"check": _positive})
    update_resources_interval: float = field(default=60.0, metadata={"check": _positive})
    sync_power_state_interval: float = field(default=600.0, metadata={"check": _positive})
    resize_confirm_window: float = field(default=0.0, metadata={"check": _not_negative})
    shelved_offload_time: float = -1.0
    shelved_poll_interval: float = field(default=3600.0, metadata={"check": _positive})
    reclaim_instance_interval: float = field(default=0.0, metadata={"check": _not_negative})
    instance_build_timeout: float = field(default=0.0, metadata={"check": _not_negative})
    periodic_interval: float = field(default=60.0, metadata={"check": _positive})
    cpu_allocation_ratio: float = field(default=16.0, metadata={"check": _ratio})
    ram_allocation_ratio: float = field(default=1.5, metadata={"check": _ratio})
    disk_allocation_ratio: float = field(default=1.0, metadata={"check": _ratio})
    reserved_host_cpus: int = field(default=0, metadata={"check": _not_negative})
    reserved_host_memory_mb: int = field(default=512, metadata={"check": _not_negative})
    reserved_host_disk_mb: int = field(default=0, metadata={"check": _not_negative})
    #: RPC timeout for calls to the conductor and to other computes (seconds)
    rpc_timeout: float = field(default=60.0, metadata={"check": _positive})
    #: seconds a usage report waits after an instance changes, so that the changes of
    #: that time share one report (0: at once; changes at the same moment share it)
    usage_report_delay: float = field(default=0.0, metadata={"check": _not_negative})
