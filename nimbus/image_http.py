"""The image API on aiohttp: the plain routes through ``nimbus.http``, the data streamed.

``nimbus.http`` reads each request body whole (bounded by ``max_body_bytes``)
and answers with whole bodies, which suits JSON but not image data. The image
API's :class:`~nimbus.core.api.image.wire.StreamRoute` routes are bound here on
the same application: the handler gets the request body as chunks read off
the socket (no size limit but the image size cap the logic enforces), and a
:class:`~nimbus.core.api.image.wire.StreamingResponse` is written out chunk by
chunk. ``nimbus.http``'s middleware still counts, times and formats their
errors.

Serving the image service (what ``nimbus serve`` does for ``image``)::

    blobs = FileBlobStore(config.image.data_dir or state_dir / "images", runtime)
    blobs.remove_partials()
    env = ImageEnv(store, blobs, runtime, identity_logic.context_for, config.image)
    app = build_image_app(ApiContext(runtime, metrics, config.image.public_url), env)
    runner = await start_http(app, config.image.listen, config.image.port)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import ClientError, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler

from nimbus.core.api.http import ApiContext, Request, Response
from nimbus.core.api.image.routes import image_routes, stream_routes
from nimbus.core.api.image.wire import ImageEnv, StreamingResponse, StreamRoute, format_error
from nimbus.core.image.errors import GlanceError
from nimbus.http import API_CONTEXT, build_app, to_aiohttp_response

log = logging.getLogger(__name__)


def build_image_app(ctx: ApiContext, env: ImageEnv) -> web.Application:
    """An aiohttp application serving the whole image API with ``env``."""
    app = build_app(ctx, image_routes(env), max_body_bytes=env.config.max_body_bytes,
                    errors=format_error)
    for sroute in stream_routes(env):
        app.router.add_route(sroute.method, sroute.path,
                             _bind_stream(sroute, env.config.chunk_size))
    return app


def core_request(request: web.Request) -> Request:
    """The core view of an aiohttp request, without its body."""
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    query = {name: request.query.getall(name) for name in dict.fromkeys(request.query.keys())}
    return Request(request.method, request.path, dict(request.match_info), query, headers)


async def body_chunks(request: web.Request, chunk_size: int) -> AsyncIterator[bytes]:
    """The request body as it arrives; a 400 if the client stops sending before its end."""
    try:
        async for chunk in request.content.iter_chunked(chunk_size):
            yield chunk
    except (HttpProcessingError, ClientError, ConnectionError,
            asyncio.IncompleteReadError) as exc:
        raise GlanceError(400, "The request body ended before all of it arrived.",
                          type(exc).__name__) from None


def _bind_stream(sroute: StreamRoute, chunk_size: int) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        answer = await sroute.handler(request.app[API_CONTEXT], core_request(request),
                                      body_chunks(request, chunk_size))
        if isinstance(answer, Response):
            return to_aiohttp_response(answer)
        return await stream_out(request, answer)

    handle.__name__ = sroute.name
    return handle


async def stream_out(request: web.Request, answer: StreamingResponse) -> web.StreamResponse:
    """Write a streaming answer; if it breaks off, the connection is closed so that the
    client sees a short body rather than a complete-looking one."""
    headers = {k: v for k, v in answer.headers.items() if k.lower() != "content-length"}
    headers["Content-Type"] = answer.content_type
    resp = web.StreamResponse(status=answer.status, headers=headers)
    resp.content_length = answer.download.size
    try:
        await resp.prepare(request)
        async for chunk in answer.download.chunks():
            await resp.write(chunk)
        await resp.write_eof()
    except (ConnectionError, ClientError):
        log.info("%s %s: the client went away during the download", request.method,
                 request.path)
    except Exception:
        log.exception("%s %s: the download broke off", request.method, request.path)
        if request.transport is not None:
            request.transport.close()
    finally:
        await answer.download.close()
    return resp
