"""``/flavors``: the flavor list, show, create, describe and delete, their extra
specs (``os-extra_specs``) and who may use a private one (``os-flavor-access``).

Shapes follow Nova per microversion: a description from 2.55, extra specs inside
the flavor from 2.61, ``swap`` an integer (not ``""`` for none) from 2.75, and
unknown query parameters refused from 2.75. A private flavor is visible only to
admins (``context_is_admin``) and to the projects it is shared with; to anyone
else it does not exist. Every handler checks its Nova policy rule; by default
managing flavors, their specs and their access is for admins.

The paging helpers here (:func:`page_params`, :func:`next_links`,
:func:`check_query`) are shared with the keypair list.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlencode

from nimbus.core.api.compute.wire import ComputeEnv, ComputeRequest, json, route
from nimbus.core.api.http import Response, Route
from nimbus.core.db.flavors import FLAVOR_SORT_KEYS, FlavorRecord
from nimbus.core.errors import ApiError, ConflictError, DuplicateError, InvalidInput, NotFound

MAX_LIMIT, _INT_MAX = 1000, 0x7FFFFFFF  # Nova's [api] max_limit (longest page); DB int max
#: Printable, no leading or trailing whitespace (Nova's ``name`` format).
NAME_PATTERN = r"^(?!\s)[^\x00-\x1f\x7f-\x9f]*(?<!\s)$"
_PRINTABLE = r"^[^\x00-\x1f\x7f-\x9f]*$"
#: Nova's boolean parameter type (strings as oslo reads them).
BOOLEAN = {"enum": [True, False, "True", "TRUE", "true", "1", "ON", "On", "on", "YES",
                     "Yes", "yes", "False", "FALSE", "false", "0", "OFF", "Off", "off",
                     "NO", "No", "no"]}
_TRUE = frozenset({"true", "1", "on", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "off", "no", "n", "f"})


def _count(least: int) -> dict[str, Any]:
    return {"type": ["integer", "string"], "pattern": "^[0-9]+$", "minimum": least,
            "maximum": _INT_MAX}


_FLAVOR_FIELDS: dict[str, Any] = {
    "name": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": NAME_PATTERN},
    "id": {"type": ["string", "number", "null"], "minLength": 1, "maxLength": 255,
           "pattern": "^(?! )[a-zA-Z0-9. _-]+(?<! )$"},
    "ram": _count(1), "vcpus": _count(1), "disk": _count(0),
    "OS-FLV-EXT-DATA:ephemeral": _count(0), "swap": _count(0),
    "rxtx_factor": {"type": ["number", "string"], "pattern": r"^[0-9]+(\.[0-9]+)?$",
                    "minimum": 0, "exclusiveMinimum": True, "maximum": 3.40282e38},
    "os-flavor-access:is_public": BOOLEAN,
}
_DESCRIPTION = {"type": ["string", "null"], "maxLength": 65535, "pattern": _PRINTABLE}


def _wrapped(key: str, fields: dict[str, Any], required: list[str]) -> dict[str, Any]:
    inner = {"type": "object", "properties": fields, "required": required,
             "additionalProperties": False}
    return {"type": "object", "properties": {key: inner}, "required": [key],
            "additionalProperties": False}


CREATE = _wrapped("flavor", _FLAVOR_FIELDS, ["name", "ram", "vcpus", "disk"])
CREATE_V255 = _wrapped("flavor", {**_FLAVOR_FIELDS, "description": _DESCRIPTION},
                       ["name", "ram", "vcpus", "disk"])
UPDATE = _wrapped("flavor", {"description": _DESCRIPTION}, ["description"])
_SPEC_VALUES = {"^[a-zA-Z0-9-_:. ]{1,255}$": {"type": ["string", "number"], "maxLength": 255}}
SPECS = {"type": "object", "patternProperties": _SPEC_VALUES, "additionalProperties": False}
SPECS_CREATE = {"type": "object", "properties": {"extra_specs": SPECS},
                "required": ["extra_specs"], "additionalProperties": False}
SPEC_UPDATE = {**SPECS, "minProperties": 1, "maxProperties": 1}
_TENANT = {"type": "object", "properties": {"tenant": {
    "type": "string", "minLength": 1, "maxLength": 255}}, "required": ["tenant"],
    "additionalProperties": False}
LIST_QUERY = ("limit", "marker", "is_public", "minRam", "minDisk", "sort_key", "sort_dir")


# -- helpers shared with other list APIs ----------------------------------------------
def parse_bool(text: str | bool, what: str) -> bool:
    """A strict boolean (``True``, ``"yes"``, ``"0"`` ...); 400 naming ``what`` if not."""
    if isinstance(text, bool):
        return text
    lowered = text.strip().lower()
    if lowered in _TRUE or lowered in _FALSE:
        return lowered in _TRUE
    raise InvalidInput(f"Invalid {what} [{text}]")


def check_query(creq: ComputeRequest, allowed: Iterable[str], since: int = 75) -> None:
    """From 2.``since`` on (2.75 for most lists), refuse query parameters Nova does not know."""
    if not creq.at_least(since):
        return
    unknown = sorted(set(creq.request.query) - set(allowed))
    if unknown:
        names = ", ".join(repr(n) for n in unknown)
        verb = "was" if len(unknown) == 1 else "were"
        raise InvalidInput(f"Invalid input for query parameters {unknown[0]}. Additional "
                           f"properties are not allowed ({names} {verb} unexpected)")


def page_params(creq: ComputeRequest) -> tuple[int, str | None]:
    """(limit, marker) as Nova reads them: the limit capped at ``MAX_LIMIT``; 400 if bad."""
    text = creq.query("limit")
    limit = MAX_LIMIT
    if text is not None:
        try:
            asked = int(text)
        except ValueError:
            raise InvalidInput("limit param must be an integer") from None
        if asked < 0:
            raise InvalidInput("limit param must be positive")
        limit = min(asked, MAX_LIMIT)
    return limit, creq.query("marker")


def next_links(creq: ComputeRequest, ids: Sequence[str], limit: int,
               collection: str) -> list[dict[str, str]]:
    """Nova's ``<collection>_links``: a next link when a page came back full."""
    if not limit or len(ids) != limit:
        return []
    params = {k: v[-1] for k, v in sorted(creq.request.query.items()) if v}
    params["marker"] = ids[-1]
    return [{"rel": "next", "href": f"{creq.link(collection)}?{urlencode(params)}"}]


# -- views -----------------------------------------------------------------------------
def _links(creq: ComputeRequest, flavorid: str) -> list[dict[str, str]]:
    return [{"rel": "self", "href": creq.link("flavors", flavorid)},
            {"rel": "bookmark", "href": creq.bookmark("flavors", flavorid)}]


def brief_view(creq: ComputeRequest, f: FlavorRecord) -> dict[str, Any]:
    """A flavor as ``GET /flavors`` lists it."""
    out: dict[str, Any] = {"id": f.flavorid, "name": f.name, "links": _links(creq, f.flavorid)}
    if creq.at_least(55):
        out["description"] = f.description
    return out


def flavor_view(creq: ComputeRequest, f: FlavorRecord) -> dict[str, Any]:
    """A flavor in full, as show, detail, create and update answer it."""
    out: dict[str, Any] = {
        "id": f.flavorid, "name": f.name, "ram": f.memory_mb, "disk": f.root_gb,
        "swap": f.swap if creq.at_least(75) else (f.swap or ""),
        "OS-FLV-EXT-DATA:ephemeral": f.ephemeral_gb, "OS-FLV-DISABLED:disabled": f.disabled,
        "vcpus": f.vcpus, "os-flavor-access:is_public": f.is_public,
        "rxtx_factor": f.rxtx_factor or "", "links": _links(creq, f.flavorid),
    }
    if creq.at_least(55):
        out["description"] = f.description
    # Nova leaves the specs out for a caller who may not list them
    if creq.at_least(61) and creq.allows("os_compute_api:os-flavor-extra-specs:index"):
        out["extra_specs"] = dict(f.extra_specs)
    return out


# -- lookups ---------------------------------------------------------------------------
def _not_found(flavorid: str) -> NotFound:
    return NotFound(f"Flavor {flavorid} could not be found.")


async def visible_flavor(env: ComputeEnv, creq: ComputeRequest, flavorid: str) -> FlavorRecord:
    """A flavor the caller may see; 404 in Nova's words for a missing or hidden one."""
    try:
        f = await env.store.get_flavor(flavorid)
    except NotFound:
        raise _not_found(flavorid) from None
    if not f.is_public and not creq.allows("context_is_admin") and (
            creq.ctx.project_id not in await env.store.list_flavor_access(flavorid)):
        raise _not_found(flavorid)
    return f


def _min_filter(creq: ComputeRequest, name: str) -> int | None:
    text = creq.query(name)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidInput(f"Invalid {name} filter [{text}]") from None


async def _listed(env: ComputeEnv, creq: ComputeRequest) -> tuple[list[FlavorRecord], int]:
    check_query(creq, LIST_QUERY)
    limit, marker = page_params(creq)
    sort_key = creq.query("sort_key") or "flavorid"
    sort_dir = creq.query("sort_dir") or "asc"
    if sort_key not in FLAVOR_SORT_KEYS or sort_dir not in ("asc", "desc"):
        bad = ("sort_key", sort_key) if sort_key not in FLAVOR_SORT_KEYS else (
            "sort_dir", sort_dir)
        raise InvalidInput(f"Invalid input for query parameters {bad[0]}. Value: {bad[1]}.")
    is_public: bool | None = True
    disabled: bool | None = False
    if creq.allows("context_is_admin"):
        disabled = None  # only admins see every kind of flavor
        text = creq.query("is_public")
        if text is not None:
            # the CLI sends the literal string "None": every flavor
            is_public = None if text.lower() == "none" else parse_bool(
                text, "is_public filter")
    found = await env.store.list_flavors(
        is_public=is_public, project_id=creq.ctx.project_id, disabled=disabled,
        min_ram=_min_filter(creq, "minRam"), min_disk=_min_filter(creq, "minDisk"),
        sort_key=sort_key, sort_dir=sort_dir, marker=marker, limit=limit)
    return found, limit


# -- handlers --------------------------------------------------------------------------
async def list_flavors(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /flavors``: id, name and links of the flavors the caller may use."""
    creq.authorize("os_compute_api:flavors:index")
    found, limit = await _listed(env, creq)
    body: dict[str, Any] = {"flavors": [brief_view(creq, f) for f in found]}
    links = next_links(creq, [f.flavorid for f in found], limit, "flavors")
    if links:
        body["flavors_links"] = links
    return json(body)


async def list_flavors_detail(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /flavors/detail``: the same flavors in full."""
    creq.authorize("os_compute_api:flavors:index")
    found, limit = await _listed(env, creq)
    body: dict[str, Any] = {"flavors": [flavor_view(creq, f) for f in found]}
    links = next_links(creq, [f.flavorid for f in found], limit, "flavors/detail")
    if links:
        body["flavors_links"] = links
    return json(body)


async def show_flavor(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /flavors/{flavor_id}``."""
    creq.authorize("os_compute_api:flavors:show")
    return json({"flavor": flavor_view(creq, await visible_flavor(
        env, creq, creq.param("flavor_id")))})


async def create_flavor(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``POST /flavors`` (admin): 200 with the new flavor; no or a null id makes a uuid."""
    # the body is checked before the policy, as Nova's validation decorators do
    vals = creq.body(CREATE_V255 if creq.at_least(55) else CREATE)["flavor"]
    creq.authorize("os_compute_api:os-flavor-manage:create")
    raw_id = vals.get("id")
    flavorid = str(raw_id) if raw_id not in (None, "") else env.runtime.new_id()
    name = vals["name"].strip()
    try:
        created = await env.store.create_flavor(
            flavorid=flavorid, name=name, vcpus=int(vals["vcpus"]),
            memory_mb=int(vals["ram"]), root_gb=int(vals["disk"]),
            ephemeral_gb=int(vals.get("OS-FLV-EXT-DATA:ephemeral", 0)),
            swap=int(vals.get("swap", 0)), rxtx_factor=float(vals.get("rxtx_factor", 1.0)),
            is_public=parse_bool(vals.get("os-flavor-access:is_public", True), "is_public"),
            description=vals.get("description"), now=env.runtime.wall_time())
    except DuplicateError:
        try:
            await env.store.get_flavor(flavorid)
        except NotFound:
            raise ApiError(409, f"Flavor with name {name} already exists.") from None
        raise ApiError(409, f"Flavor with ID {flavorid} already exists.") from None
    return json({"flavor": flavor_view(creq, created)})


async def update_flavor(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``PUT /flavors/{flavor_id}`` (2.55, admin): change the description only."""
    description = creq.body(UPDATE)["flavor"]["description"]
    creq.authorize("os_compute_api:os-flavor-manage:update")
    flavorid = creq.param("flavor_id")
    try:
        updated = await env.store.update_flavor_description(
            flavorid, description, env.runtime.wall_time())
    except NotFound:
        raise _not_found(flavorid) from None
    return json({"flavor": flavor_view(creq, updated)})


async def delete_flavor(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``DELETE /flavors/{flavor_id}`` (admin): 202."""
    creq.authorize("os_compute_api:os-flavor-manage:delete")
    flavorid = creq.param("flavor_id")
    try:
        await env.store.delete_flavor(flavorid, env.runtime.wall_time())
    except NotFound:
        raise _not_found(flavorid) from None
    return json(None, 202)


def _spec_strings(specs: dict[str, Any]) -> dict[str, str]:
    # numbers are stored as their text, as Nova does
    return {k: v if isinstance(v, str) else str(v) for k, v in specs.items()}


async def list_specs(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /flavors/{flavor_id}/os-extra_specs``."""
    creq.authorize("os_compute_api:os-flavor-extra-specs:index")
    f = await visible_flavor(env, creq, creq.param("flavor_id"))
    return json({"extra_specs": dict(f.extra_specs)})


async def create_specs(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``POST /flavors/{flavor_id}/os-extra_specs`` (admin): merge; echoes the body."""
    body = creq.body(SPECS_CREATE)
    creq.authorize("os_compute_api:os-flavor-extra-specs:create")
    f = await visible_flavor(env, creq, creq.param("flavor_id"))
    await env.store.set_flavor_extra_specs(
        f.flavorid, _spec_strings(body["extra_specs"]), env.runtime.wall_time())
    return json(body)


def _no_spec(flavorid: str, key: str) -> NotFound:
    return NotFound(f"Flavor {flavorid} has no extra specs with key {key}.")


async def show_spec(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /flavors/{flavor_id}/os-extra_specs/{key}``: ``{key: value}``."""
    creq.authorize("os_compute_api:os-flavor-extra-specs:show")
    f = await visible_flavor(env, creq, creq.param("flavor_id"))
    key = creq.param("key")
    if key not in f.extra_specs:
        raise _no_spec(f.flavorid, key)
    return json({key: f.extra_specs[key]})


async def update_spec(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``PUT /flavors/{flavor_id}/os-extra_specs/{key}`` (admin): body ``{key: value}``."""
    body = creq.body(SPEC_UPDATE)
    creq.authorize("os_compute_api:os-flavor-extra-specs:update")
    if creq.param("key") not in body:
        raise InvalidInput("Request body and URI mismatch")
    f = await visible_flavor(env, creq, creq.param("flavor_id"))
    await env.store.set_flavor_extra_specs(f.flavorid, _spec_strings(body),
                                           env.runtime.wall_time())
    return json(body)


async def delete_spec(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``DELETE /flavors/{flavor_id}/os-extra_specs/{key}`` (admin): 200, no body."""
    creq.authorize("os_compute_api:os-flavor-extra-specs:delete")
    f = await visible_flavor(env, creq, creq.param("flavor_id"))
    key = creq.param("key")
    if key not in f.extra_specs:
        raise _no_spec(f.flavorid, key)
    await env.store.delete_flavor_extra_spec(f.flavorid, key)
    return json(None)


def _access_view(flavorid: str, projects: Iterable[str]) -> dict[str, Any]:
    return {"flavor_access": [{"flavor_id": flavorid, "tenant_id": p} for p in projects]}


async def list_access(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /flavors/{flavor_id}/os-flavor-access`` (admin): who may use a private flavor."""
    creq.authorize("os_compute_api:os-flavor-access")
    f = await visible_flavor(env, creq, creq.param("flavor_id"))
    if f.is_public:
        raise NotFound("Access list not available for public flavors.")
    return json(_access_view(f.flavorid, await env.store.list_flavor_access(f.flavorid)))


async def flavor_action(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``POST /flavors/{flavor_id}/action``: addTenantAccess / removeTenantAccess (admin)."""
    body = creq.body()
    if not isinstance(body, dict) or len(body) != 1 or next(iter(body)) not in (
            "addTenantAccess", "removeTenantAccess"):
        raise InvalidInput("There is no such action: "
                           f"{next(iter(body)) if isinstance(body, dict) and body else ''}")
    action = next(iter(body))
    adding = action == "addTenantAccess"
    creq.authorize("os_compute_api:os-flavor-access:"
                       + ("add_tenant_access" if adding else "remove_tenant_access"))
    tenant = creq.body({"type": "object", "properties": {action: _TENANT},
                        "required": [action], "additionalProperties": False})[action]["tenant"]
    f = await visible_flavor(env, creq, creq.param("flavor_id"))
    now = env.runtime.wall_time()
    try:
        projects = (await env.store.add_flavor_access(f.flavorid, tenant, now) if adding
                    else await env.store.remove_flavor_access(f.flavorid, tenant))
    except DuplicateError:
        raise ApiError(409, f"Flavor access already exists for flavor {f.flavorid} and "
                            f"project {tenant} combination.") from None
    except ConflictError:
        raise ApiError(409, "Can not add access to a public flavor.") from None
    except NotFound:
        raise NotFound(f"Flavor access not found for {f.flavorid} / {tenant} "
                       "combination.") from None
    return json(_access_view(f.flavorid, projects))


def routes(env: ComputeEnv) -> list[Route]:
    """The flavor routes; ``/flavors/detail`` before ``/flavors/{flavor_id}``."""
    one, specs = "/flavors/{flavor_id}", "/flavors/{flavor_id}/os-extra_specs"
    return [
        *route(env, "GET", "/flavors", list_flavors),
        *route(env, "POST", "/flavors", create_flavor),
        *route(env, "GET", "/flavors/detail", list_flavors_detail),
        *route(env, "GET", one, show_flavor),
        *route(env, "PUT", one, update_flavor, min_minor=55),
        *route(env, "DELETE", one, delete_flavor),
        *route(env, "GET", specs, list_specs),
        *route(env, "POST", specs, create_specs),
        *route(env, "GET", specs + "/{key}", show_spec),
        *route(env, "PUT", specs + "/{key}", update_spec),
        *route(env, "DELETE", specs + "/{key}", delete_spec),
        *route(env, "GET", one + "/os-flavor-access", list_access),
        *route(env, "POST", one + "/action", flavor_action),
    ]
