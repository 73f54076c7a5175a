"""``nimbus serve`` and the CLI: in-process for usage errors, as a subprocess for the server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from nimbus.cli import main, parse_listen
from nimbus.config import NimbusConfig, load_config
from nimbus.core.errors import ConfigError
from nimbus.serve import serve, service_names

pytestmark = pytest.mark.timeout(30)

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def only_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


# -- in process -----------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.startswith("nimbus ")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "nimbus: error: the following arguments are required: COMMAND"),
        (["serve", "--bogus"], "nimbus: error: unrecognized arguments: --bogus"),
        (
            ["serve", "--listen", "nohost"],
            "nimbus: error: --listen: expected HOST:PORT, got 'nohost'",
        ),
        (
            ["serve", "--listen", "127.0.0.1:http"],
            "nimbus: error: --listen 127.0.0.1:http: expected int, got 'http'",
        ),
        (
            ["serve", "--services", "api,nope"],
            "nimbus: error: unknown service 'nope'; valid service names: api, compute, conductor, "
            "identity, image, placement, queue, scheduler",
        ),
        (
            ["serve", "--transport", "carrier-pigeon"],
            "nimbus: error: unknown transport 'carrier-pigeon'; valid transport names: local, zmq",
        ),
        (
            ["serve", "--services", "queue"],
            "nimbus: error: the 'queue' service runs the ZeroMQ broker; "
            "it needs transport 'zmq', not 'local'",
        ),
        (
            ["serve", "--set", "runtime.kind=sim"],
            "nimbus: error: runtime 'sim' is for simulations; 'nimbus serve' runs on 'asyncio'",
        ),
        (
            ["serve", "--set", "api.prot=1"],
            "nimbus: error: --set api.prot=1: [api] unknown key 'prot' "
            "(valid: listen, max_body_bytes, port, public_url)",
        ),
        (
            ["serve", "--log-level", "loud"],
            "nimbus: error: --log-level loud: unknown log level 'loud' "
            "(valid: CRITICAL, DEBUG, ERROR, INFO, WARNING)",
        ),
    ],
)
def test_usage_and_config_errors_are_one_line_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [n for n in os.environ if n.startswith("NIMBUS_")]:
        monkeypatch.delenv(name)
    assert main(argv) == 2
    assert only_line(capsys.readouterr().err) == message


def test_config_file_from_environment(
    tmp_path: object, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NIMBUS_CONFIG", "/nonexistent/nimbus.toml")
    assert main(["serve"]) == 2
    assert "config file /nonexistent/nimbus.toml: cannot read" in capsys.readouterr().err


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:8774") == ("127.0.0.1", "8774")
    assert parse_listen("[::1]:9000") == ("::1", "9000")
    assert parse_listen("9000") == ("", "9000")
    with pytest.raises(ConfigError):
        parse_listen("host:")


async def serve_once(config: NimbusConfig, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Serve until the banner is out, GET / and /healthz, then stop; the banner lines."""
    stop = asyncio.Event()
    task = asyncio.create_task(serve(config, stop=stop))
    lines: list[str] = []
    while not lines:
        assert not task.done(), task.exception()
        await asyncio.sleep(0.01)
        lines = capsys.readouterr().out.splitlines()
    api = next(line for line in lines if "Compute API" in line).split(" on ")[1]
    async with aiohttp.ClientSession() as session, session.get(api + "healthz") as resp:
        assert resp.status == 200
    stop.set()
    assert await asyncio.wait_for(task, 2.0) == 0
    return lines


def test_serve_in_process_on_a_free_port(capsys: pytest.CaptureFixture[str]) -> None:
    config = load_config(None, {}, ["api.port=0", "placement.port=0",
                                    "serve.services=api,placement"])
    lines = asyncio.run(asyncio.wait_for(serve_once(config, capsys), 10))
    assert len(lines) == 2
    assert lines[0].startswith("nimbus: Compute API on http://127.0.0.1:")
    assert lines[1].startswith("nimbus: Placement API on http://127.0.0.1:")


def test_serve_the_whole_cloud_by_default(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    config = load_config(None, {}, [f"{name}.port=0" for name in
                                    ("api", "identity", "image", "placement")]
                         + [f"serve.state_dir={tmp_path}"])
    lines = asyncio.run(asyncio.wait_for(serve_once(config, capsys), 10))
    assert [line.split(" on ")[0] for line in lines[:4]] == [
        "nimbus: Compute API", "nimbus: Image API", "nimbus: Placement API",
        "nimbus: Identity API"]
    assert lines[-1] == (f"nimbus: export OS_CLIENT_CONFIG_FILE={tmp_path}/clouds.yaml; "
                         "openstack --os-cloud nimbus-admin server list")


def test_serve_hosts_the_scheduler_beside_the_api(capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    config = load_config(None, {}, ["api.port=0", "serve.services=api,scheduler",
                                    f"serve.state_dir={tmp_path}",
                                    "filter_scheduler.host_subset_size=2"])
    lines = asyncio.run(asyncio.wait_for(serve_once(config, capsys), 10))
    assert len(lines) == 1 and "Compute API" in lines[0]  # the scheduler listens on RPC only


def test_serve_with_zmq_and_the_queue_service(capsys: pytest.CaptureFixture[str]) -> None:
    broker = f"tcp://127.0.0.1:{free_port()}"
    config = load_config(
        None,
        {},
        ["api.port=0", "transport.kind=zmq", f"transport.broker_url={broker}",
         "serve.services=api,queue"],
    )
    lines = asyncio.run(asyncio.wait_for(serve_once(config, capsys), 10))
    assert lines[0] == f"nimbus: message broker on {broker}"  # the broker starts first
    assert "Compute API" in lines[1]


def test_service_order_puts_the_broker_first() -> None:
    config = load_config(None, {}, ["serve.services=api,api", "transport.run_broker=true"])
    assert service_names(config) == ["queue", "api"]


# -- as a subprocess --------------------------------------------------------------


def nimbus(*args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIMBUS_")}
    return subprocess.Popen(
        [sys.executable, "-m", "nimbus", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.status, resp.read()


def wait_until_up(proc: subprocess.Popen[str], url: str, deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            _out, err = proc.communicate()
            pytest.fail(f"nimbus exited with {proc.returncode}: {err}")
        try:
            get(url)
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.05)
    pytest.fail(f"nimbus did not answer {url} within {deadline} s")


@pytest.fixture
def server() -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    proc = nimbus("serve", "--services", "api,placement", "--listen", f"127.0.0.1:{port}",
                  "--set", "placement.port=0")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(proc, base + "/healthz")
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@posix_only
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_answers_then_stops_on_signal(
    server: tuple[subprocess.Popen[str], str], sig: signal.Signals
) -> None:
    proc, base = server
    status, body = get(base + "/")
    assert status == 200
    doc = json.loads(body)
    assert doc["versions"][1]["id"] == "v2.1"
    assert doc["versions"][1]["links"][0]["href"] == base + "/v2.1/"

    status, body = get(base + "/metrics")
    assert status == 200
    assert b'nimbus_http_requests_total{method="GET",route="/",status="200"} 1.0' in body
    assert b"nimbus_http_request_seconds_bucket" in body

    started = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=5)
    assert time.monotonic() - started < 2.0
    assert proc.returncode == 0, err
    assert out.splitlines()[0] == f"nimbus: Compute API on {base}/"
    assert out.splitlines()[1].startswith("nimbus: Placement API on http://127.0.0.1:")
    assert "Traceback" not in err


@posix_only
def test_port_in_use_fails_with_one_line() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        proc = nimbus("serve", "--services", "api,placement", "--listen", f"127.0.0.1:{port}",
                      "--set", "placement.port=0")
        try:
            out, err = proc.communicate(timeout=10)
        finally:  # a slow start must not outlive the test (and bind the port once it is free)
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 1
    assert only_line(err) == (
        f"nimbus: error: cannot listen on 127.0.0.1:{port}: address already in use"
    )
    assert out == ""


def test_unknown_service_exits_2_listing_valid_names() -> None:
    proc = nimbus("serve", "--services", "api,schedulr", "--listen", f"127.0.0.1:{free_port()}")
    _out, err = proc.communicate(timeout=10)
    assert proc.returncode == 2
    assert only_line(err) == (
        "nimbus: error: unknown service 'schedulr'; valid service names: api, compute, conductor, "
        "identity, image, placement, queue, scheduler"
    )
