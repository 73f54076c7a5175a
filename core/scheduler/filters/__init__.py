"""The host filters, one per module, and their registry (names as Nova spells them)."""

from __future__ import annotations

from nimbus.core.registry import Registry
from nimbus.core.scheduler.filters.aggregate_instance_extra_specs import (
    AggregateInstanceExtraSpecsFilter,
)
from nimbus.core.scheduler.filters.aggregate_multitenancy_isolation import (
    AggregateMultiTenancyIsolation,
)
from nimbus.core.scheduler.filters.availability_zone import AvailabilityZoneFilter
from nimbus.core.scheduler.filters.compute import ComputeFilter
from nimbus.core.scheduler.filters.compute_capabilities import ComputeCapabilitiesFilter
from nimbus.core.scheduler.filters.different_host import DifferentHostFilter
from nimbus.core.scheduler.filters.image_properties import ImagePropertiesFilter
from nimbus.core.scheduler.filters.resource_fit import ResourceFit
from nimbus.core.scheduler.filters.same_host import SameHostFilter
from nimbus.core.scheduler.filters.server_group_affinity import ServerGroupAffinityFilter
from nimbus.core.scheduler.filters.server_group_anti_affinity import (
    ServerGroupAntiAffinityFilter,
)
from nimbus.core.scheduler.plugins import HostFilter

__all__ = [
    "FILTERS",
    "AggregateInstanceExtraSpecsFilter",
    "AggregateMultiTenancyIsolation",
    "AvailabilityZoneFilter",
    "ComputeCapabilitiesFilter",
    "ComputeFilter",
    "DifferentHostFilter",
    "ImagePropertiesFilter",
    "ResourceFit",
    "SameHostFilter",
    "ServerGroupAffinityFilter",
    "ServerGroupAntiAffinityFilter",
]

#: Filters that ``[filter_scheduler] enabled_filters`` may name. ResourceFit is not
#: among them: the scheduler always applies it first, in place of placement.
FILTERS: Registry[type[HostFilter]] = Registry("filter", {
    cls.name: cls for cls in (
        AggregateInstanceExtraSpecsFilter,
        AggregateMultiTenancyIsolation,
        AvailabilityZoneFilter,
        ComputeCapabilitiesFilter,
        ComputeFilter,
        DifferentHostFilter,
        ImagePropertiesFilter,
        SameHostFilter,
        ServerGroupAffinityFilter,
        ServerGroupAntiAffinityFilter,
    )
})
