"""Requests, responses and routes as plain data, with no I/O.

The API is written as handlers ``async (ctx, req) -> Response`` over the frozen
:class:`Request` and :class:`Response` below, listed as :class:`Route` values.
``nimbus.http`` binds those routes onto aiohttp and only translates; the
simulator calls the same handlers directly, without sockets (DESIGN.md rule 2).

Errors reach clients in the shape Nova gives them: one key naming the fault,
``{"itemNotFound": {"code": 404, "message": "..."}}``, built by :func:`fault`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from nimbus.core.errors import ApiError, NimbusError
from nimbus.core.metrics import Metrics
from nimbus.core.rpc import RpcEndpoint
from nimbus.core.runtime import Runtime

if TYPE_CHECKING:
    from nimbus.core.db.store import Store

JSON_TYPE = "application/json"

#: Nova's fault names by HTTP status (``nova.api.openstack.wsgi.Fault``); any other
#: status is a ``computeFault``.
FAULT_NAMES: Mapping[int, str] = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    429: "overLimit",
    501: "notImplemented",
    503: "serviceUnavailable",
}

#: The message of a 500 for an error nobody raised on purpose; details stay in the log.
UNEXPECTED_ERROR = "Unexpected API Error. The server logged the details."


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request, as the API logic sees it.

    ``headers`` has lower-cased names; ``query`` maps each name to all its values
    in order; ``path_params`` holds the values matched by the route template.
    """

    method: str
    path: str
    path_params: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, list[str]] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str, default: str = "") -> str:
        """A header's value by case-insensitive name, or ``default``."""
        return self.headers.get(name.lower(), default)

    def query_one(self, name: str, default: str | None = None) -> str | None:
        """The last value of a query parameter, or ``default`` if absent."""
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self) -> Any:
        """The body decoded as JSON; a 400 ``ApiError`` if it is not JSON."""
        try:
            return msgspec.json.decode(self.body)
        except msgspec.DecodeError:
            raise ApiError(400, "Malformed request body") from None


@dataclass(frozen=True, slots=True)
class Response:
    """One HTTP response. A ``body`` that is not bytes or str is encoded as JSON."""

    status: int = 200
    body: Any = None
    content_type: str = JSON_TYPE
    headers: Mapping[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        """The body as bytes: as is for bytes, UTF-8 for str, JSON otherwise; none is empty."""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        if self.body is None:
            return b""
        return msgspec.json.encode(self.body)


@dataclass(frozen=True, slots=True)
class ApiContext:
    """What API handlers are given: the world they run in and where they are served."""

    runtime: Runtime
    metrics: Metrics
    #: Public base URL such as ``http://h:8774``, no trailing slash; empty means
    #: derive it from each request's Host header.
    base_url: str = ""
    #: The API service's RPC endpoint, for handlers that call other services.
    rpc: RpcEndpoint | None = None
    #: The database, for handlers that read or write state (the Placement API).
    store: Store | None = None

    def public_url(self, req: Request) -> str:
        """The base URL clients use to reach us, without a trailing slash."""
        if self.base_url:
            return self.base_url.rstrip("/")
        host = req.header("host")
        return f"http://{host}" if host else ""


#: An API handler: plain logic from a request to a response.
Handler = Callable[[ApiContext, Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Route:
    """A handler bound to a method and an aiohttp-style path template.

    ``path`` is like ``/v2.1/servers/{server_id}``; ``name`` names the route in
    logs. Metrics label requests by the template, never by the concrete path, so
    the number of label values stays bounded.
    """

    method: str
    path: str
    handler: Handler
    name: str = ""


def fault_name(status: int) -> str:
    """Nova's name for a fault of ``status``, ``computeFault`` for unnamed ones."""
    return FAULT_NAMES.get(status, "computeFault")


def fault(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """A Nova-style error response: ``{"<faultName>": {"code": status, "message": ...}}``."""
    body = {fault_name(status): {"code": status, "message": message}}
    return Response(status, body, JSON_TYPE, dict(headers or {}))


#: Builds the answer to an error found outside a handler (unknown URL, wrong method, body too
#: large) or raised by one: ``(ctx, request, status, message) -> Response``. An API whose
#: errors have another shape than Nova's (Placement's) gives the adapter its own.
ErrorFormatter = Callable[[ApiContext, Request, int, str], Response]


def nova_error(ctx: ApiContext, req: Request, status: int, message: str) -> Response:
    """The default :data:`ErrorFormatter`: Nova's fault body."""
    return fault(status, message)


def error_response(exc: BaseException) -> Response:
    """The response for an error a handler raised.

    A :class:`NimbusError` answers with its own status and message; anything else
    is a 500 ``computeFault`` whose message reveals nothing of the server (the
    caller logs the traceback).
    """
    if isinstance(exc, NimbusError):
        return fault(exc.status, exc.message)
    return fault(500, UNEXPECTED_ERROR)
