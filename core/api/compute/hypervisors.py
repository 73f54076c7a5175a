"""``/os-hypervisors``: the compute nodes, their capacity and what runs on them.

Admin only. A hypervisor is a compute node of the Store with the compute
service of its host (a node whose service was deleted is skipped, as Nova
does). Per microversion: paging by ``limit``/``marker`` from 2.33; from 2.53
ids are uuids, ``hypervisor_hostname_pattern`` and ``with_servers`` replace
the ``/search`` and ``/servers`` routes; from 2.75 ``with_servers`` always
gives a ``servers`` list; 2.28 makes ``cpu_info`` an object; 2.88 drops the
capacity fields and ``/statistics`` and ``/uptime``, and adds ``uptime`` to
the detail view. Uptime is asked of the host's compute service over RPC (how
long it has run); a host that is down has none.
"""

from __future__ import annotations

import datetime
import json as jsonlib
from typing import Any

from nimbus.core.api.compute import services
from nimbus.core.api.compute.services import check_query, is_up, is_uuid, limit_and_marker
from nimbus.core.api.compute.wire import ComputeEnv, ComputeRequest, json, route
from nimbus.core.api.http import Response, Route
from nimbus.core.compute.messages import compute_topic
from nimbus.core.db.services import ComputeNodeRecord, ServiceRecord
from nimbus.core.errors import InvalidInput, NimbusError, NotFound
from nimbus.core.service import Describe, Description

#: How long to wait for a compute service to say how long it has run.
UPTIME_TIMEOUT = 5.0

Hypervisor = tuple[ComputeNodeRecord, ServiceRecord]


async def _hypervisors(env: ComputeEnv, pattern: str | None = None) -> list[Hypervisor]:
    """Compute nodes (with ``pattern`` in their name, if given) with their services."""
    by_host = {s.host: s for s in await env.store.list_services(
        binary=env.compute.compute_binary)}
    nodes = await env.store.list_compute_nodes()
    if pattern is not None:
        nodes = [n for n in nodes if pattern.lower() in n.hypervisor_hostname.lower()]
        if not nodes:
            raise NotFound(f"No hypervisor matching '{pattern}' could be found.")
    return [(n, by_host[n.host]) for n in nodes if n.host in by_host]


def _cpu_info(creq: ComputeRequest, node: ComputeNodeRecord) -> Any:
    """A JSON string before 2.28, an object from 2.28 (``{}`` when unknown)."""
    info = node.stats.get("cpu_info")
    if isinstance(info, str):
        try:
            info = jsonlib.loads(info)
        except ValueError:
            info = {}
    info = info if isinstance(info, dict) else {}
    return info if creq.at_least(28) else jsonlib.dumps(info)


async def _uptime(env: ComputeEnv, svc: ServiceRecord) -> str | None:
    """The host's uptime as the ``uptime`` command prints it; None if it cannot tell."""
    if not is_up(env, svc):
        return None
    try:
        told = await env.compute.rpc.call(compute_topic(svc.host), Describe(),
                                          timeout=UPTIME_TIMEOUT)
    except NimbusError:
        return None
    if not isinstance(told, Description):
        return None
    clock = datetime.datetime.fromtimestamp(env.runtime.wall_time(), datetime.UTC)
    minutes = int(told.uptime) // 60
    days, minutes = divmod(minutes, 24 * 60)
    return f" {clock:%H:%M:%S} up {days} days, {minutes // 60:2d}:{minutes % 60:02d}"


async def _view(env: ComputeEnv, creq: ComputeRequest, hyp: Hypervisor, *, detail: bool,
                servers: bool = False) -> dict[str, Any]:
    node, svc = hyp
    uuids = creq.at_least(53)
    view: dict[str, Any] = {
        "id": node.uuid if uuids else node.id,
        "hypervisor_hostname": node.hypervisor_hostname,
        "state": "up" if is_up(env, svc) else "down",
        "status": "disabled" if svc.disabled else "enabled"}
    if detail:
        view.update(hypervisor_type=node.hypervisor_type,
                    hypervisor_version=node.hypervisor_version, host_ip=node.host_ip,
                    service={"host": node.host, "id": svc.uuid if uuids else svc.id,
                             "disabled_reason": svc.disabled_reason})
        if creq.at_least(88):
            view["uptime"] = await _uptime(env, svc)
        else:
            view.update(_capacity(node), cpu_info=_cpu_info(creq, node))
    if servers:
        guests = [{"name": i.name, "uuid": i.uuid}
                  for i in await env.store.instances_by_host(node.host)]
        if guests or creq.at_least(75):
            view["servers"] = guests
    return view


def _capacity(node: ComputeNodeRecord) -> dict[str, int]:
    """The figures Nova showed before 2.88 (and sums in ``/statistics``)."""
    workload = node.stats.get("io_workload", 0)
    free_disk = node.local_gb - node.local_gb_used
    return {"vcpus": node.vcpus, "memory_mb": node.memory_mb, "local_gb": node.local_gb,
            "vcpus_used": node.vcpus_used, "memory_mb_used": node.memory_mb_used,
            "local_gb_used": node.local_gb_used,
            "free_ram_mb": node.memory_mb - node.memory_mb_used, "free_disk_gb": free_disk,
            "current_workload": int(workload) if isinstance(workload, (int, float)) else 0,
            "running_vms": node.running_vms, "disk_available_least": free_disk}


def _with_servers(creq: ComputeRequest) -> bool:
    value = creq.query("with_servers")
    return creq.at_least(53) and value is not None and services.as_bool(value)


async def _listing(env: ComputeEnv, creq: ComputeRequest, detail: bool) -> Response:
    """``GET /os-hypervisors`` and ``/os-hypervisors/detail``."""
    creq.authorize("os_compute_api:os-hypervisors:list" + ("-detail" if detail else ""))
    if creq.at_least(53):
        check_query(creq, ("limit", "marker", "hypervisor_hostname_pattern", "with_servers"),
                    strict=True, single=("limit", "marker", "hypervisor_hostname_pattern",
                                         "with_servers"))
    paged = creq.at_least(33)
    limit, marker = limit_and_marker(creq) if paged else (services.MAX_LIMIT, None)
    pattern = creq.query("hypervisor_hostname_pattern") if creq.at_least(53) else None
    with_servers = _with_servers(creq)
    if pattern is not None:
        if creq.query("limit") is not None or marker:
            raise InvalidInput("Paging over hypervisors with the hypervisor_hostname_pattern "
                               "query parameter is not supported.")
        paged = False
        found = await _hypervisors(env, pattern)
    else:
        found = await _hypervisors(env)
        if marker is not None:
            ids = [str(n.uuid if creq.at_least(53) else n.id) for n, _ in found]
            if marker not in ids:
                raise InvalidInput(f"marker [{marker}] not found")
            found = found[ids.index(marker) + 1:]
        found = found[:limit]
    hyps = [await _view(env, creq, h, detail=detail, servers=with_servers) for h in found]
    body: dict[str, Any] = {"hypervisors": hyps}
    if paged:
        last = str(hyps[-1]["id"]) if hyps else None
        links = services.next_links(creq, "os-hypervisors" + ("/detail" if detail else ""),
                                    len(hyps), limit, last)
        if links:
            body["hypervisors_links"] = links
    return json(body)


async def list_hypervisors(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /os-hypervisors``."""
    return await _listing(env, creq, detail=False)


async def list_hypervisors_detail(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /os-hypervisors/detail``."""
    return await _listing(env, creq, detail=True)


async def _find(env: ComputeEnv, creq: ComputeRequest, hypervisor_id: str) -> Hypervisor:
    """The hypervisor named in the path: a uuid from 2.53 (400 if not one), an integer
    before (404 if not one)."""
    missing = NotFound(f"Hypervisor with ID '{hypervisor_id}' could not be found.")
    if creq.at_least(53):
        if not is_uuid(hypervisor_id):
            raise InvalidInput(f"Invalid uuid {hypervisor_id}")
    elif not hypervisor_id.isdigit():
        raise missing
    key = "uuid" if creq.at_least(53) else "id"
    for hyp in await _hypervisors(env):
        if str(getattr(hyp[0], key)) == hypervisor_id:
            return hyp
    raise missing


async def show_hypervisor(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /os-hypervisors/{hypervisor_id}`` (``?with_servers`` from 2.53)."""
    creq.authorize("os_compute_api:os-hypervisors:show")
    if creq.at_least(53):
        check_query(creq, ("with_servers",), strict=True, single=("with_servers",))
    hyp = await _find(env, creq, creq.param("hypervisor_id"))
    view = await _view(env, creq, hyp, detail=True, servers=_with_servers(creq))
    return json({"hypervisor": view})


async def hypervisor_uptime(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /os-hypervisors/{hypervisor_id}/uptime`` (until 2.87)."""
    creq.authorize("os_compute_api:os-hypervisors:uptime")
    hyp = await _find(env, creq, creq.param("hypervisor_id"))
    uptime = await _uptime(env, hyp[1])
    if uptime is None:
        raise InvalidInput(f"Compute service of {hyp[0].host} is unavailable at this time.")
    view = await _view(env, creq, hyp, detail=False)
    return json({"hypervisor": {**view, "uptime": uptime}})


async def search_hypervisors(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /os-hypervisors/{pattern}/search`` (until 2.52)."""
    creq.authorize("os_compute_api:os-hypervisors:search")
    found = await _hypervisors(env, creq.param("pattern"))
    return json({"hypervisors": [await _view(env, creq, h, detail=False) for h in found]})


async def hypervisor_servers(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /os-hypervisors/{pattern}/servers`` (until 2.52)."""
    creq.authorize("os_compute_api:os-hypervisors:servers")
    found = await _hypervisors(env, creq.param("pattern"))
    return json({"hypervisors": [await _view(env, creq, h, detail=False, servers=True)
                                 for h in found]})


async def hypervisor_statistics(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /os-hypervisors/statistics`` (until 2.87): sums over enabled compute hosts."""
    creq.authorize("os_compute_api:os-hypervisors:statistics")
    totals = dict.fromkeys(("count", "vcpus", "memory_mb", "local_gb", "vcpus_used",
                            "memory_mb_used", "local_gb_used", "free_ram_mb", "free_disk_gb",
                            "current_workload", "running_vms", "disk_available_least"), 0)
    for node, svc in await _hypervisors(env):
        if svc.disabled:
            continue
        totals["count"] += 1
        for key, value in _capacity(node).items():
            totals[key] += value
    return json({"hypervisor_statistics": totals})


def routes(env: ComputeEnv) -> list[Route]:
    """The ``/os-hypervisors`` routes (fixed names before ``{hypervisor_id}``)."""
    base = "/os-hypervisors"
    return [
        *route(env, "GET", base, list_hypervisors),
        *route(env, "GET", f"{base}/detail", list_hypervisors_detail),
        *route(env, "GET", f"{base}/statistics", hypervisor_statistics, max_minor=87),
        *route(env, "GET", f"{base}/{{hypervisor_id}}/uptime", hypervisor_uptime,
               max_minor=87),
        *route(env, "GET", f"{base}/{{pattern}}/search", search_hypervisors, max_minor=52),
        *route(env, "GET", f"{base}/{{pattern}}/servers", hypervisor_servers, max_minor=52),
        *route(env, "GET", f"{base}/{{hypervisor_id}}", show_hypervisor),
    ]
