"""``GET /v2/images``: Glance's filters, sorting and pagination over the Store.

The query is read as Glance's deserializer reads it: ``limit`` (25 unless
asked, at most 1000), ``marker``, ``member_status``, every ``tag``, sorting by
``sort_key``/``sort_dir`` or ``sort=key:dir,...`` (not both), ``visibility``,
``os_hidden`` (false unless asked) and ``protected``. ``name``, ``id``,
``status``, ``disk_format`` and ``container_format`` take the ``in:a,b`` and
``eq:`` operators (``id=in:...`` is how clients map server images to names);
``created_at``/``updated_at`` take ``gt:``, ``gte:``, ``lt:``, ``lte:``,
``neq:``, ``eq:``; ``size_min``/``size_max`` bound the size; any other name is
an extra-property filter. Equalities the Store can do, it does, with the
marker and limit; the rest is filtered here, after the Store's keyset page
(then without its limit). A full page gets a ``next`` link.
"""

from __future__ import annotations

import datetime
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nimbus.core.api.http import Response
from nimbus.core.api.image.views import IMAGES_SCHEMA_HREF, image_view
from nimbus.core.api.image.wire import ImageEnv, ImageRequest, json_response
from nimbus.core.db.images import SORT_KEYS, ImageRecord
from nimbus.core.errors import NotFound
from nimbus.core.image.errors import bad_request

#: Query names that are not filters.
_CONTROL = frozenset({"limit", "marker", "member_status", "tag", "sort", "sort_key",
                      "sort_dir", "visibility", "os_hidden", "protected", "size_min",
                      "size_max"})
#: Filters that take the ``in:`` and ``eq:`` operators.
_LISTABLE = ("name", "id", "status", "container_format", "disk_format")
#: Of those, the ones the Store filters by equality.
_STORE_EQ = frozenset({"name", "status", "container_format", "disk_format", "owner"})
#: Other image attributes a query may compare for equality.
_ATTRIBUTES = frozenset({"owner", "checksum", "os_hash_value", "os_hash_algo", "min_ram",
                         "min_disk", "size", "virtual_size"})
_TIMES = ("created_at", "updated_at")
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b, "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b, "neq": lambda a, b: a != b, "eq": lambda a, b: a == b}
_QUOTED = re.compile(r'"([^"\\]*(?:\\.[^"\\]*)*)",?|([^,]+),?|,')


@dataclass(slots=True)
class _Query:
    """A listing: what the Store is asked, and what is checked here after it."""

    store: dict[str, Any] = field(default_factory=dict)
    checks: list[Callable[[ImageRecord], bool]] = field(default_factory=list)
    properties: dict[str, str] = field(default_factory=dict)


def split_op(expression: str) -> tuple[str, str]:
    """``in:a,b`` -> (``in``, ``a,b``); no known operator -> (``eq``, the whole text)."""
    op, sep, rest = expression.partition(":")
    if sep and op in ("in", *_COMPARE):
        return op, rest
    return "eq", expression


def split_values(text: str) -> list[str]:
    """The values of an ``in:`` list: comma-separated, double quotes around commas."""
    if text.count('"') % 2:
        raise bad_request("Invalid filter value: quotes are not closed.")
    return [quoted or plain for quoted, plain in _QUOTED.findall(text)]


def _limit(env: ImageEnv, raw: str | None) -> int:
    if raw is None:
        return min(env.config.limit_param_default, env.config.api_limit_max)
    try:
        limit = int(raw)
    except ValueError:
        raise bad_request("limit param must be an integer") from None
    if limit < 0:
        raise bad_request("limit param must be positive")
    return min(env.config.api_limit_max, limit)


def _sorting(query: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    keys: list[str] = []
    dirs: list[str] = []
    if "sort" in query:
        if "sort_key" in query or "sort_dir" in query:
            raise bad_request("Old and new sorting syntax cannot be combined")
        for part in query["sort"][-1].strip().split(","):
            key, _, direction = part.partition(":")
            keys.append(key.strip())
            dirs.append(direction.strip() or "desc")
    else:
        keys = [k.strip() for k in query.get("sort_key", [])]
        dirs = [d.strip() for d in query.get("sort_dir", [])]
        if len(dirs) > 1 and len(dirs) != len(keys):
            raise bad_request("Number of sort dirs does not match the number of sort keys")
    for key in keys:
        if key not in SORT_KEYS:
            raise bad_request(f"Invalid sort key: {key}. It must be one of the following: "
                              f"{', '.join(SORT_KEYS)}.")
    for direction in dirs:
        if direction not in ("asc", "desc"):
            raise bad_request(f"Invalid sort direction: {direction}")
    if len(dirs) == 1 and len(keys) > 1:
        dirs = dirs * len(keys)
    return keys or ["created_at"], dirs or ["desc"]


def _flag(last: dict[str, str], name: str, default: str | None) -> bool | None:
    value = last.get(name, default)
    if value is None:
        return None
    if value.lower() not in ("true", "false"):
        raise bad_request(f"Invalid value '{value}' for '{name}' filter. Valid values are "
                          "'true' or 'false'.")
    return value.lower() == "true"


def _time_check(key: str, expression: str) -> Callable[[ImageRecord], bool]:
    op, text = split_op(expression)
    compare = _COMPARE.get(op)
    if compare is None:
        raise bad_request(f"Unable to filter by unknown operator '{op}'.")
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f'Bad "{key}" query filter format. Use ISO 8601 DateTime '
                          "notation.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    # Glance stores whole seconds; compare at that precision
    threshold = int(moment.timestamp())

    def check(image: ImageRecord) -> bool:
        when = getattr(image, key)
        return when is not None and compare(int(when), threshold)

    return check


def _one_of(key: str, wanted: set[str]) -> Callable[[ImageRecord], bool]:
    def check(image: ImageRecord) -> bool:
        return getattr(image, key) in wanted

    return check


def _equal(key: str, value: str) -> Callable[[ImageRecord], bool]:
    def check(image: ImageRecord) -> bool:
        return str(getattr(image, key)) == value

    return check


def _filter(q: _Query, key: str, value: str) -> None:
    if key in _LISTABLE:
        op, text = split_op(value)
        if op == "in":
            q.checks.append(_one_of(key, set(split_values(text))))
            return
        if op != "eq":
            raise bad_request(f"Unable to filter by unknown operator '{op}'.")
        value = text
    if key in _STORE_EQ:
        q.store[key] = value
    elif key in _TIMES:
        q.checks.append(_time_check(key, value))
    elif key == "id" or key in _ATTRIBUTES:
        q.checks.append(_equal(key, value))
    else:
        q.properties[key] = value


def parse_query(env: ImageEnv, query: dict[str, list[str]]) -> tuple[_Query, int]:
    """The listing a query asks for, and its page size."""
    last = {name: values[-1] for name, values in query.items() if values}
    if "changes-since" in last:
        raise bad_request('The "changes-since" filter is no longer available on v2.')
    q = _Query()
    visibility = last.get("visibility")
    if visibility:
        if visibility not in ("community", "public", "private", "shared", "all"):
            raise bad_request(f"Invalid visibility value: {visibility}")
        q.store["visibility"] = visibility
    member_status = last.get("member_status", "accepted")
    if member_status not in ("pending", "accepted", "rejected", "all"):
        raise bad_request(f"Invalid status: {member_status}")
    q.store["member_status"] = member_status
    q.store["os_hidden"] = _flag(last, "os_hidden", "false")
    protected = _flag(last, "protected", None)
    if protected is not None:
        q.checks.append(lambda image: image.protected == protected)
    for bound in ("size_min", "size_max"):
        if bound in last:
            try:
                q.store[bound] = int(last[bound])
            except ValueError:
                raise bad_request("Unable to filter on a range with a non-numeric "
                                  "value.") from None
    q.store["tags"] = [t.strip() for t in query.get("tag", [])]
    q.store["sort_keys"], q.store["sort_dirs"] = _sorting(query)
    for key, value in last.items():
        if key not in _CONTROL:
            _filter(q, key, value)
    q.store["properties"] = q.properties
    return q, _limit(env, last.get("limit"))


async def list_images(env: ImageEnv, ireq: ImageRequest) -> Response:
    """``GET /v2/images``: the images the caller may list, one page of them."""
    env.authorize("get_images", ireq.ctx)
    query = {k: list(v) for k, v in ireq.request.query.items()}
    q, limit = parse_query(env, query)
    marker = ireq.request.query_one("marker")
    ctx = ireq.ctx
    try:
        found = await env.store.list_images_visible_to(
            ctx.project_id, env.sees_all(ctx), marker=marker,
            limit=None if q.checks else limit, **q.store)
    except NotFound:
        raise bad_request(f"No image found with ID {marker}") from None
    if q.checks:
        found = [image for image in found if all(check(image) for check in q.checks)]
        found = found[:limit]
    params = {k: v[-1] for k, v in query.items() if v and k != "marker"}
    body: dict[str, Any] = {
        "images": [image_view(i) for i in found],
        "first": "/v2/images" + (f"?{urllib.parse.urlencode(params)}" if params else ""),
        "schema": IMAGES_SCHEMA_HREF,
    }
    if found and len(found) == limit:
        params["marker"] = found[-1].id
        body["next"] = f"/v2/images?{urllib.parse.urlencode(params)}"
    return json_response(body)
