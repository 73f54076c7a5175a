"""``/os-services``: the services of the cloud, and turning compute services on and off.

Admin only. A service is up while it has reported within the compute API's
``service_down_time`` and is not forced down. From 2.53 a service is named by
its uuid and updated with ``PUT /os-services/{uuid}``; before, the update is
an action named in the path (``enable``, ``disable``, ``disable-log-reason``,
``force-down`` from 2.11) with the host and binary in the body. Only compute
services may be updated; deleting one that still hosts instances is refused.

The helpers here (times as Nova prints them, zones of hosts, up or down,
query checks, paging links, the placement mirror of aggregate membership) are
shared by the other admin resources: hypervisors, availability zones,
aggregates and usage.
"""

from __future__ import annotations

import datetime
import logging
import re
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import urlencode

from nimbus.core.api.compute.wire import ComputeEnv, ComputeRequest, json, route
from nimbus.core.api.http import Response, Route
from nimbus.core.db.services import ServiceRecord
from nimbus.core.errors import ApiError, ConflictError, InvalidInput, NimbusError, NotFound
from nimbus.core.scheduler.service import ServiceStatus

log = logging.getLogger(__name__)

#: The zone of compute hosts in no zoned aggregate, and of every other service.
DEFAULT_ZONE, INTERNAL_ZONE = "nova", "internal"
#: Nova's ``[api] max_limit``: the largest page.
MAX_LIMIT = 1000
#: The largest value of an Integer column (ids above it name no row).
_DB_INT_MAX = 0x7FFFFFFF
_UUID = re.compile(r"^(urn:uuid:)?\{?[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}\}?$")
_TRUE = frozenset({"true", "1", "on", "yes"})
_FALSE = frozenset({"false", "0", "off", "no"})

BOOLEAN = {"type": ["boolean", "string"],
           "enum": [True, False, "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes",
                    "yes", "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no"]}
HOST = {"type": "string", "pattern": "^[a-zA-Z0-9-._]*$", "minLength": 1, "maxLength": 255}
_REASON = {"type": "string", "minLength": 1, "maxLength": 255}
_BY_HOST = {"host": HOST, "binary": {"type": "string", "minLength": 1, "maxLength": 255},
            "disabled_reason": _REASON}
_UPDATE_V21 = {"type": "object", "properties": _BY_HOST, "required": ["host", "binary"],
               "additionalProperties": False}
_UPDATE_V211 = {**_UPDATE_V21, "properties": {**_BY_HOST, "forced_down": BOOLEAN}}
_UPDATE_V253 = {"type": "object", "properties": {
    "status": {"type": "string", "enum": ["enabled", "disabled"]},
    "disabled_reason": _REASON, "forced_down": BOOLEAN}, "additionalProperties": False}


# -- helpers shared by the admin resources ------------------------------------------------
def nova_time(when: float | None) -> str | None:
    """Epoch seconds as Nova prints database times (naive UTC, microseconds)."""
    if when is None:
        return None
    moment = datetime.datetime.fromtimestamp(when, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")


def is_uuid(text: str) -> bool:
    """Whether ``text`` reads as a uuid (with or without dashes)."""
    return _UUID.match(text) is not None


def as_bool(value: Any) -> bool:
    """A boolean from JSON or a query string (``BOOLEAN``'s values); 400 otherwise."""
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise InvalidInput(f"Invalid input: {value!r} is not a boolean value")


def check_query(creq: ComputeRequest, allowed: Collection[str], *, strict: bool,
                single: Collection[str] = ()) -> None:
    """400 for a query parameter not in ``allowed`` (when ``strict``, as Nova's schemas
    forbid additional properties) or given twice among ``single``."""
    for name, values in creq.request.query.items():
        if strict and name not in allowed:
            raise InvalidInput("Invalid input for query parameters. Value: "
                               f"{name}. Additional properties are not allowed "
                               f"('{name}' was unexpected)")
        if name in single and len(values) > 1:
            raise InvalidInput(f"Invalid input for query parameters {name}. Value: "
                               f"{values}. {values} is too long")


def limit_and_marker(creq: ComputeRequest) -> tuple[int, str | None]:
    """The page size (at most ``MAX_LIMIT``) and marker of a request; 400 for a bad limit."""
    text = creq.query("limit")
    limit = MAX_LIMIT
    if text is not None:
        if not text.isdigit():
            raise InvalidInput(f"Invalid input for query parameters limit. Value: {text}. "
                               f"'{text}' does not match '^[0-9]*$'")
        limit = min(int(text), MAX_LIMIT)
    return limit, creq.query("marker")


def next_links(creq: ComputeRequest, collection: str, count: int, limit: int,
               last: str | None) -> list[dict[str, str]]:
    """Nova's ``next`` link when a page came back full (``count == limit``)."""
    if not limit or count != limit or last is None:
        return []
    params = {k: v[-1] for k, v in sorted(creq.request.query.items())}
    params["marker"] = last
    scoped = "project_id" in creq.request.path_params
    base = f"{creq.base_url}/v2.1" + (f"/{creq.ctx.project_id}" if scoped else "")
    return [{"rel": "next", "href": f"{base}/{collection}?{urlencode(params)}"}]


async def host_zones(env: ComputeEnv) -> dict[str, str]:
    """Every host in a zoned aggregate -> its zone (several joined by commas, as Nova)."""
    zones: dict[str, list[str]] = {}
    for agg in await env.store.list_aggregates():
        zone = agg.availability_zone
        if zone:
            for host in agg.hosts:
                if zone not in zones.setdefault(host, []):
                    zones[host].append(zone)
    return {host: ",".join(names) for host, names in zones.items()}


def service_zone(env: ComputeEnv, svc: ServiceRecord, zones: Mapping[str, str]) -> str:
    """A service's zone: its host's for compute services, ``internal`` for the rest."""
    if svc.topic != "compute" and svc.binary != env.compute.compute_binary:
        return INTERNAL_ZONE
    return zones.get(svc.host, DEFAULT_ZONE)


def is_up(env: ComputeEnv, svc: ServiceRecord) -> bool:
    """Whether a service reported within ``service_down_time`` and is not forced down."""
    return svc.is_up(env.runtime.wall_time(), env.compute.service_down_time)


def last_report(svc: ServiceRecord) -> str | None:
    """When a service last reported or changed, as Nova's ``updated_at``."""
    times = [t for t in (svc.updated_at, svc.last_seen_up) if t is not None]
    return nova_time(max(times)) if times else None


async def mirror_membership(env: ComputeEnv, host: str, aggregate_uuid: str,
                            member: bool) -> None:
    """Put the resource providers of ``host`` in (or out of) placement aggregate
    ``aggregate_uuid``, as Nova mirrors host aggregates so that ``member_of`` works.
    A failure is logged, not raised: the host aggregate change itself stands."""
    store = env.store
    for node in await store.list_compute_nodes(host=host):
        for _ in range(4):  # a racing writer bumps the generation: read again
            try:
                have = await store.get_provider_aggregates(node.uuid)
                wanted = (have.aggregates | {aggregate_uuid} if member
                          else have.aggregates - {aggregate_uuid})
                if wanted != have.aggregates:
                    await store.set_provider_aggregates(node.uuid, have.generation, wanted,
                                                        now=env.runtime.wall_time())
                break
            except ConflictError:
                continue
            except NotFound as exc:
                log.warning("no resource provider for %s: %s", node.hypervisor_hostname, exc)
                break


# -- the resource ---------------------------------------------------------------------------
def service_view(env: ComputeEnv, creq: ComputeRequest, svc: ServiceRecord,
                 zones: Mapping[str, str]) -> dict[str, Any]:
    """A service as ``GET /os-services`` shows it at the request's microversion."""
    view: dict[str, Any] = {
        "binary": svc.binary, "host": svc.host,
        "id": svc.uuid if creq.at_least(53) else svc.id,
        "zone": service_zone(env, svc, zones),
        "status": "disabled" if svc.disabled else "enabled",
        "state": "up" if is_up(env, svc) else "down",
        "updated_at": last_report(svc), "disabled_reason": svc.disabled_reason}
    if creq.at_least(11):
        view["forced_down"] = svc.forced_down
    return view


async def list_services(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /os-services`` (``?host``, ``?binary``)."""
    creq.authorize("os_compute_api:os-services:list")
    check_query(creq, ("host", "binary"), strict=creq.at_least(75))
    found = await env.store.list_services(host=creq.query("host") or None,
                                          binary=creq.query("binary") or None)
    zones = await host_zones(env)
    return json({"services": [service_view(env, creq, s, zones) for s in found]})


async def find_service(env: ComputeEnv, creq: ComputeRequest, service_id: str) -> ServiceRecord:
    """The service named in the path: a uuid from 2.53, an integer before."""
    if creq.at_least(53):
        if not is_uuid(service_id):
            raise InvalidInput(f"Invalid uuid {service_id}")
        for svc in await env.store.list_services():
            if svc.uuid == service_id:
                return svc
        raise NotFound(f"Service {service_id} could not be found.")
    if not (service_id.isascii() and service_id.lstrip("-").isdigit()):
        raise InvalidInput("Invalid input received: id must be an integer")
    try:
        if abs(int(service_id)) > _DB_INT_MAX:  # no row has it, and the drivers cannot bind it
            raise NotFound(service_id)
        return await env.store.get_service(int(service_id))
    except NotFound:
        raise NotFound(f"Service {service_id} could not be found.") from None


def _compute_only(env: ComputeEnv, binary: str) -> None:
    if binary != env.compute.compute_binary:
        raise InvalidInput(f"Updating a {binary} service is not supported. Only "
                           f"{env.compute.compute_binary} services can be updated.")


async def _save(env: ComputeEnv, svc: ServiceRecord, *, disabled: bool, reason: str | None,
                forced_down: bool) -> ServiceRecord:
    saved = await env.store.set_service_status(svc.id, disabled=disabled, reason=reason,
                                               forced_down=forced_down,
                                               now=env.runtime.wall_time())
    # the schedulers see it at their next decision, not at their next refresh
    await env.compute.rpc.fanout("scheduler", ServiceStatus(svc.host, disabled, forced_down))
    return saved


async def update_service(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``PUT /os-services/{service_id}``: by uuid from 2.53, an action name before."""
    creq.authorize("os_compute_api:os-services:update")
    if not creq.at_least(53):
        return await _update_by_action(env, creq, creq.param("service_id"))
    svc = await find_service(env, creq, creq.param("service_id"))
    body = creq.body(_UPDATE_V253)
    _compute_only(env, svc.binary)
    if "status" not in body and "forced_down" not in body:
        raise InvalidInput("No updates were requested. Fields 'status' or 'forced_down' "
                           "should be specified.")
    disabled, reason, forced = svc.disabled, svc.disabled_reason, svc.forced_down
    if body.get("status") == "enabled":
        if body.get("disabled_reason"):
            raise InvalidInput("Specifying 'disabled_reason' with status 'enabled' is "
                               "invalid.")
        disabled, reason = False, None
    elif body.get("status") == "disabled":
        disabled, reason = True, body.get("disabled_reason")
    if "forced_down" in body:
        forced = as_bool(body["forced_down"])
    svc = await _save(env, svc, disabled=disabled, reason=reason, forced_down=forced)
    return json({"service": service_view(env, creq, svc, await host_zones(env))})


async def _update_by_action(env: ComputeEnv, creq: ComputeRequest, action: str) -> Response:
    """The pre-2.53 updates: ``enable``, ``disable``, ``disable-log-reason``, ``force-down``."""
    actions = {"enable", "disable", "disable-log-reason"} | (
        {"force-down"} if creq.at_least(11) else set())
    if action not in actions:
        raise NotFound("Unknown action")
    body = creq.body(_UPDATE_V211 if creq.at_least(11) else _UPDATE_V21)
    host, binary = body["host"], body["binary"]
    answer: dict[str, Any] = {"host": host, "binary": binary}
    if action == "disable-log-reason" and "disabled_reason" not in body:
        raise InvalidInput("Missing disabled reason field")
    if action == "force-down" and "forced_down" not in body:
        raise InvalidInput("Missing forced_down field")
    _compute_only(env, binary)
    svc = await env.store.service_by_host_binary(host, binary)
    if svc is None:
        raise NotFound(f"Compute host {host} with binary {binary} could not be found.")
    if action == "force-down":
        answer["forced_down"] = as_bool(body["forced_down"])
        await _save(env, svc, disabled=svc.disabled, reason=svc.disabled_reason,
                    forced_down=answer["forced_down"])
        return json({"service": answer})
    reason = body["disabled_reason"] if action == "disable-log-reason" else None
    answer["status"] = "enabled" if action == "enable" else "disabled"
    if reason:
        answer["disabled_reason"] = reason
    await _save(env, svc, disabled=action != "enable", reason=reason,
                forced_down=svc.forced_down)
    return json({"service": answer})


async def delete_service(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``DELETE /os-services/{service_id}``: 409 while a compute service hosts instances;
    its host leaves its aggregates and its resource providers go."""
    creq.authorize("os_compute_api:os-services:delete")
    service_id = creq.param("service_id")
    try:
        svc = await find_service(env, creq, service_id)
    except NotFound:
        raise NotFound(f"Service {service_id} not found.") from None
    store = env.store
    if svc.binary == env.compute.compute_binary:
        if await store.instances_by_host(svc.host):
            raise ApiError(409, "Unable to delete compute service that is hosting "
                                "instances. Migrate or delete the instances first.")
        now = env.runtime.wall_time()
        for agg in await store.aggregates_for_host(svc.host):
            await mirror_membership(env, svc.host, agg.uuid, member=False)
            await store.remove_host(agg.id, svc.host, now)
        for node in await store.list_compute_nodes(host=svc.host):
            try:
                await store.delete_resource_provider(node.uuid)
            except NimbusError as exc:  # placement keeps it; the service still goes
                log.error("could not delete resource provider %s: %s", node.uuid, exc)
    await store.delete_service(svc.id, env.runtime.wall_time())
    return Response(204, None)


def routes(env: ComputeEnv) -> list[Route]:
    """The ``/os-services`` routes."""
    return [
        *route(env, "GET", "/os-services", list_services),
        *route(env, "PUT", "/os-services/{service_id}", update_service),
        *route(env, "DELETE", "/os-services/{service_id}", delete_service),
    ]
