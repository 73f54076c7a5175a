"""``/os-server-groups``: groups of servers placed by one policy.

A group is created with ``policies`` (a list of exactly one) before 2.64 and
with ``policy`` plus optional ``rules`` (``max_server_per_host``, for
anti-affinity only) from 2.64; the soft policies exist from 2.15. The answer
(200 on create, as Nova) shows ``policies`` and an empty ``metadata`` before
2.64, ``policy`` and ``rules`` from it, and ``project_id``/``user_id`` from
2.13; ``members`` are the group's servers that are not deleted.

A project sees its own groups; an admin lists every project's with
``all_projects``. Another project's group is as missing as one that never
was (404): as Nova, the lookup is scoped to the caller's project unless
``context_is_admin``, and the ``os-server-groups:*`` rule is then checked
against the group's project (a reader may look, not create or delete).

Creating one counts against the ``server_groups`` quota (403 over it),
checked before and re-checked after the insert, as Nova does; the
``server_group_members`` quota is the Store's, enforced as servers join.
"""

from __future__ import annotations

from typing import Any

from nimbus.core.api.compute.instance_actions import NON_NEGATIVE, check_query
from nimbus.core.api.compute.server_actions_moves import NAME, obj
from nimbus.core.api.compute.wire import ComputeEnv, ComputeRequest, json, route
from nimbus.core.api.http import Response, Route
from nimbus.core.db.groups import ServerGroupRecord
from nimbus.core.errors import Forbidden, InvalidInput, NotFound, QuotaExceeded

_HARD = ["anti-affinity", "affinity"]
_ALL = [*_HARD, "soft-anti-affinity", "soft-affinity"]
_POSITIVE = {"type": ["integer", "string"], "pattern": "^[0-9]*$", "minimum": 1, "minLength": 1}


def _create_schema(creq: ComputeRequest) -> dict[str, Any]:
    if creq.at_least(64):
        group = obj({"name": NAME, "policy": {"type": "string", "enum": _ALL},
                     "rules": obj({"max_server_per_host": _POSITIVE})}, ("name", "policy"))
    else:
        choices = _ALL if creq.at_least(15) else _HARD
        group = obj({"name": NAME, "policies": {
            "type": "array", "items": [{"type": "string", "enum": choices}],
            "uniqueItems": True, "minItems": 1, "maxItems": 1, "additionalItems": False}},
            ("name", "policies"))
    return obj({"server_group": group}, ("server_group",))


async def _live_members(env: ComputeEnv, group: ServerGroupRecord) -> list[str]:
    live = []
    for uuid in group.members:
        try:
            await env.store.get_instance(uuid)
        except NotFound:
            continue  # deleted: Nova shows only members that are not
        live.append(uuid)
    return live


async def group_view(env: ComputeEnv, creq: ComputeRequest,
                     group: ServerGroupRecord) -> dict[str, Any]:
    """A server group as the request's microversion shows it."""
    view: dict[str, Any] = {"id": group.uuid, "name": group.name}
    if creq.at_least(64):
        rules = {k: int(v) for k, v in group.rules.items() if k == "max_server_per_host"}
        view.update(policy=group.policy, rules=rules)
    else:
        view.update(policies=[group.policy], metadata={})
    view["members"] = await _live_members(env, group)
    if creq.at_least(13):
        view.update(project_id=group.project_id, user_id=group.user_id)
    return view


async def _visible(env: ComputeEnv, creq: ComputeRequest, action: str) -> ServerGroupRecord:
    """The group of the path if the caller may see it (404 if not), then 403 unless
    ``os_compute_api:os-server-groups:<action>`` allows the caller on it."""
    uuid = creq.param("group_id")
    try:
        group = await env.store.get_server_group(uuid)
    except NotFound:
        group = None
    if group is None or (group.project_id != creq.ctx.project_id
                         and not creq.allows("context_is_admin")):
        raise NotFound(f"Server group {uuid} could not be found.")
    creq.authorize(f"os_compute_api:os-server-groups:{action}", group)
    return group


async def list_groups(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /os-server-groups``: the project's groups, or (admin, ``all_projects``) all."""
    query = check_query(creq, {"all_projects": {"type": "string"}, "limit": NON_NEGATIVE,
                               "offset": NON_NEGATIVE}, closed=creq.at_least(75))
    creq.authorize("os_compute_api:os-server-groups:index")
    every = "all_projects" in query and creq.allows(
        "os_compute_api:os-server-groups:index:all_projects")
    groups = await env.store.list_server_groups(None if every else creq.ctx.project_id)
    offset = int(query.get("offset", 0))
    limit = int(query.get("limit", 0)) or 1000
    page = groups[offset:offset + min(limit, 1000)]
    return json({"server_groups": [await group_view(env, creq, g) for g in page]})


async def show_group(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /os-server-groups/{id}``."""
    group = await _visible(env, creq, "show")
    return json({"server_group": await group_view(env, creq, group)})


async def delete_group(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``DELETE /os-server-groups/{id}``: 204."""
    group = await _visible(env, creq, "delete")
    try:
        await env.store.delete_server_group(group.uuid, env.runtime.wall_time())
    except NotFound:
        raise NotFound(f"Server group {group.uuid} could not be found.") from None
    return json(None, 204)


async def _over_quota(env: ComputeEnv, creq: ComputeRequest, extra: int) -> bool:
    ctx = creq.ctx
    try:
        await env.store.check_quota(ctx.project_id, ctx.user_id, {"server_groups": extra})
    except QuotaExceeded:
        return True
    if extra:
        return False
    # a re-check after the insert: the new group is counted already
    for user in (None, ctx.user_id):
        used = (await env.store.count_usage(ctx.project_id, user))["server_groups"]
        limit = (await env.store.get_quota_limits(ctx.project_id, user))["server_groups"]
        if 0 <= limit < used:
            return True
    return False


async def create_group(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``POST /os-server-groups``: 200 with the new group."""
    args = creq.body(_create_schema(creq))["server_group"]
    creq.authorize("os_compute_api:os-server-groups:create")
    if await _over_quota(env, creq, 1):
        raise Forbidden("Quota exceeded, too many server groups.")
    if creq.at_least(64):
        policy, rules = args["policy"], dict(args.get("rules") or {})
        if rules and policy != "anti-affinity":
            raise InvalidInput("Only anti-affinity policy supports rules.")
        rules = {k: int(v) for k, v in rules.items()}
    else:
        policy, rules = args["policies"][0], {}
    group = await env.store.create_server_group(
        uuid=env.runtime.new_id(), name=args["name"], project_id=creq.ctx.project_id,
        user_id=creq.ctx.user_id, policy=policy, now=env.runtime.wall_time(), rules=rules)
    if await _over_quota(env, creq, 0):  # a racing create got there first
        await env.store.delete_server_group(group.uuid, env.runtime.wall_time())
        raise Forbidden("Quota exceeded, too many server groups.")
    return json({"server_group": await group_view(env, creq, group)})


def routes(env: ComputeEnv) -> list[Route]:
    """The server group routes."""
    return [*route(env, "GET", "/os-server-groups", list_groups),
            *route(env, "POST", "/os-server-groups", create_group),
            *route(env, "GET", "/os-server-groups/{group_id}", show_group),
            *route(env, "DELETE", "/os-server-groups/{group_id}", delete_group)]
