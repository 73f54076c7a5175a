"""Services of one cloud in separate ``nimbus serve`` processes, joined over ZeroMQ."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time

import pytest

from nimbus.core.rpc import RpcEndpoint
from nimbus.core.service import Describe, Description
from nimbus.runtime import AsyncioRuntime
from nimbus.zmq_transport import ZmqTransport

from .test_serve_cli import free_port, nimbus, wait_until_up

pytestmark = pytest.mark.timeout(60)


def wait_for_line(proc: subprocess.Popen[str], deadline: float = 10.0) -> str:
    assert proc.stdout is not None
    end = time.monotonic() + deadline
    line = proc.stdout.readline()
    assert time.monotonic() < end, "no banner in time"
    if not line:
        err = proc.stderr.read() if proc.stderr else ""
        pytest.fail(f"nimbus exited with {proc.wait()}: {err}")
    return line.strip()


def test_queue_and_api_in_two_processes_answer_over_zmq() -> None:
    broker = f"tcp://127.0.0.1:{free_port()}"
    api_port = free_port()
    common = ("--transport", "zmq", "--broker", broker)
    queue = nimbus("serve", "--services", "queue", "--host", "node-q", *common)
    procs = [queue]
    try:
        assert wait_for_line(queue) == f"nimbus: message broker on {broker}"
        api = nimbus("serve", "--services", "api", "--host", "node-a",
                     "--listen", f"127.0.0.1:{api_port}", *common)
        procs.append(api)
        wait_until_up(api, f"http://127.0.0.1:{api_port}/healthz")

        async def ask() -> list[Description]:
            rt = AsyncioRuntime()
            transport = ZmqTransport(rt, broker)
            me = RpcEndpoint(rt, transport, default_timeout=2.0)
            await me.start()
            try:
                return [await me.call(topic, Describe()) for topic in ("queue", "api.node-a")]
            finally:
                await me.stop()
                await transport.close()

        queue_info, api_info = asyncio.run(ask())
        assert (queue_info.topic, queue_info.host) == ("queue", "node-q")
        assert (api_info.topic, api_info.host) == ("api", "node-a")
        assert "service.describe" in api_info.endpoints
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=5) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
