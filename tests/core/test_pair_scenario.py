"""The pair scenario gives the same results in simulation and across OS processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from nimbus.core.service import ServiceContext, ServiceHost
from nimbus.runtime import AsyncioRuntime
from nimbus.sim.runtime import SimRuntime
from nimbus.sim.transport import SimTransport, constant_latency

from .pair_scenario import ALPHA_HOST, BETA_HOST, Alpha, Beta

N = 20


def expected() -> dict:
    return {
        "pongs": [2 * i for i in range(N)],
        "host_pong": [42, BETA_HOST],
        "timeouts": ["timeout"] * 3,
        "gone": "timeout",
        "errors": [["ApiError", f"refused: {w}", 409] for w in "abc"],
        "beta": {"notes": sorted(f"note-{i}" for i in range(N)), "announces": list(range(N))},
        "alpha_announces": list(range(N)),
    }


def run_in_sim(seed: int) -> tuple[dict, float]:
    rt = SimRuntime(seed)
    transport = SimTransport(rt, latency=constant_latency(0.0005))

    async def main() -> dict:
        alpha = Alpha(ServiceContext(rt, transport, ALPHA_HOST))
        beta = Beta(ServiceContext(rt, transport, BETA_HOST))
        host = ServiceHost([beta, alpha])
        await host.start()
        try:
            return await alpha.run_scenario(N)
        finally:
            await host.stop()

    result = rt.run(main())
    return result, rt.now()


def test_pair_in_simulation_is_deterministic() -> None:
    first, t1 = run_in_sim(7)
    second, t2 = run_in_sim(7)
    assert first == expected()
    assert first == second and t1 == t2
    # virtual time: 4 timeouts of 0.2 s plus ~70 round trips of 1 ms; no real waiting
    assert 0.8 < t1 < 1.0


def test_pair_across_two_processes_over_zmq() -> None:
    from nimbus import zmq_transport
    broker = zmq_transport.ZmqBroker("tcp://127.0.0.1:*")
    broker.start()
    script = Path(__file__).with_name("pair_scenario.py")
    child = subprocess.Popen(
        [sys.executable, str(script), broker.url],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        rt = AsyncioRuntime()

        async def main() -> dict:
            transport = zmq_transport.ZmqTransport(rt, broker.url)
            alpha = Alpha(ServiceContext(rt, transport, ALPHA_HOST))
            await alpha.start()
            try:
                return await alpha.run_scenario(N)
            finally:
                await alpha.stop()
                await transport.close()

        real = rt.run(main())
        assert real == expected()
        assert real == run_in_sim(7)[0]
        child.stdin.close()  # type: ignore[union-attr]
        assert child.wait(timeout=10) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        broker.stop()
