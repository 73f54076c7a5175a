"""What every image request goes through: the token, the body, Glance's errors, streams.

An image handler is ``async (env, ireq) -> Response``: ``env`` is the
:class:`ImageEnv` the service built once (Store, blob store, runtime, the token
check, the ``[image]`` config), ``ireq`` the :class:`ImageRequest` (the core
request and the caller's :class:`~nimbus.core.context.RequestContext`).
:func:`route` turns one into a core :class:`Route`: it checks ``X-Auth-Token``
(keystonemiddleware's 401 without a valid one), answers errors in Glance's
shape, and adds ``x-openstack-request-id``.

Image data does not fit a core ``Request``/``Response``, whose bodies are whole
bytes: :func:`stream_route` makes a :class:`StreamRoute`, whose handler also
gets the request body as an async iterator of chunks and may answer with a
:class:`StreamingResponse`. ``nimbus.image_http`` binds both kinds.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from nimbus.core.api.http import JSON_TYPE, ApiContext, Request, Response, Route
from nimbus.core.api.image.errors import error_answer, webob_error
from nimbus.core.context import RequestContext
from nimbus.core.db.images import ImageRecord
from nimbus.core.db.store import Store
from nimbus.core.errors import NimbusError
from nimbus.core.image.blobs import BlobStore
from nimbus.core.image.config import ImageConfig
from nimbus.core.image.data import Download
from nimbus.core.image.errors import GlanceError, bad_request, denied, explanation_of
from nimbus.core.policy import DEFAULT_POLICY, Policy
from nimbus.core.runtime import Runtime

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-openstack-request-id"

#: Turns a token into the caller's context (``IdentityLogic.context_for``); raises a
#: ``NimbusError`` of status 401 for a token that is not valid.
Authenticator = Callable[[str, str], Awaitable[RequestContext]]


class NoToken(NimbusError):
    """The request carries no ``X-Auth-Token``."""

    status = 401


@dataclass(frozen=True, slots=True)
class ImageEnv:
    """What image handlers work with, built once by the service that serves them."""

    store: Store
    blobs: BlobStore
    runtime: Runtime
    authenticate: Authenticator
    config: ImageConfig = field(default_factory=ImageConfig)
    #: the rules in force (``[policy] file`` over the shipped defaults)
    policy: Policy = DEFAULT_POLICY

    def allows(self, action: str, ctx: RequestContext,
               target: Mapping[str, object] | None = None) -> bool:
        """Whether the policy lets ``ctx`` do Glance's ``action`` (``modify_image``) to
        ``target`` (:func:`image_target`; None: the caller's own project)."""
        return self.policy.allows(action, ctx, target)

    def authorize(self, action: str, ctx: RequestContext,
                  target: Mapping[str, object] | None = None) -> None:
        """Glance's 403 naming ``action`` unless :meth:`allows`."""
        if not self.policy.allows(action, ctx, target):
            raise denied(action)

    def sees_all(self, ctx: RequestContext) -> bool:
        """Whether ``ctx`` sees every image and member (``context_is_admin``)."""
        return self.policy.allows("context_is_admin", ctx)


def image_target(image: ImageRecord, member_id: str | None = None) -> dict[str, object]:
    """What an image rule checks: the owner as ``project_id``, the visibility, and for a
    member rule the member's project as ``member_id``. An image without an owner is
    everyone's (:mod:`nimbus.core.image.visibility`), so its rules see it as public."""
    visibility = image.visibility if image.owner is not None else "public"
    target: dict[str, object] = {"project_id": image.owner, "visibility": visibility}
    if member_id is not None:
        target["member_id"] = member_id
    return target


@dataclass(frozen=True, slots=True)
class ImageRequest:
    """A request as image handlers see it; ``chunks`` is the streamed body of a
    :class:`StreamRoute` (None elsewhere)."""

    request: Request
    ctx: RequestContext
    request_id: str
    base_url: str
    chunks: AsyncIterator[bytes] | None = None

    def param(self, name: str) -> str:
        """A value matched by the route template, such as ``image_id``."""
        return self.request.path_params[name]

    def body(self) -> Any:
        """The JSON body: 400 if there is none or it is not JSON (Glance's sentences)."""
        if not self.request.body.strip():
            raise bad_request("Body expected in request.")
        try:
            return msgspec.json.decode(self.request.body)
        except msgspec.DecodeError:
            raise bad_request("Malformed JSON in request body.") from None

    def object_body(self) -> dict[str, Any]:
        """The JSON body, which must be an object."""
        data = self.body()
        if not isinstance(data, dict):
            raise bad_request("Request body must be a JSON object.")
        return data


@dataclass(frozen=True, slots=True)
class StreamingResponse:
    """An answer whose body is image data, streamed by the adapter."""

    download: Download
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "application/octet-stream"


#: An image handler, and one that may stream.
ImageHandler = Callable[[ImageEnv, ImageRequest], Awaitable[Response]]
StreamHandler = Callable[[ImageEnv, ImageRequest], Awaitable["Response | StreamingResponse"]]
#: What a :class:`StreamRoute` serves: the request, its body as chunks.
StreamServe = Callable[[ApiContext, Request, AsyncIterator[bytes]],
                       Awaitable["Response | StreamingResponse"]]


@dataclass(frozen=True, slots=True)
class StreamRoute:
    """A route whose handler takes the request body as chunks and may stream its answer."""

    method: str
    path: str
    handler: StreamServe
    name: str = ""


def json_response(body: Any, status: int = 200,
                  headers: Mapping[str, str] | None = None) -> Response:
    """A JSON answer."""
    return Response(status, body, JSON_TYPE, dict(headers or {}))


def no_content() -> Response:
    """A 204 without a body."""
    return Response(204, None, JSON_TYPE)


def accept_of(req: Request) -> str | None:
    """The ``Accept`` header, None if the client sent none (webob tells them apart)."""
    return req.headers.get("accept")


def route(env: ImageEnv, method: str, path: str, handler: ImageHandler, *,
          needs_token: bool = True, name: str = "") -> Route:
    """A core route serving ``handler`` with ``env``."""
    async def serve(ctx: ApiContext, req: Request) -> Response:
        resp = await _answer(env, ctx, req, handler, None, needs_token)
        assert isinstance(resp, Response)
        return resp

    serve.__name__ = handler.__name__
    return Route(method, path, serve, name or handler.__name__)


def stream_route(env: ImageEnv, method: str, path: str, handler: StreamHandler, *,
                 name: str = "") -> StreamRoute:
    """A streaming route serving ``handler`` with ``env`` (a token is always needed)."""
    async def serve(ctx: ApiContext, req: Request,
                    chunks: AsyncIterator[bytes]) -> Response | StreamingResponse:
        return await _answer(env, ctx, req, handler, chunks, True)

    serve.__name__ = handler.__name__
    return StreamRoute(method, path, serve, name or handler.__name__)


async def _answer(env: ImageEnv, ctx: ApiContext, req: Request, handler: StreamHandler,
                  chunks: AsyncIterator[bytes] | None,
                  needs_token: bool) -> Response | StreamingResponse:
    request_id = f"req-{env.runtime.new_id()}"
    try:
        if needs_token:
            token = req.header("x-auth-token").strip()
            if not token:
                raise NoToken("no X-Auth-Token")
            caller = await env.authenticate(token, request_id)
        else:
            caller = RequestContext("", "", request_id, ())
        base = env.config.public_url.rstrip("/") or ctx.public_url(req)
        resp = await handler(env, ImageRequest(req, caller, request_id, base, chunks))
    except NimbusError as exc:
        if exc.status == 401:
            log.info("%s %s: authentication failed: %s", req.method, req.path,
                     getattr(exc, "why", exc.message))
        elif exc.status >= 500:
            log.warning("%s %s failed: %s", req.method, req.path, exc.message)
        resp = error_answer(exc, accept=accept_of(req), auth_url=env.config.auth_url)
    except Exception:
        log.exception("%s %s failed", req.method, req.path)
        resp = error_answer(GlanceError(500), accept=accept_of(req))
    return dataclasses.replace(resp, headers={**resp.headers, REQUEST_ID_HEADER: request_id})


def format_error(ctx: ApiContext, req: Request, status: int, message: str) -> Response:
    """The ``ErrorFormatter`` for ``build_app``: errors raised outside any handler (unknown
    URL, wrong method, body too large, a bug) as webob would answer them."""
    explanation = message if status == 405 else explanation_of(status)
    return webob_error(status, explanation, accept=accept_of(req),
                       headers={REQUEST_ID_HEADER: f"req-{ctx.runtime.new_id()}"})
