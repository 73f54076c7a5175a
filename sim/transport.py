"""The simulation transport: in-process delivery in virtual time, with faults.

:class:`SimTransport` is core's :class:`InProcessTransport` on a
:class:`SimRuntime`: each delivery is a SimPy timeout of the modeled latency.
Latency models and fault hooks draw from the runtime's seeded rng, so a run
with faults is as repeatable as one without.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nimbus.core.messages import Envelope, Kind
from nimbus.core.metrics import Metrics
from nimbus.core.transport import InProcessTransport, LatencyModel
from nimbus.sim.runtime import SimRuntime

#: Which envelopes a fault applies to: (envelope, destination address) -> bool.
Match = Callable[[Envelope, str], bool]


def every(env: Envelope, address: str) -> bool:
    """Match every envelope."""
    return True


def to_topic(prefix: str) -> Match:
    """Match envelopes sent to a topic or address starting with ``prefix``."""
    return lambda env, address: env.topic.startswith(prefix) or address.startswith(prefix)


def requests_only(env: Envelope, address: str) -> bool:
    """Match calls, casts and fanouts, not replies."""
    return env.kind in (Kind.CALL, Kind.CAST, Kind.FANOUT)


def constant_latency(seconds: float) -> LatencyModel:
    """Every delivery takes ``seconds``."""
    return lambda env, address: seconds


def lognormal_latency(rt: SimRuntime, median: float, sigma: float = 0.5) -> LatencyModel:
    """Latency drawn from a lognormal with the given median, from the runtime's rng."""
    import math

    mu = math.log(median)
    return lambda env, address: rt.rng.lognormvariate(mu, sigma)


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault hook: with ``probability``, drop, delay by ``delay``, or duplicate."""

    rt: SimRuntime
    kind: str  # "drop" | "delay" | "duplicate"
    probability: float = 1.0
    delay: float = 0.0
    match: Match = every

    def __call__(self, env: Envelope, address: str) -> Sequence[float]:
        if not self.match(env, address) or self.rt.rng.random() >= self.probability:
            return (0.0,)
        if self.kind == "drop":
            return ()
        if self.kind == "delay":
            return (self.delay,)
        return (0.0, self.delay)  # duplicate: a second copy, ``delay`` later


class SimTransport(InProcessTransport):
    """In-process transport in virtual time, with a latency model and fault hooks."""

    def __init__(
        self,
        rt: SimRuntime,
        *,
        latency: LatencyModel | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(rt, latency=latency or constant_latency(0.0005), metrics=metrics)
        self.sim = rt

    def drop(self, probability: float = 1.0, match: Match = every) -> Fault:
        """Lose matching messages with ``probability``; returns the hook (to remove it)."""
        return self._add(Fault(self.sim, "drop", probability, 0.0, match))

    def delay(self, seconds: float, probability: float = 1.0, match: Match = every) -> Fault:
        """Hold matching messages back ``seconds`` more, with ``probability``."""
        return self._add(Fault(self.sim, "delay", probability, seconds, match))

    def duplicate(
        self, probability: float = 1.0, after: float = 0.0, match: Match = every
    ) -> Fault:
        """Deliver matching messages twice, the copy ``after`` seconds later."""
        return self._add(Fault(self.sim, "duplicate", probability, after, match))

    def heal(self, fault: Fault | None = None) -> None:
        """Remove one fault, or all of them."""
        if fault is None:
            self.faults.clear()
        else:
            self.faults.remove(fault)

    def _add(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault
