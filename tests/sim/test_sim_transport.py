"""Faults on the sim transport change what arrives, repeatably."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from nimbus.core.errors import RpcTimeout
from nimbus.core.messages import message
from nimbus.core.rpc import RpcEndpoint
from nimbus.sim.runtime import SimRuntime
from nimbus.sim.transport import SimTransport, constant_latency, requests_only, to_topic


@message("simtransport.hit")
@dataclass(frozen=True, slots=True)
class Hit:
    n: int


def setup(rt: SimRuntime, t: SimTransport, seen: list[Any]) -> tuple[RpcEndpoint, RpcEndpoint]:
    async def hit(msg: Hit) -> int:
        seen.append((rt.now(), msg.n))
        return msg.n

    server = RpcEndpoint(rt, t, topics=["svc"], handlers={"simtransport.hit": hit})
    client = RpcEndpoint(rt, t, default_timeout=1.0)
    return server, client


def run(seed: int, configure: Any, n: int = 100) -> tuple[list[Any], dict[str, int]]:
    rt = SimRuntime(seed)
    t = SimTransport(rt, latency=constant_latency(0.001))
    seen: list[Any] = []
    outcome = {"ok": 0, "timeout": 0}

    async def main() -> None:
        server, client = setup(rt, t, seen)
        await server.start()
        await client.start()
        configure(t)
        for i in range(n):
            await client.cast("svc", Hit(i))
        for i in range(n):
            try:
                await client.call("svc", Hit(1000 + i))
                outcome["ok"] += 1
            except RpcTimeout:
                outcome["timeout"] += 1
        await rt.sleep(5.0)

    rt.run(main())
    return seen, outcome


def test_no_fault_delivers_everything_once_after_the_latency() -> None:
    seen, outcome = run(1, lambda t: None)
    assert outcome == {"ok": 100, "timeout": 0}
    assert [n for _, n in seen[:100]] == list(range(100))
    assert seen[0][0] == pytest.approx(0.001)


def test_drop_loses_messages_and_calls_time_out() -> None:
    seen, outcome = run(1, lambda t: t.drop(0.3))
    casts = [n for _, n in seen if n < 1000]
    assert 50 < len(casts) < 90
    # a call fails if its request or its reply is lost: about 1 - 0.7 * 0.7
    assert 35 < outcome["timeout"] < 65
    assert run(1, lambda t: t.drop(0.3)) == (seen, outcome)  # repeatable for a seed
    assert run(2, lambda t: t.drop(0.3)) != (seen, outcome)


def test_duplicate_delivers_twice() -> None:
    seen, outcome = run(1, lambda t: t.duplicate(1.0, after=0.01, match=requests_only))
    casts = sorted(n for _, n in seen if n < 1000)
    assert casts == sorted(list(range(100)) * 2)
    assert outcome["ok"] == 100


def test_delay_holds_messages_back() -> None:
    seen, outcome = run(1, lambda t: t.delay(0.5, match=to_topic("svc")))
    assert seen[0][0] == pytest.approx(0.501)
    assert outcome == {"ok": 100, "timeout": 0}
    seen, outcome = run(1, lambda t: t.delay(2.0, match=to_topic("svc")))
    assert outcome["timeout"] == 100  # every call outlives its 1 s timeout


def test_heal_removes_faults() -> None:
    def configure(t: SimTransport) -> None:
        f = t.drop(1.0)
        t.heal(f)

    assert run(1, configure)[1] == {"ok": 100, "timeout": 0}
