"""``/os-simple-tenant-usage``: what projects used over a window of time.

An instance counts in a window ``[start, end]`` if it was launched before the
end and not terminated before the start; deleted instances count too (their
``terminated_at`` bounds them). Its hours are the part of the window between
launch and termination (or the end); vCPU, memory and disk hours weight them
by the flavor it had. The end is never later than now. The listing
(``os-simple-tenant-usage:list``) is for admins (every project); one project's
usage (``:show``, checked against that project) is for its readers or an admin
(403 for anyone else). From 2.40 the instances are paged by ``limit`` and
``marker`` (an instance uuid), ordered by project then uuid, with a ``next``
link when a page is full; 2.75 refuses unknown query parameters.
"""

from __future__ import annotations

import datetime
from typing import Any

from nimbus.core.api.compute.services import (
    MAX_LIMIT,
    check_query,
    limit_and_marker,
    next_links,
    nova_time,
)
from nimbus.core.api.compute.wire import ComputeEnv, ComputeRequest, json, route
from nimbus.core.api.http import Response, Route
from nimbus.core.db.instance_schema import InstanceRecord
from nimbus.core.errors import InvalidInput, NotFound

_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S.%f")
_HOUR = 3600.0


def _parse(text: str | None, now: float) -> float:
    """A query time in one of Nova's formats (naive UTC) as epoch seconds; now if absent."""
    if not text:
        return now
    for fmt in _FORMATS:
        try:
            moment = datetime.datetime.strptime(text, fmt)
        except ValueError:
            continue
        return moment.replace(tzinfo=datetime.UTC).timestamp()
    raise InvalidInput("Invalid input: Datetime is in invalid format")


def _window(creq: ComputeRequest, now: float) -> tuple[float, float]:
    """``start`` and ``end`` of the request: 400 unless start comes before end; the end is
    then held to now."""
    start, end = _parse(creq.query("start"), now), _parse(creq.query("end"), now)
    asked = creq.query("start") is not None or creq.query("end") is not None
    if start > end or (asked and start == end):
        raise InvalidInput("Invalid start time. The start time cannot occur after the end "
                           "time.")
    return start, min(end, now)


def _hours(inst: InstanceRecord, start: float, stop: float) -> float:
    """The hours of ``[start, stop]`` the instance ran."""
    launched, ended = inst.launched_at, inst.terminated_at
    if launched is None or launched > stop or (ended is not None and ended < start):
        return 0.0
    until = stop if ended is None else min(stop, ended)
    return max(0.0, until - max(launched, start)) / _HOUR


def _server_usage(inst: InstanceRecord, start: float, stop: float, now: float
                  ) -> dict[str, Any]:
    flavor = inst.flavor
    ended = inst.terminated_at
    launched = inst.launched_at or 0.0
    return {
        "hours": _hours(inst, start, stop), "flavor": str(flavor.get("name", "")),
        "instance_id": inst.uuid, "name": inst.display_name, "tenant_id": inst.project_id,
        "memory_mb": inst.memory_mb, "local_gb": inst.root_gb + inst.ephemeral_gb,
        "vcpus": inst.vcpus, "started_at": nova_time(inst.launched_at),
        "ended_at": nova_time(ended), "state": "terminated" if ended else inst.vm_state,
        "uptime": int((ended if ended else now) - launched)}


async def _usages(env: ComputeEnv, creq: ComputeRequest, project_id: str | None,
                  detailed: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """Per-project summaries, the server usages of this page, and the page size."""
    now = env.runtime.wall_time()
    start, stop = _window(creq, now)
    limit, marker = limit_and_marker(creq) if creq.at_least(40) else (MAX_LIMIT, None)
    found = await env.store.list_instances(project_id=project_id, deleted=None,
                                           sort=(("project_id", "asc"), ("uuid", "asc")))
    active = [i for i in found if i.launched_at is not None and i.launched_at < stop
              and (i.terminated_at is None or i.terminated_at > start)]
    if marker is not None:
        try:
            after = await env.store.get_instance(marker, read_deleted=True)
        except NotFound:
            raise InvalidInput(f"Marker {marker} could not be found.") from None
        active = [i for i in active if (i.project_id, i.uuid) > (after.project_id, after.uuid)]
    page = active[:limit]
    summaries: dict[str, dict[str, Any]] = {}
    usages = []
    for inst in page:
        usage = _server_usage(inst, start, stop, now)
        usages.append(usage)
        summary = summaries.get(inst.project_id)
        if summary is None:
            summary = summaries[inst.project_id] = {
                "tenant_id": inst.project_id, "total_local_gb_usage": 0.0,
                "total_vcpus_usage": 0.0, "total_memory_mb_usage": 0.0, "total_hours": 0.0,
                "start": nova_time(start), "stop": nova_time(stop)}
            if detailed:
                summary["server_usages"] = []
        hours = usage["hours"]
        summary["total_local_gb_usage"] += usage["local_gb"] * hours
        summary["total_vcpus_usage"] += usage["vcpus"] * hours
        summary["total_memory_mb_usage"] += usage["memory_mb"] * hours
        summary["total_hours"] += hours
        if detailed:
            summary["server_usages"].append(usage)
    return list(summaries.values()), usages, limit


def _links(creq: ComputeRequest, collection: str, usages: list[dict[str, Any]],
           limit: int) -> list[dict[str, str]]:
    if not creq.at_least(40):
        return []
    last = usages[-1]["instance_id"] if usages else None
    return next_links(creq, collection, len(usages), limit, last)


async def list_usage(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /os-simple-tenant-usage`` (admin): every project's usage."""
    creq.authorize("os_compute_api:os-simple-tenant-usage:list")
    allowed = ("start", "end", "detailed") + (("limit", "marker") if creq.at_least(40) else ())
    check_query(creq, allowed, strict=creq.at_least(75))
    detailed = creq.query("detailed", "0") == "1"
    summaries, usages, limit = await _usages(env, creq, None, detailed)
    body: dict[str, Any] = {"tenant_usages": summaries}
    links = _links(creq, "os-simple-tenant-usage", usages, limit)
    if links:
        body["tenant_usages_links"] = links
    return json(body)


async def show_usage(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /os-simple-tenant-usage/{project_id}``: one project's usage, per server."""
    project_id = creq.param("tenant_id")
    creq.authorize("os_compute_api:os-simple-tenant-usage:show", {"project_id": project_id})
    allowed = ("start", "end") + (("limit", "marker") if creq.at_least(40) else ())
    check_query(creq, allowed, strict=creq.at_least(75))
    summaries, usages, limit = await _usages(env, creq, project_id, True)
    body: dict[str, Any] = {"tenant_usage": summaries[0] if summaries else {}}
    links = _links(creq, f"os-simple-tenant-usage/{project_id}", usages, limit)
    if links:
        body["tenant_usage_links"] = links
    return json(body)


def routes(env: ComputeEnv) -> list[Route]:
    """The ``/os-simple-tenant-usage`` routes."""
    return [
        *route(env, "GET", "/os-simple-tenant-usage", list_usage),
        *route(env, "GET", "/os-simple-tenant-usage/{tenant_id}", show_usage),
    ]
