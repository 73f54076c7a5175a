"""``/os-availability-zone``: the zones users may boot into, and (admin) what is in them.

A zone is not a record: it is the ``availability_zone`` metadata of host
aggregates, and a compute host in no zoned aggregate is in the default zone
``nova``; other services are in the ``internal`` zone, which only the detail
view shows. A zone is available while an enabled service is in it; a zone
whose services are all disabled is listed as not available. The summary is
for every user (``hosts`` is null); the detail, for admins, names each host's
services with whether they are up (``available``) and enabled (``active``).
"""

from __future__ import annotations

from typing import Any

from nimbus.core.api.compute.services import (
    INTERNAL_ZONE,
    host_zones,
    is_up,
    last_report,
    service_zone,
)
from nimbus.core.api.compute.wire import ComputeEnv, ComputeRequest, json, route
from nimbus.core.api.http import Response, Route
from nimbus.core.db.services import ServiceRecord

Zoned = list[tuple[str, ServiceRecord]]


async def _zoned_services(env: ComputeEnv) -> Zoned:
    """Every service with its zone, oldest service first."""
    zones = await host_zones(env)
    return [(service_zone(env, s, zones), s) for s in await env.store.list_services()]


def _split(services: Zoned) -> tuple[list[str], list[str]]:
    """Zone names with an enabled service, and those with only disabled ones, in the order
    their services were registered."""
    available: list[str] = []
    unavailable: list[str] = []
    for zone, svc in services:
        if not svc.disabled and zone not in available:
            available.append(zone)
    for zone, svc in services:
        if svc.disabled and zone not in available and zone not in unavailable:
            unavailable.append(zone)
    return available, unavailable


def _summary(zone: str, available: bool) -> dict[str, Any]:
    return {"zoneName": zone, "zoneState": {"available": available}, "hosts": None}


async def list_zones(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /os-availability-zone``: zone names and whether they are available."""
    creq.authorize("os_compute_api:os-availability-zone:list")
    available, unavailable = _split(await _zoned_services(env))
    info = [_summary(z, True) for z in available if z != INTERNAL_ZONE]
    info += [_summary(z, False) for z in unavailable if z != INTERNAL_ZONE]
    return json({"availabilityZoneInfo": info})


async def list_zones_detail(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /os-availability-zone/detail`` (admin): the hosts and services of each zone."""
    creq.authorize("os_compute_api:os-availability-zone:detail")
    services = await _zoned_services(env)
    available, unavailable = _split(services)
    hosts: dict[str, dict[str, dict[str, Any]]] = {}
    for zone, svc in services:
        if svc.disabled:
            continue
        by_host = hosts.setdefault(zone, {})
        by_host.setdefault(svc.host, {})[svc.binary] = {
            "available": is_up(env, svc), "active": not svc.disabled,
            "updated_at": last_report(svc)}
    info = [{"zoneName": z, "zoneState": {"available": True}, "hosts": hosts.get(z, {})}
            for z in available]
    info += [_summary(z, False) for z in unavailable]
    return json({"availabilityZoneInfo": info})


def routes(env: ComputeEnv) -> list[Route]:
    """The ``/os-availability-zone`` routes."""
    return [
        *route(env, "GET", "/os-availability-zone", list_zones),
        *route(env, "GET", "/os-availability-zone/detail", list_zones_detail),
    ]
