"""The Service shape and the host that runs any set of services.

A service declares what it answers and what it does on a clock::

    class Conductor(Service):
        topic = "conductor"

        @endpoint(BuildInstances)
        async def build_instances(self, msg: BuildInstances) -> None: ...

        @periodic(60.0)
        async def heal(self) -> None: ...

Each service instance gets its own RPC endpoint, a member of the service
topic (``conductor``) and of its host topic (``conductor.<host>``), so calls
can go to any member or to one host, and a fanout to the topic reaches all.
:class:`ServiceHost` starts and stops a set of services in one process; the
same services run one per process when each process hosts one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from nimbus.core.errors import Cancelled, ConfigError
from nimbus.core.messages import MESSAGES, message
from nimbus.core.metrics import Metrics
from nimbus.core.rpc import Handler, RpcEndpoint
from nimbus.core.runtime import Runtime, Task
from nimbus.core.transport import Transport

if TYPE_CHECKING:
    from nimbus.core.db.store import Store

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


@message("service.describe")
@dataclass(frozen=True, slots=True)
class Describe:
    """Ask a service who and where it is (every service answers)."""


@message("service.description")
@dataclass(frozen=True, slots=True)
class Description:
    """A service's answer to :class:`Describe`."""

    topic: str
    host: str
    address: str
    uptime: float
    endpoints: tuple[str, ...]


def endpoint(msg_type: type) -> Callable[[F], F]:
    """Mark a method as the handler for messages of ``msg_type``."""
    name, _version = MESSAGES.name_of_type(msg_type)

    def mark(fn: F) -> F:
        fn.__nimbus_endpoint__ = name  # type: ignore[attr-defined]
        return fn

    return mark


@dataclass(frozen=True, slots=True)
class PeriodicSpec:
    """How often a periodic task runs.

    ``interval`` is seconds, or the name of an attribute of the service holding
    the seconds (so that configuration can set it). ``jitter`` spreads the first
    run uniformly over that many seconds, drawn from the Runtime's rng, so that
    a thousand simulated hosts do not all report at the same instant.
    """

    interval: float | str
    initial_delay: float = 0.0
    jitter: float = 0.0


def periodic(
    interval: float | str, *, initial_delay: float = 0.0, jitter: float = 0.0
) -> Callable[[F], F]:
    """Mark a method to run every ``interval`` seconds while the service runs."""
    spec = PeriodicSpec(interval, initial_delay, jitter)

    def mark(fn: F) -> F:
        fn.__nimbus_periodic__ = spec  # type: ignore[attr-defined]
        return fn

    return mark


@dataclass(frozen=True, slots=True)
class ServiceContext:
    """What a service is given by whoever hosts it."""

    runtime: Runtime
    transport: Transport
    host: str
    metrics: Metrics = field(default_factory=Metrics)
    rpc_timeout: float = 30.0
    #: The database, for services that keep state (None in a process hosting none).
    store: Store | None = None


class Service:
    """Base shape of a service: RPC endpoints, periodic tasks, start and stop hooks."""

    #: The service topic, such as ``conductor``; also its name in logs.
    topic: ClassVar[str] = ""

    def __init__(self, ctx: ServiceContext) -> None:
        if not self.topic:
            raise ConfigError(f"{type(self).__name__} declares no topic")
        self.ctx = ctx
        self.runtime = ctx.runtime
        self.host = ctx.host
        self.rpc = RpcEndpoint(
            ctx.runtime,
            ctx.transport,
            address=f"{self.topic}.{ctx.host}.{ctx.runtime.new_id()[:8]}",
            topics=self.topics(),
            handlers=self.endpoints(),
            default_timeout=ctx.rpc_timeout,
            metrics=ctx.metrics,
        )
        self._tasks: list[Task[None]] = []
        self.running = False
        self.started_at = 0.0

    def topics(self) -> list[str]:
        """The topics this service serves: its service topic and its host topic."""
        return [self.topic, f"{self.topic}.{self.host}"]

    @classmethod
    def _marked(cls, attr: str) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if hasattr(value, attr):
                    found[name] = getattr(value, attr)
        return found

    def endpoints(self) -> dict[str, Handler]:
        """Message type name -> bound handler, from the ``@endpoint`` methods."""
        marked = self._marked("__nimbus_endpoint__")
        return {msg: getattr(self, name) for name, msg in marked.items()}

    def periodic_tasks(self) -> dict[str, PeriodicSpec]:
        """Method name -> schedule, from the ``@periodic`` methods."""
        return self._marked("__nimbus_periodic__")

    async def start(self) -> None:
        """Bind the endpoint, run ``on_start``, then start the periodic tasks."""
        self.started_at = self.runtime.now()
        await self.rpc.start()
        try:
            await self.on_start()
        except BaseException:
            await self.rpc.stop()  # a half-started service must not stay bound
            raise
        for name, spec in sorted(self.periodic_tasks().items()):
            task = self.runtime.spawn(self._run_periodic(name, spec), name=f"{self.topic}:{name}")
            self._tasks.append(task)
        self.running = True

    async def stop(self) -> None:
        """Stop the periodic tasks, run ``on_stop``, then unbind the endpoint."""
        self.running = False
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task.join()
            except Cancelled:
                if not task.cancelled():
                    raise  # the cancel is aimed at us, not at the periodic task
            except Exception:
                log.exception("%s periodic task %s failed while stopping", self.topic, task.name)
        self._tasks.clear()
        await self.on_stop()
        await self.rpc.stop()

    @endpoint(Describe)
    async def describe(self, msg: Describe) -> Description:
        """Who and where this service is, and what it answers."""
        return Description(
            self.topic, self.host, self.rpc.address,
            self.runtime.now() - self.started_at, tuple(sorted(self.endpoints())),
        )

    async def on_start(self) -> None:
        """Hook: runs after the endpoint is bound, before periodic tasks start."""

    async def on_stop(self) -> None:
        """Hook: runs after periodic tasks stopped, before the endpoint unbinds."""

    def _interval(self, spec: PeriodicSpec) -> float:
        value = getattr(self, spec.interval) if isinstance(spec.interval, str) else spec.interval
        return float(value)

    async def _run_periodic(self, name: str, spec: PeriodicSpec) -> None:
        rt = self.runtime
        fn: Callable[[], Awaitable[None]] = getattr(self, name)
        first = spec.initial_delay + (rt.rng.uniform(0.0, spec.jitter) if spec.jitter else 0.0)
        if first:
            await rt.sleep(first)
        counter = self.ctx.metrics.periodic_runs
        while True:
            started = rt.now()
            try:
                await fn()
                counter.labels(f"{self.topic}.{name}", "ok").inc()
            except Exception:
                counter.labels(f"{self.topic}.{name}", "error").inc()
                log.exception("%s periodic task %s failed", self.topic, name)
            await rt.sleep(max(0.0, self._interval(spec) - (rt.now() - started)))


#: Builds a service for a context; what the service registry holds.
ServiceFactory = Callable[[ServiceContext], Service]


class ServiceHost:
    """Starts a set of services in one process, in order, and stops them in reverse."""

    def __init__(self, services: Sequence[Service]) -> None:
        self.services = list(services)

    async def start(self) -> None:
        """Start every service; if one fails, stop those already started and re-raise."""
        started: list[Service] = []
        try:
            for svc in self.services:
                await svc.start()
                started.append(svc)
        except BaseException:
            for svc in reversed(started):
                await svc.stop()
            raise

    async def stop(self) -> None:
        """Stop every service, last started first; one failing does not stop the rest."""
        for svc in reversed(self.services):
            try:
                await svc.stop()
            except Exception:
                log.exception("stopping %s failed", svc.topic)
