"""The ZeroMQ transport and its broker: routing, errors, bad input, restarts, two processes."""

from __future__ import annotations

import asyncio
import logging
import os
import select
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import zmq
import zmq.asyncio

from nimbus.core.errors import ApiError, RemoteError, RpcTimeout
from nimbus.core.messages import Codec, Envelope, Kind, message
from nimbus.core.metrics import Metrics
from nimbus.core.rpc import ErrorReply, Reply, RpcEndpoint, RpcEngine
from nimbus.runtime import AsyncioRuntime
from nimbus.zmq_transport import ZmqBroker, ZmqTransport

pytestmark = pytest.mark.timeout(30)

LOGGER = "nimbus.zmq_transport"
BROKER_LOGGER = "nimbus.zmq_broker"


@message("test.zmq.echo")
@dataclass(frozen=True, slots=True)
class Echo:
    text: str


@message("test.zmq.fail")
@dataclass(frozen=True, slots=True)
class Fail:
    status: int


@message("test.zmq.note")
@dataclass(frozen=True, slots=True)
class Note:
    text: str


# -- helpers ---------------------------------------------------------------------
def run(body: Callable[[AsyncioRuntime], Awaitable[None]], timeout: float = 15.0) -> None:
    """Run ``body(rt)`` on a fresh loop; a hang fails the test instead of stalling the run."""
    rt = AsyncioRuntime(seed=7)
    rt.run(asyncio.wait_for(body(rt), timeout))


@contextmanager
def running_broker(**kwargs: Any) -> Iterator[ZmqBroker]:
    broker = ZmqBroker("tcp://127.0.0.1:*", **kwargs)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def server(rt: AsyncioRuntime, t: ZmqTransport, name: str, topics: list[str],
           log: list[Any]) -> RpcEndpoint:
    """An endpoint ``<name>.addr`` that echoes, fails on demand and notes casts."""

    async def echo(msg: Echo) -> Echo:
        return Echo(f"{name}:{msg.text}")

    async def fail(msg: Fail) -> None:
        if msg.status:
            raise ApiError(msg.status, f"refused with {msg.status}")
        raise ValueError("boom")

    async def note(msg: Note) -> None:
        log.append((name, msg.text))

    return RpcEndpoint(
        rt, t, address=f"{name}.addr", topics=topics,
        handlers={"test.zmq.echo": echo, "test.zmq.fail": fail, "test.zmq.note": note},
    )


async def eventually(check: Callable[[], bool], seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def dropped(metrics: Metrics, reason: str) -> float:
    return metrics.registry.get_sample_value("nimbus_rpc_dropped_total", {"reason": reason}) or 0


def warnings_from(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == logger and r.levelno == logging.WARNING]


def raw_envelope(kind: Kind, topic: str, reply_to: str, type_: str, version: int,
                 body: Any, msg_id: str = "m1") -> bytes:
    """A well-formed envelope, of any type and version, registered or not."""
    return Codec().encode(Envelope(kind, msg_id, topic, reply_to, type_, version, body))


def as_caller_sees_it(payload: bytes, msg_id: str) -> Reply | ErrorReply:
    """What an RpcEndpoint waiting for ``msg_id`` makes of a reply payload."""
    engine = RpcEngine("raw.caller", lambda: "unused")
    engine.pending.add(msg_id)
    got = engine.receive(Codec().decode(payload), 0.0)
    assert isinstance(got, Reply | ErrorReply)
    return got


async def recv(sock: zmq.asyncio.Socket, timeout: float = 2.0) -> list[bytes]:
    return await asyncio.wait_for(sock.recv_multipart(), timeout)


# -- 1. calls, casts and fanout ----------------------------------------------------
def test_calls_casts_and_fanout_through_the_broker() -> None:
    async def body(rt: AsyncioRuntime) -> None:
        with running_broker() as broker:
            t1, t2 = ZmqTransport(rt, broker.url), ZmqTransport(rt, broker.url)
            log: list[Any] = []
            a = server(rt, t1, "a", ["svc", "svc.a"], log)
            b = server(rt, t2, "b", ["svc", "svc.b"], log)
            client = RpcEndpoint(rt, t2, default_timeout=2.0)
            try:
                for ep in (a, b, client):
                    await ep.start()  # returns once the broker confirmed the binding
                assert sorted(broker.members("svc")) == ["a.addr", "b.addr"]
                assert await client.call("svc.a", Echo("x")) == Echo("a:x")
                assert await client.call("b.addr", Echo("y")) == Echo("b:y")
                served = [(await client.call("svc", Echo(str(i)))).text for i in range(4)]
                assert sorted(s.split(":")[0] for s in served) == ["a", "a", "b", "b"]

                await client.cast("svc.a", Note("cast"))
                await client.fanout("svc", Note("all"))
                await eventually(lambda: len(log) >= 3)
                await asyncio.sleep(0.05)  # nothing more arrives
                assert sorted(log) == [("a", "all"), ("a", "cast"), ("b", "all")]

                calls = [client.call("svc", Echo(f"m{i}")) for i in range(200)]
                results = await asyncio.gather(*calls)
                assert [r.text.split(":")[1] for r in results] == [f"m{i}" for i in range(200)]
            finally:
                for t in (t1, t2):
                    await t.close()

    run(body)


# -- 2. remote errors --------------------------------------------------------------
def test_remote_handler_errors_come_back_as_remote_error() -> None:
    async def body(rt: AsyncioRuntime) -> None:
        with running_broker() as broker:
            ts, tc = ZmqTransport(rt, broker.url), ZmqTransport(rt, broker.url)
            try:
                await server(rt, ts, "s", ["svc"], []).start()
                client = RpcEndpoint(rt, tc, default_timeout=2.0)
                await client.start()
                with pytest.raises(RemoteError) as info:
                    await client.call("svc", Fail(0))
                assert (info.value.exc_type, info.value.remote_message) == ("ValueError", "boom")
                assert info.value.status == 500
                with pytest.raises(RemoteError) as info:
                    await client.call("svc", Fail(409))
                assert info.value.exc_type == "ApiError" and info.value.status == 409
                assert await client.call("svc", Echo("still")) == Echo("s:still")
            finally:
                await ts.close()
                await tc.close()

    run(body)


# -- 3. bad input ----------------------------------------------------------------------
GARBAGE_FOR_BROKER: list[list[bytes]] = [
    [b"junk"],                                   # unknown verb
    [b"send", b"svc"],                           # too few frames
    [b"send", b"svc", b"payload", b"extra"],     # too many frames
    [b"publish"],
    [b"bind"],                                   # no address
    [b"bind", b""],                              # empty address
    [b"unbind", b"a", b"b"],
    [b"\xff\xfe\x00", b"\x00" * 100],            # binary noise
]


def test_broker_and_service_survive_garbage_sent_to_the_broker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)

    async def body(rt: AsyncioRuntime) -> None:
        with running_broker() as broker:
            metrics = Metrics()
            ts = ZmqTransport(rt, broker.url, metrics=metrics)
            tc = ZmqTransport(rt, broker.url)
            raw = zmq.asyncio.Context.instance().socket(zmq.DEALER)
            raw.setsockopt(zmq.LINGER, 0)
            raw.connect(broker.url)
            try:
                await server(rt, ts, "s", ["svc"], []).start()
                client = RpcEndpoint(rt, tc, default_timeout=2.0)
                await client.start()

                for frames in GARBAGE_FOR_BROKER:
                    await raw.send_multipart(frames)
                # routed fine, but not an envelope: the service logs and drops it
                await raw.send_multipart([b"send", b"svc", b"\x93not an envelope"])
                await raw.send_multipart([b"publish", b"svc", b""])
                await eventually(lambda: broker.dropped["malformed"] >= len(GARBAGE_FOR_BROKER))
                await eventually(lambda: dropped(metrics, "malformed") >= 2)
                assert await client.call("svc", Echo("after garbage")) == Echo("s:after garbage")

                # a raw caller: register a reply address, then call with bad types
                await raw.send_multipart([b"bind", b"raw.caller"])
                while (await recv(raw)) != [b"bound", b"raw.caller"]:
                    pass  # a "hello" comes first: the broker did not know us before
                cases = [("test.zmq.nosuch", 1, "unknown message type"),
                         ("test.zmq.echo", 7, "has no version 7")]
                for i, (type_, version, expected) in enumerate(cases):
                    msg_id = f"bad{i}"
                    env = raw_envelope(Kind.CALL, "svc", "raw.caller", type_, version,
                                       {"text": "x"}, msg_id)
                    await raw.send_multipart([b"send", b"svc", env])
                    verb, address, payload = await recv(raw)
                    assert (verb, address) == (b"deliver", b"raw.caller")
                    got = as_caller_sees_it(payload, msg_id)
                    assert isinstance(got, ErrorReply)
                    assert got.error.exc_type == "MessageError" and got.error.status == 400
                    assert expected in got.error.remote_message
                assert await client.call("svc", Echo("still")) == Echo("s:still")
            finally:
                raw.close(linger=0)
                await ts.close()
                await tc.close()

    run(body)
    broker_warnings = warnings_from(caplog, BROKER_LOGGER)
    assert sum("broker dropped a malformed message" in m for m in broker_warnings) == len(
        GARBAGE_FOR_BROKER)
    transport_warnings = warnings_from(caplog, LOGGER)
    assert sum("malformed envelope" in m for m in transport_warnings) == 2
    rpc_warnings = warnings_from(caplog, "nimbus.core.rpc")
    assert any("unknown message type 'test.zmq.nosuch'" in m for m in rpc_warnings)
    assert any("has no version 7" in m for m in rpc_warnings)


def test_transport_survives_garbage_from_its_broker(caplog: pytest.LogCaptureFixture) -> None:
    """A fake broker (a raw ROUTER) sends bad frames straight at a transport."""
    caplog.set_level(logging.WARNING)

    async def body(rt: AsyncioRuntime) -> None:
        fake = zmq.asyncio.Context.instance().socket(zmq.ROUTER)
        fake.setsockopt(zmq.LINGER, 0)
        fake.bind("tcp://127.0.0.1:*")
        url = fake.getsockopt_string(zmq.LAST_ENDPOINT)
        metrics = Metrics()
        t = ZmqTransport(rt, url, metrics=metrics)
        binds: list[bytes] = []
        sent: asyncio.Queue[list[bytes]] = asyncio.Queue()

        async def act_as_broker() -> None:
            while True:
                peer, verb, *rest = await fake.recv_multipart()
                if verb == b"bind":
                    binds.append(rest[0])
                    await fake.send_multipart([peer, b"bound", rest[0]])
                elif verb == b"send":
                    await sent.put(rest)

        fake_task = asyncio.create_task(act_as_broker())
        try:
            await server(rt, t, "s", ["svc"], []).start()
            assert binds == [b"s.addr"]
            peer = t.identity
            good = raw_envelope(Kind.CAST, "svc", "", "test.zmq.note", 1, Note("n"))
            for frames in (
                [b"junk"],
                [b"deliver", b"s.addr"],                     # too few frames
                [b"deliver", b"s.addr", good, b"extra"],     # too many
                [b"bound"],
                [b"hello", b"extra"],
                [b"deliver", b"s.addr", b"\x00\x01garbage"],  # not an envelope
                [b"deliver", b"s.addr", b""],
                [b"deliver", b"nobody.addr", good],          # no such endpoint here
            ):
                await fake.send_multipart([peer, *frames])

            # an unknown type, still answered: the header names the caller
            bad = raw_envelope(Kind.CALL, "svc", "fake.caller", "test.zmq.nosuch", 1, [1, 2])
            await fake.send_multipart([peer, b"deliver", b"s.addr", bad])
            topic, payload = await asyncio.wait_for(sent.get(), 2.0)
            assert topic == b"fake.caller"
            got = as_caller_sees_it(payload, "m1")
            assert isinstance(got, ErrorReply) and got.error.exc_type == "MessageError"

            # still serving
            call = raw_envelope(Kind.CALL, "svc", "fake.caller", "test.zmq.echo", 1,
                                Echo("ok"), "m2")
            await fake.send_multipart([peer, b"deliver", b"s.addr", call])
            topic, payload = await asyncio.wait_for(sent.get(), 2.0)
            assert as_caller_sees_it(payload, "m2") == Reply("m2", Echo("s:ok"))
            assert dropped(metrics, "malformed") == 7
            assert dropped(metrics, "gone") == 1

            # "hello" (after a broker restart) makes the transport register again at once
            await fake.send_multipart([peer, b"hello"])
            await eventually(lambda: binds == [b"s.addr", b"s.addr"], 1.0)
        finally:
            fake_task.cancel()
            await t.close()
            fake.close(linger=0)

    run(body)
    warned = warnings_from(caplog, LOGGER)
    assert sum("malformed message from broker" in m for m in warned) == 5
    assert sum("malformed envelope" in m for m in warned) == 2


# -- 4. a gone service ---------------------------------------------------------------
def test_call_to_a_topic_whose_only_member_unbound_times_out() -> None:
    async def body(rt: AsyncioRuntime) -> None:
        with running_broker() as broker:
            ts, tc = ZmqTransport(rt, broker.url), ZmqTransport(rt, broker.url)
            try:
                s = server(rt, ts, "s", ["svc"], [])
                await s.start()
                client = RpcEndpoint(rt, tc, default_timeout=0.3)
                await client.start()
                assert await client.call("svc", Echo("x")) == Echo("s:x")
                await s.stop()  # the service is gone
                for topic in ("svc", "s.addr", "never.bound"):
                    start = time.monotonic()
                    with pytest.raises(RpcTimeout):
                        await client.call(topic, Echo("x"))
                    assert 0.29 <= time.monotonic() - start < 1.5
            finally:
                await ts.close()
                await tc.close()

    run(body)


# -- broker life cycle -------------------------------------------------------------
def test_broker_picks_a_free_port_and_stops_promptly() -> None:
    for url in ("tcp://127.0.0.1:0", "tcp://127.0.0.1:*"):
        with ZmqBroker(url) as broker:
            assert broker.url.startswith("tcp://127.0.0.1:")
            assert not broker.url.endswith((":0", ":*"))
            start = time.monotonic()
        assert time.monotonic() - start < 0.5
    broker.stop()  # a second stop is harmless


def test_bindings_come_back_after_a_broker_restart() -> None:
    async def body(rt: AsyncioRuntime) -> None:
        broker = ZmqBroker("tcp://127.0.0.1:*").start()
        url = broker.url
        ts = ZmqTransport(rt, url, heartbeat=0.2)
        tc = ZmqTransport(rt, url, heartbeat=0.2)
        try:
            await server(rt, ts, "s", ["svc"], []).start()
            client = RpcEndpoint(rt, tc, default_timeout=1.0)
            await client.start()
            assert await client.call("svc", Echo("before")) == Echo("s:before")
            broker.stop()
            broker = ZmqBroker(url).start()  # same port, empty tables
            await eventually(lambda: broker.members("svc") == ["s.addr"])
            await eventually(lambda: broker.members(client.address) == [client.address])
            assert await client.call("svc", Echo("after")) == Echo("s:after")
        finally:
            await ts.close()
            await tc.close()
            broker.stop()

    run(body)


def test_a_vanished_member_is_skipped() -> None:
    async def body(rt: AsyncioRuntime) -> None:
        with running_broker() as broker:
            ta, tb, tc = (ZmqTransport(rt, broker.url) for _ in range(3))
            try:
                await server(rt, ta, "a", ["svc"], []).start()
                await server(rt, tb, "b", ["svc"], []).start()
                client = RpcEndpoint(rt, tc, default_timeout=1.0)
                await client.start()
                await ta.close()  # gone without unbinding
                await asyncio.sleep(0.3)  # for the broker's socket to see the disconnect
                for i in range(4):
                    assert await client.call("svc", Echo(str(i))) == Echo(f"b:{i}")
                assert broker.members("svc") == ["b.addr"]
            finally:
                for t in (tb, tc):
                    await t.close()

    run(body)


def test_broker_forgets_silent_peers() -> None:
    async def body(rt: AsyncioRuntime) -> None:
        with running_broker(peer_timeout=0.3) as broker:
            raw = zmq.asyncio.Context.instance().socket(zmq.DEALER)
            raw.setsockopt(zmq.LINGER, 0)
            raw.connect(broker.url)
            try:
                await raw.send_multipart([b"bind", b"quiet.addr", b"quiet"])
                await eventually(lambda: broker.members("quiet") == ["quiet.addr"])
                await eventually(lambda: broker.members("quiet") == [], 2.0)  # no heartbeat
            finally:
                raw.close(linger=0)

    run(body)


def test_close_is_prompt_and_calls_time_out_when_the_broker_is_down() -> None:
    async def body(rt: AsyncioRuntime) -> None:
        with running_broker() as broker:
            url = broker.url
        t = ZmqTransport(rt, url, bind_timeout=0.2)
        client = RpcEndpoint(rt, t, default_timeout=0.2)
        await client.start()  # unconfirmed: logs a warning and carries on
        with pytest.raises(RpcTimeout):
            await client.call("svc", Echo("x"))
        start = time.monotonic()
        await t.close()
        assert time.monotonic() - start < 0.5
        await t.send("svc", Envelope(Kind.CAST, "m", "svc", "", "", 0, None))  # dropped

    run(body)


def test_sends_wait_at_most_send_timeout_when_the_queue_is_full() -> None:
    async def body(rt: AsyncioRuntime) -> None:
        with running_broker() as broker:
            url = broker.url  # and now nobody listens there
        metrics = Metrics()
        t = ZmqTransport(rt, url, metrics=metrics, hwm=1, send_timeout=0.1)
        env = Envelope(Kind.CAST, "m", "svc", "", "", 0, None)
        start = time.monotonic()
        for _ in range(6):
            await t.send("svc", env)
        assert dropped(metrics, "full") >= 1
        assert time.monotonic() - start < 1.5
        # a send waiting for room when the transport closes returns quietly
        waiting = asyncio.create_task(t.send("svc", env))
        await asyncio.sleep(0.02)
        assert not waiting.done()
        await t.close()
        await asyncio.wait_for(waiting, 1.0)
        assert dropped(metrics, "closed") == 1

    run(body)


# -- 5. two OS processes -------------------------------------------------------------
CHILD = r"""
import asyncio, os, sys
from dataclasses import dataclass
from nimbus.core.messages import message
from nimbus.core.rpc import RpcEndpoint
from nimbus.runtime import AsyncioRuntime
from nimbus.zmq_transport import ZmqTransport

@message("test.zmq.echo")
@dataclass(frozen=True, slots=True)
class Echo:
    text: str

async def main():
    rt = AsyncioRuntime()
    t = ZmqTransport(rt, sys.argv[1])
    async def echo(msg):
        return Echo(f"{os.getpid()}:{msg.text}")
    ep = RpcEndpoint(rt, t, address="child.addr", topics=["child"],
                     handlers={"test.zmq.echo": echo})
    await ep.start()
    print("ready", flush=True)
    # serve until the parent closes our stdin (or goes away)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await ep.stop()
    await t.close()

asyncio.run(main())
"""


def test_calls_to_a_service_in_another_process() -> None:
    with running_broker() as broker:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, broker.url],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            assert child.stdout is not None
            ready, _, _ = select.select([child.stdout], [], [], 20.0)
            assert ready, "the child did not start in time"
            line = child.stdout.readline().strip()
            assert line == "ready", child.stderr.read() if child.stderr else line

            async def body(rt: AsyncioRuntime) -> None:
                t = ZmqTransport(rt, broker.url)
                client = RpcEndpoint(rt, t, default_timeout=3.0)
                try:
                    await client.start()
                    reply = await client.call("child", Echo("hi"))
                    assert reply == Echo(f"{child.pid}:hi") and child.pid != os.getpid()
                    replies = await asyncio.gather(
                        *(client.call("child", Echo(str(i))) for i in range(300)))
                    assert [r.text for r in replies] == [f"{child.pid}:{i}" for i in range(300)]
                finally:
                    await t.close()

            run(body)
        finally:
            child.kill()
            child.wait(timeout=5)
            for pipe in (child.stdin, child.stdout, child.stderr):
                if pipe is not None:
                    pipe.close()
