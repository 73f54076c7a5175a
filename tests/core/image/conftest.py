"""The image API on a SimDatabase-backed Store and a memory blob store, without sockets.

``glance.call(method, path, ...)`` finds the route (plain or streaming) as the
adapter would, builds a core ``Request`` and drives the handler to its answer
in one step (the sim Store and the memory blob store never suspend), so the
tests read like HTTP. Tokens are names of :data:`CONTEXTS` (the injected
authenticator's table): ``admin``, ``owner``, ``other``, ``third``, ``reader``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest

from nimbus.core.api.http import ApiContext, Request, Response
from nimbus.core.api.image.routes import image_routes, stream_routes
from nimbus.core.api.image.wire import ImageEnv, StreamingResponse
from nimbus.core.context import ADMIN, MEMBER, READER, RequestContext
from nimbus.core.db.store import Store
from nimbus.core.identity.tokens import InvalidToken
from nimbus.core.image.blobs import MemoryBlobStore
from nimbus.core.image.config import ImageConfig
from nimbus.core.metrics import Metrics
from nimbus.sim.db import SimDatabase
from nimbus.sim.runtime import SimRuntime

PATCH_TYPE = "application/openstack-images-v2.1-json-patch"
OWNER, OTHER, THIRD, ADMIN_P = "p-owner", "p-other", "p-third", "p-admin"

CONTEXTS = {
    "admin": RequestContext("u-admin", ADMIN_P, "", (ADMIN, MEMBER, READER)),
    "owner": RequestContext("u-owner", OWNER, "", (MEMBER, READER)),
    "other": RequestContext("u-other", OTHER, "", (MEMBER, READER)),
    "third": RequestContext("u-third", THIRD, "", (MEMBER, READER)),
    "reader": RequestContext("u-reader", OWNER, "", (READER,)),
}


async def authenticate(token: str, request_id: str) -> RequestContext:
    """The fake token check: a token is the name of a context."""
    try:
        return CONTEXTS[token].with_request(request_id)
    except KeyError:
        raise InvalidToken(f"unknown test token {token!r}") from None


def drive(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never waits: one step, no event loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise AssertionError("the handler waited on something")


def drain(chunks: AsyncIterator[bytes]) -> bytes:
    """Every chunk of an async iterator that never waits."""
    out = []
    while True:
        try:
            out.append(drive(chunks.__anext__()))
        except StopAsyncIteration:
            return b"".join(out)


async def feed(parts: list[bytes]) -> AsyncIterator[bytes]:
    """An upload body, chunk by chunk."""
    for part in parts:
        yield part


@dataclass
class Answer:
    """A response, with the body decoded (JSON) or gathered (a stream)."""

    status: int
    body: Any
    headers: dict[str, str]

    @property
    def message(self) -> str:
        """The ``message`` of a webob JSON error body."""
        return str(self.body["message"])


def _pattern(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$")


class Glance:
    """Calls image API handlers as an HTTP client would."""

    def __init__(self, config: ImageConfig | None = None) -> None:
        self.runtime = SimRuntime(seed=11)
        self.store = Store(SimDatabase())
        self.blobs = MemoryBlobStore(chunk_size=7)
        self.env = ImageEnv(self.store, self.blobs, self.runtime, authenticate,
                            config or ImageConfig())
        self.ctx = ApiContext(self.runtime, Metrics(), base_url="http://glance:9292")
        self.plain = [(r, _pattern(r.path)) for r in image_routes(self.env)]
        self.streams = [(r, _pattern(r.path)) for r in stream_routes(self.env)]

    def call(self, method: str, path: str, body: Any = None, *, token: str | None = "owner",
             query: dict[str, str | list[str]] | None = None,
             headers: dict[str, str] | None = None, raw: bytes | None = None,
             content_type: str = "application/json", chunks: list[bytes] | None = None,
             accept: str | None = "application/json") -> Answer:
        sent: dict[str, str] = {}
        if token is not None:
            sent["x-auth-token"] = token
        if accept is not None:
            sent["accept"] = accept
        data = b""
        if raw is not None or body is not None:
            data = raw if raw is not None else msgspec.json.encode(body)
            sent["content-type"] = content_type
        sent.update({k.lower(): v for k, v in (headers or {}).items()})
        params = {k: v if isinstance(v, list) else [v] for k, v in (query or {}).items()}
        for route, pattern in self.streams:
            match = pattern.match(path)
            if match and route.method == method:
                req = Request(method, path, match.groupdict(), params, sent, b"")
                answer = drive(route.handler(self.ctx, req, feed(chunks or [])))
                return self._decode(answer)
        for plain, pattern in self.plain:
            match = pattern.match(path)
            if match and plain.method == method:
                req = Request(method, path, match.groupdict(), params, sent, data)
                return self._decode(drive(plain.handler(self.ctx, req)))
        raise AssertionError(f"no route for {method} {path}")

    @staticmethod
    def _decode(resp: Response | StreamingResponse) -> Answer:
        if isinstance(resp, StreamingResponse):
            data = drain(resp.download.chunks())
            return Answer(resp.status, data, dict(resp.headers))
        body: Any = None
        if resp.body is not None:
            raw = resp.encoded()
            body = msgspec.json.decode(raw) if resp.content_type.startswith(
                "application/json") else raw.decode()
        return Answer(resp.status, body, dict(resp.headers))

    # -- shortcuts for setting up ------------------------------------------------------

    def create(self, token: str = "owner", **fields: Any) -> dict[str, Any]:
        """A new image (raw/bare unless told); its JSON."""
        body = {"disk_format": "raw", "container_format": "bare", **fields}
        answer = self.call("POST", "/v2/images", body, token=token)
        assert answer.status == 201, answer.body
        return answer.body  # type: ignore[no-any-return]

    def upload(self, image_id: str, data: bytes, token: str = "owner") -> Answer:
        parts = [data[i:i + 5] for i in range(0, len(data), 5)]
        return self.call("PUT", f"/v2/images/{image_id}/file", token=token, chunks=parts,
                         headers={"content-type": "application/octet-stream"})

    def patch(self, image_id: str, ops: list[dict[str, Any]], token: str = "owner") -> Answer:
        return self.call("PATCH", f"/v2/images/{image_id}", ops, token=token,
                         content_type=PATCH_TYPE)

    def share(self, image_id: str, member: str, status: str | None = None) -> None:
        """Add ``member`` to a shared image (and answer for it, if ``status``)."""
        answer = self.call("POST", f"/v2/images/{image_id}/members", {"member": member})
        assert answer.status == 200, answer.body
        if status is not None:
            token = next(k for k, c in CONTEXTS.items() if c.project_id == member)
            answer = self.call("PUT", f"/v2/images/{image_id}/members/{member}",
                               {"status": status}, token=token)
            assert answer.status == 200, answer.body

    def names(self, token: str = "owner", **query: str | list[str]) -> list[str]:
        answer = self.call("GET", "/v2/images", token=token, query=query)
        assert answer.status == 200, answer.body
        return [i["name"] for i in answer.body["images"]]


@pytest.fixture
def glance() -> Iterator[Glance]:
    """A fresh image API over an empty in-memory database."""
    api = Glance()
    yield api
    drive(api.store.close())
