"""The ZeroMQ broker: Nimbus's "queue" service, forwarding frames between transports.

See :mod:`nimbus.zmq_transport` for the wire format both sides speak.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time

import zmq

from nimbus.core.metrics import Metrics

log = logging.getLogger(__name__)

SEND, PUBLISH, BIND, UNBIND = b"send", b"publish", b"bind", b"unbind"
DELIVER, BOUND, HELLO = b"deliver", b"bound", b"hello"

#: Messages queued per peer (each way) before sends wait (transport) or drop (broker).
DEFAULT_HWM = 10_000
#: Messages handled per wake-up before the broker checks for stop, or a transport yields.
BATCH = 256

# Plain-int flags: pyzmq's enum flags cost microseconds per frame in ``send_multipart``.
SEND_MORE = int(zmq.SNDMORE | zmq.NOBLOCK)
SEND_LAST = int(zmq.NOBLOCK)


def recv_frames(sock: zmq.Socket[bytes]) -> list[bytes]:
    """``recv_multipart(NOBLOCK)``, minus pyzmq's per-frame option and enum lookups."""
    recv = sock.recv
    frame = recv(SEND_LAST, copy=False)
    frames = [frame.bytes]
    while frame.more:
        frame = recv(SEND_LAST, copy=False)
        frames.append(frame.bytes)
    return frames


def show_frames(frames: list[bytes]) -> str:
    """A short, safe rendering of frames for a log line."""
    shown = [repr(f[:40]) + ("..." if len(f) > 40 else "") for f in frames[:5]]
    more = f" +{len(frames) - 5} frames" if len(frames) > 5 else ""
    return "[" + ", ".join(shown) + "]" + more


class ZmqBroker:
    """Routes frames between transports: a ROUTER socket served by a daemon thread.

    ``bind_url`` such as ``tcp://127.0.0.1:*`` (or port 0) picks a free port;
    :attr:`url` is the real endpoint once started. Use :meth:`start` and
    :meth:`stop`, or ``with ZmqBroker(url) as broker:``.
    """

    def __init__(
        self,
        bind_url: str,
        *,
        peer_timeout: float = 5.0,
        hwm: int = DEFAULT_HWM,
        metrics: Metrics | None = None,
    ) -> None:
        self.bind_url = bind_url
        self.url = bind_url
        self.peer_timeout = peer_timeout
        self.hwm = hwm
        self.metrics = metrics
        self.dropped: collections.Counter[str] = collections.Counter()
        self._owner: dict[bytes, bytes] = {}  # address -> peer identity
        self._topics_of: dict[bytes, tuple[bytes, ...]] = {}  # address -> topics, itself first
        self._addresses_of: dict[bytes, set[bytes]] = {}  # peer -> addresses
        self._members: dict[bytes, list[bytes]] = {}  # topic -> addresses
        self._next: dict[bytes, int] = {}  # topic -> round-robin counter
        self._seen: dict[bytes, float] = {}  # peer -> last time heard from
        self._now = 0.0
        self._ctx: zmq.Context[zmq.Socket[bytes]] | None = None
        self._sock: zmq.Socket[bytes] | None = None
        self._wake_rx: zmq.Socket[bytes] | None = None
        self._wake_tx: zmq.Socket[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- life cycle --------------------------------------------------------
    def start(self) -> ZmqBroker:
        """Bind the socket and serve in a daemon thread."""
        with self._lock:
            if self._thread is not None:
                return self
            for table in (self._owner, self._topics_of, self._addresses_of, self._members,
                          self._next, self._seen):
                table.clear()
            ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
            sock = ctx.socket(zmq.ROUTER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
            sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
            sock.setsockopt(zmq.SNDHWM, self.hwm)
            sock.setsockopt(zmq.RCVHWM, self.hwm)
            try:
                sock.bind(self.bind_url)  # port 0 or * picks a free port
            except zmq.ZMQError:
                sock.close()
                ctx.term()
                raise
            self.url = sock.getsockopt_string(zmq.LAST_ENDPOINT)
            # An inproc pair wakes the poller at once on stop().
            wake = f"inproc://broker-wake-{id(self):x}"
            self._wake_rx = ctx.socket(zmq.PAIR)
            self._wake_rx.bind(wake)
            self._wake_tx = ctx.socket(zmq.PAIR)
            self._wake_tx.connect(wake)
            self._ctx, self._sock = ctx, sock
            self._thread = threading.Thread(target=self._run, name=f"zmq-broker {self.url}",
                                            daemon=True)
            self._thread.start()
        log.info("broker serving on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and join the thread (promptly)."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is None:
                return
            assert self._wake_tx is not None and self._ctx is not None
            with contextlib.suppress(zmq.ZMQError):  # the thread may have ended on its own
                self._wake_tx.send(b"stop", zmq.NOBLOCK)
            thread.join(5.0)
            if thread.is_alive():
                log.error("broker thread on %s did not stop", self.url)
            self._wake_tx.close(linger=0)
            self._ctx.term()
            self._ctx = self._sock = self._wake_rx = self._wake_tx = None
        log.info("broker on %s stopped", self.url)

    def __enter__(self) -> ZmqBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def members(self, topic: str) -> list[str]:
        """Addresses now serving ``topic`` (a snapshot; the tables belong to the thread)."""
        return [a.decode() for a in list(self._members.get(topic.encode(), ()))]

    # -- the loop ------------------------------------------------------------
    def _run(self) -> None:
        sock, wake = self._sock, self._wake_rx
        assert sock is not None and wake is not None
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(wake, zmq.POLLIN)
        handle = self._handle
        sweep_every = max(0.05, self.peer_timeout / 4)
        next_sweep = time.monotonic() + sweep_every
        try:
            while True:
                ready = poller.poll(int(sweep_every * 1000))
                self._now = now = time.monotonic()
                for s, _ in ready:
                    if s is wake:
                        return
                if ready:
                    for _ in range(BATCH):
                        try:
                            frames = recv_frames(sock)
                        except zmq.Again:
                            break
                        try:
                            handle(frames)
                        except Exception:  # never let one message stop the queue service
                            log.exception("broker failed on %s", show_frames(frames))
                if now >= next_sweep:
                    next_sweep = now + sweep_every
                    self._expire(now)
        except Exception:
            log.exception("broker on %s failed", self.url)
        finally:
            sock.close(linger=0)
            wake.close(linger=0)

    def _handle(self, frames: list[bytes]) -> None:
        peer = frames[0]
        if peer not in self._seen:
            self._greet(peer)
        self._seen[peer] = self._now
        n = len(frames)
        verb = frames[1] if n > 1 else b""
        if n == 4 and verb == SEND:
            self._send(frames[2], frames[3])
        elif n == 4 and verb == PUBLISH:
            self._publish(frames[2], frames[3])
        elif n >= 3 and verb == BIND and frames[2]:
            self._bind(peer, frames[2], frames[3:])
        elif n == 3 and verb == UNBIND:
            if self._owner.get(frames[2]) == peer:
                self._remove(frames[2])
        else:
            shown = show_frames(frames[1:])
            log.warning("broker dropped a malformed message from %r: %s", peer, shown)
            self._drop("malformed")

    # -- routing -----------------------------------------------------------
    def _send(self, topic: bytes, payload: bytes) -> None:
        members = self._members.get(topic)
        while members:
            if len(members) == 1:
                address = members[0]
            else:
                i = self._next.get(topic, 0) % len(members)
                self._next[topic] = i + 1
                address = members[i]
            if self._forward(self._owner[address], address, payload):
                return
            members = self._members.get(topic)  # the peer was gone: try the next member
        self._drop("no_route")

    def _publish(self, topic: bytes, payload: bytes) -> None:
        members = self._members.get(topic)
        if not members:
            self._drop("no_route")
            return
        for address in list(members):
            owner = self._owner.get(address)
            if owner is not None:
                self._forward(owner, address, payload)

    def _forward(self, peer: bytes, address: bytes, payload: bytes) -> bool:
        """Send to ``peer``; False if it is unreachable (and now forgotten)."""
        assert self._sock is not None
        send = self._sock.send
        try:
            send(peer, SEND_MORE)  # ROUTER_MANDATORY: fails here, or the whole message goes
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EHOSTUNREACH:
                log.info("broker: peer %r is gone", peer)
                self._forget(peer)
                return False
            self._drop("full" if exc.errno == zmq.EAGAIN else "error")
            return True
        send(DELIVER, SEND_MORE)
        send(address, SEND_MORE)
        send(payload, SEND_LAST)
        return True

    def _greet(self, peer: bytes) -> None:
        assert self._sock is not None
        with contextlib.suppress(zmq.ZMQError):
            self._sock.send_multipart((peer, HELLO), zmq.NOBLOCK)

    def _drop(self, reason: str) -> None:
        self.dropped[reason] += 1
        if self.metrics is not None:
            self.metrics.rpc_dropped.labels(reason).inc()

    # -- the tables --------------------------------------------------------
    def _bind(self, peer: bytes, address: bytes, topics: list[bytes]) -> None:
        wanted = tuple(dict.fromkeys((address, *(t for t in topics if t))))
        owner = self._owner.get(address)
        if owner != peer or self._topics_of.get(address) != wanted:
            if owner is not None:
                if owner != peer:  # a restarted service, or two claiming one address
                    log.warning("broker: address %r moves from peer %r to %r",
                                address, owner, peer)
                self._remove(address)
            self._owner[address] = peer
            self._topics_of[address] = wanted
            self._addresses_of.setdefault(peer, set()).add(address)
            for topic in wanted:
                self._members.setdefault(topic, []).append(address)
        assert self._sock is not None
        with contextlib.suppress(zmq.ZMQError):
            self._sock.send_multipart((peer, BOUND, address), zmq.NOBLOCK)

    def _remove(self, address: bytes) -> None:
        peer = self._owner.pop(address, None)
        if peer is not None:
            self._addresses_of.get(peer, set()).discard(address)
        for topic in self._topics_of.pop(address, ()):
            members = self._members.get(topic)
            if members is not None and address in members:
                members.remove(address)
                if not members:
                    del self._members[topic]
                    self._next.pop(topic, None)

    def _forget(self, peer: bytes) -> None:
        self._seen.pop(peer, None)
        for address in self._addresses_of.pop(peer, ()):
            if self._owner.get(address) == peer:
                self._remove(address)

    def _expire(self, now: float) -> None:
        limit = now - self.peer_timeout
        for peer, seen in list(self._seen.items()):
            if seen < limit:
                if self._addresses_of.get(peer):
                    log.info("broker: peer %r silent for %.1f s, forgotten", peer, now - seen)
                self._forget(peer)
