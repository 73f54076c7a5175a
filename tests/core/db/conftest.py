"""The Store under every engine: SQLite file, sim in-memory, PostgreSQL, MariaDB.

Each test session (each xdist worker) makes its own uniquely named database on
the PostgreSQL and MariaDB servers and drops it at the end; each test starts
from empty tables.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from nimbus.core.db.store import Store, metadata
from nimbus.db import SqlDatabase
from nimbus.sim.db import SimDatabase
from nimbus.sim.runtime import SimRuntime

PG_SERVER = os.environ.get("NIMBUS_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")
MARIA_SERVER = os.environ.get("NIMBUS_TEST_MARIADB", "mysql+aiomysql://root@127.0.0.1:3306")
ENGINES = ["sqlite", "sim", "postgresql", "mariadb"]


async def _admin(server_url: str, maintenance_db: str, sql: str) -> None:
    engine = create_async_engine(f"{server_url}/{maintenance_db}", isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


class ServerDatabase:
    """A uniquely named database on a server, with the schema, for one test session."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.name = f"nimbus_test_{uuid.uuid4().hex[:12]}"
        if kind == "postgresql":
            self.server, self.maintenance = PG_SERVER, "test"
        else:
            self.server, self.maintenance = MARIA_SERVER, "test"
        self.url = f"{self.server}/{self.name}"

    def create(self, *, with_tables: bool = True) -> None:
        """Create the database, with every table unless ``with_tables`` is False."""
        asyncio.run(_admin(self.server, self.maintenance, f"CREATE DATABASE {self.name}"))
        if not with_tables:
            return

        async def schema() -> None:
            engine = create_async_engine(self.url)
            async with engine.begin() as conn:
                await conn.run_sync(metadata.create_all)
            await engine.dispose()

        asyncio.run(schema())

    def drop(self) -> None:
        asyncio.run(_admin(self.server, self.maintenance, f"DROP DATABASE IF EXISTS {self.name}"))


@pytest.fixture(scope="session")
def server_databases() -> Iterator[dict[str, ServerDatabase]]:
    made: dict[str, ServerDatabase] = {}
    yield made
    for db in made.values():
        db.drop()


def _server_db(kind: str, made: dict[str, ServerDatabase]) -> ServerDatabase:
    if kind not in made:
        db = ServerDatabase(kind)
        db.create()
        made[kind] = db
    return made[kind]


async def _empty(db: SqlDatabase) -> None:
    async with db.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            await conn.execute(table.delete())


Body = Callable[[Store], Awaitable[Any]]


class StoreRunner:
    """Runs ``async def body(store)`` on a fresh Store of one engine."""

    def __init__(self, kind: str, tmp_path: Path, made: dict[str, ServerDatabase]) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.made = made

    def url(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite+aiosqlite:///{self.tmp_path / 'nimbus.sqlite'}"
        return _server_db(self.kind, self.made).url

    def __call__(self, body: Body) -> Any:
        if self.kind == "sim":
            rt = SimRuntime(0)
            store = Store(SimDatabase())

            async def sim_main() -> Any:
                try:
                    return await body(store)
                finally:
                    await store.close()

            return rt.run(sim_main())

        url = self.url()

        async def main() -> Any:
            db = SqlDatabase(url)
            if self.kind == "sqlite":
                async with db.engine.begin() as conn:
                    await conn.run_sync(metadata.create_all)
            else:
                await _empty(db)
            store = Store(db)
            try:
                return await body(store)
            finally:
                await store.close()

        return asyncio.run(main())


@pytest.fixture(params=ENGINES)
def run_store(
    request: pytest.FixtureRequest, tmp_path: Path, server_databases: dict[str, ServerDatabase]
) -> StoreRunner:
    """Run a Store body on each engine in turn."""
    return StoreRunner(request.param, tmp_path, server_databases)
