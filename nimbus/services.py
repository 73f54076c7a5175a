"""The services ``nimbus serve`` can host that belong to the real world.

``api`` serves the Compute API over aiohttp; ``identity`` the Identity API (v3),
``image`` the Image API (v2) and ``placement`` the Placement API, each on its own
port; ``queue`` runs the ZeroMQ broker that joins services of different processes.
Each is a core :class:`Service`, so it has an RPC endpoint like every other service
and starts and stops with the host.

The HTTP services of one process share a :class:`CloudProcess`: one identity logic
(which checks every token) and the addresses the services bound, from which the
token catalog is built.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from nimbus.cloud_files import credentials, fernet_keys, write_clouds_yaml
from nimbus.config import NimbusConfig, load_policy
from nimbus.core.api.compute.routes import compute_routes
from nimbus.core.api.compute.wire import ComputeEnv
from nimbus.core.api.config import ApiConfig
from nimbus.core.api.http import ApiContext, Route
from nimbus.core.api.identity.routes import format_error as identity_error
from nimbus.core.api.identity.routes import make_routes as identity_routes
from nimbus.core.api.image.wire import ImageEnv
from nimbus.core.api.placement.config import PlacementConfig
from nimbus.core.api.placement.routes import ROUTES as PLACEMENT_ROUTES
from nimbus.core.api.placement.wire import format_error as placement_error
from nimbus.core.api.routes import ROUTES
from nimbus.core.compute.api import ComputeAPI
from nimbus.core.db.store import Store
from nimbus.core.errors import ConfigError
from nimbus.core.identity.bootstrap import bootstrap
from nimbus.core.identity.catalog import Catalog, standard_catalog
from nimbus.core.identity.service import IdentityLogic
from nimbus.core.runtime import Runtime
from nimbus.core.service import Service, ServiceContext
from nimbus.http import ListenError, bound_port, build_app, start_http

#: Addresses that mean "every interface": clients on this machine use loopback.
_WILDCARDS = frozenset({"", "0.0.0.0", "::"})


def http_url(listen: str, runner: web.AppRunner) -> str:
    """``http://host:port`` of a runner bound on ``listen`` (loopback for a wildcard)."""
    host = "127.0.0.1" if listen in _WILDCARDS else listen
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{bound_port(runner)}"


class CloudProcess:
    """What the services of one ``nimbus serve`` process share.

    The identity logic is built on first use, over the process's database and the
    Fernet keys of ``[identity]`` or the state directory, so that every process of a
    cloud accepts the tokens of the others. Each HTTP service publishes its URL once
    bound; the catalog of the tokens follows (``[identity] *_url`` win).
    """

    def __init__(self, config: NimbusConfig, runtime: Runtime, store: Store | None) -> None:
        self.config = config
        self.runtime = runtime
        self.store = store
        self.urls: dict[str, str] = {}
        self._identity: IdentityLogic | None = None
        #: the rules every API of the process obeys (``[policy] file`` over the defaults)
        self.policy = load_policy(config.policy)

    def identity(self) -> IdentityLogic:
        """The process's identity logic (the same object for every caller)."""
        if self._identity is None:
            if self.store is None:
                raise ConfigError("checking tokens needs the database")
            cfg = dataclasses.replace(self.config.identity,
                                      fernet_keys=fernet_keys(self.config))
            self._identity = IdentityLogic.from_config(cfg, self.store, self.runtime,
                                                       self.catalog(), self.policy)
        return self._identity

    def publish(self, service_type: str, url: str) -> None:
        """Record where a service of this process answers (its public base URL)."""
        self.urls[service_type] = url.rstrip("/")
        if self._identity is not None:
            self._identity.catalog = self.catalog()

    def catalog(self) -> Catalog:
        """The catalog from the configured URLs, else those published so far."""
        cfg, urls = self.config.identity, self.urls
        identity = urls.get("identity", "")
        compute = urls.get("compute", "")
        return standard_catalog(
            identity=f"{identity}/v3" if identity else "",
            compute=cfg.compute_url or (f"{compute}/v2.1" if compute else ""),
            image=cfg.image_url or urls.get("image", ""),
            placement=cfg.placement_url or urls.get("placement", ""),
            region=cfg.region)


class HttpService(Service):
    """A service that serves one aiohttp application while running."""

    #: what the start-up banner calls it
    title = "HTTP API"
    #: the catalog's service type it publishes its URL as ("" for none)
    service_type = ""

    def __init__(self, ctx: ServiceContext, listen: str, port: int, public_url: str,
                 cloud: CloudProcess | None = None) -> None:
        super().__init__(ctx)
        self.listen = listen
        self.port = port
        self.public_url = public_url.rstrip("/")
        self.cloud = cloud
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def build(self) -> web.Application:
        """The application to serve (called at start)."""
        raise NotImplementedError

    async def on_start(self) -> None:
        app = await self.build()
        self.runner = await start_http(app, self.listen, self.port)
        self.url = http_url(self.listen, self.runner)
        if self.cloud is not None and self.service_type:
            self.cloud.publish(self.service_type, self.public_url or self.url)

    async def on_stop(self) -> None:
        if self.runner is not None:
            runner, self.runner = self.runner, None
            await runner.cleanup()

    def api_context(self) -> ApiContext:
        """The context the handlers get."""
        return ApiContext(self.runtime, self.ctx.metrics, self.public_url, self.rpc,
                          store=self.ctx.store)

    def listening(self) -> list[str]:
        """What this service listens on, one line each, for the start-up banner."""
        return [f"{self.title} on {self.url}/"] if self.url else []


def _need_store(ctx: ServiceContext, name: str) -> Store:
    if ctx.store is None:
        raise ConfigError(f"the {name!r} service needs the database")
    return ctx.store


class ApiService(HttpService):
    """The Compute API: the root, health and metrics routes and, given the process's
    :class:`CloudProcess`, every ``/v2.1`` route with tokens checked by identity."""

    topic = "api"
    title = "Compute API"
    service_type = "compute"

    def __init__(self, ctx: ServiceContext, config: ApiConfig, routes: Sequence[Route] = ROUTES,
                 *, cloud: CloudProcess | None = None) -> None:
        if cloud is not None:
            _need_store(ctx, "api")
        super().__init__(ctx, config.listen, config.port, config.public_url, cloud)
        self.config = config
        self.routes = tuple(routes)

    async def build(self) -> web.Application:
        routes = self.routes
        if self.cloud is not None:
            routes += compute_routes(self.compute_env(self.cloud))
        return build_app(self.api_context(), routes, max_body_bytes=self.config.max_body_bytes)

    def compute_env(self, cloud: CloudProcess) -> ComputeEnv:
        """The Compute API's handlers' world: the Store, the lifecycle logic, identity."""
        store, config = _need_store(self.ctx, "api"), cloud.config
        compute = ComputeAPI(
            store, self.rpc, self.runtime,
            service_down_time=config.conductor.service_down_time,
            compute_binary=config.conductor.compute_binary,
            reclaim_instance_interval=config.compute.reclaim_instance_interval,
            policy=cloud.policy)
        return ComputeEnv(store, compute, self.runtime, cloud.identity().context_for,
                          base_url=self.config.public_url, policy=cloud.policy)


class PlacementService(HttpService):
    """The Placement API (resource providers, inventories, allocations) over the Store.

    It checks no token yet: ``X-Auth-Token`` is read into each request when present,
    so checking it is one change.
    """

    topic = "placement"
    title = "Placement API"
    service_type = "placement"

    def __init__(self, ctx: ServiceContext, config: PlacementConfig,
                 routes: Sequence[Route] = PLACEMENT_ROUTES, *,
                 cloud: CloudProcess | None = None) -> None:
        _need_store(ctx, "placement")
        super().__init__(ctx, config.listen, config.port, config.public_url, cloud)
        self.config = config
        self.routes = tuple(routes)

    async def build(self) -> web.Application:
        return build_app(self.api_context(), self.routes,
                         max_body_bytes=self.config.max_body_bytes, errors=placement_error)


class ImageService(HttpService):
    """The Image API (v2): image records in the Store, their data in files."""

    topic = "image"
    title = "Image API"
    service_type = "image"

    def __init__(self, ctx: ServiceContext, cloud: CloudProcess) -> None:
        _need_store(ctx, "image")
        cfg = cloud.config.image
        super().__init__(ctx, cfg.listen, cfg.port, cfg.public_url, cloud)
        self.config = cfg
        self.data_dir = Path(cfg.data_dir or Path(cloud.config.serve.state_dir) / "images")

    async def build(self) -> web.Application:
        from nimbus.image_files import FileBlobStore
        from nimbus.image_http import build_image_app

        assert self.cloud is not None
        blobs = FileBlobStore(self.data_dir, self.runtime)
        blobs.remove_partials()
        env = ImageEnv(_need_store(self.ctx, "image"), blobs, self.runtime,
                       self.cloud.identity().context_for, self.config, self.cloud.policy)
        return build_image_app(self.api_context(), env)


class IdentityService(HttpService):
    """The Identity API (v3): tokens, projects, users, roles and the catalog.

    At each start it runs the bootstrap (default domain, roles, admin and demo) and
    writes ``clouds.yaml`` into the state directory for the stock clients. It starts
    after the other HTTP services of its process, so its catalog is complete when
    the first token is asked for.
    """

    topic = "identity"
    title = "Identity API"
    service_type = "identity"

    def __init__(self, ctx: ServiceContext, cloud: CloudProcess) -> None:
        _need_store(ctx, "identity")
        cfg = cloud.config.identity
        super().__init__(ctx, cfg.listen, cfg.port, cfg.public_url, cloud)
        self.config = cfg
        self.state_dir = cloud.config.serve.state_dir
        self.creds = credentials(cloud.config)  # made (once) before anything starts
        self.clouds_yaml: Path | None = None
        self.banner: list[str] = []

    async def build(self) -> web.Application:
        assert self.cloud is not None
        logic = self.cloud.identity()
        creds = self.creds
        await bootstrap(_need_store(self.ctx, "identity"), self.runtime, logic.passwords,
                        admin_password=creds.admin_password,
                        demo_password=creds.demo_password)
        return build_app(self.api_context(), identity_routes(logic),
                         max_body_bytes=self.config.max_body_bytes, errors=identity_error)

    async def on_start(self) -> None:
        await super().on_start()
        creds = self.creds
        path = write_clouds_yaml(self.state_dir, f"{self.public_url or self.url}/v3",
                                 self.config.region, creds)
        self.clouds_yaml = path
        self.banner = [
            f"admin user 'admin' password {creds.admin_password} (project 'admin')",
            f"demo user 'demo' password {creds.demo_password} (project 'demo')",
            f"clouds.yaml with clouds nimbus-admin and nimbus-demo: {path}",
            f"export OS_CLIENT_CONFIG_FILE={path}; openstack --os-cloud nimbus-admin server list",
        ]

    def listening(self) -> list[str]:
        """The identity URL, the credentials and how to use them with the stock CLI."""
        return [f"{self.title} on {self.url}/v3", *self.banner] if self.url else []


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

