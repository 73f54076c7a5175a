"""``GET /servers`` and ``GET /servers/detail``: filters, sorting and paging as Nova.

Listing is ``os_compute_api:servers:index`` (``:detail``), for the caller's
project; ``all_tenants`` also needs ``servers:index:get_all_tenants``
(``servers:detail:get_all_tenants``), a 403 without it, as Nova. Everyone may
filter by ``name`` (a regular expression matched anywhere,
case-insensitively; a plain word is a substring), ``status``, ``image``,
``flavor``, ``ip``, ``reservation_id``, ``changes-since``, ``changes-before``
(2.66), ``locked`` (2.73) and, from 2.83, ``availability_zone``, ``key_name``,
``user_id``, ``vm_state`` and ``task_state``. Callers with
``servers:allow_all_filters`` (admins) may also filter by ``host``, ``node``,
``deleted`` (the literal ``deleted=False`` the CLI sends is fine for anyone)
and, with ``all_tenants``, by ``project_id``/``tenant_id``; sorting by host or
node and the ``deleted`` status are for administrators (``context_is_admin``).
Before 2.75 other parameters are ignored (the filters a caller may not use too);
from 2.75 a parameter the schema does not name is a 400. With
``changes-since``/``changes-before`` deleted servers are listed too, as Nova
does. Pages hold at most 1000 servers; a full page ends with a ``next`` link.
Filters the Store cannot run (``ip``, a ``name`` pattern, tags) are applied
here, after reading every row the Store filters let through.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from nimbus.core.api.compute import server_views as views
from nimbus.core.api.compute.server_schemas import (
    IGNORED_SORT_KEYS,
    JOINED,
    SORT_KEYS,
    known_query,
    user_filters,
)
from nimbus.core.api.compute.wire import ComputeEnv, ComputeRequest, json, parse_time
from nimbus.core.api.http import Response
from nimbus.core.db.instance_schema import InstanceRecord
from nimbus.core.errors import Forbidden, InvalidInput, NotFound

MAX_LIMIT = 1000
_TRUE = frozenset({"true", "1", "on", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "off", "no", "n", "f"})
_PAGING = frozenset({"limit", "marker", "sort_key", "sort_dir"})
_ADMIN_ONLY_SORT = frozenset({"host", "node"})
#: Nova's sort keys by the Store's column names.
_SORT_COLUMN = {"instance_type_id": "flavor_id"}
_REGEX_CHARS = frozenset("\\^$.|?*+()[]{}")


def _bool(text: str, what: str, default: bool | None = None) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    if default is not None:
        return default
    raise InvalidInput(f"Unrecognized value '{text}' for {what}, acceptable values are: "
                       "'0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', "
                       "'yes'")


def _options(creq: ComputeRequest) -> dict[str, list[str]]:
    """The query parameters this caller may use at this version (Nova's stripping)."""
    query = {k: list(v) for k, v in creq.request.query.items()}
    minor = creq.version.minor
    if creq.at_least(75):
        unknown = sorted(set(query) - known_query(minor))
        if unknown:
            raise InvalidInput(f"Invalid input for query parameters {unknown[0]}. Additional "
                               f"properties are not allowed ({unknown[0]!r} was unexpected)")
    for name in query:
        if name in JOINED or name.startswith("_"):
            raise InvalidInput(f"Invalid filter field: {name}.")
    if creq.allows("os_compute_api:servers:allow_all_filters"):
        return query
    allowed = user_filters(minor) | _PAGING
    return {k: v for k, v in query.items() if k in allowed}


def _sort(creq: ComputeRequest, opts: Mapping[str, list[str]]) -> list[tuple[str, str]]:
    keys, dirs = list(opts.get("sort_key", [])), list(opts.get("sort_dir", []))
    ignored = set(IGNORED_SORT_KEYS) - ({"locked"} if creq.at_least(73) else set())
    out = []
    for i, key in enumerate(keys):
        direction = dirs[i] if i < len(dirs) else "desc"
        if direction not in ("asc", "desc"):
            raise InvalidInput(f"Invalid sort direction {direction!r}: must be 'asc' or "
                               "'desc'")
        if key in ignored:
            if creq.at_least(75):
                raise InvalidInput(f"Invalid input for query parameters sort_key. Value: "
                                   f"{key}. {key!r} is not one of the valid sort keys")
            continue
        if key not in SORT_KEYS and key != "locked":
            raise InvalidInput(f"Invalid input for query parameters sort_key. Value: {key}. "
                               f"{key!r} is not one of the valid sort keys")
        if key in _ADMIN_ONLY_SORT and not creq.allows("context_is_admin"):
            raise Forbidden(f"Only administrators can sort servers by {key}")
        out.append((_SORT_COLUMN.get(key, key), direction))
    return out or [("created_at", "desc")]


def _limit(opts: Mapping[str, list[str]]) -> int:
    text = opts.get("limit", [None])[-1]
    if text is None:
        return MAX_LIMIT
    try:
        limit = int(text)
    except ValueError:
        raise InvalidInput("limit param must be an integer") from None
    if limit < 0:
        raise InvalidInput("limit param must be positive")
    return min(limit or MAX_LIMIT, MAX_LIMIT)  # 0 means "no limit given", as in Nova


def _pattern(text: str) -> re.Pattern[str]:
    try:
        return re.compile(text, re.IGNORECASE)
    except re.error:
        return re.compile(re.escape(text), re.IGNORECASE)


class _Query:
    """A list request turned into Store filters and filters applied here."""

    def __init__(self, creq: ComputeRequest, rule: str) -> None:
        self.creq = creq
        self.rule = rule  # servers:index or servers:detail
        self.opts = _options(creq)
        self.filters: dict[str, Any] = {}
        self.here: list[Any] = []  # predicates on InstanceRecord, for what the Store lacks
        self.ip_pattern: re.Pattern[str] | None = None
        self.empty = False

    def last(self, name: str) -> str | None:
        values = self.opts.get(name)
        return values[-1] if values else None

    def build(self) -> None:
        f = self.filters
        self._status()
        since, before = self.last("changes-since"), self.last("changes-before")
        if since is not None:
            f["changes_since"] = parse_time(since, "changes-since")
        if before is not None and self.creq.at_least(66):
            f["changes_before"] = parse_time(before, "changes-before")
            if since is not None and f["changes_before"] < f["changes_since"]:
                raise InvalidInput("The value of changes-since must be less than or equal "
                                   "to changes-before.")
        deleted = self.last("deleted")
        if deleted is not None:  # only there with servers:allow_all_filters
            f.setdefault("deleted", _bool(deleted, "deleted", default=False))
        elif "changes_since" in f or "changes_before" in f:
            f.setdefault("deleted", None)
        self._scope()
        for name, key in (("reservation_id", "reservation_id"), ("host", "host"),
                          ("node", "node"), ("availability_zone", "availability_zone"),
                          ("key_name", "key_name"), ("user_id", "user_id")):
            value = self.last(name)
            if value is not None:
                f[key] = value
        for name, key in (("image", "image_ref"), ("image_ref", "image_ref"),
                          ("flavor", "flavor_id")):
            value = self.last(name)
            if value is not None:
                f[key] = value.rstrip("/").rsplit("/", 1)[-1]
        if self.last("vm_state") is not None:
            f["vm_states"] = self.opts["vm_state"]
        if self.last("task_state") is not None:
            f["task_states"] = self.opts["task_state"]
        locked = self.last("locked")
        if locked is not None and self.creq.at_least(73):
            f["locked"] = _bool(locked, "locked")
        self._patterns()

    def _status(self) -> None:
        statuses = self.opts.get("status")
        if not statuses:
            return
        vm_states, task_states = views.states_for(statuses)
        if not vm_states and not task_states:
            if self.creq.at_least(38):
                raise InvalidInput("Invalid status value")
            self.empty = True
            return
        if vm_states == ["deleted"]:
            if not self.creq.allows("context_is_admin"):
                raise Forbidden("Only administrators may list deleted instances")
            self.filters["deleted"] = True
        self.filters["vm_states"] = vm_states
        if "default" not in task_states:
            self.filters["task_states"] = task_states

    def _scope(self) -> None:
        ctx, everyone = self.creq.ctx, self.last("all_tenants")
        all_tenants = False
        if everyone is not None:
            all_tenants = everyone == "" or _bool(everyone, "all_tenants")
        if all_tenants:
            self.creq.authorize(self.rule + ":get_all_tenants")
            project = self.last("project_id") or self.last("tenant_id")
            if project is not None:
                self.filters["project_id"] = project
        else:
            self.filters["project_id"] = ctx.project_id

    def _patterns(self) -> None:
        name = self.last("name") or self.last("display_name")
        if name is not None:
            if _REGEX_CHARS.isdisjoint(name):
                self.filters["name"] = name
            else:
                pattern = _pattern(name)
                self.here.append(lambda i: bool(pattern.search(i.display_name or "")))
        ip = self.last("ip")
        if ip is not None:
            self.ip_pattern = _pattern(ip)
        if self.creq.at_least(26):
            for key in ("tags", "tags-any", "not-tags", "not-tags-any"):
                if self.last(key) is not None:
                    self.here.append(_tag_test(key, str(self.last(key)).split(",")))


def _tag_test(key: str, wanted: Sequence[str]) -> Any:
    def test(inst: InstanceRecord) -> bool:
        tags = set(inst.system_metadata.get("tags") or [])
        hit = set(wanted) <= tags if key.endswith("tags") else bool(tags & set(wanted))
        return not hit if key.startswith("not-") else hit
    return test


async def _listed(env: ComputeEnv, creq: ComputeRequest,
                  rule: str) -> tuple[list[InstanceRecord], int]:
    creq.authorize(rule)
    query = _Query(creq, rule)
    query.build()
    limit, sort = _limit(query.opts), _sort(creq, query.opts)
    if query.empty:
        return [], limit
    marker = query.last("marker")
    later = bool(query.here) or query.ip_pattern is not None
    try:
        found = await env.store.list_instances(
            **query.filters, sort=sort, marker=marker, limit=None if later else limit)
    except NotFound:
        raise InvalidInput(f"marker [{marker}] not found") from None
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    for test in query.here:
        found = [i for i in found if test(i)]
    if query.ip_pattern is not None:
        pattern, kept = query.ip_pattern, []
        for inst in found:
            ips = await env.store.fixed_ips_for_instance(inst.uuid)
            if any(pattern.search(ip.address) for ip in ips):
                kept.append(inst)
        found = kept
    return found[:limit], limit


def _links(creq: ComputeRequest, collection: str, found: Sequence[InstanceRecord],
           limit: int) -> list[dict[str, str]]:
    if not found or len(found) != limit:
        return []
    params = [(k, v) for k, values in creq.request.query.items() if k != "marker"
              for v in values]
    params.append(("marker", found[-1].uuid))
    return [{"rel": "next", "href": f"{creq.link(collection)}?{urlencode(params)}"}]


async def list_servers(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /servers``: ids, names and links."""
    found, limit = await _listed(env, creq, "os_compute_api:servers:index")
    body: dict[str, Any] = {"servers": [views.brief(creq, i) for i in found]}
    links = _links(creq, "servers", found, limit)
    if links:
        body["servers_links"] = links
    return json(body)


async def list_servers_detail(env: ComputeEnv, creq: ComputeRequest) -> Response:
    """``GET /servers/detail``: every server in its detailed view."""
    found, limit = await _listed(env, creq, "os_compute_api:servers:detail")
    lookups = await views.Lookups.load(env, creq, found)
    body: dict[str, Any] = {"servers": [views.detail(creq, i, lookups) for i in found]}
    links = _links(creq, "servers/detail", found, limit)
    if links:
        body["servers_links"] = links
    return json(body)

