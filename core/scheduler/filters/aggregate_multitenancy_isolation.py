"""AggregateMultiTenancyIsolation: keep tenants out of aggregates reserved for others."""

from __future__ import annotations

from collections.abc import Hashable

from nimbus.core.scheduler.host_state import HostStates
from nimbus.core.scheduler.plugins import BoolArray, HostFilter, ScheduleContext
from nimbus.core.scheduler.request import RequestSpec

_PREFIX = "filter_tenant_id"


def tenants(metadata: dict[str, str]) -> set[str] | None:
    """The tenants an aggregate admits (keys starting ``filter_tenant_id``), or None if open."""
    keys = [k for k in metadata if k.startswith(_PREFIX)]
    if not keys:
        return None
    return {item.strip() for k in keys for item in metadata[k].split(",")}


class AggregateMultiTenancyIsolation(HostFilter):
    """A host in an aggregate with ``filter_tenant_id*`` metadata takes only those tenants
    (across all its aggregates); a host in no such aggregate takes anyone."""

    name = "AggregateMultiTenancyIsolation"
    watches = ("hosts_version", "aggregates_version")

    def cache_key(self, request: RequestSpec) -> Hashable:
        return request.project_id

    def mask(self, states: HostStates, request: RequestSpec,
             ctx: ScheduleContext) -> BoolArray | None:
        table = states.aggregates
        restricted, admitting = [], []
        for a in table.live_columns():
            allowed = tenants(table.metadata[a])
            if allowed is not None:
                restricted.append(a)
                if request.project_id in allowed:
                    admitting.append(a)
        if not restricted:
            return None
        result: BoolArray = ~table.hosts_in_any(restricted, states.n)
        result |= table.hosts_in_any(admitting, states.n)
        return result
