"""``/os-aggregates``: host aggregates, their hosts and metadata, and availability zones.

Admin only. An aggregate's ``availability_zone`` (a metadata key) makes its
hosts that zone: a host cannot be in two zones (409 adding it, 400 setting
the zone), and a zone may not change under hosts that have instances. Every
change of membership is mirrored into placement, as Nova does: the host's
resource providers join (or leave) the placement aggregate of the same uuid,
so ``member_of`` finds them. The view gains ``uuid`` at 2.41; 2.81 adds
``POST /os-aggregates/{id}/images`` (202), which asks hosts to cache images: the
fake hypervisors keep no image cache, so it only checks the request.
Aggregate ids in paths are integers (400 otherwise), as in Nova.
"""

from __future__ import annotations

from typing import Any

from nimbus.core.api.compute.services import HOST, mirror_membership, nova_time
from nimbus.core.api.compute.wire import ComputeEnv, ComputeRequest, json, route, validate
from nimbus.core.api.http import Response, Route
from nimbus.core.db.aggregates import AZ_KEY, AggregateRecord
from nimbus.core.errors import ApiError, DuplicateError, InvalidInput, NotFound

# Printable, not starting or ending with whitespace; a zone name has no ':'.
_NAME = {"type": "string", "minLength": 1, "maxLength": 255,
         "pattern": r"^(?!\s)[^\x00-\x1f\x7f]*(?<!\s)$"}
_SPACED_NAME = {"type": "string", "minLength": 1, "maxLength": 255,
                "pattern": r"^[^\x00-\x1f\x7f]*\S[^\x00-\x1f\x7f]*$"}
_ZONE = {"oneOf": [{"type": "string", "minLength": 1, "maxLength": 255,
                    "pattern": r"^(?!\s)[^\x00-\x1f\x7f:]*(?<!\s)$"}, {"type": "null"}]}
_CREATE = {"type": "object", "properties": {"aggregate": {
    "type": "object", "properties": {"name": _NAME, "availability_zone": _ZONE},
    "required": ["name"], "additionalProperties": False}},
    "required": ["aggregate"], "additionalProperties": False}
_UPDATE = {"type": "object", "properties": {"aggregate": {
    "type": "object", "properties": {"name": _SPACED_NAME, "availability_zone": _ZONE},
    "additionalProperties": False,
    "anyOf": [{"required": ["name"]}, {"required": ["availability_zone"]}]}},
    "required": ["aggregate"], "additionalProperties": False}


def _action(name: str, inner: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {name: inner}, "required": [name],
            "additionalProperties": False}


_HOST_ACTION = {"type": "object", "properties": {"host": HOST}, "required": ["host"],
                "additionalProperties": False}
_ACTIONS = {
    "add_host": _action("add_host", _HOST_ACTION),
    "remove_host": _action("remove_host", _HOST_ACTION),
    "set_metadata": _action("set_metadata", {
        "type": "object", "required": ["metadata"], "additionalProperties": False,
        "properties": {"metadata": {
            "type": "object", "additionalProperties": False, "patternProperties": {
                "^[a-zA-Z0-9-_:. ]{1,255}$": {"type": ["string", "null"],
                                              "maxLength": 255}}}}}),
}
#: The largest value of an Integer column (ids above it name no row).
_DB_INT_MAX = 0x7FFFFFFF
_UUID = "^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$"
_IMAGES = {"type": "object", "required": ["cache"], "additionalProperties": False,
           "properties": {"cache": {"type": "array", "minItems": 1, "items": {
               "type": "object", "required": ["id"], "additionalProperties": False,
               "properties": {"id": {"type": "string", "pattern": _UUID}}}}}}


def _view(creq: ComputeRequest, agg: AggregateRecord, *, created: bool = False
          ) -> dict[str, Any]:
    """An aggregate as Nova shows it (without hosts and metadata on create)."""
    view: dict[str, Any] = {
        "availability_zone": agg.availability_zone, "created_at": nova_time(agg.created_at),
        "deleted": False, "deleted_at": None, "hosts": list(agg.hosts), "id": agg.id,
        "metadata": dict(agg.metadata), "name": agg.name,
        "updated_at": nova_time(agg.updated_at)}
    if creq.at_least(41):
        view["uuid"] = agg.uuid
    if created:
        del view["hosts"], view["metadata"]
    return {"aggregate": view}


async def _aggregate(env: ComputeEnv, creq: ComputeRequest) -> AggregateRecord:
    """The aggregate of the path: 400 for an id that is not an integer, 404 if none."""
    aggregate_id = creq.param("aggregate_id")
    if not (aggregate_id.isascii() and aggregate_id.isdigit()):
        raise InvalidInput("Invalid input received: id must be an integer")
    try:
        if int(aggregate_id) > _DB_INT_MAX:  # no row has it, and the drivers cannot bind it
            raise NotFound(aggregate_id)
        return await env.store.get_aggregate(int(aggregate_id))
    except NotFound:
        raise NotFound(f"Aggregate {aggregate_id} could not be found.") from None


async def list_aggregates(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /os-aggregates``."""
    creq.authorize("os_compute_api:os-aggregates:index")
    found = await env.store.list_aggregates()
    return json({"aggregates": [_view(creq, a)["aggregate"] for a in found]})


async def create_aggregate(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``POST /os-aggregates`` (200, as Nova)."""
    creq.authorize("os_compute_api:os-aggregates:create")
    body = creq.body(_CREATE)["aggregate"]
    name, zone = body["name"], body.get("availability_zone") or None
    try:
        agg = await env.store.create_aggregate(uuid=env.runtime.new_id(), name=name,
                                               now=env.runtime.wall_time(),
                                               availability_zone=zone)
    except DuplicateError:
        raise DuplicateError(f"Aggregate {name} already exists.") from None
    return json(_view(creq, agg, created=True))


async def show_aggregate(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /os-aggregates/{aggregate_id}``."""
    creq.authorize("os_compute_api:os-aggregates:show")
    return json(_view(creq, await _aggregate(env, creq)))


async def _check_new_zone(env: ComputeEnv, agg: AggregateRecord, zone: Any, why: str) -> None:
    """400 for an empty zone, or a new zone over hosts that have instances (their zone
    would change under them); conflicts with other aggregates the Store refuses."""
    if not zone:
        raise InvalidInput(f"{why} {agg.id}. Reason: Aggregate {agg.name} does not support "
                           "empty named availability zone.")
    if zone != agg.availability_zone:
        for host in agg.hosts:
            if await env.store.instances_by_host(host):
                raise InvalidInput(f"{why} {agg.id}. Reason: One or more hosts contain "
                                   "instances in this zone.")


async def update_aggregate(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``PUT /os-aggregates/{aggregate_id}``: a new name and/or zone."""
    creq.authorize("os_compute_api:os-aggregates:update")
    agg = await _aggregate(env, creq)
    body = creq.body(_UPDATE)["aggregate"]
    name = body["name"].strip() if "name" in body else None
    changes: dict[str, Any] = {}
    if AZ_KEY in body:
        await _check_new_zone(env, agg, body[AZ_KEY], "Cannot update aggregate")
        changes["availability_zone"] = body[AZ_KEY]
    try:
        agg = await env.store.update_aggregate(agg.id, now=env.runtime.wall_time(), name=name,
                                               **changes)
    except DuplicateError:
        raise DuplicateError(f"Aggregate {name} already exists.") from None
    return json(_view(creq, agg))


async def delete_aggregate(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``DELETE /os-aggregates/{aggregate_id}``: 200 and no body; 400 while it has hosts."""
    creq.authorize("os_compute_api:os-aggregates:delete")
    agg = await _aggregate(env, creq)
    await env.store.delete_aggregate(agg.id, env.runtime.wall_time())
    return Response(200, None)


async def _zone_of(env: ComputeEnv, host: str, *, but: int | None = None) -> str | None:
    """The zone a host's aggregates (all, or all but one) give it."""
    zones = {a.availability_zone for a in await env.store.aggregates_for_host(host)
             if a.availability_zone and a.id != but}
    return ",".join(sorted(zones)) if zones else None


def _moving_instances(host: str, old: str | None, new: str | None, count: int) -> str:
    return (f"The host {host} cannot change availability zone from '{old}' to '{new}' "
            f"while it has {count} instance(s). Move the instances away from this host "
            "then try again.")


async def _add_host(env: ComputeEnv, agg: AggregateRecord, host: str) -> AggregateRecord:
    store, now = env.store, env.runtime.wall_time()
    if await store.service_by_host_binary(host, env.compute.compute_binary) is None:
        raise NotFound(f"Compute host {host} could not be found.")
    why = f"Cannot add host to aggregate {agg.id}. Reason:"
    zone = agg.availability_zone
    if zone:
        current = await _zone_of(env, host, but=agg.id)
        if current not in (None, zone):
            raise ApiError(409, f"{why} One or more hosts already in availability "
                                f"zone(s) {[current]}.")
        instances = await store.instances_by_host(host)
        if instances and current != zone:
            raise ApiError(409, f"{why} " + _moving_instances(host, current, zone,
                                                              len(instances)))
    try:
        agg = await store.add_host(agg.id, host, now)
    except DuplicateError:
        raise DuplicateError(f"Aggregate {agg.id} already has host {host}.") from None
    except InvalidInput as exc:  # a zone written meanwhile
        raise ApiError(409, f"{why} {exc.message}") from None
    await mirror_membership(env, host, agg.uuid, member=True)
    return agg


async def _remove_host(env: ComputeEnv, agg: AggregateRecord, host: str) -> AggregateRecord:
    store = env.store
    missing = NotFound(f"Cannot remove host {host} in aggregate {agg.id}")
    if (await store.service_by_host_binary(host, env.compute.compute_binary) is None
            or host not in agg.hosts):
        raise missing
    zone = agg.availability_zone
    instances = await store.instances_by_host(host)
    if zone and instances:
        after = await _zone_of(env, host, but=agg.id)
        if after != zone:
            raise ApiError(409, f"Cannot remove host from aggregate {agg.id}. Reason: "
                                + _moving_instances(host, zone, after, len(instances)))
    await mirror_membership(env, host, agg.uuid, member=False)
    try:
        return await store.remove_host(agg.id, host, env.runtime.wall_time())
    except NotFound:
        raise missing from None


async def _set_metadata(env: ComputeEnv, agg: AggregateRecord,
                        metadata: dict[str, str | None]) -> AggregateRecord:
    why = "Cannot update metadata of aggregate"
    if AZ_KEY in metadata:
        await _check_new_zone(env, agg, metadata[AZ_KEY], why)
    try:
        return await env.store.set_aggregate_metadata(agg.id, metadata,
                                                      env.runtime.wall_time())
    except InvalidInput as exc:
        raise InvalidInput(f"{why} {agg.id}. Reason: {exc.message}") from None


async def aggregate_action(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``POST /os-aggregates/{aggregate_id}/action``: ``add_host``, ``remove_host`` or
    ``set_metadata``; the aggregate after."""
    body = creq.body()
    name = next(iter(body), None) if isinstance(body, dict) else None
    if name not in _ACTIONS:
        raise InvalidInput(f"There is no such action: {name}")
    creq.authorize(f"os_compute_api:os-aggregates:{name}")
    validate(body, _ACTIONS[name])
    agg = await _aggregate(env, creq)
    if name == "add_host":
        agg = await _add_host(env, agg, body[name]["host"])
    elif name == "remove_host":
        agg = await _remove_host(env, agg, body[name]["host"])
    else:
        agg = await _set_metadata(env, agg, body[name]["metadata"])
    return json(_view(creq, agg))


async def cache_images(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``POST /os-aggregates/{aggregate_id}/images`` (2.81): accepted, nothing to do on
    the fake hypervisors, which keep no image cache."""
    creq.authorize("os_compute_api:os-aggregates:images")
    body = creq.body(_IMAGES)
    ids = [item["id"] for item in body["cache"]]
    if len(set(ids)) != len(ids):
        raise InvalidInput("Duplicate images in request")
    await _aggregate(env, creq)
    return Response(202, None)


def routes(env: ComputeEnv) -> list[Route]:
    """The ``/os-aggregates`` routes."""
    one = "/os-aggregates/{aggregate_id}"
    return [
        *route(env, "GET", "/os-aggregates", list_aggregates),
        *route(env, "POST", "/os-aggregates", create_aggregate),
        *route(env, "GET", one, show_aggregate),
        *route(env, "PUT", one, update_aggregate),
        *route(env, "DELETE", one, delete_aggregate),
        *route(env, "POST", f"{one}/action", aggregate_action),
        *route(env, "POST", f"{one}/images", cache_images, min_minor=81),
    ]
