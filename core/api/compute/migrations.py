"""``GET /os-migrations`` and ``/servers/{id}/migrations``: moves, as admins see them.

``os-migrations`` (admin) lists every move newest first, filtered by ``host``
(either end), ``status``, ``instance_uuid``, ``source_compute`` and, from
2.23, ``migration_type``; from 2.59 it pages (``limit``, ``marker`` = a
migration uuid, ``migrations_links``) and takes ``changes-since`` (and
``changes-before`` from 2.66); from 2.80 it filters and shows ``user_id`` and
``project_id``. From 2.23 each row names its type, and an in-progress live
migration links to its server migration.

``/servers/{id}/migrations`` (2.23, admin) shows a server's live migrations in
progress. Aborting one (``DELETE``, 2.24) and forcing it to complete
(``force_complete``, 2.22) are checked as Nova checks them and then refused
with 409: the lifecycle can neither abort nor force a live migration yet.
"""

from __future__ import annotations

from typing import Any

from nimbus.core.api.compute.instance_actions import (
    NON_NEGATIVE,
    check_query,
    limit_and_marker,
    next_links,
    nova_time,
    time_window,
)
from nimbus.core.api.compute.server_actions_moves import (
    one,
    visible_instance,
)
from nimbus.core.api.compute.wire import ComputeEnv, ComputeRequest, json, route
from nimbus.core.api.http import Response, Route
from nimbus.core.compute import states
from nimbus.core.db.instance_migrations import MigrationRecord
from nimbus.core.errors import ConflictError, InstanceInvalidState, InvalidInput, NotFound

#: Live migration statuses Nova counts as in progress.
#: The largest value of an Integer column.
_DB_INT_MAX = 0x7FFFFFFF
LIVE_IN_PROGRESS = ("queued", "preparing", "running", "post-migrating")
_ANY = {"type": "string"}
_FILTERS = ("host", "status", "instance_uuid", "source_compute", "migration_type")


def _query_props(creq: ComputeRequest) -> dict[str, Any]:
    props: dict[str, Any] = {name: _ANY for name in (*_FILTERS, "hidden")}
    if creq.at_least(59):
        props.update({"limit": NON_NEGATIVE, "marker": _ANY, "changes-since": _ANY})
    if creq.at_least(66):
        props["changes-before"] = _ANY
    if creq.at_least(80):
        props.update(user_id=_ANY, project_id=_ANY)
    return props


def migration_view(creq: ComputeRequest, m: MigrationRecord) -> dict[str, Any]:
    """A migration as ``os-migrations`` shows it at the request's microversion."""
    view: dict[str, Any] = {
        "id": m.id, "instance_uuid": m.instance_uuid, "status": m.status,
        "source_compute": m.source_compute, "source_node": m.source_node,
        "dest_compute": m.dest_compute, "dest_node": m.dest_node, "dest_host": m.dest_host,
        "old_instance_type_id": m.old_instance_type_id,
        "new_instance_type_id": m.new_instance_type_id,
        "created_at": nova_time(m.created_at), "updated_at": nova_time(m.updated_at)}
    if creq.at_least(23):
        view["migration_type"] = m.migration_type
        if m.migration_type == "live-migration" and m.status in LIVE_IN_PROGRESS:
            parts = ("servers", m.instance_uuid, "migrations", str(m.id))
            view["links"] = [{"rel": "self", "href": creq.link(*parts)},
                             {"rel": "bookmark", "href": creq.bookmark(*parts)}]
    if creq.at_least(59):
        view["uuid"] = m.uuid
    if creq.at_least(80):
        view.update(user_id=m.user_id, project_id=m.project_id)
    return view


async def list_migrations(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /os-migrations`` (admin)."""
    creq.authorize("os_compute_api:os-migrations:index")
    query = check_query(creq, _query_props(creq), closed=creq.at_least(59))
    limit, marker = limit_and_marker(query) if creq.at_least(59) else (0, None)
    since, before = time_window(query) if creq.at_least(59) else (None, None)
    kind = query.get("migration_type") if creq.at_least(23) else None
    try:
        found = await env.store.list_migrations(
            host=query.get("host"), status=query.get("status"),
            instance_uuid=query.get("instance_uuid"), migration_type=kind,
            user_id=query.get("user_id") if creq.at_least(80) else None,
            project_id=query.get("project_id") if creq.at_least(80) else None,
            changes_since=since, changes_before=before, marker=marker, limit=limit or None)
    except NotFound:
        raise InvalidInput(f"Marker {marker} could not be found.") from None
    if "source_compute" in query:  # the Store filters by either end; Nova also by source
        found = [m for m in found if m.source_compute == query["source_compute"]]
    body: dict[str, Any] = {"migrations": [migration_view(creq, m) for m in found]}
    if creq.at_least(59):
        links = next_links(creq, len(found), limit, found[-1].uuid if found else "",
                           "os-migrations")
        if links:
            body["migrations_links"] = links
    return json(body)


# -- one server's live migrations ----------------------------------------------------------------
def server_migration_view(creq: ComputeRequest, m: MigrationRecord) -> dict[str, Any]:
    """A live migration as ``/servers/{id}/migrations`` shows it."""
    view: dict[str, Any] = {
        "id": m.id, "server_uuid": m.instance_uuid, "status": m.status,
        "source_compute": m.source_compute, "source_node": m.source_node,
        "dest_compute": m.dest_compute, "dest_node": m.dest_node, "dest_host": m.dest_host,
        "memory_total_bytes": m.memory_total, "memory_processed_bytes": m.memory_processed,
        "memory_remaining_bytes": m.memory_remaining, "disk_total_bytes": m.disk_total,
        "disk_processed_bytes": m.disk_processed, "disk_remaining_bytes": m.disk_remaining,
        "created_at": nova_time(m.created_at), "updated_at": nova_time(m.updated_at)}
    if creq.at_least(59):
        view["uuid"] = m.uuid
    if creq.at_least(80):
        view.update(user_id=m.user_id, project_id=m.project_id)
    return view


async def _server(env: ComputeEnv, creq: ComputeRequest, rule: str) -> str:
    uuid = creq.param("server_id")
    inst = await visible_instance(env, creq, uuid)
    creq.authorize(f"os_compute_api:servers:migrations:{rule}", inst)
    return uuid


async def _migration_of(env: ComputeEnv, uuid: str, text: str) -> MigrationRecord:
    """The server's migration of id ``text``; 404 naming both otherwise."""
    try:
        number = int(text)
        # an id no Integer column holds names no row (and the drivers cannot bind it)
        mig = None if abs(number) > _DB_INT_MAX else await env.store.get_migration(number)
    except (ValueError, NotFound):
        mig = None
    if mig is None or mig.instance_uuid != uuid:
        raise NotFound(f"Instance {uuid} does not have a migration with id {text}.")
    return mig


async def list_server_migrations(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /servers/{id}/migrations`` (2.23): live migrations in progress."""
    uuid = await _server(env, creq, "index")
    found = [m for m in await env.store.migrations_by_instance(uuid)
             if m.migration_type == "live-migration" and m.status in LIVE_IN_PROGRESS]
    return json({"migrations": [server_migration_view(creq, m) for m in found]})


async def show_server_migration(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /servers/{id}/migrations/{migration_id}`` (2.23)."""
    uuid = await _server(env, creq, "show")
    mid = creq.param("migration_id")
    try:
        mig = await _migration_of(env, uuid, mid)
    except NotFound:
        raise NotFound(f"In-progress live migration {mid} is not found for server "
                       f"{uuid}.") from None
    if mig.migration_type != "live-migration":
        raise NotFound(f"Migration {mid} for server {uuid} is not live-migration.")
    if mig.status not in LIVE_IN_PROGRESS:
        raise NotFound(f"Live migration {mid} for server {uuid} is not in progress.")
    return json({"migration": server_migration_view(creq, mig)})


async def _live_under_way(env: ComputeEnv, creq: ComputeRequest, uuid: str, mid: str,
                          allowed: tuple[str, ...], method: str) -> MigrationRecord:
    """Nova's checks before an abort or a force-complete: the server is migrating (409),
    the migration is its live migration (404) in an ``allowed`` status (400)."""
    inst = await visible_instance(env, creq, uuid)
    if inst.task_state != states.MIGRATING:
        raise InstanceInvalidState(f"Cannot '{method}' instance {uuid} while it is in "
                                   f"task_state {inst.task_state}")
    mig = await _migration_of(env, uuid, mid)
    if mig.migration_type != "live-migration" or mig.status not in allowed:
        raise InvalidInput(f"Migration {mid} state of instance {uuid} is {mig.status}. "
                           f"Cannot {method} while the migration is in this state.")
    return mig


async def abort_migration(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``DELETE /servers/{id}/migrations/{migration_id}`` (2.24): 409, not supported."""
    uuid = await _server(env, creq, "delete")
    allowed = ("running", "preparing", "queued") if creq.at_least(65) else ("running",
                                                                            "preparing")
    await _live_under_way(env, creq, uuid, creq.param("migration_id"), allowed,
                          "abort live migration")
    raise ConflictError("Aborting a live migration is not supported by this cloud yet.")


async def force_complete(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``POST /servers/{id}/migrations/{migration_id}/action`` force_complete (2.22): 409."""
    uuid = await _server(env, creq, "force_complete")
    creq.body(one("force_complete", {"type": "null"}))
    await _live_under_way(env, creq, uuid, creq.param("migration_id"), ("running",),
                          "force complete")
    raise ConflictError("Forcing a live migration to complete is not supported by this "
                        "cloud yet.")


def routes(env: ComputeEnv) -> list[Route]:
    """The migrations routes."""
    one_migration = "/servers/{server_id}/migrations/{migration_id}"
    return [*route(env, "GET", "/os-migrations", list_migrations),
            *route(env, "GET", "/servers/{server_id}/migrations", list_server_migrations,
                   min_minor=23),
            *route(env, "GET", one_migration, show_server_migration, min_minor=23),
            *route(env, "DELETE", one_migration, abort_migration, min_minor=24),
            *route(env, "POST", one_migration + "/action", force_complete, min_minor=22)]
