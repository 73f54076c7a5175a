"""``nimbus serve``: build a runtime, a transport and a set of services, run until signalled.

Which runtime, transport and services exist is written down here in explicit
registries; a configured name that is not in one is a ``ConfigError`` listing the
valid names. Everything is resolved before anything starts, so a typo fails at
once and leaves nothing half-started.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
from collections.abc import Callable, Sequence

from nimbus.config import (
    ALL_IN_ONE,
    ALL_IN_ONE_FAKE_HOSTS,
    NimbusConfig,
    RuntimeConfig,
    TransportConfig,
)
from nimbus.core.compute.driver import DriverContext
from nimbus.core.compute.manager import ComputeService
from nimbus.core.conductor.service import ConductorService
from nimbus.core.db.store import Store
from nimbus.core.errors import ConfigError
from nimbus.core.metrics import Metrics
from nimbus.core.registry import Registry
from nimbus.core.runtime import Runtime
from nimbus.core.scheduler.service import SchedulerService
from nimbus.core.service import Service, ServiceContext, ServiceHost
from nimbus.core.transport import InProcessTransport, Transport
from nimbus.db import open_database
from nimbus.drivers import DRIVERS, driver_settings
from nimbus.runtime import AsyncioRuntime
from nimbus.services import (
    ApiService,
    CloudProcess,
    IdentityService,
    ImageService,
    PlacementService,
    QueueService,
)

log = logging.getLogger(__name__)

#: Builds a runtime from its configuration.
RuntimeFactory = Callable[[RuntimeConfig], Runtime]

#: Builds a transport over a runtime.
TransportFactory = Callable[[Runtime, TransportConfig, Metrics], Transport]

#: Builds a service from its context, the configuration (it takes its own section) and
#: what the services of the process share; ``compute`` builds several when
#: ``[compute] fake_hosts`` asks for them.
ServiceBuilder = Callable[[ServiceContext, NimbusConfig, CloudProcess],
                          Service | Sequence[Service]]

#: Stopping every service must fit well inside the 2 s a supervisor grants.
STOP_TIMEOUT = 1.5


def _asyncio_runtime(config: RuntimeConfig) -> Runtime:
    return AsyncioRuntime(config.seed)


def _sim_runtime(config: RuntimeConfig) -> Runtime:
    from nimbus.sim.runtime import SimRuntime  # only simulations need SimPy

    return SimRuntime(config.seed if config.seed is not None else 0)


def _local_transport(runtime: Runtime, config: TransportConfig, metrics: Metrics) -> Transport:
    return InProcessTransport(runtime, metrics=metrics)


def _zmq_transport(runtime: Runtime, config: TransportConfig, metrics: Metrics) -> Transport:
    from nimbus.zmq_transport import ZmqTransport  # pyzmq only when asked for

    if not isinstance(runtime, AsyncioRuntime):
        raise ConfigError("the 'zmq' transport needs the 'asyncio' runtime")
    transport: Transport = ZmqTransport(runtime, config.broker_url, metrics=metrics)
    return transport


RUNTIMES: Registry[RuntimeFactory] = Registry(
    "runtime", {"asyncio": _asyncio_runtime, "sim": _sim_runtime}
)

TRANSPORTS: Registry[TransportFactory] = Registry(
    "transport", {"local": _local_transport, "zmq": _zmq_transport}
)


def compute_hosts(config: NimbusConfig) -> list[str]:
    """The host names of the compute services this process runs (see ``[compute]``);
    ``ConfigError`` for an unknown driver, or fake hosts of another driver."""
    cfg = config.compute
    DRIVERS[cfg.driver]  # an unknown name fails here, listing the valid ones
    count = cfg.fake_hosts
    if count is None:  # unset: several fake hosts make the default all-in-one a real cloud
        all_in_one = config.serve.services == ALL_IN_ONE and cfg.driver == "fake"
        count = ALL_IN_ONE_FAKE_HOSTS if all_in_one else 0
    if count and cfg.driver != "fake":
        raise ConfigError(f"[compute] fake_hosts: only the 'fake' driver runs several hosts "
                          f"in one process, not {cfg.driver!r}")
    host = config.serve.host
    return [f"{host}-{i}" for i in range(1, count + 1)] if count else [host]


def _computes(ctx: ServiceContext, config: NimbusConfig, cloud: CloudProcess) -> list[Service]:
    make_driver = DRIVERS[config.compute.driver]
    settings = driver_settings(config, config.compute.driver)
    out: list[Service] = []
    for host in compute_hosts(config):
        # compute holds no database connection: it reads and writes through the conductor
        own = dataclasses.replace(ctx, host=host, store=None)
        driver = make_driver(DriverContext(ctx.runtime, host, settings))
        out.append(ComputeService(own, driver, config.compute))
    return out


SERVICES: Registry[ServiceBuilder] = Registry(
    "service",
    {
        "api": lambda ctx, cfg, cloud: ApiService(ctx, cfg.api, cloud=cloud),
        "identity": lambda ctx, cfg, cloud: IdentityService(ctx, cloud),
        "image": lambda ctx, cfg, cloud: ImageService(ctx, cloud),
        "placement": lambda ctx, cfg, cloud: PlacementService(ctx, cfg.placement, cloud=cloud),
        "scheduler": lambda ctx, cfg, cloud: SchedulerService(ctx, cfg.scheduler,
                                                              cfg.filter_scheduler),
        "conductor": lambda ctx, cfg, cloud: ConductorService(ctx, cfg.conductor),
        "compute": _computes,
        "queue": lambda ctx, cfg, cloud: QueueService(ctx, cfg.transport.kind,
                                                      cfg.transport.broker_url),
    },
)

#: Services that others depend on start first, in this order, and stop last: compute
#: registers through the conductor, and a scheduler started after them sees their hosts.
_START_FIRST = ("queue", "conductor", "compute")

#: Identity starts after the other HTTP services, so that its catalog holds their
#: bound addresses before it hands out the first token.
_START_LAST = ("identity",)

#: Services that keep no state: a process hosting only these opens no database.
_STATELESS = frozenset({"queue", "compute"})


def service_names(config: NimbusConfig) -> list[str]:
    """The services to host, each once, in start order (the broker first, then the
    conductor and compute, identity last); ``run_broker`` adds ``queue``."""
    names = list(dict.fromkeys(config.serve.services))
    if config.transport.run_broker and "queue" not in names:
        names.append("queue")
    if not names:
        raise ConfigError("[serve] services: no service to run")
    rank = {name: i for i, name in enumerate(_START_FIRST)}
    rank.update({name: len(rank) + 1 + i for i, name in enumerate(_START_LAST)})
    return sorted(names, key=lambda n: rank.get(n, len(_START_FIRST)))


def build_services(ctx: ServiceContext, config: NimbusConfig,
                   cloud: CloudProcess | None = None) -> list[Service]:
    """Every service this process hosts, in start order (not started)."""
    if cloud is None:
        cloud = CloudProcess(config, ctx.runtime, ctx.store)
    out: list[Service] = []
    for name in service_names(config):
        built = SERVICES[name](ctx, config, cloud)
        out.extend([built] if isinstance(built, Service) else built)
    return out


async def serve(config: NimbusConfig, *, stop: asyncio.Event | None = None) -> int:
    """Run the configured services until SIGINT or SIGTERM (or ``stop`` is set); 0 on a clean stop.

    Prints one ``nimbus: ...`` line per listening endpoint once everything started.
    """
    make_runtime = RUNTIMES[config.runtime.kind]
    if config.runtime.kind != "asyncio":
        raise ConfigError(
            f"runtime {config.runtime.kind!r} is for simulations; 'nimbus serve' runs on 'asyncio'"
        )
    make_transport = TRANSPORTS[config.transport.kind]
    names = service_names(config)
    for name in names:
        SERVICES[name]  # an unknown name fails before anything opens
    if "compute" in names:
        compute_hosts(config)

    store = await open_store(config) if needs_store(config) else None
    try:
        runtime = make_runtime(config.runtime)
        metrics = Metrics()
        transport = make_transport(runtime, config.transport, metrics)
        try:
            ctx = ServiceContext(runtime, transport, config.serve.host, metrics,
                                 config.rpc.timeout, store=store)
            cloud = CloudProcess(config, runtime, store)  # what this process's services share
            host = ServiceHost(build_services(ctx, config, cloud))
            await _run(host, stop if stop is not None else asyncio.Event())
        finally:
            await transport.close()
    finally:
        if store is not None:
            await store.close()
    return 0


def needs_store(config: NimbusConfig) -> bool:
    """Whether a hosted service keeps state (a process hosting only the broker does not)."""
    return any(name not in _STATELESS for name in service_names(config))


async def open_store(config: NimbusConfig) -> Store:
    """The configured database, reachable and at the schema's head revision.

    A SQLite database (the default, in the state directory) is created and upgraded
    here; a PostgreSQL or MariaDB one must have been upgraded with ``nimbus db upgrade``.
    Fails with one clear error naming the (masked) URL.
    """
    from nimbus import migrate

    db = open_database(config)
    try:
        await db.check()
        revision = await migrate.prepare(db)
    except BaseException:
        await db.close()
        raise
    log.debug("database %s at revision %s", db.masked_url, revision)
    return Store(db)


async def _run(host: ServiceHost, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        await host.start()
        try:
            _announce(host.services)
            await stop.wait()
            log.info("stopping")
        finally:
            try:
                await asyncio.wait_for(host.stop(), STOP_TIMEOUT)
            except TimeoutError:
                log.warning("services did not stop within %s s; leaving anyway", STOP_TIMEOUT)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def _announce(services: Sequence[Service]) -> None:
    for svc in services:
        listening = getattr(svc, "listening", None)
        for line in listening() if callable(listening) else ():
            print(f"nimbus: {line}", flush=True)
