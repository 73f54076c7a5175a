"""``/servers/{server_id}/metadata``: a server's user metadata, as Nova serves it.

``GET`` lists the items, ``POST`` merges items in, ``PUT`` replaces them all;
``/metadata/{key}`` shows, sets (``{"meta": {key: value}}``, the key matching
the URL) or deletes one item. Each is checked against its
``os_compute_api:server-metadata:*`` rule with the server as the target (readers
read, members change). Changes need the server unlocked (or an admin)
and idle in active, paused, suspended, stopped or shelved (409 otherwise), and
the items may not outnumber the ``metadata_items`` quota (403). Concurrent
changes do not lose each other: the Store merges them with compare-and-swap.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nimbus.core.api.compute.server_schemas import METADATA
from nimbus.core.api.compute.wire import ComputeEnv, ComputeRequest, json, route
from nimbus.core.api.http import Response, Route
from nimbus.core.compute import states
from nimbus.core.db.instance_schema import InstanceRecord
from nimbus.core.errors import Forbidden, InstanceInvalidState, InvalidInput, NotFound

#: Where Nova lets metadata change (with no task under way).
CHANGEABLE = frozenset({states.ACTIVE, states.PAUSED, states.SUSPENDED, states.STOPPED,
                        states.SHELVED, states.SHELVED_OFFLOADED})
ITEMS = {"type": "object", "properties": {"metadata": METADATA}, "required": ["metadata"],
         "additionalProperties": False}
ONE_ITEM = {"type": "object", "properties": {"meta": {**METADATA, "minProperties": 1,
                                                      "maxProperties": 1}},
            "required": ["meta"], "additionalProperties": False}


async def _server(env: ComputeEnv, creq: ComputeRequest, rule: str,
                  action: str | None = None) -> InstanceRecord:
    """The server (404 if not the caller's), if ``server-metadata:<rule>`` allows (403);
    for a change, unlocked and idle in a state that allows it (409)."""
    uuid = creq.param("server_id")
    try:
        inst = await env.compute.get(creq.ctx, uuid)
    except NotFound:
        raise NotFound(f"Instance {uuid} could not be found.") from None
    creq.authorize("os_compute_api:server-metadata:" + rule, inst)
    if action is not None:
        env.compute.check_lock(creq.ctx, inst)
        if inst.vm_state not in CHANGEABLE or inst.task_state is not None:
            state = ("vm_state", inst.vm_state) if inst.vm_state not in CHANGEABLE else (
                "task_state", inst.task_state)
            raise InstanceInvalidState(f"Cannot '{action}' instance {uuid} while it is in "
                                       f"{state[0]} {state[1]}")
    return inst


async def check_items_quota(env: ComputeEnv, creq: ComputeRequest,
                            items: Mapping[str, Any]) -> None:
    """403 if ``items`` outnumber the caller's ``metadata_items`` quota."""
    limit = (await env.store.get_quota_limits(creq.ctx.project_id,
                                              creq.ctx.user_id))["metadata_items"]
    if 0 <= limit < len(items):
        raise Forbidden(f"Maximum number of metadata items exceeds {limit}")


async def _change(env: ComputeEnv, creq: ComputeRequest, inst: InstanceRecord, *,
                  updates: Mapping[str, str] | None = None, deletes: tuple[str, ...] = (),
                  replace_all: bool = False) -> InstanceRecord:
    if updates:
        merged = dict(updates) if replace_all else {**inst.metadata, **updates}
        await check_items_quota(env, creq, merged)
    try:
        return await env.store.update_instance_metadata(
            inst.uuid, now=env.compute.wall(), updates=updates, deletes=deletes,
            replace_all=replace_all)
    except NotFound:
        raise NotFound("Metadata item was not found") from None


async def list_metadata(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /servers/{server_id}/metadata``."""
    inst = await _server(env, creq, "index")
    return json({"metadata": dict(inst.metadata)})


async def merge_metadata(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``POST /servers/{server_id}/metadata``: add or change items; all items after."""
    items = creq.body(ITEMS)["metadata"]
    inst = await _change(env, creq, await _server(env, creq, "create", "update metadata"),
                         updates=items)
    return json({"metadata": dict(inst.metadata)})


async def replace_metadata(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``PUT /servers/{server_id}/metadata``: the items become exactly these."""
    items = creq.body(ITEMS)["metadata"]
    inst = await _change(env, creq, await _server(env, creq, "update_all",
                                                  "update metadata"),
                         updates=items, replace_all=True)
    return json({"metadata": dict(inst.metadata)})


async def show_item(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /servers/{server_id}/metadata/{key}``."""
    inst, key = await _server(env, creq, "show"), creq.param("key")
    if key not in inst.metadata:
        raise NotFound("Metadata item was not found")
    return json({"meta": {key: inst.metadata[key]}})


async def set_item(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``PUT /servers/{server_id}/metadata/{key}``: set one item."""
    meta, key = creq.body(ONE_ITEM)["meta"], creq.param("key")
    if key not in meta:
        raise InvalidInput("Request body and URI mismatch")
    await _change(env, creq, await _server(env, creq, "update", "update metadata"),
                  updates={key: meta[key]})
    return json({"meta": {key: meta[key]}})


async def delete_item(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``DELETE /servers/{server_id}/metadata/{key}``: 204."""
    inst, key = await _server(env, creq, "delete", "delete metadata"), creq.param("key")
    if key not in inst.metadata:
        raise NotFound("Metadata item was not found")
    await _change(env, creq, inst, deletes=(key,))
    return Response(204, None)


def routes(env: ComputeEnv) -> list[Route]:
    """The metadata routes of a server."""
    items, one = "/servers/{server_id}/metadata", "/servers/{server_id}/metadata/{key}"
    return [*route(env, "GET", items, list_metadata),
            *route(env, "POST", items, merge_metadata),
            *route(env, "PUT", items, replace_metadata),
            *route(env, "GET", one, show_item),
            *route(env, "PUT", one, set_item),
            *route(env, "DELETE", one, delete_item)]
