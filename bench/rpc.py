"""RPC and runtime throughput, as ratios against baselines measured in the same run.

    nimbus bench rpc [--n N] [--calls N] [--zmq-calls N] [--concurrency C]

Prints, one line each:

* the two-worlds bridge: plain SimPy generator processes exchanging N
  messages through ``simpy.Store`` (the baseline); SimRuntime stepping core
  coroutines through those very Store events (the cost of the stepping alone);
  SimRuntime coroutines exchanging through the runtime's own queue (what core
  code really uses); asyncio tasks through an ``asyncio.Queue``;
* RPC call round trips per second on each transport: the sim transport
  (InProcessTransport over SimRuntime), the in-process asyncio transport, and
  ZeroMQ between this process and a child process through a broker, with C
  calls in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import simpy

from nimbus.core.messages import message
from nimbus.core.rpc import RpcEndpoint
from nimbus.core.transport import InProcessTransport
from nimbus.runtime import AsyncioRuntime
from nimbus.sim.runtime import SimRuntime


@message("bench.ping")
@dataclass(frozen=True, slots=True)
class Ping:
    n: int


def best_of(runs: int, fn: Callable[[], float]) -> float:
    """The best rate of several runs (the least disturbed by the rest of the machine)."""
    return max(fn() for _ in range(runs))


# -- the bridge: one request/reply exchange per message pair ------------------
def plain_simpy(n: int) -> float:
    env = simpy.Environment()
    to_server, to_client = simpy.Store(env), simpy.Store(env)

    def server() -> Generator[simpy.Event, Any, None]:
        while True:
            item = yield to_server.get()
            yield to_client.put(item)

    def client() -> Generator[simpy.Event, Any, None]:
        for i in range(n):
            yield to_server.put(i)
            yield to_client.get()

    env.process(server())
    done = env.process(client())
    t0 = time.perf_counter()
    env.run(until=done)
    return 2 * n / (time.perf_counter() - t0)


class _Awaiting:
    """Lets a coroutine await a raw SimPy event, to time the stepping alone."""

    __slots__ = ("ev",)

    def __init__(self, ev: simpy.Event) -> None:
        self.ev = ev

    def __await__(self) -> Generator[simpy.Event, Any, Any]:
        return (yield self.ev)


def sim_bridge_same_events(n: int) -> float:
    """Coroutines stepped by SimRuntime through the very Store events plain SimPy uses."""
    rt = SimRuntime(0)
    to_server, to_client = simpy.Store(rt.env), simpy.Store(rt.env)

    async def server() -> None:
        while True:
            item = await _Awaiting(to_server.get())
            await _Awaiting(to_client.put(item))

    async def client() -> None:
        for i in range(n):
            await _Awaiting(to_server.put(i))
            await _Awaiting(to_client.get())

    rt.spawn(server())
    t0 = time.perf_counter()
    rt.run(client())
    return 2 * n / (time.perf_counter() - t0)


def sim_bridge(n: int) -> float:
    rt = SimRuntime(0)
    to_server, to_client = rt.queue(), rt.queue()

    async def server() -> None:
        while True:
            item = await to_server.get()
            await to_client.put(item)

    async def client() -> None:
        for i in range(n):
            await to_server.put(i)
            await to_client.get()

    rt.spawn(server())
    t0 = time.perf_counter()
    rt.run(client())
    return 2 * n / (time.perf_counter() - t0)


def asyncio_queues(n: int) -> float:
    async def main() -> float:
        to_server: asyncio.Queue[int] = asyncio.Queue()
        to_client: asyncio.Queue[int] = asyncio.Queue()

        async def server() -> None:
            while True:
                item = await to_server.get()
                await to_client.put(item)

        task = asyncio.create_task(server())
        t0 = time.perf_counter()
        for i in range(n):
            await to_server.put(i)
            await to_client.get()
        rate = 2 * n / (time.perf_counter() - t0)
        task.cancel()
        return rate

    return asyncio.run(main())


# -- RPC round trips ------------------------------------------------------------
async def _echo(msg: Ping) -> Ping:
    return msg


async def _rpc_loop(rt: Any, client: RpcEndpoint, n: int, concurrency: int) -> float:
    async def worker(count: int) -> None:
        for i in range(count):
            await client.call("bench", Ping(i))

    t0 = time.perf_counter()
    tasks = [rt.spawn(worker(n // concurrency)) for _ in range(concurrency)]
    for t in tasks:
        await t.join()
    return (n // concurrency) * concurrency / (time.perf_counter() - t0)


def rpc_sim(n: int, concurrency: int) -> float:
    rt = SimRuntime(0)
    transport = InProcessTransport(rt, latency=lambda env, address: 0.0005)

    async def main() -> float:
        server = RpcEndpoint(rt, transport, topics=["bench"], handlers={"bench.ping": _echo})
        client = RpcEndpoint(rt, transport)
        await server.start()
        await client.start()
        return await _rpc_loop(rt, client, n, concurrency)

    return rt.run(main())


def rpc_local(n: int, concurrency: int) -> float:
    rt = AsyncioRuntime(0)

    async def main() -> float:
        transport = InProcessTransport(rt)
        server = RpcEndpoint(rt, transport, topics=["bench"], handlers={"bench.ping": _echo})
        client = RpcEndpoint(rt, transport)
        await server.start()
        await client.start()
        return await _rpc_loop(rt, client, n, concurrency)

    return rt.run(main())


_ZMQ_SERVER = """
import asyncio, sys
from nimbus.bench.rpc import _echo
from nimbus.core.rpc import RpcEndpoint
from nimbus.runtime import AsyncioRuntime
from nimbus.zmq_transport import ZmqTransport

async def main():
    rt = AsyncioRuntime()
    t = ZmqTransport(rt, sys.argv[1])
    server = RpcEndpoint(rt, t, topics=["bench"], handlers={"bench.ping": _echo})
    await server.start()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop()
    await t.close()

asyncio.run(main())
"""


def rpc_zmq(n: int, concurrency: int) -> float:
    from nimbus.zmq_transport import ZmqBroker, ZmqTransport

    broker = ZmqBroker("tcp://127.0.0.1:*")
    broker.start()
    child = subprocess.Popen(
        [sys.executable, "-c", _ZMQ_SERVER, broker.url],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        rt = AsyncioRuntime(0)

        async def main() -> float:
            t = ZmqTransport(rt, broker.url)
            client = RpcEndpoint(rt, t, default_timeout=10.0)
            await client.start()
            for _ in range(100):  # wait until the server's binding reached the broker
                try:
                    await client.call("bench", Ping(0), timeout=0.1)
                    break
                except TimeoutError:
                    continue
            await _rpc_loop(rt, client, min(n, 2000), concurrency)  # warm up
            rate = await _rpc_loop(rt, client, n, concurrency)
            await client.stop()
            await t.close()
            return rate

        return rt.run(main())
    finally:
        assert child.stdin is not None
        child.stdin.close()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
        broker.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="nimbus bench rpc", description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    p.add_argument("--n", type=int, default=50_000, help="messages per bridge run")
    p.add_argument("--calls", type=int, default=20_000, help="RPC calls per in-process run")
    p.add_argument("--zmq-calls", type=int, default=20_000, help="RPC calls over ZeroMQ")
    p.add_argument("--concurrency", type=int, default=32, help="RPC calls in flight")
    p.add_argument("--runs", type=int, default=3, help="runs of each; the best counts")
    a = p.parse_args(argv)

    simpy_rate = best_of(a.runs, lambda: plain_simpy(a.n))
    same_rate = best_of(a.runs, lambda: sim_bridge_same_events(a.n))
    bridge_rate = best_of(a.runs, lambda: sim_bridge(a.n))
    aio_rate = best_of(a.runs, lambda: asyncio_queues(a.n))
    print(f"plain SimPy processes (baseline) {simpy_rate:12,.0f} msg/s")
    print(f"SimRuntime bridge, Store events  {same_rate:12,.0f} msg/s"
          f"   ratio to plain SimPy {same_rate / simpy_rate:.2f}")
    print(f"SimRuntime bridge, runtime queue {bridge_rate:12,.0f} msg/s"
          f"   ratio to plain SimPy {bridge_rate / simpy_rate:.2f}")
    print(f"asyncio tasks + Queue            {aio_rate:12,.0f} msg/s"
          f"   ratio to plain SimPy {aio_rate / simpy_rate:.2f}")

    sim = best_of(a.runs, lambda: rpc_sim(a.calls, a.concurrency))
    local = best_of(a.runs, lambda: rpc_local(a.calls, a.concurrency))
    print(f"RPC calls, sim transport         {sim:12,.0f} calls/s"
          f"   ratio to plain SimPy msg pairs {2 * sim / simpy_rate:.2f}")
    print(f"RPC calls, in-process asyncio    {local:12,.0f} calls/s")
    try:
        zmq = best_of(a.runs, lambda: rpc_zmq(a.zmq_calls, a.concurrency))
    except ImportError as exc:
        print(f"RPC calls, ZeroMQ                unavailable: {exc}")
    else:
        print(f"RPC calls, ZeroMQ (2 processes)  {zmq:12,.0f} calls/s"
              f"   ratio to in-process asyncio {zmq / local:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
