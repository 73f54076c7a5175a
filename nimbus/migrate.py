"""Schema migrations: alembic's scripts in ``core/db/alembic``, run on a SqlDatabase.

Alembic is synchronous; it runs here on the async engine's connection through
``AsyncConnection.run_sync``, inside one transaction (on SQLite too: the
database's connections issue their own ``BEGIN``, so a failed migration leaves
the schema as it was; MariaDB cannot roll back DDL). On SQLite a migration takes
the write lock at once and checks foreign keys at its end rather than row by row,
so that rebuilding a table others refer to (SQLite's way to alter one) keeps
every row.

* :func:`upgrade` / :func:`downgrade`: to a revision (``head`` by default);
* :func:`current` / :func:`head`: the database's revision and the scripts' newest;
* :func:`prepare`: what ``nimbus serve`` does at start: upgrade a SQLite
  database to head by itself, check that any other is at head;
* :func:`autogenerate`: write a new script with what the schema declares and
  the scripts lack (for developers: ``nimbus db revision -m MESSAGE``).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import exc as sa_exc
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

import nimbus.core.db
from nimbus.core.errors import ConfigError, ConflictError, DatabaseError
from nimbus.db import SqlDatabase, translate

#: The scripts: env.py, script.py.mako, versions/.
SCRIPTS = Path(nimbus.core.db.__file__).resolve().parent / "alembic"

VERSION_TABLE = "alembic_version"


def alembic_config(connection: Connection | None = None) -> Config:
    """An alembic Config for the scripts, carrying ``connection`` to env.py."""
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    """The newest revision of the scripts."""
    rev = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if rev is None:
        raise DatabaseError(f"no migration scripts in {SCRIPTS / 'versions'}")
    return rev


def _check_foreign_keys(conn: Connection) -> None:
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        table, _rowid, parent, _fk = broken[0]
        raise DatabaseError(
            f"migration left {len(broken)} row(s) referring to missing rows "
            f"(first: a row of {table} refers to {parent}); rolled back")


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _tables(conn: Connection) -> list[str]:
    return [t for t in inspect(conn).get_table_names() if t != VERSION_TABLE]


async def _run(db: SqlDatabase, fn: Any, *args: Any) -> Any:
    """``fn(sync_connection, *args)`` in one transaction; driver errors as core errors."""
    try:
        async with db.engine.connect() as conn:
            if db.dialect != "sqlite":
                async with conn.begin():
                    return await conn.run_sync(fn, *args)
            await conn.execution_options(sqlite_migration=True)  # see nimbus.db
            try:
                async with conn.begin():
                    result = await conn.run_sync(fn, *args)
                    await conn.run_sync(_check_foreign_keys)
                    return result
            finally:
                await conn.invalidate()  # it checks no foreign keys: never reuse it
    except CommandError as exc:
        raise ConfigError(f"database {db.masked_url}: {exc}") from None
    except (sa_exc.DBAPIError, OSError) as exc:
        raise translate(exc, db.masked_url) from None


async def current(db: SqlDatabase) -> str | None:
    """The database's revision; None for a database that was never migrated."""
    return await _run(db, _current)


def _upgrade(conn: Connection, revision: str) -> str | None:
    if _current(conn) is None and _tables(conn):
        raise DatabaseError(
            "the database has tables but no migration revision (made without "
            "`nimbus db upgrade`?); refusing to migrate it")
    command.upgrade(alembic_config(conn), revision)
    return _current(conn)


async def upgrade(db: SqlDatabase, revision: str = "head") -> str | None:
    """Upgrade the schema to ``revision``; the revision it is at afterwards."""
    return await _run(db, _upgrade, revision)


def _downgrade(conn: Connection, revision: str) -> str | None:
    command.downgrade(alembic_config(conn), revision)
    return _current(conn)


async def downgrade(db: SqlDatabase, revision: str) -> str | None:
    """Downgrade the schema to ``revision`` (``base`` drops every table)."""
    return await _run(db, _downgrade, revision)


#: Times ``prepare`` tries an SQLite upgrade that finds the file locked.
SQLITE_UPGRADE_ATTEMPTS = 6


async def prepare(db: SqlDatabase) -> str:
    """Make the schema ready to serve: upgrade SQLite to head; others must be at head."""
    want = head()
    if db.dialect == "sqlite":
        # another process upgrading the same file holds its lock longer than SQLite's
        # busy timeout on a loaded machine: wait for it, then find the schema at head
        for attempt in range(SQLITE_UPGRADE_ATTEMPTS):
            try:
                await upgrade(db, want)
                break
            except ConflictError:
                if attempt == SQLITE_UPGRADE_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.5)
        return want
    have = await current(db)
    if have != want:
        raise DatabaseError(
            f"database {db.masked_url} schema is at revision {have or '(none)'}, this "
            f"Nimbus needs {want}: run `nimbus db upgrade --url URL`")
    return want


def _compare(conn: Connection) -> list[Any]:
    from alembic.autogenerate import compare_metadata

    from nimbus.core.db.schema import metadata

    ctx = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(ctx, metadata))


async def drift(db: SqlDatabase) -> list[Any]:
    """What the database's schema lacks or has beyond the declared one (alembic diffs)."""
    return await _run(db, _compare)


def _revision(conn: Connection, message: str, rev_id: str | None) -> str | None:
    script = command.revision(alembic_config(conn), message=message, autogenerate=True,
                              rev_id=rev_id)
    if isinstance(script, list):
        script = script[0] if script else None
    if script is None:
        return None
    _tidy(script.path)
    return str(script.path)


def _tidy(path: str) -> None:
    """Format a generated script as the project's code is, if ruff is installed."""
    for args in (["format", "--quiet", path], ["check", "--fix", "--quiet", path]):
        subprocess.run([sys.executable, "-m", "ruff", *args], check=False,
                       capture_output=True)


async def autogenerate(message: str, rev_id: str | None = None) -> str | None:
    """Write a script for what the schema declares beyond the scripts' head; its path.

    Compares with an empty SQLite database upgraded to head, in a temporary directory.
    """
    with tempfile.TemporaryDirectory(prefix="nimbus-revision-") as tmp:
        db = SqlDatabase(f"sqlite:///{Path(tmp) / 'head.sqlite'}")
        try:
            scripts = ScriptDirectory.from_config(alembic_config())
            if scripts.get_current_head() is not None:
                await upgrade(db)
            return await _run(db, _revision, message, rev_id)
        finally:
            await db.close()
