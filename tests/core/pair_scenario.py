"""Two services exchanging calls, casts and fanouts: one scenario for every world.

The same :func:`run_scenario` runs under SimRuntime with the sim transport, and
under AsyncioRuntime with ZeroMQ where Beta lives in another OS process (this
file is then run as a script: ``python pair_scenario.py BROKER_URL``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from nimbus.core.errors import ApiError, RemoteError, RpcTimeout
from nimbus.core.messages import message
from nimbus.core.service import Service, ServiceContext, endpoint

FANOUT_TOPIC = "pair"


@message("pair.ping")
@dataclass(frozen=True, slots=True)
class Ping:
    n: int


@message("pair.pong")
@dataclass(frozen=True, slots=True)
class Pong:
    n: int
    host: str


@message("pair.note")
@dataclass(frozen=True, slots=True)
class Note:
    text: str


@message("pair.announce")
@dataclass(frozen=True, slots=True)
class Announce:
    seq: int


@message("pair.slow")
@dataclass(frozen=True, slots=True)
class Slow:
    seconds: float


@message("pair.fail")
@dataclass(frozen=True, slots=True)
class Fail:
    why: str


@message("pair.tally")
@dataclass(frozen=True, slots=True)
class Tally:
    pass


class Beta(Service):
    """Answers pings, collects notes and announcements, fails and dawdles on demand."""

    topic = "beta"

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.notes: list[str] = []
        self.announces: list[int] = []

    def topics(self) -> list[str]:
        return [*super().topics(), FANOUT_TOPIC]

    @endpoint(Ping)
    async def ping(self, msg: Ping) -> Pong:
        return Pong(msg.n * 2, self.host)

    @endpoint(Note)
    async def note(self, msg: Note) -> None:
        self.notes.append(msg.text)

    @endpoint(Announce)
    async def announce(self, msg: Announce) -> None:
        self.announces.append(msg.seq)

    @endpoint(Slow)
    async def slow(self, msg: Slow) -> str:
        await self.runtime.sleep(msg.seconds)
        return "late"

    @endpoint(Fail)
    async def fail(self, msg: Fail) -> None:
        raise ApiError(409, f"refused: {msg.why}")

    @endpoint(Tally)
    async def tally(self, msg: Tally) -> dict[str, Any]:
        return {"notes": sorted(self.notes), "announces": sorted(self.announces)}


class Alpha(Service):
    """Drives the scenario against Beta."""

    topic = "alpha"

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.announces: list[int] = []

    def topics(self) -> list[str]:
        return [*super().topics(), FANOUT_TOPIC]

    @endpoint(Announce)
    async def announce(self, msg: Announce) -> None:
        self.announces.append(msg.seq)

    async def wait_for_beta(self, attempts: int = 50) -> None:
        """Beta may still be starting in another process: ping until it answers."""
        for _ in range(attempts):
            try:
                await self.rpc.call("beta", Ping(0), timeout=0.2)
                return
            except RpcTimeout:
                continue
        raise RpcTimeout("beta never answered")

    async def run_scenario(self, n: int = 20) -> dict[str, Any]:
        """N calls, N casts, N fanouts, 3 timeouts and 3 remote errors; what came back."""
        rpc = self.rpc
        await self.wait_for_beta()
        pongs = []
        for i in range(n):
            pong = await rpc.call("beta", Ping(i))
            pongs.append(pong.n)
        for i in range(n):
            await rpc.cast("beta", Note(f"note-{i}"))
        for i in range(n):
            await rpc.fanout(FANOUT_TOPIC, Announce(i))
        timeouts = []
        for seconds in (1.0, 2.0, 3.0):
            try:
                await rpc.call("beta", Slow(seconds), timeout=0.2)
                timeouts.append("answered")
            except RpcTimeout:
                timeouts.append("timeout")
        try:
            await rpc.call("gamma", Ping(1), timeout=0.2)
            gone = "answered"
        except RpcTimeout:
            gone = "timeout"
        errors = []
        for why in ("a", "b", "c"):
            try:
                await rpc.call("beta", Fail(why))
            except RemoteError as exc:
                errors.append([exc.exc_type, exc.remote_message, exc.status])
        host_pong = await rpc.call(f"beta.{BETA_HOST}", Ping(21))
        tally = await rpc.call("beta", Tally())
        return {
            "pongs": pongs,
            "host_pong": [host_pong.n, host_pong.host],
            "timeouts": timeouts,
            "gone": gone,
            "errors": errors,
            "beta": tally,
            "alpha_announces": sorted(self.announces),
        }


BETA_HOST = "beta-host"
ALPHA_HOST = "alpha-host"


def _serve_beta(broker_url: str) -> None:
    """Run Beta over ZeroMQ until stdin closes (the parent's signal to stop)."""
    import asyncio

    from nimbus.runtime import AsyncioRuntime
    from nimbus.zmq_transport import ZmqTransport

    async def main() -> None:
        rt = AsyncioRuntime()
        transport = ZmqTransport(rt, broker_url)
        beta = Beta(ServiceContext(rt, transport, BETA_HOST))
        await beta.start()
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)
        await beta.stop()
        await transport.close()

    asyncio.run(main())


if __name__ == "__main__":
    _serve_beta(sys.argv[1])
