"""``nimbus db ...`` and the database part of ``nimbus serve``: upgrades, versions, and one-line
errors that never show a password."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nimbus import cli, migrate
from nimbus import serve as serve_module
from nimbus.cli import main
from nimbus.config import NimbusConfig, load_config
from nimbus.core.db.store import Store
from nimbus.core.service import Service, ServiceContext
from nimbus.db import database_url
from nimbus.serve import needs_store, serve

pytestmark = pytest.mark.timeout(60)

BAD_PASSWORD = "postgresql://nobody:secret@127.0.0.1:5432/test"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def only_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture(autouse=True)
def _no_nimbus_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("NIMBUS_")]:
        monkeypatch.delenv(name)
    # main() in process: leave the test process's logging alone
    monkeypatch.setattr(cli, "configure_logging", lambda config: None)


def in_process(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """(exit status, stdout + stderr) of ``nimbus ARGV`` run in this process."""
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out + err


def nimbus(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIMBUS_")}
    return subprocess.run([sys.executable, "-m", "nimbus", *args], capture_output=True,
                          text=True, env=env, timeout=30)


def test_upgrade_version_downgrade(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    head = migrate.head()
    assert main(["db", "version", "--url", url]) == 0
    assert capsys.readouterr().out == f"current: (none)\nhead: {head}\n"
    assert main(["db", "upgrade", "--url", url, "0001"]) == 0
    assert capsys.readouterr().out == f"nimbus: database {url} upgraded from (none) to 0001\n"
    assert main(["db", "upgrade", "--url", url]) == 0
    assert capsys.readouterr().out == f"nimbus: database {url} upgraded from 0001 to {head}\n"
    assert main(["db", "upgrade", "--url", url]) == 0
    assert capsys.readouterr().out == f"nimbus: database {url} already at {head}\n"
    assert main(["db", "version", "--url", url]) == 0
    assert capsys.readouterr().out == f"current: {head}\nhead: {head}\n"
    assert main(["db", "downgrade", "--url", url, "base"]) == 0
    assert capsys.readouterr().out == (
        f"nimbus: database {url} downgraded from {head} to (none)\n")


def test_url_from_config_and_default_in_the_state_dir(tmp_path: Path) -> None:
    cfg = load_config(None, {}, [f"serve.state_dir={tmp_path}"])
    assert database_url(cfg) == f"sqlite:///{tmp_path / 'nimbus.sqlite'}"
    cfg = load_config(None, {"NIMBUS_DATABASE__URL": "postgresql://u@h/db"}, [])
    assert database_url(cfg) == "postgresql://u@h/db"
    # the test session keeps the default state directory out of the user's home
    assert not NimbusConfig().serve.state_dir.startswith(os.path.expanduser("~/.local"))


def test_db_commands_use_the_default_database(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    assert main(["db", "upgrade", "--set", f"serve.state_dir={tmp_path / 'state'}"]) == 0
    assert (tmp_path / "state" / "nimbus.sqlite").exists()
    assert "upgraded from (none)" in capsys.readouterr().out


def serve_argv(url: str) -> list[str]:
    return ["serve", "--set", f"database.url={url}", "--listen", "127.0.0.1:0"]


@pytest.mark.parametrize("argv", [
    ["db", "upgrade", "--url", BAD_PASSWORD],
    ["db", "version", "--url", BAD_PASSWORD],
    serve_argv(BAD_PASSWORD),
], ids=["db-upgrade", "db-version", "serve"])
def test_bad_credentials_exit_1_with_one_masked_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    if argv[0] == "serve":  # as users run it: a process of its own
        proc = nimbus(*argv)
        code, text = proc.returncode, proc.stdout + proc.stderr
    else:
        code, text = in_process(argv, capsys)
    assert code == 1, text
    assert only_line(text).startswith(
        "nimbus: error: cannot connect to database "
        "postgresql://nobody:***@127.0.0.1:5432/test: "), text
    assert "secret" not in text


@pytest.mark.parametrize("command", ["db upgrade", "serve"])
def test_a_database_that_is_down_exits_1_with_one_line(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"mysql://root:secret@127.0.0.1:{closed_port()}/test"
    if command == "serve":
        proc = nimbus(*serve_argv(url))
        code, text = proc.returncode, proc.stdout + proc.stderr
    else:
        code, text = in_process(["db", "upgrade", "--url", url], capsys)
    assert code == 1, text
    line = only_line(text)
    assert "cannot connect to database mysql://root:***@127.0.0.1:" in line
    assert "secret" not in line and "Traceback" not in text


@pytest.mark.parametrize(("argv", "message"), [
    (["db", "upgrade", "--url", "oracle://scott:tiger@db/orcl"],
     "nimbus: error: database URL oracle://scott:***@db/orcl: unsupported database 'oracle' "
     "(valid: sqlite, postgresql, mysql, mariadb)"),
    (["db", "upgrade", "--url", "postgresql://u:pw@host:port/db"],
     "nimbus: error: bad database URL postgresql://u:***@host:port/db: invalid literal for "
     "int() with base 10: 'port'"),
    (["db", "downgrade"], "nimbus: error: the following arguments are required: revision"),
])
def test_usage_errors_exit_2(argv: list[str], message: str,
                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert only_line(capsys.readouterr().err) == message


def test_unknown_revision_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade", "--url", f"sqlite:///{tmp_path / 'x.sqlite'}", "0999"]) == 2
    assert "Can't locate revision identified by '0999'" in only_line(capsys.readouterr().err)


def test_serve_refuses_a_server_database_that_is_not_at_head() -> None:
    from tests.core.db.conftest import ServerDatabase

    server = ServerDatabase("postgresql")
    server.create(with_tables=False)
    try:
        proc = nimbus("serve", "--set", f"database.url={server.url}", "--listen", "127.0.0.1:0")
        assert proc.returncode == 1
        assert only_line(proc.stderr).endswith(
            f"this Nimbus needs {migrate.head()}: run `nimbus db upgrade --url URL`")
    finally:
        server.drop()


# -- serve hands the Store to its services and closes it ---------------------------------

class Probe(Service):
    """Records the Store it was given and uses it once."""

    topic = "probe"
    seen: list[Any] = []

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)

    async def on_start(self) -> None:
        assert self.ctx.store is not None
        Probe.seen.append(self.ctx.store)
        Probe.seen.append(await self.ctx.store.list_services())


def test_serve_builds_the_store_upgrades_sqlite_and_closes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serve_module, "SERVICES", serve_module.SERVICES.with_entries(
        {"probe": lambda ctx, cfg, cloud: Probe(ctx)}))
    closed: list[Store] = []
    monkeypatch.setattr(Store, "close", lambda self: _record_close(self, closed))
    Probe.seen = []
    url = f"sqlite:///{tmp_path / 'served.sqlite'}"
    config = load_config(None, {}, ["serve.services=probe", f"database.url={url}"])

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(serve(config, stop=stop))
        while not Probe.seen and not task.done():
            await asyncio.sleep(0.01)
        stop.set()
        assert await asyncio.wait_for(task, 5) == 0

    asyncio.run(run())
    store, services = Probe.seen
    assert services == [] and closed == [store]
    assert main(["db", "version", "--url", url]) == 0  # upgraded by serve, to head


async def _record_close(store: Store, closed: list[Store]) -> None:
    closed.append(store)
    await store.db.close()


def test_only_stateful_services_open_a_database() -> None:
    assert needs_store(load_config(None, {}, ["serve.services=api"]))
    assert not needs_store(load_config(None, {}, ["serve.services=queue",
                                                  "transport.kind=zmq"]))
