"""What every Placement request goes through: microversion, checks, headers, errors.

A Placement handler is ``async (ctx, preq) -> Response`` over a
:class:`PlacementRequest`, the core request plus the microversion it is served
at. :func:`route` turns one into a core :class:`Route`: it negotiates the
microversion, answers 404 (or 405) below the handler's first microversion,
checks ``Accept`` and ``Content-Type`` as Placement does, turns errors into
Placement's error body, and adds the headers every answer carries
(``OpenStack-API-Version``, ``Vary``, ``x-openstack-request-id``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

import msgspec

from nimbus.core.api.http import JSON_TYPE, ApiContext, Request, Response, Route
from nimbus.core.api.placement import microversion
from nimbus.core.api.placement.errors import (
    PlacementError,
    as_placement_error,
    error_body,
)
from nimbus.core.api.placement.microversion import Version, VersionError
from nimbus.core.api.placement.schemas import Schema, validate
from nimbus.core.errors import ConfigError, NimbusError

if TYPE_CHECKING:
    from nimbus.core.db.store import Store

log = logging.getLogger(__name__)

#: The header naming the request in logs and error bodies.
REQUEST_ID_HEADER = "x-openstack-request-id"


@dataclass(frozen=True, slots=True)
class PlacementRequest:
    """A request as Placement handlers see it: the core request and its microversion.

    ``token`` is the ``X-Auth-Token`` header if the client sent one. Nothing
    checks it yet (Keystone comes with a later issue); it is carried so that
    the check has one place to go.
    """

    request: Request
    version: Version
    request_id: str
    token: str | None = None

    def at_least(self, minor: int) -> bool:
        """Whether the request is served at microversion 1.``minor`` or later."""
        return self.version >= (1, minor)

    def param(self, name: str) -> str:
        """A value matched by the route template, such as ``uuid``."""
        return self.request.path_params[name]

    def body(self, schema: Schema) -> Any:
        """The JSON body, checked against ``schema``: 415 unless it is JSON, 400 if invalid."""
        ctype = self.request.header("content-type").partition(";")[0].strip().lower()
        if ctype != JSON_TYPE:
            raise PlacementError(415, f"The media type {ctype or 'None'} is not supported, "
                                      f"use {JSON_TYPE}")
        try:
            data = msgspec.json.decode(self.request.body)
        except msgspec.DecodeError as exc:
            raise PlacementError(400, f"Malformed JSON: {exc}") from None
        validate(data, schema)
        return data

    def query(self, schema: Schema) -> dict[str, str]:
        """The query string (the last value of each name), checked against ``schema``."""
        last = {name: values[-1] for name, values in self.request.query.items() if values}
        validate(last, schema, "Invalid query string parameters")
        return last

    def values(self, name: str) -> list[str]:
        """Every value of a query parameter, in order."""
        return list(self.request.query.get(name, ()))


#: A Placement handler.
PlacementHandler = Callable[[ApiContext, PlacementRequest], Awaitable[Response]]


def store_of(ctx: ApiContext) -> Store:
    """The Store the handlers work on; a configuration error if the service has none."""
    if ctx.store is None:
        raise ConfigError("the Placement API is served without a database")
    return ctx.store


def route(method: str, path: str, handler: PlacementHandler, *, since: int = 0,
          below: int = 404, json_out: bool | None = None, name: str = "") -> Route:
    """A core route serving ``handler`` from microversion 1.``since`` on.

    Below that microversion the route answers ``below`` (404, or 405 where
    Placement says so). ``json_out`` handlers (by default the GET ones) answer
    406 to a client whose ``Accept`` header rules out JSON.
    """
    first = Version(1, since)
    checks_accept = method.upper() == "GET" if json_out is None else json_out

    async def serve(ctx: ApiContext, req: Request) -> Response:
        return await _answer(ctx, req, handler, first, below, checks_accept)

    serve.__name__ = handler.__name__
    return Route(method, path, serve, name or handler.__name__)


async def _answer(ctx: ApiContext, req: Request, handler: PlacementHandler, first: Version,
                  below: int, json_out: bool) -> Response:
    request_id = f"req-{ctx.runtime.new_id()}"
    try:
        version = microversion.negotiate(req.headers)
    except VersionError as exc:
        body = error_body(exc.status, exc.message, request_id=request_id)
        return Response(exc.status, body, headers={REQUEST_ID_HEADER: request_id})
    headers = answer_headers(version, request_id)
    try:
        if req.body and not req.header("content-type"):
            raise PlacementError(400, "A request with a body needs a Content-Type header")
        if version < first:
            raise PlacementError(below, f"{req.method} {req.path} is not available at "
                                        f"placement {version}; it needs {first} or later")
        if json_out and not accepts_json(req.header("accept")):
            raise PlacementError(406, f"Only {JSON_TYPE} is provided")
        preq = PlacementRequest(req, version, request_id, req.header("x-auth-token") or None)
        resp = await handler(ctx, preq)
    except NimbusError as exc:
        err = as_placement_error(exc)
        if err.status >= 500:
            log.warning("%s %s failed: %s", req.method, req.path, err.message)
        body = error_body(err.status, err.message, code=err.code, request_id=request_id,
                          version=version)
        resp = Response(err.status, body)
    return dataclasses.replace(resp, headers={**resp.headers, **headers})


def answer_headers(version: Version, request_id: str) -> dict[str, str]:
    """The headers every answer served at ``version`` carries."""
    return {
        "OpenStack-API-Version": microversion.header_value(version),
        "Vary": microversion.HEADER,
        REQUEST_ID_HEADER: request_id,
    }


def format_error(ctx: ApiContext, req: Request, status: int, message: str) -> Response:
    """Placement's answer to an error raised outside any handler (unknown URL, wrong method,
    body too large, a bug): the error body, at the request's microversion if it has one."""
    request_id = f"req-{ctx.runtime.new_id()}"
    try:
        version: Version | None = microversion.negotiate(req.headers)
    except VersionError:
        version = None
    headers = ({REQUEST_ID_HEADER: request_id} if version is None
               else answer_headers(version, request_id))
    return Response(status, error_body(status, message, request_id=request_id, version=version),
                    headers=headers)


def accepts_json(accept: str) -> bool:
    """Whether an ``Accept`` header (empty: anything) allows a JSON answer."""
    if not accept.strip():
        return True
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0 and media.lower() in (JSON_TYPE, "application/*", "*/*"):
            return True
    return False


def json_response(body: Any, status: int = 200,
                  headers: Mapping[str, str] | None = None) -> Response:
    """A JSON answer."""
    return Response(status, body, JSON_TYPE, dict(headers or {}))


def empty(status: int = 204, headers: Mapping[str, str] | None = None) -> Response:
    """An answer without a body (204, or 201 with a Location)."""
    return Response(status, None, JSON_TYPE, dict(headers or {}))


def last_modified(ctx: ApiContext, preq: PlacementRequest,
                  when: float | None = None) -> dict[str, str]:
    """``Last-Modified`` (``when``, else now) and ``Cache-Control: no-cache``, from 1.15."""
    if not preq.at_least(15):
        return {}
    stamp = when if when is not None else ctx.runtime.wall_time()
    return {"Last-Modified": formatdate(stamp, usegmt=True), "Cache-Control": "no-cache"}


def newest(*stamps: float | None) -> float | None:
    """The latest of some timestamps, ignoring missing ones; None if all are missing."""
    present = [s for s in stamps if s is not None]
    return max(present) if present else None
