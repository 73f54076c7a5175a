"""The services ``nimbus serve`` can host that belong to the real world.

``api`` serves the HTTP API over aiohttp; ``placement`` the Placement API on its own
port; ``queue`` runs the ZeroMQ broker that joins services of different processes. Each
is a core :class:`Service`, so it has an RPC endpoint like every other service and
starts and stops with the host.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

from nimbus.core.api.config import ApiConfig
from nimbus.core.api.http import ApiContext, Route
from nimbus.core.api.placement.config import PlacementConfig
from nimbus.core.api.placement.routes import ROUTES as PLACEMENT_ROUTES
from nimbus.core.api.placement.wire import format_error as placement_error
from nimbus.core.api.routes import ROUTES
from nimbus.core.errors import ConfigError
from nimbus.core.service import Service, ServiceContext
from nimbus.http import ListenError, bound_port, build_app, start_http


class ApiService(Service):
    """The HTTP API: binds the core routes with aiohttp and serves them while running."""

    topic = "api"

    def __init__(
        self, ctx: ServiceContext, config: ApiConfig, routes: Sequence[Route] = ROUTES
    ) -> None:
        super().__init__(ctx)
        self.config = config
        self.routes = tuple(routes)
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def on_start(self) -> None:
        cfg = self.config
        api_ctx = ApiContext(self.runtime, self.ctx.metrics, cfg.public_url, self.rpc)
        app = build_app(api_ctx, self.routes, max_body_bytes=cfg.max_body_bytes)
        self.runner = await start_http(app, cfg.listen, cfg.port)
        host = f"[{cfg.listen}]" if ":" in cfg.listen else cfg.listen
        self.url = f"http://{host}:{bound_port(self.runner)}/"

    async def on_stop(self) -> None:
        if self.runner is not None:
            runner, self.runner = self.runner, None
            await runner.cleanup()

    def listening(self) -> list[str]:
        """What this service listens on, one line each, for the start-up banner."""
        return [f"Compute API on {self.url}"] if self.url else []


class PlacementService(Service):
    """The Placement API (resource providers, inventories, allocations) over the Store.

    It needs no token yet: Keystone comes with a later issue. ``X-Auth-Token``
    is read into each request when present, so checking it is one change.
    """

    topic = "placement"

    def __init__(self, ctx: ServiceContext, config: PlacementConfig,
                 routes: Sequence[Route] = PLACEMENT_ROUTES) -> None:
        if ctx.store is None:
            raise ConfigError("the 'placement' service needs the database")
        super().__init__(ctx)
        self.config = config
        self.routes = tuple(routes)
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def on_start(self) -> None:
        cfg = self.config
        api_ctx = ApiContext(self.runtime, self.ctx.metrics, cfg.public_url, self.rpc,
                             store=self.ctx.store)
        app = build_app(api_ctx, self.routes, max_body_bytes=cfg.max_body_bytes,
                        errors=placement_error)
        self.runner = await start_http(app, cfg.listen, cfg.port)
        host = f"[{cfg.listen}]" if ":" in cfg.listen else cfg.listen
        self.url = f"http://{host}:{bound_port(self.runner)}"

    async def on_stop(self) -> None:
        if self.runner is not None:
            runner, self.runner = self.runner, None
            await runner.cleanup()

    def listening(self) -> list[str]:
        """What this service listens on, one line each, for the start-up banner."""
        return [f"Placement API on {self.url}/"] if self.url else []


class QueueService(Service):
    """The message broker of the ZeroMQ transport, run inside this process.

    The broker starts before the service's own endpoint binds (it is what that
    endpoint talks through) and stops after it unbinds.
    """

    topic = "queue"

    def __init__(self, ctx: ServiceContext, transport_kind: str, bind_url: str) -> None:
        if transport_kind != "zmq":
            raise ConfigError(
                f"the 'queue' service runs the ZeroMQ broker; it needs transport 'zmq', "
                f"not {transport_kind!r}"
            )
        super().__init__(ctx)
        self.bind_url = bind_url
        self.broker: Any = None

    async def start(self) -> None:
        import zmq

        from nimbus.zmq_transport import ZmqBroker

        broker = ZmqBroker(self.bind_url)
        try:
            broker.start()
        except (OSError, zmq.ZMQError) as exc:
            raise ListenError(f"cannot run the message broker on {self.bind_url}: {exc}") from None
        self.broker = broker
        try:
            await super().start()
        except BaseException:
            await self._stop_broker()
            raise

    async def stop(self) -> None:
        try:
            await super().stop()
        finally:
            await self._stop_broker()

    async def _stop_broker(self) -> None:
        if self.broker is not None:
            broker, self.broker = self.broker, None
            broker.stop()

    def listening(self) -> list[str]:
        """What this service listens on, one line each, for the start-up banner."""
        return [f"message broker on {self.broker.url}"] if self.broker is not None else []

