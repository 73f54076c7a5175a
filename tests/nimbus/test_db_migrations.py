"""Migrations on SQLite, PostgreSQL and MariaDB: head equals the declared schema, and an
old database upgrades without losing rows."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    inspect,
    select,
)
from sqlalchemy.engine import Connection

from nimbus import migrate
from nimbus.core.db.store import metadata
from nimbus.core.errors import DatabaseError
from nimbus.db import SqlDatabase
from tests.core.db.conftest import ServerDatabase

pytestmark = pytest.mark.timeout(120)

#: An older revision, and what the revisions after it add (see versions/000[23]_*.py).
OLD = "0001"
ADDED_TABLE, ADDED_COLUMN = "instance_faults", "details"
ADDED_INDEXES = sorted(["ix_instances_host_deleted", "ix_instances_updated_at_project_id",
                        "ix_instances_project_id_deleted", "ix_fixed_ips_virtual_interface_id"])


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database (no tables at all)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite'}"
        return
    db = ServerDatabase(request.param)
    db.create(with_tables=False)
    try:
        yield db.url
    finally:
        db.drop()


def run(url: str, fn: Any) -> Any:
    async def main() -> Any:
        db = SqlDatabase(url)
        try:
            return await fn(db)
        finally:
            await db.close()

    return asyncio.run(main())


def test_head_is_the_declared_schema(empty_url: str) -> None:
    """Fails when an area module changed tables and no revision says so: run
    ``nimbus db revision -m "what changed"`` (see core/db/alembic)."""

    async def body(db: SqlDatabase) -> list[Any]:
        assert await migrate.current(db) is None
        assert await migrate.upgrade(db) == migrate.head()
        return await migrate.drift(db)

    assert run(empty_url, body) == []


# -- an old database upgrades and keeps its rows ---------------------------------------

def _value(table: Table, column: Any, rows: dict[str, dict[str, Any]]) -> Any:
    """A plausible value for one column of the one row written to each table."""
    for fk in column.foreign_keys:
        parent = fk.column.table.name
        if parent == table.name:
            return None if column.nullable else rows[table.name].get(fk.column.name)
        return rows[parent][fk.column.name]
    tp = column.type
    if isinstance(tp, Boolean):
        return True
    if isinstance(tp, BigInteger):
        return 2**40 + 1
    if isinstance(tp, Integer):
        return 1 if column.primary_key else 3
    if isinstance(tp, Float):
        return 1.5
    if isinstance(tp, String):
        text = f"{table.name}.{column.name}"
        return text[: tp.length] if tp.length else text
    return f"{table.name}.{column.name}"


def _fill_every_table(conn: Connection) -> dict[str, dict[str, Any]]:
    """One row in every table of the schema as it is (reflected), parents first."""
    old = MetaData()
    old.reflect(conn)
    rows: dict[str, dict[str, Any]] = {}
    for table in old.sorted_tables:
        if table.name == migrate.VERSION_TABLE:
            continue
        row: dict[str, Any] = {}
        rows[table.name] = row
        for column in table.columns:
            row[column.name] = _value(table, column, rows)
        conn.execute(table.insert(), row)
    return rows


def _read_every_table(conn: Connection, names: list[str]) -> dict[str, dict[str, Any]]:
    now = MetaData()
    now.reflect(conn)
    out = {}
    for name in names:
        table = now.tables[name]
        got = conn.execute(select(table)).mappings().all()
        assert len(got) == 1, (name, got)
        out[name] = dict(got[0])
    return out


def _diff_names(diff: Any) -> tuple[str, str]:
    """(what, name) of one drift entry: an added column or index."""
    if diff[0] == "add_column":
        return diff[0], diff[3].name
    return diff[0], diff[1].name


def test_an_old_database_upgrades_without_losing_rows(empty_url: str) -> None:
    async def body(db: SqlDatabase) -> None:
        assert await migrate.upgrade(db, OLD) == OLD
        diffs = await migrate.drift(db)  # the drift check sees what 0001 lacks
        assert sorted(_diff_names(d) for d in diffs) == [
            ("add_column", ADDED_COLUMN), *(("add_index", i) for i in ADDED_INDEXES)], diffs
        async with db.engine.begin() as conn:
            columns = await conn.run_sync(
                lambda c: [col["name"] for col in inspect(c).get_columns(ADDED_TABLE)])
            assert ADDED_COLUMN not in columns
            written = await conn.run_sync(_fill_every_table)
        assert set(written) == {t.name for t in metadata.sorted_tables}

        assert await migrate.upgrade(db) == migrate.head()
        async with db.engine.begin() as conn:
            read = await conn.run_sync(_read_every_table, sorted(written))
        for name, row in written.items():
            for column, value in row.items():
                got = read[name][column]
                assert got == value or (isinstance(value, bool) and bool(got) == value), (
                    name, column, value, got)
        assert ADDED_COLUMN in read[ADDED_TABLE] and read[ADDED_TABLE][ADDED_COLUMN] is None
        assert await migrate.drift(db) == []

    run(empty_url, body)


def test_downgrade_to_base_and_up_again(empty_url: str) -> None:
    async def body(db: SqlDatabase) -> None:
        await migrate.upgrade(db)
        assert await migrate.downgrade(db, OLD) == OLD
        assert await migrate.downgrade(db, "base") is None
        async with db.engine.connect() as conn:
            assert await conn.run_sync(lambda c: migrate._tables(c)) == []
        assert await migrate.upgrade(db) == migrate.head()
        assert await migrate.drift(db) == []

    run(empty_url, body)


# -- what serve does at start ---------------------------------------------------------

def test_prepare_upgrades_sqlite_by_itself(tmp_path: Path) -> None:
    async def body(db: SqlDatabase) -> None:
        assert await migrate.prepare(db) == migrate.head()
        assert await migrate.current(db) == migrate.head()
        assert await migrate.prepare(db) == migrate.head()  # and again: nothing to do

    run(f"sqlite:///{tmp_path / 'auto.sqlite'}", body)


def test_prepare_only_checks_a_server_database() -> None:
    server = ServerDatabase("postgresql")
    server.create(with_tables=False)
    try:
        async def body(db: SqlDatabase) -> None:
            with pytest.raises(DatabaseError, match=r"at revision \(none\).*nimbus db upgrade"):
                await migrate.prepare(db)
            await migrate.upgrade(db, OLD)
            with pytest.raises(DatabaseError, match=f"at revision {OLD}, this Nimbus needs"):
                await migrate.prepare(db)
            await migrate.upgrade(db)
            assert await migrate.prepare(db) == migrate.head()

        run(server.url, body)
    finally:
        server.drop()


def test_tables_without_a_revision_are_not_migrated(tmp_path: Path) -> None:
    async def body(db: SqlDatabase) -> None:
        async with db.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        with pytest.raises(DatabaseError, match="has tables but no migration revision"):
            await migrate.upgrade(db)

    run(f"sqlite:///{tmp_path / 'made.sqlite'}", body)


def test_two_processes_upgrading_one_sqlite_file_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"

    async def main() -> list[Any]:
        dbs = [SqlDatabase(url), SqlDatabase(url)]  # a connection (and thread) each
        try:
            return list(await asyncio.gather(*(migrate.prepare(db) for db in dbs)))
        finally:
            for db in dbs:
                await db.close()

    assert asyncio.run(main()) == [migrate.head()] * 2


def test_revision_writes_what_the_scripts_lack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripts = tmp_path / "alembic"
    shutil.copytree(migrate.SCRIPTS, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    for newer in scripts.glob("versions/000[23]_*.py"):
        newer.unlink()  # as if 0002 and 0003 had not been written yet
    monkeypatch.setattr(migrate, "SCRIPTS", scripts)
    assert migrate.head() == OLD

    path = asyncio.run(migrate.autogenerate("fault details again", rev_id="0002x"))
    assert path is not None and Path(path).name == "0002x_fault_details_again.py"
    text = Path(path).read_text()
    assert f'add_column(sa.Column("{ADDED_COLUMN}"' in text and "batch_alter_table" in text
    assert all(index in text for index in ADDED_INDEXES)
    assert asyncio.run(migrate.autogenerate("nothing new")) is None

    async def body(db: SqlDatabase) -> list[Any]:
        await migrate.upgrade(db)
        return await migrate.drift(db)

    assert run(f"sqlite:///{tmp_path / 'regen.sqlite'}", body) == []


REBUILD = '''"""Rebuild a table that others refer to (what SQLite does to alter most things)."""

from alembic import op

revision = "0003x"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances", recreate="always"):
        pass


def downgrade() -> None:
    pass
'''


def test_sqlite_rebuilds_a_referenced_table_keeping_every_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripts = tmp_path / "alembic"
    shutil.copytree(migrate.SCRIPTS, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "0003x_rebuild.py").write_text(REBUILD.format(head=migrate.head()))
    head = migrate.head()
    monkeypatch.setattr(migrate, "SCRIPTS", scripts)

    async def body(db: SqlDatabase) -> None:
        await migrate.upgrade(db, head)
        async with db.engine.begin() as conn:
            written = await conn.run_sync(_fill_every_table)
        assert await migrate.upgrade(db) == "0003x"
        async with db.engine.begin() as conn:
            read = await conn.run_sync(_read_every_table, sorted(written))
            # serving connections check foreign keys again
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
        assert read["instances"]["uuid"] == written["instances"]["uuid"]
        assert await migrate.drift(db) == []

    run(f"sqlite:///{tmp_path / 'rebuild.sqlite'}", body)
