"""The real-world Database: SQLAlchemy's async engine on aiosqlite, asyncpg or aiomysql.

The URL says which: ``sqlite+aiosqlite:///path``, ``postgresql+asyncpg://...``,
``mysql+aiomysql://...`` (plain ``sqlite:///``, ``postgresql://`` and
``mysql://`` URLs are given their async driver).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.expression import Executable

from nimbus.core.db.database import Params, Row, TxBody
from nimbus.core.errors import (
    ConfigError,
    ConflictError,
    DatabaseError,
    DatabaseUnavailable,
    DuplicateError,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

#: Async drivers by URL scheme.
DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg", "mysql": "aiomysql",
           "mariadb": "aiomysql"}


def async_url(url: str) -> URL:
    """The URL with its async driver filled in; ``ConfigError`` if unusable."""
    try:
        u = make_url(url)
    except sa_exc.ArgumentError as exc:
        raise ConfigError(f"bad database URL {url!r}: {exc}") from None
    backend = u.get_backend_name()
    if backend not in DRIVERS:
        raise ConfigError(
            f"database URL {masked(u)}: unsupported database {backend!r} "
            f"(valid: sqlite, postgresql, mysql)")
    if backend == "mariadb":
        u = u.set(drivername="mysql+aiomysql")
    elif u.get_driver_name() != DRIVERS[backend]:
        u = u.set(drivername=f"{backend}+{DRIVERS[backend]}")
    return u


def masked(url: URL | str) -> str:
    """The URL as text with any password hidden."""
    u = make_url(url) if isinstance(url, str) else url
    return u.render_as_string(hide_password=True)


class _Tx:
    """A Tx over one async SQLAlchemy connection inside a transaction."""

    __slots__ = ("conn",)

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def rows(self, stmt: Executable, params: Params | None = None) -> list[Row]:
        result = await self.conn.execute(stmt, params)
        return [tuple(r) for r in result.all()]

    async def one(self, stmt: Executable, params: Params | None = None) -> Row | None:
        result = await self.conn.execute(stmt, params)
        row = result.first()
        return tuple(row) if row is not None else None

    async def scalar(self, stmt: Executable, params: Params | None = None) -> Any:
        result = await self.conn.execute(stmt, params)
        row = result.first()
        return row[0] if row is not None else None

    async def run(self, stmt: Executable, params: Params | Sequence[Params] | None = None) -> int:
        if isinstance(params, Sequence) and not params:
            return 0
        result = await self.conn.execute(stmt, params)
        return int(result.rowcount)


class SqlDatabase:
    """A Database on an async SQLAlchemy engine."""

    def __init__(self, url: str, *, echo: bool = False, reconnect_attempts: int = 3) -> None:
        self.url = async_url(url)
        self.dialect = self.url.get_backend_name()
        self.reconnect_attempts = reconnect_attempts
        kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": True}
        if self.dialect == "sqlite":
            # One connection: SQLite serializes writers anyway, and this way they queue in
            # the pool instead of failing with "database is locked".
            kwargs.update(pool_size=1, max_overflow=0)
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_recycle=3600)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)

    def __repr__(self) -> str:
        return f"<SqlDatabase {masked(self.url)}>"

    async def check(self) -> None:
        """Connect once; ``DatabaseUnavailable`` naming the (masked) URL if that fails."""
        try:
            async with self.engine.connect():
                pass
        except Exception as exc:
            raise DatabaseUnavailable(
                f"cannot connect to database {masked(self.url)}: {_reason(exc)}") from None

    async def transact(self, body: TxBody[T], *, conflict_retries: int = 0) -> T:
        conflicts = 0
        lost = 0
        while True:
            try:
                async with self.engine.begin() as conn:
                    return await body(_Tx(conn))
            except ConflictError:
                if conflicts >= conflict_retries:
                    raise
                conflicts += 1
            except sa_exc.DBAPIError as exc:
                err = translate(exc, self.url)
                if isinstance(err, DatabaseUnavailable) and lost < self.reconnect_attempts:
                    lost += 1
                    log.warning("database connection lost (%s); retrying", _reason(exc))
                    continue
                if type(err) is ConflictError and conflicts < conflict_retries:
                    conflicts += 1
                    continue
                raise err from exc
            except OSError as exc:
                if lost < self.reconnect_attempts:
                    lost += 1
                    continue
                raise DatabaseUnavailable(
                    f"database {masked(self.url)} unreachable: {exc}") from exc

    async def close(self) -> None:
        await self.engine.dispose()


def translate(exc: sa_exc.DBAPIError, url: URL) -> Exception:
    """A core error for a driver error."""
    text = _reason(exc)
    if isinstance(exc, sa_exc.IntegrityError):
        lowered = text.lower()
        if "unique" in lowered or "duplicate" in lowered:
            return DuplicateError(f"duplicate: {text}")
        return DatabaseError(f"integrity error: {text}")
    if exc.connection_invalidated or isinstance(exc, sa_exc.InterfaceError):
        return DatabaseUnavailable(f"lost connection to database {masked(url)}: {text}")
    lowered = text.lower()
    if ("deadlock" in lowered or "could not serialize" in lowered
            or "lock wait timeout" in lowered):
        return ConflictError(f"transaction conflict: {text}")
    if isinstance(exc, sa_exc.OperationalError):
        return DatabaseUnavailable(f"database {masked(url)}: {text}")
    return DatabaseError(text)


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
