"""``/servers/{id}/os-instance-actions``: what was asked of a server, and how it went.

The list shows a server's actions newest first; from 2.58 it pages (``limit``,
``marker`` = a request id, a ``links`` next link when a page is full) and
filters by ``changes-since`` (and ``changes-before`` from 2.66) on the action's
last update, and each action carries ``updated_at``. From 2.21 a deleted
server's actions are shown too. Listing and showing are
``os-instance-actions:list`` and ``:show`` against the server. One action shows
its events: with ``os-instance-actions:events`` (admins) at every version, with
``traceback`` (and ``host`` from 2.62); to the others from 2.51 without those;
everyone gets the obfuscated ``hostId`` from 2.62, and ``events:details`` the
event ``details`` from 2.84 (Nova's policy).

Paging helpers shared with ``os-migrations`` live here too.
"""

from __future__ import annotations

import datetime
from typing import Any
from urllib.parse import urlencode

from nimbus.core.api.compute.server_actions_moves import host_id, visible_instance
from nimbus.core.api.compute.wire import (
    ComputeEnv,
    ComputeRequest,
    json,
    parse_time,
    route,
    validate,
)
from nimbus.core.api.http import Response, Route
from nimbus.core.db.actions import ActionEventRecord, InstanceActionRecord
from nimbus.core.errors import InvalidInput, NotFound

#: Nova's ``[api] max_limit``: the largest page, and the page without a ``limit``.
MAX_LIMIT = 1000
NON_NEGATIVE = {"type": ["integer", "string"], "pattern": "^[0-9]*$", "minimum": 0,
                "minLength": 1}


def nova_time(when: float | None) -> str | None:
    """Epoch seconds as Nova prints record times (``2018-04-25T01:26:34.784165``)."""
    if when is None:
        return None
    return datetime.datetime.fromtimestamp(when, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def query_dict(creq: ComputeRequest) -> dict[str, str]:
    """The query as one value per name (the last), for a query schema."""
    return {name: values[-1] for name, values in creq.request.query.items() if values}


def check_query(creq: ComputeRequest, props: dict[str, Any], *, closed: bool) -> dict[str, str]:
    """The query, checked: ``props`` are the known parameters; ``closed`` refuses others."""
    query = query_dict(creq)
    validate(query, {"type": "object", "properties": props, "additionalProperties": not closed})
    return query


def limit_and_marker(query: dict[str, str]) -> tuple[int, str | None]:
    """Nova's page size (at most ``MAX_LIMIT``) and marker."""
    limit = min(int(query.get("limit", MAX_LIMIT)), MAX_LIMIT)
    return limit, query.get("marker")


def time_window(query: dict[str, str]) -> tuple[float | None, float | None]:
    """``changes-since`` and ``changes-before`` as epoch seconds; 400 if reversed."""
    since = parse_time(query["changes-since"], "changes-since") \
        if "changes-since" in query else None
    before = parse_time(query["changes-before"], "changes-before") \
        if "changes-before" in query else None
    if since is not None and before is not None and before < since:
        raise InvalidInput("The value of changes-since must be less than or equal to "
                           "changes-before.")
    return since, before


def next_links(creq: ComputeRequest, count: int, limit: int, last: str,
               *parts: str) -> list[dict[str, str]]:
    """A ``next`` link when a page came back full, as Nova builds it."""
    if not limit or count != limit:
        return []
    params = {k: v for k, v in query_dict(creq).items() if k != "marker"}
    params["marker"] = last
    return [{"rel": "next", "href": f"{creq.link(*parts)}?{urlencode(params)}"}]


_RULE = "os_compute_api:os-instance-actions:"
_TIMES = {"type": "string"}
_LIST_V258 = {"limit": NON_NEGATIVE, "marker": {"type": "string"}, "changes-since": _TIMES}
_LIST_V266 = {**_LIST_V258, "changes-before": _TIMES}


def _action_view(creq: ComputeRequest, a: InstanceActionRecord) -> dict[str, Any]:
    view = {"action": a.action, "instance_uuid": a.instance_uuid, "request_id": a.request_id,
            "user_id": a.user_id, "project_id": a.project_id,
            "start_time": nova_time(a.start_time), "message": a.message}
    if creq.at_least(58):
        view["updated_at"] = nova_time(a.updated_at)
    return view


def _event_view(creq: ComputeRequest, e: ActionEventRecord, project_id: str, *,
                all_events: bool, details: bool) -> dict[str, Any]:
    view: dict[str, Any] = {"event": e.event, "start_time": nova_time(e.start_time),
                            "finish_time": nova_time(e.finish_time), "result": e.result}
    if all_events:
        view["traceback"] = e.traceback
        if creq.at_least(62):
            view["host"] = e.host or ""
    if creq.at_least(62):
        view["hostId"] = host_id(project_id, e.host)
    if details:
        view["details"] = e.details
    return view


async def list_actions(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /servers/{id}/os-instance-actions``."""
    uuid = creq.param("server_id")
    inst = await visible_instance(env, creq, uuid, read_deleted=creq.at_least(21))
    creq.authorize(_RULE + "list", inst)
    if not creq.at_least(58):
        check_query(creq, {}, closed=False)
        found = await env.store.list_actions(uuid)
        return json({"instanceActions": [_action_view(creq, a) for a in found]})
    query = check_query(creq, _LIST_V266 if creq.at_least(66) else _LIST_V258, closed=True)
    limit, marker = limit_and_marker(query)
    since, before = time_window(query)
    try:
        found = await env.store.list_actions(inst.uuid, changes_since=since,
                                             changes_before=before, marker=marker, limit=limit)
    except NotFound:
        raise InvalidInput(f"Marker {marker} could not be found.") from None
    body: dict[str, Any] = {"instanceActions": [_action_view(creq, a) for a in found]}
    links = next_links(creq, len(found), limit, found[-1].request_id if found else "",
                       "servers", uuid, "os-instance-actions")
    if links:
        body["links"] = links
    return json(body)


async def show_action(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /servers/{id}/os-instance-actions/{request_id}``."""
    uuid, request_id = creq.param("server_id"), creq.param("request_id")
    inst = await visible_instance(env, creq, uuid, read_deleted=creq.at_least(21))
    creq.authorize(_RULE + "show", inst)
    try:
        action, events = await env.store.get_action(uuid, request_id)
    except NotFound:
        raise NotFound(f"Action {request_id} not found") from None
    view = _action_view(creq, action)
    all_events = creq.allows(_RULE + "events", inst)
    details = creq.at_least(84) and creq.allows(_RULE + "events:details", inst)
    if all_events or creq.at_least(51):
        project = action.project_id or inst.project_id
        view["events"] = [_event_view(creq, e, project, all_events=all_events,
                                      details=details) for e in events]
    return json({"instanceAction": view})


def routes(env: ComputeEnv) -> list[Route]:
    """The instance actions routes."""
    return [*route(env, "GET", "/servers/{server_id}/os-instance-actions", list_actions),
            *route(env, "GET", "/servers/{server_id}/os-instance-actions/{request_id}",
                   show_action)]
