"""``GET /limits``: a project's absolute limits and what it uses, in Nova's names.

The CLI calls it without a microversion header (so at 2.1) and with a literal
``?reserved=False``, which Nova ignores before 2.75 and refuses from it, as
every unknown query parameter. Asking for a project with ``?tenant_id`` needs
``os_compute_api:limits:other_project`` (admins by default; 403 for anyone else,
even naming their own project, as Nova). The limits are the
project's (not a user's), usage counted over the project. Fields leave with
microversions: the nova-network ones at 2.36, ``maxImageMeta`` at 2.39, the
personality (injected file) ones at 2.57. ``rate`` is always an empty list.
"""

from __future__ import annotations

from typing import Any

from nimbus.core.api.compute.flavors import check_query
from nimbus.core.api.compute.quotas import NETWORK, usage, with_network
from nimbus.core.api.compute.wire import ComputeEnv, ComputeRequest, json, route
from nimbus.core.api.http import Response, Route

#: Quota resource -> the absolute limit names it is shown under.
LIMIT_NAMES: dict[str, tuple[str, ...]] = {
    "ram": ("maxTotalRAMSize",),
    "instances": ("maxTotalInstances",),
    "cores": ("maxTotalCores",),
    "key_pairs": ("maxTotalKeypairs",),
    "floating_ips": ("maxTotalFloatingIps",),
    "metadata_items": ("maxServerMeta", "maxImageMeta"),
    "injected_files": ("maxPersonality",),
    "injected_file_content_bytes": ("maxPersonalitySize",),
    "security_groups": ("maxSecurityGroups",),
    "security_group_rules": ("maxSecurityGroupRules",),
    "server_groups": ("maxServerGroups",),
    "server_group_members": ("maxServerGroupMembers",),
}
#: Usage field -> the quota resource it counts.
USED_NAMES = {
    "totalRAMUsed": "ram",
    "totalCoresUsed": "cores",
    "totalInstancesUsed": "instances",
    "totalFloatingIpsUsed": "floating_ips",
    "totalSecurityGroupsUsed": "security_groups",
    "totalServerGroupsUsed": "server_groups",
}


def absolute(creq: ComputeRequest, limits: dict[str, int],
             used: dict[str, int]) -> dict[str, int]:
    """The ``absolute`` limits object at the request's microversion."""
    dropped: tuple[str, ...] = ()
    if creq.at_least(57):
        dropped = (*NETWORK, "injected_files", "injected_file_content_bytes")
    elif creq.at_least(36):
        dropped = NETWORK
    out: dict[str, int] = {}
    for resource, names in LIMIT_NAMES.items():
        if resource in dropped or resource not in limits:
            continue
        for name in names:
            if name == "maxImageMeta" and creq.at_least(39):
                continue
            out[name] = limits[resource]
    for name, resource in USED_NAMES.items():
        if resource not in dropped:
            out[name] = used.get(resource, 0)
    return out


async def show_limits(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /limits``: ``{"limits": {"rate": [], "absolute": {...}}}``."""
    check_query(creq, ("tenant_id",))
    creq.authorize("os_compute_api:limits")
    project_id = creq.ctx.project_id
    asked = creq.query("tenant_id")
    if asked is not None:
        creq.authorize("os_compute_api:limits:other_project", {"project_id": asked})
        project_id = asked
    limits = with_network(await env.store.get_quota_limits(project_id))
    used = await usage(env, project_id)
    body: dict[str, Any] = {"limits": {"rate": [], "absolute": absolute(creq, limits, used)}}
    return json(body)


def routes(env: ComputeEnv) -> list[Route]:
    """``GET /limits``."""
    return route(env, "GET", "/limits", show_limits)
