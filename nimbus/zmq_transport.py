"""The ZeroMQ transport: services in many processes, joined by a broker.

Nimbus's "queue" service is :class:`ZmqBroker`, a ROUTER socket that knows
which endpoint addresses live behind which peer and which topics each address
serves. Every process connects one :class:`ZmqTransport` (a DEALER) to it and
registers the endpoints it binds. The broker forwards frames and never decodes
an envelope, so it stays cheap; the transports encode and decode with
:class:`~nimbus.core.messages.Codec`.

Wire format, one ZeroMQ multipart message each (all frames are bytes; addresses
and topics are UTF-8):

    transport -> broker   [b"send", topic, payload]        one member, round robin
                          [b"publish", topic, payload]     every member
                          [b"bind", address, topic, ...]   register (idempotent)
                          [b"unbind", address]
    broker -> transport   [b"deliver", address, payload]   for endpoint ``address``
                          [b"bound", address]              a bind took effect
                          [b"hello"]                       "I do not know you": re-register

The ROUTER prefixes each incoming message with the peer's identity (process id
and random bits) and routes on it going out. A transport re-sends its bindings
every ``heartbeat`` seconds; the broker forgets a peer silent for
``peer_timeout`` seconds or found unreachable (ROUTER_MANDATORY), and greets a
peer it does not know with ``hello``, so after a broker restart every binding
comes back within one heartbeat, usually at once. Messages for a topic with no
member are dropped and counted, as on every transport: callers rely on RPC
timeouts.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable

import zmq
import zmq.asyncio

from nimbus.core.messages import Codec, Envelope
from nimbus.core.metrics import Metrics
from nimbus.core.transport import Deliver
from nimbus.runtime import AsyncioRuntime
from nimbus.zmq_broker import (
    BATCH,
    BIND,
    BOUND,
    DEFAULT_HWM,
    DELIVER,
    HELLO,
    PUBLISH,
    SEND,
    SEND_LAST,
    SEND_MORE,
    UNBIND,
    ZmqBroker,
    recv_frames,
    show_frames,
)

__all__ = ["ZmqBroker", "ZmqTransport"]

log = logging.getLogger(__name__)


_contexts: dict[int, zmq.asyncio.Context] = {}


def _shared_context() -> zmq.asyncio.Context:
    """One asyncio ZeroMQ context per process (one I/O thread serves every transport)."""
    pid = os.getpid()
    ctx = _contexts.get(pid)
    if ctx is None or ctx.closed:
        ctx = _contexts[pid] = zmq.asyncio.Context()
    return ctx


class ZmqTransport:
    """A :class:`~nimbus.core.transport.Transport` through a :class:`ZmqBroker`.

    Opens its DEALER socket on first use, from the running event loop. Sends
    never wait longer than ``send_timeout`` (when the high-water mark is
    reached); ``bind`` waits up to ``bind_timeout`` for the broker to confirm,
    then carries on (the heartbeat registers it when the broker comes back).
    """

    def __init__(
        self,
        runtime: AsyncioRuntime,
        broker_url: str,
        codec: Codec | None = None,
        metrics: Metrics | None = None,
        *,
        heartbeat: float = 1.0,
        send_timeout: float = 1.0,
        bind_timeout: float = 2.0,
        hwm: int = DEFAULT_HWM,
        context: zmq.asyncio.Context | None = None,
    ) -> None:
        self.runtime = runtime
        self.broker_url = broker_url
        self.codec = codec if codec is not None else Codec()
        self.metrics = metrics
        self.heartbeat = heartbeat
        self.send_timeout = send_timeout
        self.bind_timeout = bind_timeout
        self.hwm = hwm
        self.identity = f"{os.getpid()}-{os.urandom(6).hex()}".encode()
        self._context = context
        self._endpoints: dict[bytes, Deliver] = {}
        self._bindings: dict[bytes, list[bytes]] = {}  # address -> its bind frames
        self._acks: dict[bytes, asyncio.Future[None]] = {}
        self._sock: zmq.asyncio.Socket | None = None
        self._shadow: zmq.Socket[bytes] | None = None  # sync view of _sock, for fast paths
        self._waiting_sends = 0
        self._recheck_pending = False
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    # -- the Transport protocol -------------------------------------------
    async def bind(self, address: str, topics: Iterable[str], deliver: Deliver) -> None:
        if not address:
            raise ValueError("an endpoint address must not be empty")
        key = address.encode()
        if key in self._endpoints:
            raise ValueError(f"address {address!r} is already bound")
        self._endpoints[key] = deliver
        frames = [BIND, key, *(t.encode() for t in topics)]
        self._bindings[key] = frames
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._acks[key] = ack
        try:
            await self._put(frames)
            await asyncio.wait_for(ack, self.bind_timeout)
        except TimeoutError:
            log.warning("broker %s did not confirm binding %s within %s s; will retry",
                        self.broker_url, address, self.bind_timeout)
        finally:
            if self._acks.get(key) is ack:
                del self._acks[key]

    async def unbind(self, address: str) -> None:
        key = address.encode()
        self._endpoints.pop(key, None)
        if self._bindings.pop(key, None) is not None:
            await self._put([UNBIND, key])

    async def send(self, topic: str, env: Envelope) -> None:
        await self._put([SEND, topic.encode(), self.codec.encode(env)])

    async def publish(self, topic: str, env: Envelope) -> None:
        await self._put([PUBLISH, topic.encode(), self.codec.encode(env)])

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        me = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not me]
        for task in tasks:
            task.cancel()
        for ack in self._acks.values():
            if not ack.done():
                ack.set_result(None)  # a bind still waiting returns, like any call after close
        if self._sock is not None:
            # LINGER 0: whatever is still queued is dropped; the broker notices we are gone.
            self._shadow = None
            self._sock.close(linger=0)
            self._sock = None
        await asyncio.gather(*tasks, return_exceptions=True)
        self._endpoints.clear()
        self._bindings.clear()

    # -- sending -------------------------------------------------------------
    def _open(self) -> zmq.asyncio.Socket:
        ctx = self._context if self._context is not None else _shared_context()
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.ROUTING_ID, self.identity)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, self.hwm)
        sock.setsockopt(zmq.RCVHWM, self.hwm)
        # A send that cannot be queued fails after this long instead of waiting forever.
        sock.setsockopt(zmq.SNDTIMEO, max(1, int(self.send_timeout * 1000)))
        sock.connect(self.broker_url)
        self._sock = sock
        self._shadow = zmq.Socket.shadow(sock.underlying)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._read(sock), name=f"zmq-read {self.identity.decode()}"),
            loop.create_task(self._beat(), name=f"zmq-heartbeat {self.identity.decode()}"),
        ]
        return sock

    async def _put(self, frames: list[bytes]) -> None:
        sock = self._sock
        if sock is None:
            if self._closed:
                self._drop("closed")
                return
            sock = self._open()
        if not self._waiting_sends:
            # The fast path: straight onto the socket's queue, no future, int flags.
            assert self._shadow is not None
            send = self._shadow.send
            try:
                send(frames[0], SEND_MORE)
            except zmq.Again:
                pass  # high-water mark reached: wait below, behind no one
            except zmq.ZMQError as exc:
                self._failed(exc)
                return
            else:  # once the first frame is taken, ZeroMQ takes the whole message
                for frame in frames[1:-1]:
                    send(frame, SEND_MORE)
                send(frames[-1], SEND_LAST)
                self._recheck_soon()
                return
        # Waits for room at most SNDTIMEO (send_timeout), so a caller is never stuck
        # here for long; its RPC timeout does the rest.
        self._waiting_sends += 1
        fut = asyncio.ensure_future(sock.send_multipart(frames))  # already a Future
        try:
            await fut
        except zmq.Again:
            self._drop("full")
        except zmq.ZMQError as exc:
            self._failed(exc)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._closed and fut.cancelled() and not (task and task.cancelling()):
                self._drop("closed")  # close() cancelled the pending send, not our caller
                return
            raise
        finally:
            self._waiting_sends -= 1

    def _recheck_soon(self) -> None:
        """After sends on the shadow socket, let pyzmq re-check the socket's events.

        ZeroMQ's file descriptor is edge-triggered and any operation may consume
        the edge, so a recv waiting on it could otherwise miss a message that came
        in meanwhile. Once per loop iteration, however many sends.
        """
        if not self._recheck_pending:
            self._recheck_pending = True
            asyncio.get_running_loop().call_soon(self._recheck)

    def _recheck(self) -> None:
        self._recheck_pending = False
        if self._sock is not None:
            self._sock.get(zmq.EVENTS)  # the asyncio socket wakes its waiters from here

    def _failed(self, exc: zmq.ZMQError) -> None:
        log.debug("send to %s failed: %s", self.broker_url, exc)
        self._drop("error")

    async def _register_all(self) -> None:
        for frames in list(self._bindings.values()):
            await self._put(frames)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            await self._register_all()

    # -- receiving -----------------------------------------------------------
    async def _read(self, sock: zmq.asyncio.Socket) -> None:
        # Await one message, then drain what is already queued without a future each,
        # then let the loop run the handlers this woke up.
        shadow, on_frames = self._shadow, self._on_frames
        assert shadow is not None
        try:
            while True:
                on_frames(await sock.recv_multipart())
                for _ in range(BATCH - 1):
                    try:
                        frames = recv_frames(shadow)
                    except zmq.Again:
                        break
                    on_frames(frames)
                await asyncio.sleep(0)
        except zmq.ZMQError as exc:
            if not self._closed:
                log.error("transport to %s stopped reading: %s", self.broker_url, exc)

    def _on_frames(self, frames: list[bytes]) -> None:
        if len(frames) == 3 and frames[0] == DELIVER:
            deliver = self._endpoints.get(frames[1])
            if deliver is None:
                self._drop("gone")
                return
            try:
                env = self.codec.decode_lenient(frames[2])
            except Exception as exc:
                log.warning("dropped a malformed envelope for %r: %s", frames[1], exc)
                self._drop("malformed")
                return
            try:
                deliver(env)
            except Exception:
                log.exception("delivering %s %s to %r failed", env.kind.name, env.type, frames[1])
        elif len(frames) == 2 and frames[0] == BOUND:
            ack = self._acks.get(frames[1])
            if ack is not None and not ack.done():
                ack.set_result(None)
        elif frames == [HELLO]:
            if self._bindings:
                self._tasks.append(asyncio.get_running_loop().create_task(
                    self._register_all(), name="zmq-register"))
                self._tasks = [t for t in self._tasks if not t.done()]
        else:
            log.warning("dropped a malformed message from broker %s: %s",
                        self.broker_url, show_frames(frames))
            self._drop("malformed")

    def _drop(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.rpc_dropped.labels(reason).inc()

    def __repr__(self) -> str:
        return f"<ZmqTransport {self.identity.decode()} -> {self.broker_url}>"


__all__ = ["ZmqBroker", "ZmqTransport"]
