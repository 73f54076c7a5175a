"""RPC between services: call, cast and fanout over any Transport.

Two layers, in the manner of h11:

* :class:`RpcEngine` is sans-IO. It builds envelopes, correlates replies with
  calls, turns handler results and errors into replies, and classifies what
  arrives. It never waits and holds no sockets.
* :class:`RpcEndpoint` puts the engine on a Runtime and a Transport: it owns
  one address, awaits replies with a timeout, and runs a handler task per
  incoming request.

Errors raised by a remote handler come back as :class:`RemoteError` with the
remote type name, message and HTTP status; a call with no reply in time raises
:class:`RpcTimeout`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nimbus.core.errors import (
    MessageError,
    NimbusError,
    NoSuchEndpoint,
    RemoteError,
    RpcTimeout,
)
from nimbus.core.messages import (
    MESSAGES,
    Envelope,
    Failure,
    Kind,
    MessageRegistry,
    Undecodable,
)
from nimbus.core.metrics import Metrics
from nimbus.core.runtime import Future, Handle, Runtime
from nimbus.core.transport import Transport

log = logging.getLogger(__name__)

#: A request handler: takes the message, returns the reply body (or None).
Handler = Callable[[Any], Awaitable[Any]]


def _positive_seconds(value: float) -> str | None:
    return None if value > 0 else f"expected a positive number of seconds, got {value}"


@dataclass(frozen=True, slots=True)
class RpcConfig:
    """The ``[rpc]`` section: ``timeout`` is how long a call waits for its reply, in seconds."""

    timeout: float = field(default=30.0, metadata={"check": _positive_seconds})


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply matched to one of our calls."""

    msg_id: str
    value: Any


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """An error reply matched to one of our calls."""

    msg_id: str
    error: RemoteError


@dataclass(frozen=True, slots=True)
class Request:
    """A call, cast or fanout for one of our handlers."""

    envelope: Envelope
    handler: Handler


@dataclass(frozen=True, slots=True)
class Rejected:
    """An incoming message we cannot handle; ``answer`` is the error reply owed, if any."""

    envelope: Envelope
    reason: str
    answer: Envelope | None


@dataclass(frozen=True, slots=True)
class Stale:
    """A reply to a call we no longer wait for (it timed out)."""

    msg_id: str


Received = Reply | ErrorReply | Request | Rejected | Stale


class RpcEngine:
    """Sans-IO RPC state: envelopes out, classified events in."""

    def __init__(
        self,
        address: str,
        new_id: Callable[[], str],
        handlers: Mapping[str, Handler] | None = None,
        registry: MessageRegistry = MESSAGES,
    ) -> None:
        self.address = address
        self.new_id = new_id
        self.handlers: dict[str, Handler] = dict(handlers or {})
        self.registry = registry
        self.pending: set[str] = set()

    def request(self, kind: Kind, topic: str, msg: object, now: float) -> Envelope:
        """An envelope carrying ``msg`` to ``topic``; a CALL is remembered as pending."""
        name, version = self.registry.name_of(msg)
        msg_id = self.new_id()
        reply_to = self.address if kind is Kind.CALL else ""
        if kind is Kind.CALL:
            self.pending.add(msg_id)
        return Envelope(kind, msg_id, topic, reply_to, name, version, msg, now)

    def forget(self, msg_id: str) -> None:
        """Stop waiting for a reply (the call timed out or was abandoned)."""
        self.pending.discard(msg_id)

    def reply(self, req: Envelope, value: Any, now: float) -> Envelope | None:
        """The reply owed for a request, or None if it was not a call."""
        if req.kind is not Kind.CALL or not req.reply_to:
            return None
        try:
            name, version = self.registry.name_of(value)
        except MessageError as exc:
            return self.error(req, exc, now)
        return Envelope(Kind.REPLY, req.msg_id, req.reply_to, "", name, version, value, now)

    def error(self, req: Envelope, exc: BaseException, now: float) -> Envelope | None:
        """The error reply owed for a request that failed, or None if it was not a call."""
        if req.kind is not Kind.CALL or not req.reply_to:
            return None
        status = exc.status if isinstance(exc, NimbusError) else 500
        text = exc.message if isinstance(exc, NimbusError) else str(exc)
        body = Failure(type(exc).__name__, text, status)
        return Envelope(Kind.ERROR, req.msg_id, req.reply_to, "", "rpc.failure", 1, body, now)

    def receive(self, env: Envelope, now: float) -> Received:
        """Classify an arriving envelope."""
        if env.kind is Kind.REPLY or env.kind is Kind.ERROR:
            if env.msg_id not in self.pending:
                return Stale(env.msg_id)
            self.pending.discard(env.msg_id)
            body = env.body
            if env.kind is Kind.ERROR:
                if isinstance(body, Failure):
                    err = RemoteError(body.exc_type, body.message, body.status)
                else:
                    err = RemoteError("MessageError", f"unreadable error reply: {body!r}")
                return ErrorReply(env.msg_id, err)
            if isinstance(body, Undecodable):
                err = RemoteError("MessageError", body.reason, 400)
                return ErrorReply(env.msg_id, err)
            return Reply(env.msg_id, body)
        if isinstance(env.body, Undecodable):
            reason = env.body.reason
            return Rejected(env, reason, self.error(env, MessageError(reason), now))
        handler = self.handlers.get(env.type)
        if handler is None:
            reason = f"{self.address} has no endpoint for {env.type or 'a plain value'!r}"
            return Rejected(env, reason, self.error(env, NoSuchEndpoint(reason), now))
        return Request(env, handler)


class RpcEndpoint:
    """One address on a transport: makes calls, casts, fanouts; serves handlers.

    ``topics`` are the topics this endpoint serves besides its own address;
    ``handlers`` map message type names to coroutine functions.
    """

    def __init__(
        self,
        runtime: Runtime,
        transport: Transport,
        address: str = "",
        *,
        topics: Iterable[str] = (),
        handlers: Mapping[str, Handler] | None = None,
        default_timeout: float = 30.0,
        metrics: Metrics | None = None,
        registry: MessageRegistry = MESSAGES,
    ) -> None:
        self.runtime = runtime
        self.transport = transport
        self.address = address or f"_rpc.{runtime.new_id()}"
        self.topics = tuple(topics)
        self.default_timeout = default_timeout
        self.metrics = metrics
        self.engine = RpcEngine(self.address, runtime.new_id, handlers, registry)
        self._waiting: dict[str, Future[Any]] = {}
        self._started = False

    async def start(self) -> None:
        """Bind the address and topics on the transport."""
        if not self._started:
            await self.transport.bind(self.address, self.topics, self._deliver)
            self._started = True

    async def stop(self) -> None:
        """Unbind; calls still waiting fail with ``RpcTimeout``."""
        if self._started:
            self._started = False
            await self.transport.unbind(self.address)
        for msg_id, fut in list(self._waiting.items()):
            self.engine.forget(msg_id)
            if not fut.done():
                fut.set_exception(RpcTimeout(f"{self.address} stopped while waiting"))
        self._waiting.clear()

    # -- outgoing ---------------------------------------------------------
    async def call(self, topic: str, msg: object, timeout: float | None = None) -> Any:
        """Send ``msg`` to one member of ``topic`` and wait for its reply."""
        rt = self.runtime
        limit = self.default_timeout if timeout is None else timeout
        start = rt.now()
        env = self.engine.request(Kind.CALL, topic, msg, start)
        fut: Future[Any] = rt.future()
        self._waiting[env.msg_id] = fut
        timer: Handle = rt.call_later(limit, self._expire, env.msg_id, topic, env.type, limit)
        m = self.metrics
        if m is not None:
            m.rpc_inflight.inc()
            m.child(m.rpc_sent, "call").inc()
        outcome = "error"
        try:
            await self.transport.send(topic, env)
            value = await fut
            outcome = "ok"
            return value
        except RpcTimeout:
            outcome = "timeout"
            raise
        finally:
            timer.cancel()
            self._waiting.pop(env.msg_id, None)
            self.engine.forget(env.msg_id)
            if m is not None:
                m.rpc_inflight.dec()
                m.child(m.rpc_calls, env.type, outcome).inc()
                m.child(m.rpc_call_latency, env.type).observe(rt.now() - start)

    async def cast(self, topic: str, msg: object) -> None:
        """Send ``msg`` to one member of ``topic``; no reply."""
        env = self.engine.request(Kind.CAST, topic, msg, self.runtime.now())
        if self.metrics is not None:
            self.metrics.child(self.metrics.rpc_sent, "cast").inc()
        await self.transport.send(topic, env)

    async def fanout(self, topic: str, msg: object) -> None:
        """Send ``msg`` to every member of ``topic``; no reply."""
        env = self.engine.request(Kind.FANOUT, topic, msg, self.runtime.now())
        if self.metrics is not None:
            self.metrics.child(self.metrics.rpc_sent, "fanout").inc()
        await self.transport.publish(topic, env)

    def _expire(self, msg_id: str, topic: str, type_: str, limit: float) -> None:
        fut = self._waiting.get(msg_id)
        if fut is not None and not fut.done():
            fut.set_exception(RpcTimeout(f"no reply from {topic!r} to {type_!r} within {limit} s"))

    # -- incoming ---------------------------------------------------------
    def _deliver(self, env: Envelope) -> None:
        got = self.engine.receive(env, self.runtime.now())
        if isinstance(got, Reply):
            fut = self._waiting.get(got.msg_id)
            if fut is not None and not fut.done():
                fut.set_result(got.value)
        elif isinstance(got, ErrorReply):
            fut = self._waiting.get(got.msg_id)
            if fut is not None and not fut.done():
                fut.set_exception(got.error)
        elif isinstance(got, Request):
            self.runtime.spawn(self._handle(got), name=f"{self.address}:{env.type}")
        elif isinstance(got, Rejected):
            log.warning("%s dropped %s %s: %s", self.address, env.kind.name, env.type, got.reason)
            self._count_drop("rejected")
            if got.answer is not None:
                self.runtime.spawn(self._send_reply(got.answer), name="rpc-reject")
        else:
            log.debug("%s: late reply %s", self.address, got.msg_id)
            self._count_drop("stale_reply")

    async def _handle(self, req: Request) -> None:
        env = req.envelope
        rt = self.runtime
        start = rt.now()
        try:
            value = await req.handler(env.body)
        except Exception as exc:
            if not isinstance(exc, NimbusError):
                log.exception("%s: handler for %s failed", self.address, env.type)
            outcome = "error"
            answer = self.engine.error(env, exc, rt.now())
        else:
            outcome = "ok"
            answer = self.engine.reply(env, value, rt.now())
        m = self.metrics
        if m is not None:
            m.child(m.rpc_handled, env.type, outcome).inc()
            m.child(m.rpc_handle_latency, env.type).observe(rt.now() - start)
        if answer is not None:
            await self._send_reply(answer)

    async def _send_reply(self, answer: Envelope) -> None:
        if self.metrics is not None:
            self.metrics.child(self.metrics.rpc_sent, "reply").inc()
        await self.transport.send(answer.topic, answer)

    def _count_drop(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.child(self.metrics.rpc_dropped, reason).inc()
