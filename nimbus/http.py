"""The aiohttp adapter: binds core API routes onto an aiohttp application.

The API logic lives in ``nimbus.core.api`` as plain handlers over plain
requests and responses (DESIGN.md rule 2). This module only translates:
aiohttp request -> core ``Request``, core ``Response`` -> aiohttp response, and
every error -> a Nova-style fault body. One middleware counts and times each
request on the runtime clock, labelled by route template. Error bodies are Nova's
faults unless the application is built with another ``ErrorFormatter`` (Placement's).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Sequence

from aiohttp import web
from aiohttp.typedefs import Handler

from nimbus.core.api.http import (
    UNEXPECTED_ERROR,
    ApiContext,
    ErrorFormatter,
    Request,
    Response,
    Route,
    nova_error,
)
from nimbus.core.errors import NimbusError

log = logging.getLogger(__name__)

#: The context handed to every API handler, kept in the application.
API_CONTEXT = web.AppKey("nimbus_api_context", ApiContext)

#: The request body size limit, in bytes.
MAX_BODY_BYTES = web.AppKey("nimbus_max_body_bytes", int)

#: How errors are answered (Nova's faults unless the app says otherwise).
ERROR_FORMATTER: web.AppKey[ErrorFormatter] = web.AppKey("nimbus_error_formatter")

#: Requests larger than this many bytes are refused with 413, unless told otherwise.
DEFAULT_MAX_BODY_BYTES = 114688

#: Methods that get their own metric label; anything else is counted as "other".
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

#: The messages Nova gives for errors that arise before any handler runs.
_MESSAGES = {
    404: "The resource could not be found.",
    413: "Request is too large.",
}


class ListenError(NimbusError):
    """The HTTP server could not listen on its address (in use, not ours, bad name)."""


def build_app(
    ctx: ApiContext,
    routes: Sequence[Route],
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    errors: ErrorFormatter = nova_error,
) -> web.Application:
    """An aiohttp application serving ``routes`` with ``ctx``; a GET route also answers HEAD.

    ``errors`` builds the body of every error answer the handlers do not build themselves.
    """
    app = web.Application(middlewares=[_nova_middleware], client_max_size=max_body_bytes)
    app[API_CONTEXT] = ctx
    app[MAX_BODY_BYTES] = max_body_bytes
    app[ERROR_FORMATTER] = errors
    by_path: dict[str, list[Route]] = {}
    for route in routes:
        by_path.setdefault(route.path, []).append(route)
    for path, group in by_path.items():
        resource = app.router.add_resource(path)
        methods = {r.method.upper() for r in group}
        for route in group:
            resource.add_route(route.method.upper(), _bind(route))
            if route.method.upper() == "GET" and "HEAD" not in methods:
                resource.add_route("HEAD", _bind(route))
    return app


async def start_http(
    app: web.Application, host: str, port: int, *, shutdown_timeout: float = 0.5
) -> web.AppRunner:
    """Serve ``app`` on ``host:port``; clean up with ``await runner.cleanup()``.

    Raises :class:`ListenError` with a one-line reason if the address cannot be
    bound. ``shutdown_timeout`` bounds how long cleanup waits for requests in flight.
    """
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        # asyncio wraps the errno text in a long sentence; the errno alone says it
        errno = exc.errno
        reason = os.strerror(errno) if errno and errno > 0 else exc.strerror or str(exc)
        reason = reason.lower()
        raise ListenError(f"cannot listen on {_hostport(host, port)}: {reason}") from None
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port the runner listens on (useful after asking for port 0)."""
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise RuntimeError("the HTTP runner listens on no TCP address")


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _bind(route: Route) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        req = await to_core_request(request)
        return to_aiohttp_response(await route.handler(request.app[API_CONTEXT], req))

    handle.__name__ = route.name or route.handler.__name__
    return handle


async def to_core_request(request: web.Request) -> Request:
    """The core view of an aiohttp request; reads the body (413 past the size limit)."""
    limit = request.app[MAX_BODY_BYTES]
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(limit, request.content_length)
    body = await request.read() if request.can_read_body else b""
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    query = {name: request.query.getall(name) for name in dict.fromkeys(request.query.keys())}
    return Request(
        method=request.method,
        path=request.path,
        path_params=dict(request.match_info),
        query=query,
        headers=headers,
        body=body,
    )


def to_aiohttp_response(resp: Response) -> web.Response:
    """An aiohttp response carrying a core response."""
    headers = {**resp.headers, "Content-Type": resp.content_type}
    return web.Response(status=resp.status, body=resp.encoded(), headers=headers)


def _template(request: web.Request) -> str:
    resource = getattr(request.match_info.route, "resource", None)
    return resource.canonical if resource is not None else "unmatched"


def _error(request: web.Request, status: int, message: str,
           headers: dict[str, str] | None = None) -> web.Response:
    """The app's error answer; built from the request line and headers (no body)."""
    req = Request(request.method, request.path,
                  headers={name.lower(): value for name, value in request.headers.items()})
    resp = request.app[ERROR_FORMATTER](request.app[API_CONTEXT], req, status, message)
    if headers:
        resp = dataclasses.replace(resp, headers={**resp.headers, **headers})
    return to_aiohttp_response(resp)


def _from_http_exception(request: web.Request, exc: web.HTTPException) -> web.Response:
    if exc.status == 405:
        message = f"The method {request.method} is not allowed for this resource."
    else:
        message = _MESSAGES.get(exc.status, exc.reason)
    headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
    return _error(request, exc.status, message, headers)


@web.middleware
async def _nova_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    ctx = request.app[API_CONTEXT]
    started = ctx.runtime.now()
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects and the like pass through untouched
        response = _from_http_exception(request, exc)
    except asyncio.CancelledError:
        raise  # the client went away; nothing to answer
    except NimbusError as exc:
        if exc.status >= 500:
            log.warning("%s %s failed: %s", request.method, request.path, exc.message)
        response = _error(request, exc.status, exc.message)
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        response = _error(request, 500, UNEXPECTED_ERROR)
    method = request.method if request.method in _METHODS else "other"
    route = _template(request)
    m = ctx.metrics
    m.http_requests.labels(method, route, str(response.status)).inc()
    m.http_latency.labels(method, route).observe(ctx.runtime.now() - started)
    return response
