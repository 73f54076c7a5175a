"""AggregateInstanceExtraSpecsFilter: pass hosts whose aggregates meet the extra specs."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np

from nimbus.core.scheduler.extra_specs_ops import match
from nimbus.core.scheduler.host_state import HostStates
from nimbus.core.scheduler.plugins import BoolArray, HostFilter, ScheduleContext
from nimbus.core.scheduler.request import RequestSpec

_SCOPE = "aggregate_instance_extra_specs"


def requirements(extra_specs: Mapping[str, str]) -> list[tuple[str, str]]:
    """(metadata key, requirement) for each extra spec this filter checks.

    Keys in the ``aggregate_instance_extra_specs:`` scope and unscoped keys count;
    an unscoped key must then be in the host's aggregates, as in Nova.
    """
    found = []
    for key, requirement in extra_specs.items():
        scope, sep, rest = key.partition(":")
        if not sep:
            found.append((key, requirement))
        elif scope == _SCOPE:
            found.append((rest, requirement))
    return found


def values_match(value: str, requirement: str) -> bool:
    """One aggregate's comma-separated metadata value has an item meeting ``requirement``."""
    return any(match(item.strip(), requirement) for item in value.split(","))


class AggregateInstanceExtraSpecsFilter(HostFilter):
    """Pass hosts in aggregates whose metadata meets each of the flavor's
    ``aggregate_instance_extra_specs:`` (and unscoped) extra specs."""

    name = "AggregateInstanceExtraSpecsFilter"
    watches = ("hosts_version", "aggregates_version")

    def cache_key(self, request: RequestSpec) -> Hashable:
        return request.extra_specs

    def mask(self, states: HostStates, request: RequestSpec,
             ctx: ScheduleContext) -> BoolArray | None:
        reqs = requirements(request.extra_spec_dict())
        if not reqs:
            return None
        table = states.aggregates
        result = np.ones(states.n, dtype=np.bool_)
        for key, requirement in reqs:
            ok = [a for a in table.live_columns()
                  if key in table.metadata[a] and values_match(table.metadata[a][key], requirement)]
            result &= table.hosts_in_any(ok, states.n)
        return result
