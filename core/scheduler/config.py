"""Configuration of the scheduler: the ``[filter_scheduler]`` section, as Nova has it."""

from __future__ import annotations

from dataclasses import dataclass, field

from nimbus.core.errors import ConfigError

#: Nova 34's default ``enabled_filters``, led by the AvailabilityZoneFilter: Nova answers
#: the availability zone in its placement pre-filter (``query_placement_for_availability_zone``,
#: on by default), and here the filter stands in for that pre-filter.
DEFAULT_FILTERS: tuple[str, ...] = (
    "AvailabilityZoneFilter",
    "ComputeFilter",
    "ComputeCapabilitiesFilter",
    "ImagePropertiesFilter",
    "ServerGroupAntiAffinityFilter",
    "ServerGroupAffinityFilter",
)

#: Nova's default ``weight_classes`` (all weighers), in the order their scores are added.
DEFAULT_WEIGHERS: tuple[str, ...] = (
    "RAMWeigher",
    "CPUWeigher",
    "DiskWeigher",
    "IoOpsWeigher",
    "ServerGroupSoftAffinityWeigher",
    "ServerGroupSoftAntiAffinityWeigher",
    "BuildFailureWeigher",
)


def _at_least_one(value: int) -> str | None:
    return None if value >= 1 else f"expected 1 or more, got {value}"


def _names(value: tuple[str, ...]) -> str | None:
    return None if all(isinstance(v, str) and v for v in value) else "expected a list of names"


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    """The ``[filter_scheduler]`` section (plus ``[scheduler] max_attempts``).

    Weight multipliers are named as Nova's options; an aggregate whose metadata
    carries the same key overrides the multiplier for its hosts (the smallest
    value wins when a host is in several), as Nova does.
    ``image_properties_default_architecture`` is the architecture assumed for an
    image that names none; ``default_availability_zone`` is the zone of a host
    placed in none.
    """

    enabled_filters: tuple[str, ...] = field(default=DEFAULT_FILTERS,
                                             metadata={"check": _names})
    weighers: tuple[str, ...] = field(default=DEFAULT_WEIGHERS, metadata={"check": _names})
    ram_weight_multiplier: float = 1.0
    cpu_weight_multiplier: float = 1.0
    disk_weight_multiplier: float = 1.0
    io_ops_weight_multiplier: float = -1.0
    soft_affinity_weight_multiplier: float = 1.0
    soft_anti_affinity_weight_multiplier: float = 1.0
    build_failure_weight_multiplier: float = 1000000.0
    host_subset_size: int = field(default=1, metadata={"check": _at_least_one})
    max_attempts: int = field(default=3, metadata={"check": _at_least_one})
    shuffle_best_same_weighed_hosts: bool = False
    image_properties_default_architecture: str | None = None
    default_availability_zone: str = "nova"
    #: ask placement for allocation candidates before filtering (Nova does, always).
    #: False: a request for VCPU, MEMORY_MB and DISK_GB only, with no trait and no
    #: aggregate, is filtered on the scheduler's own columns and claimed on the host's
    #: root provider (the claim stays placement's check); right for fleets without
    #: nested or sharing providers, and one query over every provider less per decision
    placement_prefilter: bool = True

    def __post_init__(self) -> None:
        for name in ("host_subset_size", "max_attempts"):
            problem = _at_least_one(getattr(self, name))
            if problem:
                raise ConfigError(f"[filter_scheduler] {name}: {problem}")

    def multiplier(self, option: str) -> float:
        """The configured value of weight multiplier ``option`` (``ram_weight_multiplier``...)."""
        value = getattr(self, option, None)
        if not isinstance(value, (int, float)):
            raise ConfigError(f"no weight multiplier option {option!r}")
        return float(value)
