"""The Compute API over real HTTP, against the same handlers called in-process, same run.

    nimbus bench api [--servers N] [--list-requests R] [--boots N] [--concurrency C]
                     [--hosts H] [--microversion V] [--poll S] [--seed S]

Every part runs on AsyncioRuntime with a Store on SqlDatabase over aiosqlite (a file
in a temporary directory) and the cloud of :func:`nimbus.sim.cloud.start_cloud`
(conductor, scheduler, H fake compute hosts, in-process transport). The HTTP side
is the all-in-one API's wiring in this process: ``build_app`` over
``compute_routes`` served by ``start_http`` on 127.0.0.1, an aiohttp client with
keep-alive. Tokens are checked by a fixed-token authenticator (a dict lookup), so
Keystone's token validation is not what is measured.

* (a) ``GET /servers/detail?limit=1000`` with N servers of one project, made directly
  in the Store (ACTIVE on a host, one fixed IP, the default security group): requests/s
  and ms per request over HTTP; baseline, the same route through
  :class:`~nimbus.core.api.dispatch.Dispatcher` without sockets. Ratios HTTP /
  in-process, and DESIGN.md's Nova figure (0.46 s at 100 servers, 4.4 s at 1,000) / HTTP.
* (b) boot-to-ACTIVE: N boots, C in flight, each ``POST /servers`` over HTTP; baseline,
  the same boots through ``ComputeAPI.create`` with the arguments the handler gives it.
  A boot's latency runs from just before the request to the moment a Store watch
  (one ``changes-since`` query per ``--poll`` seconds for all boots in flight, the same
  in both) sees the instance ACTIVE. p50/p90/p99 in ms and their ratios (and, one boot
  at a time, DESIGN.md's Nova median of 0.9 s / p50). Each side runs on a cloud of its
  own; ten boots are run first, untimed.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import math
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import msgspec

from nimbus.core.api.compute.routes import compute_routes
from nimbus.core.api.compute.wire import ComputeEnv
from nimbus.core.api.dispatch import Dispatcher
from nimbus.core.api.http import ApiContext
from nimbus.core.compute import states
from nimbus.core.compute.api_create import attach_networks, join_security_groups
from nimbus.core.compute.config import ComputeConfig
from nimbus.core.context import MEMBER, READER, RequestContext
from nimbus.core.db.block_devices import image_root_disk
from nimbus.core.db.instance_schema import NewInstance
from nimbus.core.db.store import Store, metadata
from nimbus.core.errors import ApiError
from nimbus.core.metrics import Metrics
from nimbus.core.scheduler.service import SchedulerServiceConfig
from nimbus.core.transport import InProcessTransport
from nimbus.db import SqlDatabase
from nimbus.http import bound_port, build_app, start_http
from nimbus.runtime import AsyncioRuntime
from nimbus.sim.cloud import Cloud, StateWatch, start_cloud

T = TypeVar("T")
PROJECT, USER, TOKEN = "bench", "bench-user", "bench-token"
IMAGE = "5b3c1d2e-0f4a-4b6c-8d7e-9f0a1b2c3d4e"
FLAVOR = {"flavorid": "1", "name": "m1.small", "vcpus": 1, "memory_mb": 512, "root_gb": 1,
          "ephemeral_gb": 0, "swap": 0, "rxtx_factor": 1.0, "extra_specs": {}}
#: The default network the boots and the listed servers take addresses from (2,046).
NETWORK = ("private", "10.0.0.0/21")
#: DESIGN.md: Nova 34 in-process, seconds per GET /servers/detail by server count.
NOVA_DETAIL = {100: 0.46, 1000: 4.4}
#: DESIGN.md: Nova 34 in-process, median boot-to-ACTIVE in seconds (one boot at a time).
NOVA_BOOT_MEDIAN = 0.9
WARMUP = 10
BASE_URL = "http://127.0.0.1"


async def authenticate(token: str, request_id: str) -> RequestContext:
    """One fixed token (so the token check is not what is measured)."""
    if token != TOKEN:
        raise ApiError(401, "The request you have made requires authentication.")
    return RequestContext(USER, PROJECT, request_id, (MEMBER, READER))


async def prepare(store: Store, now: float) -> None:
    """The flavor, a public image, no quota limits, and a default network big enough."""
    f = FLAVOR
    await store.create_flavor(flavorid=str(f["flavorid"]), name=str(f["name"]), vcpus=1,
                              memory_mb=512, root_gb=1, now=now)
    await store.create_image(id=IMAGE, owner=None, now=now, visibility="public",
                             status="active", disk_format="qcow2", container_format="bare")
    await store.set_quota_class("default", {"instances": -1, "cores": -1, "ram": -1}, now)
    net = await store.create_network(uuid="7e6d5c4b-3a29-4817-9605-f4e3d2c1b0a9",
                                     label=NETWORK[0], cidr=NETWORK[1], now=now)
    await store.create_fixed_ips(net.id, now=now)


async def with_cloud(args: Any, work: Callable[[Cloud], Awaitable[T]]) -> T:
    """``work(cloud)`` on a fresh aiosqlite Store and a started cloud of ``args.hosts``."""
    rt = AsyncioRuntime(args.seed)
    with tempfile.TemporaryDirectory(prefix="nimbus-bench-api-") as tmp:
        db = SqlDatabase(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite'}")
        async with db.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        store = Store(db)
        try:
            await prepare(store, rt.wall_time())
            cloud = await start_cloud(
                rt, InProcessTransport(rt), store, hosts=args.hosts, metrics=Metrics(),
                compute_config=ComputeConfig(reserved_host_memory_mb=0),
                scheduler_config=SchedulerServiceConfig(refresh_interval=30.0))
            try:
                return await work(cloud)
            finally:
                await rt.sleep(0.2)  # the hosts' last reports
                await cloud.stop()
        finally:
            await store.close()


@dataclass
class Served:
    """The Compute API of a cloud, in-process and over HTTP."""

    dispatcher: Dispatcher
    session: aiohttp.ClientSession
    url: str
    headers: dict[str, str]

    async def http(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = None if body is None else msgspec.json.encode(body)
        heads = self.headers if data is None else {**self.headers,
                                                   "Content-Type": "application/json"}
        async with self.session.request(method, f"{self.url}{path}", data=data,
                                        headers=heads) as resp:
            return resp.status, await resp.read()

    async def direct(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        path, _, qs = path.partition("?")
        query = dict(p.split("=", 1) for p in qs.split("&")) if qs else None
        resp = await self.dispatcher.call(method, path, body=body, headers=self.headers,
                                          query=query)
        return resp.status, resp.encoded()


async def serve(cloud: Cloud, args: Any, work: Callable[[Served], Awaitable[T]]) -> T:
    """``work`` with the cloud's Compute API wired as the all-in-one API service does."""
    env = ComputeEnv(cloud.store, cloud.api, cloud.runtime, authenticate, base_url=BASE_URL)
    ctx = ApiContext(cloud.runtime, cloud.metrics, BASE_URL, cloud.client, store=cloud.store)
    routes = compute_routes(env)
    runner = await start_http(build_app(ctx, routes), "127.0.0.1", 0)
    headers = {"X-Auth-Token": TOKEN, "Accept": "application/json",
               "OpenStack-API-Version": f"compute {args.microversion}"}
    try:
        connector = aiohttp.TCPConnector(limit=max(args.concurrency, 1))
        async with aiohttp.ClientSession(connector=connector) as session:
            url = f"http://127.0.0.1:{bound_port(runner)}"
            return await work(Served(Dispatcher(ctx, routes), session, url, headers))
    finally:
        await runner.cleanup()


# -- (a) GET /servers/detail ---------------------------------------------------------
async def populate(cloud: Cloud, count: int) -> None:
    """``count`` ACTIVE servers, each with an address and a security group, on ten hosts
    no compute service runs (a running one would find them unclaimed in placement and
    repair that while the lists are timed)."""
    store, rt, hosts = cloud.store, cloud.runtime, [f"listed{i}" for i in range(10)]
    user = RequestContext(USER, PROJECT, "req-populate", (MEMBER, READER))
    made = []
    for n in range(count):
        now, host = rt.wall_time(), hosts[n % len(hosts)]
        inst = await store.create_instance(NewInstance(
            uuid=rt.new_id(), project_id=PROJECT, user_id=USER, flavor=FLAVOR,
            image_ref=IMAGE, display_name=f"vm-{n}", hostname=f"vm-{n}",
            vm_state=states.ACTIVE, task_state=None, power_state=states.RUNNING),
            now=now, request_id=f"req-{n}", block_devices=[image_root_disk(rt.new_id(), IMAGE)])
        made.append(await store.update_instance(inst.uuid, now=now, host=host, node=host,
                                                launched_at=now))
    await attach_networks(cloud.api, user, made, "auto")
    await join_security_groups(cloud.api, user, made, ["default"])


@dataclass(frozen=True, slots=True)
class ListOutcome:
    """Seconds per ``GET /servers/detail`` over HTTP and in-process."""

    servers: int
    requests: int
    http: float
    direct: float


async def measure_list(cloud: Cloud, args: Any) -> ListOutcome:
    await populate(cloud, args.servers)
    path = "/v2.1/servers/detail?limit=1000"

    async def timed(api: Served) -> ListOutcome:
        for call in (api.http, api.direct):  # one untimed each; both must list them all
            status, raw = await call("GET", path)
            got = len(msgspec.json.decode(raw)["servers"]) if status == 200 else -1
            if got != min(args.servers, 1000):
                raise RuntimeError(f"GET {path} answered {status} with {got} servers")
        spent = {}
        for name, call in (("http", api.http), ("direct", api.direct)):
            t0 = time.perf_counter()
            for _ in range(args.list_requests):
                await call("GET", path)
            spent[name] = (time.perf_counter() - t0) / args.list_requests
        return ListOutcome(args.servers, args.list_requests, spent["http"], spent["direct"])

    return await serve(cloud, args, timed)


# -- (b) boot to ACTIVE --------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BootOutcome:
    """Boot-to-ACTIVE latencies in seconds, sorted."""

    latencies: list[float]
    failed: int

    def pct(self, p: float) -> float:
        """Nearest-rank percentile ``p`` (0-100), in ms."""
        lat = self.latencies
        return 1000 * lat[max(0, math.ceil(p / 100 * len(lat)) - 1)] if lat else float("nan")


def boot_body(n: int) -> dict[str, Any]:
    """What ``openstack server create --image --flavor`` sends (networks auto)."""
    return {"server": {"name": f"vm-{n}", "imageRef": IMAGE, "flavorRef": "1",
                       "min_count": 1, "max_count": 1, "networks": "auto"}}


async def boots(cloud: Cloud, args: Any, via_http: bool) -> BootOutcome:
    user = RequestContext(USER, PROJECT, "req-0", (MEMBER, READER))
    watch = StateWatch(cloud.runtime, cloud.store, poll=args.poll, project_id=PROJECT)

    async def by_api(api: Served | None, n: int) -> str:
        if api is not None:
            status, raw = await api.http("POST", "/v2.1/servers", boot_body(n))
            if status != 202:
                raise RuntimeError(f"POST /servers answered {status}: {raw[:200]!r}")
            return str(msgspec.json.decode(raw)["server"]["id"])
        (inst,) = await cloud.api.create(
            user.with_request(f"req-{n}"), flavor=FLAVOR, image_ref=IMAGE,
            image_properties={}, name=f"vm-{n}", description=f"vm-{n}",
            admin_password="x" * 12, networks="auto", security_groups=["default"],
            block_devices=[image_root_disk("", IMAGE)], enforce_quota=True)
        return inst.uuid

    async def run(api: Served | None) -> BootOutcome:
        latencies: list[float] = []
        failed = 0

        async def many(first: int, count: int, keep: bool) -> None:
            nonlocal failed
            todo = iter(range(first, first + count))

            async def worker() -> None:
                nonlocal failed
                for n in todo:
                    since, t0 = cloud.runtime.wall_time(), time.perf_counter()
                    got = await watch.wait(await by_api(api, n), states.ACTIVE, since)
                    if got.vm_state != states.ACTIVE:
                        failed += 1
                    elif keep:
                        latencies.append(time.perf_counter() - t0)

            tasks = [cloud.runtime.spawn(worker(), name=f"boot-{i}")
                     for i in range(args.concurrency)]
            for task in tasks:
                await task.join()

        await many(0, WARMUP, False)
        await many(WARMUP, args.boots, True)
        return BootOutcome(sorted(latencies), failed)

    if via_http:
        return await serve(cloud, args, run)
    return await run(None)


# -- the command ---------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="nimbus bench api", description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--servers", type=int, default=1000, help="servers listed in (a)")
    p.add_argument("--list-requests", type=int, default=3, help="timed lists in (a), each way")
    p.add_argument("--boots", type=int, default=200, help="timed boots in (b), each way")
    p.add_argument("--concurrency", type=int, default=10, help="boots in flight")
    p.add_argument("--hosts", type=int, default=100, help="fake compute hosts")
    p.add_argument("--microversion", default="2.100", help="compute microversion sent")
    p.add_argument("--poll", type=float, default=0.01,
                   help="seconds between Store queries of the boots' watch")
    p.add_argument("--seed", type=int, default=0, help="seed of the runtime")
    a = p.parse_args(argv)
    if min(a.servers, a.list_requests, a.boots, a.concurrency, a.hosts) < 1:
        p.error("--servers, --list-requests, --boots, --concurrency and --hosts must be >= 1")

    print(f"aiosqlite file Store, {a.hosts} fake hosts, microversion {a.microversion}, "
          "fixed-token auth")
    lst = asyncio.run(with_cloud(a, functools.partial(measure_list, args=a)))
    print(f"(a) GET /servers/detail?limit=1000, {lst.servers} servers, {lst.requests} "
          "requests each way")
    for name, spent in (("HTTP (aiohttp client + server)", lst.http),
                        ("in-process Dispatcher", lst.direct)):
        print(f"    {name:<34} {1 / spent:9.2f} req/s  {1000 * spent:9.1f} ms/request")
    print(f"    ratio HTTP / in-process (time)     {lst.http / lst.direct:9.2f}")
    if lst.servers in NOVA_DETAIL:
        nova = NOVA_DETAIL[lst.servers]
        label = f"ratio Nova 34 ({nova} s) / HTTP"
        print(f"    {label:<35}{nova / lst.http:9.2f}")
    print(f"(b) boot to ACTIVE, {a.boots} boots, {a.concurrency} in flight, watched every "
          f"{a.poll} s")
    out = {}
    for name, via_http in (("POST /servers over HTTP", True), ("ComputeAPI.create", False)):
        out[name] = got = asyncio.run(with_cloud(a, functools.partial(boots, args=a,
                                                                      via_http=via_http)))
        line = "  ".join(f"p{p} {got.pct(p):7.1f}" for p in (50, 90, 99))
        print(f"    {name:<34} {line} ms" + (f"  ({got.failed} FAILED)" if got.failed else ""),
              flush=True)
    h, d = out["POST /servers over HTTP"], out["ComputeAPI.create"]
    print("    ratio HTTP / direct                " + "  ".join(
        f"p{p} {h.pct(p) / d.pct(p):7.2f}" for p in (50, 90, 99)))
    if a.concurrency == 1:  # Nova's figure is for one boot at a time
        label = f"ratio Nova 34 median ({NOVA_BOOT_MEDIAN} s) / HTTP"
        print(f"    {label:<34} p50 {1000 * NOVA_BOOT_MEDIAN / h.pct(50):7.2f}")
    return 1 if h.failed or d.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
