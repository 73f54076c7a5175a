"""The real-world Database: SQLAlchemy's async engine on aiosqlite, asyncpg or aiomysql.

The URL says which: ``sqlite+aiosqlite:///path``, ``postgresql+asyncpg://...``,
``mysql+aiomysql://...`` (plain ``sqlite:///``, ``postgresql://`` and
``mysql://`` URLs are given their async driver).

What can go wrong, and what the caller sees (every message names the URL with
its password masked):

* a URL that cannot be parsed or names an unsupported database: ``ConfigError``
  from the constructor;
* a database that is down or refuses us (wrong host, port, password, database
  name): ``DatabaseUnavailable`` from :meth:`SqlDatabase.check`, which whoever
  starts a process calls first;
* a connection lost while running (the server restarted, an administrator
  killed the session): pooled connections are pinged before use, and a
  transaction that fails because its connection died is re-run on a fresh one,
  ``reconnect_attempts`` times with a growing pause, before it becomes
  ``DatabaseUnavailable``. A body is only re-run from the start; if the
  connection died during COMMIT the outcome is unknown to us, so Store writes
  are written to be safe to repeat (unique keys turn a repeated insert into
  ``DuplicateError`` rather than a second row);
* a transaction that fails for any reason is rolled back: no partial rows.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Insert, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.expression import Executable

from nimbus.core.db.database import Params, Row, TxBody, retryable
from nimbus.core.errors import (
    ConfigError,
    ConflictError,
    DatabaseError,
    DatabaseUnavailable,
    DuplicateError,
)

if TYPE_CHECKING:
    from nimbus.config import NimbusConfig

T = TypeVar("T")
log = logging.getLogger(__name__)

#: Async drivers by URL scheme.
DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg", "mysql": "aiomysql",
           "mariadb": "aiomysql"}

#: The SQLite file in the state directory when no URL is configured.
DEFAULT_FILE = "nimbus.sqlite"

#: Seconds to wait before each reconnection attempt.
RECONNECT_PAUSES = (0.05, 0.25, 1.0, 2.0)

#: MySQL/MariaDB client error codes that mean the connection is gone or never came.
_MYSQL_GONE = {2002, 2003, 2006, 2013, 2055, 1927}  # 1927: connection was killed

_PASSWORD = re.compile(r"(://[^:/@]*:)[^@/]*@")


def async_url(url: str) -> URL:
    """The URL with its async driver filled in; ``ConfigError`` if unusable."""
    try:
        u = make_url(url)
    except (sa_exc.ArgumentError, ValueError) as exc:
        raise ConfigError(f"bad database URL {masked(url)}: {exc}") from None
    backend = u.get_backend_name()
    if backend not in DRIVERS:
        raise ConfigError(
            f"database URL {masked(u)}: unsupported database {backend!r} "
            f"(valid: sqlite, postgresql, mysql, mariadb)")
    if backend == "mariadb":
        u = u.set(drivername="mysql+aiomysql")
    elif u.get_driver_name() != DRIVERS[backend]:
        u = u.set(drivername=f"{backend}+{DRIVERS[backend]}")
    return u


def masked(url: URL | str) -> str:
    """The URL as text with any password replaced by ``***`` (even if it does not parse)."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (sa_exc.ArgumentError, ValueError):
        return _PASSWORD.sub(r"\1***@", url)


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
        if isinstance(params, Sequence):
            if not params:
                return 0
            if self.conn.dialect.name == "postgresql" and not _plain_insert(stmt):
                # asyncpg does not count the rows of an executemany: one at a time
                total = 0
                for one in params:
                    total += int((await self.conn.execute(stmt, one)).rowcount)
                return total
            result = await self.conn.execute(stmt, params)
            return int(result.rowcount) if result.rowcount >= 0 else len(params)
        result = await self.conn.execute(stmt, params)
        return int(result.rowcount)


def _plain_insert(stmt: Executable) -> bool:
    """An INSERT ... VALUES that writes exactly one row per parameter set (or raises)."""
    return (isinstance(stmt, Insert) and stmt.select is None
            and stmt._post_values_clause is None)


class SqlDatabase:
    """A Database on an async SQLAlchemy engine."""

    def __init__(
        self, url: str, *, echo: bool = False, reconnect_attempts: int = 3,
        pool_size: int = 10, connect_timeout: float = 10.0, pre_ping: bool = True,
    ) -> None:
        self.url = async_url(url)
        #: The URL as configured, password masked: what messages name.
        self.masked_url = masked(url)
        self.dialect = self.url.get_backend_name()
        self.reconnect_attempts = reconnect_attempts
        self.connect_timeout = connect_timeout
        kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": pre_ping}
        if self.dialect == "sqlite":
            # One connection: SQLite serializes writers anyway, and this way they queue in
            # the pool instead of failing with "database is locked". A file does not drop
            # connections: no ping (it cost a third of each transaction's time).
            kwargs.update(pool_size=1, max_overflow=0, pool_pre_ping=False,
                          connect_args={"timeout": connect_timeout})
        else:
            kwargs.update(pool_size=pool_size, max_overflow=2 * pool_size, pool_recycle=3600)
            key = "timeout" if self.dialect == "postgresql" else "connect_timeout"
            kwargs["connect_args"] = {key: connect_timeout}
        try:
            self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        except (sa_exc.ArgumentError, ImportError, TypeError) as exc:
            raise ConfigError(f"database URL {self.masked_url}: {exc}") from None
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_connect)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)

    def __repr__(self) -> str:
        return f"<SqlDatabase {self.masked_url}>"

    async def check(self) -> None:
        """Connect once; ``DatabaseUnavailable`` naming the (masked) URL if that fails."""
        where = f"cannot connect to database {self.masked_url}"
        folder = Path(self.url.database).parent if self.dialect == "sqlite" and \
            self.url.database not in (None, "", ":memory:") else None
        if folder is not None and not folder.is_dir():
            raise DatabaseUnavailable(f"{where}: no directory {folder}")
        try:
            async with asyncio.timeout(self.connect_timeout + 1.0), self.engine.connect():
                pass
        except TimeoutError:
            raise DatabaseUnavailable(
                f"{where}: no answer within {self.connect_timeout:g} s") from None
        except Exception as exc:
            if self.dialect == "sqlite":
                # aiosqlite stops its thread after a failed connect without waiting for it;
                # let it finish while the event loop still runs
                await asyncio.sleep(0.05)
            raise DatabaseUnavailable(f"{where}: {_reason(exc)}") from None

    async def transact(self, body: TxBody[T], *, conflict_retries: int = 0) -> T:
        """Run ``body`` in a transaction; see :class:`nimbus.core.db.database.Database`."""
        conflicts = 0
        lost = 0
        while True:
            try:
                async with self.engine.begin() as conn:
                    return await body(_Tx(conn))
            except ConflictError as exc:
                if not retryable(exc) or conflicts >= conflict_retries:
                    raise
                conflicts += 1
            except (sa_exc.DBAPIError, OSError) as exc:
                err = translate(exc, self.masked_url)
                if isinstance(err, DatabaseUnavailable) and lost < self.reconnect_attempts:
                    pause = RECONNECT_PAUSES[min(lost, len(RECONNECT_PAUSES) - 1)]
                    lost += 1
                    log.warning("database %s: %s; retrying in %g s (attempt %d of %d)",
                                self.masked_url, _reason(exc), pause, lost,
                                self.reconnect_attempts)
                    await asyncio.sleep(pause)
                    continue
                if retryable(err) and conflicts < conflict_retries:
                    conflicts += 1
                    continue
                raise err from exc

    async def close(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


def database_url(config: NimbusConfig) -> str:
    """The configured database URL; the default is ``nimbus.sqlite`` in the state directory."""
    if config.database.url.strip():
        return config.database.url.strip()
    return f"sqlite:///{Path(config.serve.state_dir).expanduser() / DEFAULT_FILE}"


def open_database(config: NimbusConfig) -> SqlDatabase:
    """A SqlDatabase for the configuration (not yet connected: call ``check()``).

    For the default URL the state directory is created if missing.
    """
    url = database_url(config)
    if not config.database.url.strip():
        state = Path(config.serve.state_dir).expanduser()
        try:
            state.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"[serve] state_dir {state}: cannot create: {exc.strerror or exc}") from None
    db = config.database
    return SqlDatabase(url, pool_size=db.pool_size, connect_timeout=db.connect_timeout,
                       reconnect_attempts=db.reconnect_attempts)


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # The driver would begin a transaction only before the first write, leaving reads
    # (and DDL) outside it; we issue BEGIN ourselves (see _sqlite_begin) instead.
    dbapi_conn.isolation_level = None
    # Foreign keys as on the other engines; WAL lets readers of other processes (the
    # `nimbus db version` of an operator) proceed while a writer commits, and with it
    # synchronous=NORMAL is still safe against a crash of the process.
    cur = dbapi_conn.cursor()
    for pragma in ("foreign_keys=ON", "journal_mode=WAL", "synchronous=NORMAL"):
        cur.execute(f"PRAGMA {pragma}")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # execution_options(sqlite_migration=True), for migrations: take the write lock at once
    # (two processes upgrading one file queue instead of failing halfway), and check foreign
    # keys only at the end (nimbus.migrate does), since rebuilding a table that others refer
    # to drops it first; the connection is discarded afterwards.
    if conn.get_execution_options().get("sqlite_migration", False):
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


def is_disconnect(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection is gone or could not be made (worth a retry)."""
    if isinstance(exc, OSError):
        return True
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    if isinstance(orig, OSError):
        return True
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in _MYSQL_GONE:
        return True
    text = _reason(exc).lower()
    return any(s in text for s in (
        "connection is closed", "connection was closed", "terminating connection",
        "server closed the connection", "connection reset", "connection refused",
        "connect call failed", "lost connection", "server has gone away",
        "cannot connect", "can't connect"))


def translate(exc: BaseException, url: URL | str) -> Exception:
    """A core error for a driver error."""
    text = _reason(exc)
    if is_disconnect(exc):
        return DatabaseUnavailable(f"lost connection to database {masked(url)}: {text}")
    lowered = text.lower()
    if isinstance(exc, sa_exc.IntegrityError):
        if "unique" in lowered or "duplicate" in lowered:
            return DuplicateError(f"duplicate: {text}")
        return DatabaseError(f"integrity error: {text}")
    if ("deadlock" in lowered or "could not serialize" in lowered
            or "lock wait timeout" in lowered or "database is locked" in lowered):
        return ConflictError(f"transaction conflict: {text}")
    return DatabaseError(f"database {masked(url)}: {text}")


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
