"""``GET /v2.1/openapi.json``: an OpenAPI 3.1 document of what the Compute API serves.

The document is made from the route table itself (every :class:`Route` of
:func:`~nimbus.core.api.compute.routes.compute_routes`), so it cannot name a
route that is not served nor miss one that is. Request bodies are the JSON
schemas the resource modules validate with, taken at the highest microversion
(a body the document describes is one the newest client may send). A POST or
PUT route whose module keeps its schema inside a handler (flavor access
actions, migration force-complete, and any route added since) gets a generic
object body. The ``/v2.1/{project_id}/...`` twins of every route
are left out: they serve the same thing under a longer prefix.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any

from nimbus.core.api.compute import (
    aggregates,
    flavors,
    keypairs,
    migrations,
    quotas,
    server_actions,
    server_actions_moves,
    server_groups,
    server_metadata,
    server_schemas,
    services,
)
from nimbus.core.api.compute.microversion import MAX_VERSION, MIN_VERSION
from nimbus.core.api.compute.wire import ComputeEnv, ComputeRequest, json
from nimbus.core.api.http import ApiContext, Request, Response, Route
from nimbus.core.context import RequestContext

PATH = "/v2.1/openapi.json"
#: Routes served without a token (the version document and this one).
OPEN_PATHS = frozenset({"/v2.1", "/v2.1/", PATH})
#: The body of a route whose schema lives inside its handler: any JSON object.
_GENERIC: dict[str, Any] = {"type": "object"}
_PARAM = re.compile(r"{(\w+)}")
#: Query parameters that are integers (sent as text, like every query parameter).
INTEGER_QUERY = frozenset({"limit", "offset", "minRam", "minDisk"})
#: Path parameters that are database integers (services and hypervisors: uuids from 2.53).
INTEGER_IDS = frozenset({"aggregate_id", "migration_id", "service_id", "hypervisor_id"})

#: A request at the newest microversion: the schema builders that read the request
#: (``creq.at_least``) are asked through it for the newest body.
_NEWEST = ComputeRequest(Request("GET", "/"), RequestContext("", "", "", ()), MAX_VERSION, "")


def _action_bodies() -> list[dict[str, Any]]:
    """Every server action body at the newest microversion, one schema per action key."""
    known: dict[str, dict[str, Any]] = {
        "reboot": server_actions._REBOOT, "rescue": server_actions._RESCUE,
        "lock": server_actions._LOCK_V273, "unshelve": server_actions._UNSHELVE_V291,
        "os-resetState": server_actions._RESET_STATE,
        "changePassword": server_actions._CHANGE_PASSWORD,
        "os-getConsoleOutput": server_actions._CONSOLE_OUTPUT,
        "resize": server_actions_moves._RESIZE, "migrate": server_actions_moves._MIGRATE,
        "confirmResize": server_actions_moves._CONFIRM,
        "revertResize": server_actions_moves._REVERT,
        "os-migrateLive": server_actions_moves.one("os-migrateLive",
                                                   server_actions_moves._LIVE_V230),
        "evacuate": server_actions_moves.one("evacuate", server_actions_moves._EVACUATE_V229),
        "rebuild": server_actions_moves._rebuild_schema(_NEWEST),
        "createImage": server_actions_moves._CREATE_IMAGE,
    }
    # The other actions do not read their body's value (Nova's ``{key: null}``).
    return [known.get(key) or server_actions_moves.one(key, {})
            for key in server_actions.ACTIONS]


def request_bodies() -> dict[tuple[str, str], dict[str, Any]]:
    """The JSON schema of each body-taking route, by (method, path under ``/v2.1``)."""
    flavor, specs = "/v2.1/flavors/{flavor_id}", "/v2.1/flavors/{flavor_id}/os-extra_specs"
    quota, quota_class = "/v2.1/os-quota-sets/{tenant_id}", "/v2.1/os-quota-class-sets/{class_name}"
    server, aggregate = "/v2.1/servers/{server_id}", "/v2.1/os-aggregates/{aggregate_id}"
    return {
        ("POST", "/v2.1/os-aggregates"): aggregates._CREATE,
        ("PUT", aggregate): aggregates._UPDATE,
        ("POST", aggregate + "/action"): {"anyOf": list(aggregates._ACTIONS.values())},
        ("POST", aggregate + "/images"): aggregates._IMAGES,
        ("POST", "/v2.1/flavors"): flavors.CREATE_V255,
        ("PUT", flavor): flavors.UPDATE,
        ("POST", specs): flavors.SPECS_CREATE,
        ("PUT", specs + "/{key}"): flavors.SPEC_UPDATE,
        ("POST", "/v2.1/os-keypairs"): keypairs._schema(MAX_VERSION.minor),
        ("PUT", quota): quotas._body_schema("quota_set", quotas.quota_resources(_NEWEST), True),
        ("PUT", quota_class): quotas._body_schema(
            "quota_class_set", quotas.class_resources(_NEWEST), False),
        ("POST", "/v2.1/os-server-groups"): server_groups._create_schema(_NEWEST),
        ("PUT", "/v2.1/os-services/{service_id}"): services._UPDATE_V253,
        ("POST", "/v2.1/servers"): copy.deepcopy(server_schemas.create_schema(MAX_VERSION.minor)),
        ("PUT", server): server_schemas.update_schema(MAX_VERSION.minor),
        ("POST", server + "/action"): {"anyOf": _action_bodies()},
        ("POST", server + "/remote-consoles"): server_actions._remote_console_schema(_NEWEST),
        ("POST", server + "/metadata"): server_metadata.ITEMS,
        ("PUT", server + "/metadata"): server_metadata.ITEMS,
        ("PUT", server + "/metadata/{key}"): server_metadata.ONE_ITEM,
    }


def query_parameters() -> dict[tuple[str, str], tuple[str, ...]]:
    """The query parameters each route reads, by (method, path): the modules' own lists
    where they keep one (servers, flavors, migrations), the names the handlers read
    otherwise."""
    paging = ("limit", "marker")
    window = ("changes-since", "changes-before")
    servers = tuple(sorted(server_schemas.known_query(MAX_VERSION.minor)))
    hypervisors = (*paging, "hypervisor_hostname_pattern", "with_servers")
    usage = ("start", "end", *paging)
    quota = "/v2.1/os-quota-sets/{tenant_id}"
    table: dict[tuple[str, str], tuple[str, ...]] = {
        ("GET", "/v2.1/servers"): servers, ("GET", "/v2.1/servers/detail"): servers,
        ("GET", "/v2.1/flavors"): flavors.LIST_QUERY,
        ("GET", "/v2.1/flavors/detail"): flavors.LIST_QUERY,
        ("GET", "/v2.1/os-migrations"): (*migrations._FILTERS, *paging, *window,
                                         "user_id", "project_id"),
        ("GET", "/v2.1/servers/{server_id}/os-instance-actions"): (*paging, *window),
        ("GET", "/v2.1/os-server-groups"): ("all_projects", "limit", "offset"),
        ("GET", "/v2.1/os-keypairs"): ("user_id", *paging),
        ("GET", "/v2.1/os-keypairs/{keypair_name}"): ("user_id",),
        ("DELETE", "/v2.1/os-keypairs/{keypair_name}"): ("user_id",),
        ("GET", "/v2.1/os-hypervisors"): hypervisors,
        ("GET", "/v2.1/os-hypervisors/detail"): hypervisors,
        ("GET", "/v2.1/os-hypervisors/{hypervisor_id}"): ("with_servers",),
        ("GET", "/v2.1/os-services"): ("host", "binary"),
        ("GET", "/v2.1/os-simple-tenant-usage"): (*usage, "detailed"),
        ("GET", "/v2.1/os-simple-tenant-usage/{tenant_id}"): usage,
        ("GET", "/v2.1/limits"): ("tenant_id", "reserved"),
        ("GET", quota): ("user_id",), ("PUT", quota): ("user_id",),
        ("DELETE", quota): ("user_id",), ("GET", quota + "/detail"): ("user_id",),
    }
    return table


def dialect(schema: Any) -> Any:
    """A Draft 4 schema in the 2020-12 dialect OpenAPI 3.1 uses: boolean exclusive
    bounds become numbers, tuple ``items`` become ``prefixItems``."""
    if isinstance(schema, list):
        return [dialect(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: dialect(v) for k, v in schema.items()}
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if out.get(bound) is True and limit in out:
            out[bound] = out.pop(limit)
        elif out.get(bound) is False:
            del out[bound]
    if isinstance(out.get("items"), list):
        out["prefixItems"] = out.pop("items")
        if "additionalItems" in out:
            out["items"] = out.pop("additionalItems")
    return out


_FAULT: dict[str, Any] = {
    "description": "A Nova fault: one key naming the fault (itemNotFound, badRequest, ...)",
    "content": {"application/json": {"schema": {
        "type": "object", "minProperties": 1, "maxProperties": 1,
        "additionalProperties": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "integer"}, "message": {"type": "string"}}}}}}}
_VERSION_HEADER: dict[str, Any] = {
    "name": "OpenStack-API-Version", "in": "header", "required": False,
    "description": "The microversion asked for (2.1 without it)",
    "schema": {"type": "string", "enum": [
        "compute latest",
        *(f"compute 2.{m}" for m in range(MAX_VERSION.minor, MIN_VERSION.minor - 1, -1))]}}


def _operation(route: Route, body: Mapping[str, Any] | None, query: Iterable[str],
               seen: set[str]) -> dict[str, Any]:
    op_id = f"{route.method.lower()}_{route.name or 'route'}"
    while op_id in seen:
        op_id += "_"
    seen.add(op_id)
    params = [{"name": name, "in": "path", "required": True, "schema": {
        "type": ["integer", "string"] if name in INTEGER_IDS else "string"}}
        for name in _PARAM.findall(route.path)]
    params += [{"name": name, "in": "query", "required": False, "schema": {
        "type": ["integer", "string"] if name in INTEGER_QUERY else "string"}}
        for name in query]
    op: dict[str, Any] = {
        "operationId": op_id,
        "parameters": [*params, {"$ref": "#/components/parameters/version"}],
        "responses": {"2XX": {"description": "Success"},
                      "default": {"$ref": "#/components/responses/fault"}}}
    if route.path in OPEN_PATHS:
        op["security"] = []
    if body is not None:
        op["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": dialect(body)}}}
    return op


def document(routes: Iterable[Route], base_url: str = "") -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes`` (the ``/v2.1/{project_id}`` twins left out)."""
    bodies, queries = request_bodies(), query_parameters()
    paths: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for r in routes:
        if r.path.startswith("/v2.1/{project_id}"):
            continue
        body = bodies.get((r.method, r.path))
        if body is None and r.method in ("POST", "PUT"):
            body = _GENERIC
        paths.setdefault(r.path, {})[r.method.lower()] = _operation(
            r, body, queries.get((r.method, r.path), ()), seen)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Nimbus Compute API", "version": str(MAX_VERSION),
                 "description": "Nova's Compute API v2.1, microversions "
                                f"{MIN_VERSION} to {MAX_VERSION}."},
        "servers": [{"url": base_url or "/"}],
        "paths": paths,
        "components": {
            "securitySchemes": {"token": {"type": "apiKey", "in": "header",
                                          "name": "X-Auth-Token"}},
            "parameters": {"version": _VERSION_HEADER},
            "responses": {"fault": _FAULT}},
        "security": [{"token": []}],
    }


def routes(env: ComputeEnv) -> list[Route]:
    """``GET /v2.1/openapi.json`` (no token)."""
    async def show(ctx: ApiContext, req: Request) -> Response:
        # Imported here: the route table imports this module to bind this route.
        from nimbus.core.api.compute.routes import compute_routes

        base = env.base_url.rstrip("/") or ctx.public_url(req)
        return json(document(compute_routes(env), base))

    return [Route("GET", PATH, show, "openapi")]
