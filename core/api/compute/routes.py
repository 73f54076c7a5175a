"""Every route of the Compute API v2.1, as data, for one :class:`ComputeEnv`.

Each resource module exposes ``routes(env) -> list[Route]``; this module joins
them. Routes without a project id in the path come first, so that a resource
name is never taken for a project id.
"""

from __future__ import annotations

from collections.abc import Callable

from nimbus.core.api.compute import (
    aggregates,
    availability_zones,
    flavors,
    hypervisors,
    instance_actions,
    keypairs,
    limits,
    migrations,
    openapi,
    quotas,
    server_actions,
    server_groups,
    servers,
    services,
    usage,
    versions,
)
from nimbus.core.api.compute.wire import ComputeEnv
from nimbus.core.api.http import Route

#: The resource modules' route builders, in the order they are bound.
RESOURCES: tuple[Callable[[ComputeEnv], list[Route]], ...] = (
    versions.routes, openapi.routes,
    hypervisors.routes, services.routes, availability_zones.routes, aggregates.routes,
    usage.routes,
    flavors.routes, keypairs.routes, limits.routes, quotas.routes,
    server_actions.routes, instance_actions.routes, migrations.routes, server_groups.routes,
    servers.routes,
)


def compute_routes(env: ComputeEnv) -> tuple[Route, ...]:
    """Every Compute API route (under ``/v2.1`` and ``/v2.1/{project_id}``)."""
    found = [r for build in RESOURCES for r in build(env)]
    plain = [r for r in found if "{project_id}" not in r.path]
    scoped = [r for r in found if "{project_id}" in r.path]
    return tuple(plain + scoped)
