"""The Transport: how envelopes move between services, as an interface.

A transport knows endpoints by address and topics by name. ``bind`` makes an
endpoint a member of some topics; ``send`` hands an envelope to one member of a
topic (round robin), which is how calls and casts reach a service topic such
as ``conductor``, a host topic such as ``compute.host1``, or an endpoint's own
address (replies); ``publish`` hands it to every member (fanout). A message to
a topic with no member is dropped, like a message to a queue nobody reads: the
caller's timeout is what tells it.

:class:`InProcessTransport` is written against the Runtime only, so it serves
both worlds: with ``SimRuntime`` it is the simulation transport (a latency
model and fault hooks that drop, delay or duplicate), with ``AsyncioRuntime``
it is the in-process transport of the all-in-one ``nimbus serve``. The ZeroMQ
transport lives in ``nimbus/``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from nimbus.core.messages import Envelope
from nimbus.core.metrics import Metrics
from nimbus.core.runtime import Runtime

log = logging.getLogger(__name__)

#: Called by a transport with each envelope for an endpoint. Must not block.
Deliver = Callable[[Envelope], None]

#: Latency of one delivery, in seconds, given the envelope and destination address.
LatencyModel = Callable[[Envelope, str], float]

#: Fault injection: given an envelope and its destination address, the extra
#: delays of each copy to deliver: ``[]`` drops it, ``[0.0]`` delivers it once,
#: ``[0.0, 0.5]`` delivers it twice, the second copy half a second later.
FaultHook = Callable[[Envelope, str], Sequence[float]]


class Transport(Protocol):
    """Moves envelopes between endpoints; see the module docstring."""

    async def bind(self, address: str, topics: Iterable[str], deliver: Deliver) -> None:
        """Register endpoint ``address`` as a member of ``topics`` (and of its address)."""
        ...

    async def unbind(self, address: str) -> None:
        """Remove an endpoint from every topic; later messages to it are dropped."""
        ...

    async def send(self, topic: str, env: Envelope) -> None:
        """Hand ``env`` to one member of ``topic``."""
        ...

    async def publish(self, topic: str, env: Envelope) -> None:
        """Hand ``env`` to every member of ``topic``."""
        ...

    async def close(self) -> None:
        """Release whatever the transport holds."""
        ...


def no_latency(env: Envelope, address: str) -> float:
    """Deliver at once."""
    return 0.0


class InProcessTransport:
    """Envelopes between endpoints in one process, timed by the Runtime."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        latency: LatencyModel = no_latency,
        metrics: Metrics | None = None,
    ) -> None:
        self.runtime = runtime
        self.latency = latency
        self.metrics = metrics
        self.faults: list[FaultHook] = []
        #: envelopes on their way (sent, latency not yet over), by the first word of
        #: their topic (``compute``, ``conductor``, ``reply``...): the queues a
        #: simulation plots
        self.in_flight: dict[str, int] = {}
        self._endpoints: dict[str, Deliver] = {}
        self._topics: dict[str, list[str]] = {}
        self._next: dict[str, int] = {}

    async def bind(self, address: str, topics: Iterable[str], deliver: Deliver) -> None:
        if address in self._endpoints:
            raise ValueError(f"address {address!r} is already bound")
        self._endpoints[address] = deliver
        for topic in (address, *topics):
            members = self._topics.setdefault(topic, [])
            if address not in members:
                members.append(address)

    async def unbind(self, address: str) -> None:
        self._endpoints.pop(address, None)
        for topic, members in list(self._topics.items()):
            if address in members:
                members.remove(address)
                if not members:
                    del self._topics[topic]

    def members(self, topic: str) -> list[str]:
        """Addresses now bound to ``topic``."""
        return list(self._topics.get(topic, ()))

    async def send(self, topic: str, env: Envelope) -> None:
        members = self._topics.get(topic)
        if not members:
            self._drop("no_route", env, topic)
            return
        i = self._next.get(topic, 0) % len(members)
        self._next[topic] = i + 1
        self._route(env, members[i])

    async def publish(self, topic: str, env: Envelope) -> None:
        members = self._topics.get(topic)
        if not members:
            self._drop("no_route", env, topic)
            return
        for address in list(members):
            self._route(env, address)

    async def close(self) -> None:
        self._endpoints.clear()
        self._topics.clear()

    def _route(self, env: Envelope, address: str) -> None:
        delays: Sequence[float] = (0.0,)
        for hook in self.faults:
            delays = [d + extra for d in delays for extra in hook(env, address)]
        if not delays:
            self._drop("fault", env, address)
            return
        base = self.latency(env, address)
        for extra in delays:
            delay = base + extra
            if delay <= 0.0:
                self._deliver(env, address)
            else:
                queue = env.topic.partition(".")[0]
                self.in_flight[queue] = self.in_flight.get(queue, 0) + 1
                self.runtime.call_later(delay, self._arrive, queue, env, address)

    def _arrive(self, queue: str, env: Envelope, address: str) -> None:
        self.in_flight[queue] -= 1
        self._deliver(env, address)

    def _deliver(self, env: Envelope, address: str) -> None:
        deliver = self._endpoints.get(address)
        if deliver is None:
            self._drop("gone", env, address)
            return
        deliver(env)

    def _drop(self, reason: str, env: Envelope, where: str) -> None:
        if self.metrics is not None:
            self.metrics.rpc_dropped.labels(reason).inc()
        log.debug("dropped %s %s to %s: %s", env.kind.name, env.type, where, reason)
