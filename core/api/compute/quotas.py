"""``/os-quota-sets`` and ``/os-quota-class-sets``: quota limits, usage and defaults.

A project's reader sees its own quotas (``?user_id`` for a user's within it);
admins see and set anyone's: each handler checks its ``os-quota-sets:*`` or
``os-quota-class-sets:*`` rule against the project (or class) in the URL.
Setting a limit below what is in use is refused (400) unless ``force`` is
given; -1 means unlimited. Deleting a project's quotas puts it back on the
defaults, which are the ``default`` quota class.

The resources named follow Nova per microversion: before 2.36 the quota sets
also carry the network quotas of nova-network (``fixed_ips``, ``floating_ips``,
``security_groups``, ``security_group_rules``: always -1 here, as in a Nova
without nova-network, and accepted but not stored on update); 2.57 drops the
injected-file quotas. Quota class sets drop the network quotas and gain the
server group ones at 2.50, and drop injected files at 2.57.
"""

from __future__ import annotations

from typing import Any

from nimbus.core.api.compute.flavors import BOOLEAN, check_query, parse_bool
from nimbus.core.api.compute.wire import ComputeEnv, ComputeRequest, json, route
from nimbus.core.api.http import Response, Route
from nimbus.core.errors import InvalidInput

#: nova-network quotas reported (as unlimited) before 2.36 (2.50 for quota classes).
NETWORK = ("fixed_ips", "floating_ips", "security_group_rules", "security_groups")
INJECTED = ("injected_file_content_bytes", "injected_file_path_bytes", "injected_files")
SERVER_GROUPS = ("server_group_members", "server_groups")
#: Every resource Nova's quota engine knows, sorted.
RESOURCES = ("cores", "fixed_ips", "floating_ips", "injected_file_content_bytes",
             "injected_file_path_bytes", "injected_files", "instances", "key_pairs",
             "metadata_items", "ram", "security_group_rules", "security_groups",
             "server_group_members", "server_groups")
#: Resources whose usage Nova reports as 0 (counted per user or per group, not here).
UNCOUNTED = ("key_pairs", "server_group_members")

_LIMIT = {"type": ["integer", "string"], "pattern": "^-?[0-9]+$", "minimum": -1,
          "maximum": 0x7FFFFFFF}


def quota_resources(creq: ComputeRequest) -> tuple[str, ...]:
    """The quota-set resources of a request's microversion."""
    dropped = (*NETWORK, *INJECTED) if creq.at_least(57) else NETWORK if creq.at_least(
        36) else ()
    return tuple(r for r in RESOURCES if r not in dropped)


def class_resources(creq: ComputeRequest) -> tuple[str, ...]:
    """The quota-class-set resources of a request's microversion."""
    if creq.at_least(57):
        dropped: tuple[str, ...] = (*NETWORK, *INJECTED)
    elif creq.at_least(50):
        dropped = NETWORK
    else:
        dropped = SERVER_GROUPS
    return tuple(r for r in RESOURCES if r not in dropped)


def with_network(limits: dict[str, int]) -> dict[str, int]:
    """Stored limits plus the nova-network ones, unlimited."""
    return {**dict.fromkeys(NETWORK, -1), **limits}


def _body_schema(key: str, names: tuple[str, ...], force: bool) -> dict[str, Any]:
    fields: dict[str, Any] = dict.fromkeys(names, _LIMIT)
    if force:
        fields["force"] = BOOLEAN
    inner = {"type": "object", "properties": fields, "additionalProperties": False}
    return {"type": "object", "properties": {key: inner}, "required": [key],
            "additionalProperties": False}


def _view(names: tuple[str, ...], values: dict[str, Any], ident: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {} if ident is None else {"id": ident}
    out.update((r, values[r]) for r in names if r in values)
    return out


def _user(creq: ComputeRequest) -> str | None:
    check_query(creq, ("user_id",))
    return creq.query("user_id") or None


async def usage(env: ComputeEnv, project_id: str, user_id: str | None = None) -> dict[str, int]:
    """What Nova reports in use: instances, cores, ram and server groups; 0 for the rest."""
    counted = await env.store.count_usage(project_id, user_id)
    out = dict.fromkeys(RESOURCES, 0)
    out.update((r, n) for r, n in counted.items() if r in out and r not in UNCOUNTED)
    return out


async def show_quotas(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /os-quota-sets/{project_id}``: the limits (own project, or admin)."""
    project_id = creq.param("tenant_id")
    creq.authorize("os_compute_api:os-quota-sets:show", {"project_id": project_id})
    limits = await env.store.get_quota_limits(project_id, _user(creq))
    return json({"quota_set": _view(quota_resources(creq), with_network(limits), project_id)})


async def show_quota_detail(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /os-quota-sets/{project_id}/detail``: limit, in_use and reserved (0) each."""
    project_id = creq.param("tenant_id")
    creq.authorize("os_compute_api:os-quota-sets:detail", {"project_id": project_id})
    user_id = _user(creq)
    limits = with_network(await env.store.get_quota_limits(project_id, user_id))
    used = await usage(env, project_id, user_id)
    detail = {r: {"in_use": used[r], "limit": limits[r], "reserved": 0} for r in limits}
    return json({"quota_set": _view(quota_resources(creq), detail, project_id)})


async def show_defaults(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /os-quota-sets/{project_id}/defaults``: anyone may read the defaults."""
    creq.authorize("os_compute_api:os-quota-sets:defaults",
                   {"project_id": creq.param("tenant_id")})
    defaults = with_network(await env.store.get_quota_class())
    return json({"quota_set": _view(quota_resources(creq), defaults, creq.param("tenant_id"))})


def _check_limit(resource: str, limit: int, minimum: int, maximum: int) -> None:
    def inf(value: int) -> float:
        return float("inf") if value == -1 else value

    if inf(limit) < inf(minimum):
        raise InvalidInput(f"Quota limit {limit} for {resource} must be greater than or equal "
                           f"to already used and reserved {minimum}.")
    if inf(limit) > inf(maximum):
        raise InvalidInput(f"Quota limit {limit} for {resource} must be less than or equal "
                           f"to {maximum}.")


async def update_quotas(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``PUT /os-quota-sets/{project_id}`` (admin): set limits of a project or a user."""
    project_id = creq.param("tenant_id")
    names = quota_resources(creq)
    vals = creq.body(_body_schema("quota_set", names, True))["quota_set"]
    creq.authorize("os_compute_api:os-quota-sets:update", {"project_id": project_id})
    user_id = _user(creq)
    force = parse_bool(vals.get("force", False), "force")
    wanted = {r: int(v) for r, v in vals.items() if r != "force" and r not in NETWORK}
    if not force and wanted:
        used = await usage(env, project_id, user_id)
        project = await env.store.get_quota_limits(project_id)
        for resource, limit in wanted.items():
            # a user's limit may not pass the project's
            maximum = project[resource] if user_id is not None else -1
            _check_limit(resource, limit, used[resource], maximum)
    now = env.runtime.wall_time()
    if user_id is not None:
        limits = await env.store.set_user_quotas(project_id, user_id, wanted, now)
    else:
        limits = await env.store.set_project_quotas(project_id, wanted, now)
    return json({"quota_set": _view(names, with_network(limits), None)})


async def delete_quotas(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``DELETE /os-quota-sets/{project_id}`` (admin): back to the defaults; 202."""
    project_id = creq.param("tenant_id")
    creq.authorize("os_compute_api:os-quota-sets:delete", {"project_id": project_id})
    user_id = _user(creq)
    if user_id is not None:
        await env.store.delete_user_quotas(project_id, user_id)
    else:
        await env.store.delete_project_quotas(project_id)
    return json(None, 202)


async def show_class(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /os-quota-class-sets/{id}`` (admin)."""
    name = creq.param("class_name")
    creq.authorize("os_compute_api:os-quota-class-sets:show", {"quota_class": name})
    limits = with_network(await env.store.get_quota_class(name))
    return json({"quota_class_set": _view(class_resources(creq), limits, name)})


async def update_class(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``PUT /os-quota-class-sets/{id}`` (admin): set a class's limits (``default``: the
    defaults of every project)."""
    names = class_resources(creq)
    vals = creq.body(_body_schema("quota_class_set", names, False))["quota_class_set"]
    name = creq.param("class_name")
    creq.authorize("os_compute_api:os-quota-class-sets:update", {"quota_class": name})
    if not 1 <= len(name) <= 255:
        raise InvalidInput("quota_class_name has a length of 1 to 255 characters")
    wanted = {r: int(v) for r, v in vals.items() if r not in NETWORK}
    limits = await env.store.set_quota_class(name, wanted, env.runtime.wall_time())
    return json({"quota_class_set": _view(names, with_network(limits), None)})


def routes(env: ComputeEnv) -> list[Route]:
    """The quota set and quota class set routes."""
    one = "/os-quota-sets/{tenant_id}"
    return [
        *route(env, "GET", one + "/defaults", show_defaults),
        *route(env, "GET", one + "/detail", show_quota_detail),
        *route(env, "GET", one, show_quotas),
        *route(env, "PUT", one, update_quotas),
        *route(env, "DELETE", one, delete_quotas),
        *route(env, "GET", "/os-quota-class-sets/{class_name}", show_class),
        *route(env, "PUT", "/os-quota-class-sets/{class_name}", update_class),
    ]
