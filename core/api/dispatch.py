"""Routes served without sockets: match a method and path against route templates.

The HTTP adapter in ``nimbus/`` binds routes onto aiohttp. The simulator, and
tests of API logic, call the same handlers through a :class:`Dispatcher`, which
matches templates (``/v2.1/servers/{server_id}``) the way aiohttp does: a
``{name}`` is one path segment, routes are tried in order, a path that matches
no template is a 404 and one that matches only with other methods a 405.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from nimbus.core.api.http import ApiContext, ErrorFormatter, Request, Response, Route, nova_error

_PARAM = re.compile(r"\{(\w+)\}")


def _pattern(template: str) -> re.Pattern[str]:
    parts, last = [], 0
    for m in _PARAM.finditer(template):
        parts.append(re.escape(template[last:m.start()]))
        parts.append(f"(?P<{m.group(1)}>[^/]+)")
        last = m.end()
    parts.append(re.escape(template[last:]))
    return re.compile("^" + "".join(parts) + "$")


class Dispatcher:
    """Calls the handler of the first route matching a request (see the module docstring)."""

    def __init__(self, ctx: ApiContext, routes: Iterable[Route],
                 errors: ErrorFormatter = nova_error) -> None:
        self.ctx = ctx
        self.errors = errors
        self._routes = [(r, _pattern(r.path)) for r in routes]

    async def handle(self, req: Request) -> Response:
        """The response to ``req`` (its ``path_params`` are filled in here)."""
        methods = False
        for route, pattern in self._routes:
            m = pattern.match(req.path)
            if m is None:
                continue
            if route.method != req.method:
                methods = True
                continue
            found = Request(req.method, req.path, m.groupdict(), req.query, req.headers,
                            req.body)
            return await route.handler(self.ctx, found)
        status = 405 if methods else 404
        return self.errors(self.ctx, req, status,
                           "Method not allowed" if methods else "The resource could not be "
                                                                "found.")

    async def call(self, method: str, path: str, *, body: Any = None,
                   headers: Mapping[str, str] | None = None,
                   query: Mapping[str, str | list[str]] | None = None) -> Response:
        """Build a request (``body`` encoded as JSON unless bytes) and handle it."""
        data = body if isinstance(body, bytes) else (
            b"" if body is None else msgspec.json.encode(body))
        heads = {k.lower(): v for k, v in (headers or {}).items()}
        if body is not None and "content-type" not in heads:
            heads["content-type"] = "application/json"
        q = {k: (v if isinstance(v, list) else [v]) for k, v in (query or {}).items()}
        return await self.handle(Request(method, path, {}, q, heads, data))
