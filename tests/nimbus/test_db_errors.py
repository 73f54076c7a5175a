"""SqlDatabase when things go wrong: bad URLs, servers down, connections killed mid-run."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from nimbus.core.db.database import Tx
from nimbus.core.db.store import Store
from nimbus.core.errors import ConfigError, DatabaseUnavailable
from nimbus.db import SqlDatabase, masked
from tests.core.db.conftest import ServerDatabase

pytestmark = pytest.mark.timeout(60)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check(url: str, **kw: Any) -> None:
    async def main() -> None:
        db = SqlDatabase(url, **kw)
        try:
            await db.check()
        finally:
            await db.close()

    asyncio.run(main())


def test_masked_hides_passwords_even_in_urls_that_do_not_parse() -> None:
    assert masked("postgresql://nobody:secret@127.0.0.1:5432/test") == (
        "postgresql://nobody:***@127.0.0.1:5432/test")
    assert "secret" not in masked("postgresql://nobody:secret@127.0.0.1:notaport/test")
    assert masked("sqlite:///tmp/x.sqlite") == "sqlite:///tmp/x.sqlite"


@pytest.mark.parametrize("url", [
    "oracle://scott:secret@localhost/orcl",
    "postgresql://nobody:secret@127.0.0.1:notaport/test",
    "not a url at all",
])
def test_unusable_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        SqlDatabase(url)
    assert "secret" not in info.value.message
    assert "database URL" in info.value.message


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
def test_nothing_listening_is_unavailable_naming_the_masked_url(scheme: str) -> None:
    url = f"{scheme}://nobody:secret@127.0.0.1:{closed_port()}/test"
    with pytest.raises(DatabaseUnavailable) as info:
        check(url)
    message = info.value.message
    assert "secret" not in message and "nobody:***@127.0.0.1" in message, message
    assert message.startswith("cannot connect to database "), message


@pytest.mark.parametrize("url", [
    "postgresql://nobody:secret@127.0.0.1:5432/test",
    "mysql://nobody:secret@127.0.0.1:3306/test",
])
def test_refused_credentials_are_unavailable_naming_the_masked_url(url: str) -> None:
    with pytest.raises(DatabaseUnavailable) as info:
        check(url)
    assert "***" in info.value.message and "secret" not in info.value.message


def test_unusable_sqlite_files_are_unavailable(tmp_path: Any) -> None:
    with pytest.raises(DatabaseUnavailable, match=f"no directory {tmp_path}/no/such/dir"):
        check(f"sqlite:///{tmp_path}/no/such/dir/nimbus.sqlite")
    (tmp_path / "a-directory").mkdir()
    with pytest.raises(DatabaseUnavailable, match="unable to open database file"):
        check(f"sqlite:///{tmp_path}/a-directory")


# -- connections lost mid-run -----------------------------------------------------

@pytest.fixture(scope="module", params=["postgresql", "mariadb"])
def server_db(request: pytest.FixtureRequest) -> Iterator[ServerDatabase]:
    db = ServerDatabase(request.param)
    db.create()
    yield db
    db.drop()


BACKEND_ID = {"postgresql": "SELECT pg_backend_pid()", "mysql": "SELECT CONNECTION_ID()"}
KILL = {"postgresql": "SELECT pg_terminate_backend({})", "mysql": "KILL {}"}


async def _backend_id(db: SqlDatabase) -> int:
    async def body(tx: Tx) -> int:
        return int(await tx.scalar(text(BACKEND_ID[db.dialect])))

    return await db.transact(body)


async def _kill(server_db: ServerDatabase, dialect: str, backend: int) -> None:
    admin = create_async_engine(server_db.url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(KILL[dialect].format(backend)))
    finally:
        await admin.dispose()
    await asyncio.sleep(0.1)  # let the server finish closing the session


@pytest.mark.parametrize("pre_ping", [True, False], ids=["pre-ping", "retry-in-transact"])
def test_a_killed_connection_is_replaced(server_db: ServerDatabase, pre_ping: bool) -> None:
    """Kill the pooled connection's server session between two Store calls."""

    async def main() -> None:
        db = SqlDatabase(server_db.url, pool_size=1, pre_ping=pre_ping)
        store = Store(db)
        try:
            svc = await store.create_service(uuid=f"k-{pre_ping}", host=f"kill-{pre_ping}",
                                             binary="nimbus-compute", topic="compute",
                                             now=1.0)
            before = await _backend_id(db)
            assert await _backend_id(db) == before  # one pooled connection, reused
            await _kill(server_db, db.dialect, before)
            got = await store.get_service(svc.id)  # the next Store call still succeeds
            assert got.uuid == f"k-{pre_ping}"
            assert await _backend_id(db) != before
            await store.delete_service(svc.id, 2.0)
        finally:
            await store.close()

    asyncio.run(main())


def test_a_server_that_stays_away_becomes_unavailable_after_retries() -> None:
    async def main() -> None:
        db = SqlDatabase(f"postgresql://postgres@127.0.0.1:{closed_port()}/test",
                         reconnect_attempts=2)
        store = Store(db)
        try:
            with pytest.raises(DatabaseUnavailable, match="lost connection to database"):
                await store.list_services()
        finally:
            await store.close()

    asyncio.run(main())
