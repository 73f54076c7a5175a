"""One contract for every Transport, through RpcEndpoint.

Runs on the sim transport (InProcessTransport over SimRuntime, with latency),
the in-process asyncio transport, and ZeroMQ through a broker.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from nimbus.core.errors import ApiError, MessageError, RemoteError, RpcTimeout
from nimbus.core.messages import message
from nimbus.core.rpc import RpcEndpoint
from nimbus.core.transport import InProcessTransport, Transport
from nimbus.runtime import AsyncioRuntime
from nimbus.sim.runtime import SimRuntime
from nimbus.sim.transport import SimTransport, constant_latency


@message("contract.echo")
@dataclass(frozen=True, slots=True)
class Echo:
    text: str


@message("contract.boom")
@dataclass(frozen=True, slots=True)
class Boom:
    status: int


@message("contract.unserved")
@dataclass(frozen=True, slots=True)
class Unserved:
    pass


@dataclass(frozen=True, slots=True)
class NotAMessage:
    x: int


Body = Callable[[Any, Callable[[], Awaitable[Transport]]], Awaitable[None]]


class World:
    """A runtime and a way to make transports that can reach each other."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._broker: Any = None

    @contextlib.contextmanager
    def running(self) -> Iterator[World]:
        if self.kind == "zmq":
            from nimbus import zmq_transport
            self._broker = zmq_transport.ZmqBroker("tcp://127.0.0.1:*")
            self._broker.start()
        try:
            yield self
        finally:
            if self._broker is not None:
                self._broker.stop()

    def run(self, body: Body) -> None:
        if self.kind == "sim":
            rt: Any = SimRuntime(seed=3)
            shared: Transport = SimTransport(rt, latency=constant_latency(0.001))
        else:
            rt = AsyncioRuntime(seed=3)
            shared = InProcessTransport(rt)
        made: list[Transport] = []

        async def make() -> Transport:
            if self.kind == "zmq":
                from nimbus.zmq_transport import ZmqTransport

                t: Transport = ZmqTransport(rt, self._broker.url)
                made.append(t)
                return t
            return shared

        async def main() -> None:
            try:
                await body(rt, make)
            finally:
                for t in made:
                    await t.close()

        rt.run(main())


@pytest.fixture(params=["sim", "local", "zmq"])
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    with World(request.param).running() as w:
        yield w


async def settle(rt: Any, endpoints: list[RpcEndpoint], topic: str, count: int) -> None:
    """Wait until ``topic`` has ``count`` members that answer (ZeroMQ binds asynchronously)."""
    client = endpoints[0]
    seen: set[str] = set()
    for _ in range(200):
        try:
            seen.add(await client.call(topic, Echo("who"), timeout=0.2))
        except RpcTimeout:
            pass
        if len(seen) >= count:
            return
    raise AssertionError(f"only {len(seen)} of {count} members of {topic} answered")


def make_server(rt: Any, t: Transport, name: str, topics: list[str], log: list[Any]) -> RpcEndpoint:
    async def echo(msg: Echo) -> str:
        log.append((name, msg.text))
        return name if msg.text == "who" else f"{name}:{msg.text}"

    async def boom(msg: Boom) -> None:
        if msg.status:
            raise ApiError(msg.status, f"boom {msg.status}")
        raise KeyError("plain failure")

    return RpcEndpoint(
        rt, t, address=f"{name}.addr", topics=topics,
        handlers={"contract.echo": echo, "contract.boom": boom},
    )


def test_call_cast_fanout_and_round_robin(world: World) -> None:
    async def body(rt: Any, make: Callable[[], Awaitable[Transport]]) -> None:
        log: list[Any] = []
        a = make_server(rt, await make(), "a", ["svc", "svc.h1"], log)
        b = make_server(rt, await make(), "b", ["svc", "svc.h2"], log)
        client = RpcEndpoint(rt, await make())
        for ep in (a, b, client):
            await ep.start()
        await settle(rt, [client], "svc", 2)
        log.clear()
        # per-host topic reaches exactly that host
        assert await client.call("svc.h1", Echo("x")) == "a:x"
        assert await client.call("svc.h2", Echo("y")) == "b:y"
        # the service topic is served round robin
        served = [await client.call("svc", Echo(str(i))) for i in range(4)]
        assert sorted(s.split(":")[0] for s in served) == ["a", "a", "b", "b"]
        # casts reach one member each; fanout reaches every member
        log.clear()
        await client.cast("svc.h1", Echo("cast"))
        await client.fanout("svc", Echo("all"))
        for _ in range(100):
            if len(log) >= 3:
                break
            await rt.sleep(0.01)
        assert sorted(log) == [("a", "all"), ("a", "cast"), ("b", "all")]
        # many calls in flight at once all come back to the right caller
        tasks = [rt.spawn(client.call("svc", Echo(f"m{i}"))) for i in range(50)]
        results = [await t.join() for t in tasks]
        assert [r.split(":")[1] for r in results] == [f"m{i}" for i in range(50)]
        for ep in (a, b, client):
            await ep.stop()

    world.run(body)


def test_remote_errors_carry_type_message_and_status(world: World) -> None:
    async def body(rt: Any, make: Callable[[], Awaitable[Transport]]) -> None:
        server = make_server(rt, await make(), "s", ["svc"], [])
        client = RpcEndpoint(rt, await make())
        await server.start()
        await client.start()
        await settle(rt, [client], "svc", 1)
        with pytest.raises(RemoteError) as info:
            await client.call("svc", Boom(409))
        assert (info.value.exc_type, info.value.remote_message, info.value.status) == (
            "ApiError", "boom 409", 409)
        with pytest.raises(RemoteError) as info:
            await client.call("svc", Boom(0))
        assert info.value.exc_type == "KeyError" and info.value.status == 500
        with pytest.raises(RemoteError) as info:
            await client.call("svc", Unserved())
        assert info.value.exc_type == "NoSuchEndpoint"
        with pytest.raises(MessageError):
            await client.call("svc", NotAMessage(1))
        # the server is still serving
        assert await client.call("svc", Echo("ok")) == "s:ok"
        await server.stop()
        await client.stop()

    world.run(body)


def test_calls_to_nobody_or_a_gone_service_time_out(world: World) -> None:
    async def body(rt: Any, make: Callable[[], Awaitable[Transport]]) -> None:
        server = make_server(rt, await make(), "s", ["svc"], [])
        client = RpcEndpoint(rt, await make(), default_timeout=0.3)
        await server.start()
        await client.start()
        await settle(rt, [client], "svc", 1)
        start = rt.now()
        with pytest.raises(RpcTimeout):
            await client.call("nobody", Echo("x"))
        assert 0.29 <= rt.now() - start < 1.5
        await server.stop()  # the service is gone
        start = rt.now()
        with pytest.raises(RpcTimeout):
            await client.call("svc", Echo("x"), timeout=0.25)
        assert 0.24 <= rt.now() - start < 1.5
        await client.stop()

    world.run(body)
