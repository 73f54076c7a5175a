"""SimDatabase's raw sqlite3 path gives what a SQLAlchemy Connection would, for every shape.

Each case runs the same statements through SimDatabase (compiled once, run on
``sqlite3``) and through a plain SQLAlchemy Connection on another in-memory
SQLite, and compares what comes back.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Double,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    bindparam,
    create_engine,
    func,
    select,
    text,
    tuple_,
)
from sqlalchemy.engine import Connection

import nimbus.sim.db as sim_db_module
from nimbus.core.db.database import Tx
from nimbus.core.errors import ConflictError, DatabaseError, DuplicateError
from nimbus.sim.db import SimDatabase
from nimbus.sim.runtime import SimRuntime

extra = MetaData()
_counter = itertools.count(1)
things = Table(
    "things", extra,
    Column("id", Integer, primary_key=True),
    Column("name", String(50), nullable=False, unique=True),
    Column("size", Integer, nullable=False, default=7),
    Column("weight", Double, nullable=True),
    Column("on", Boolean, nullable=False, default=False),
    Column("doc", JSON, nullable=True),
    Column("price", Numeric(10, 2), nullable=True),
    Column("serial", Integer, nullable=True, default=lambda: next(_counter)),
    Column("touched", Integer, nullable=False, default=0, onupdate=1),
)
t = things.c

INSERT = things.insert()
INSERT_RETURNING = things.insert().returning(t.id, t.size)
BY_NAME = select(t.id, t.name, t.size, t.weight, t.doc, t.price).where(t.name == bindparam("name"))
BY_NAMES = select(t.name).where(t.name.in_(bindparam("names", expanding=True))).order_by(t.name)
TWO_LISTS = (select(t.name)
             .where(t.name.in_(bindparam("names", expanding=True)),
                    t.size.in_(bindparam("sizes", expanding=True)), t.size < bindparam("max"))
             .order_by(t.name))
PAIRS = select(t.name).where(
    tuple_(t.name, t.size).in_(bindparam("pairs", expanding=True))).order_by(t.name)
DELETE_SOME = things.delete().where(t.name.in_(bindparam("names", expanding=True)))
LIVE_SMALL = select(t.name).where(t.size < 10, t.on == bindparam("on")).order_by(t.id)
RENAME = things.update().where(t.name == bindparam("old")).values(name=bindparam("new"))
RESIZE = things.update().where(t.id == bindparam("tid")).values(size=bindparam("size"))
DELETE = things.delete().where(t.name == bindparam("name")).returning(t.id)
COUNT = select(func.count()).select_from(things)
TEXT = text("SELECT name FROM things WHERE size >= :min ORDER BY name")
LIMITED = select(t.name).order_by(t.name).limit(2)


class RawTx:
    """The same Tx interface on a plain SQLAlchemy Connection (the reference)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def rows(self, stmt: Any, params: Any = None) -> list[Any]:
        return [tuple(r) for r in self.conn.execute(stmt, params).all()]

    async def one(self, stmt: Any, params: Any = None) -> Any:
        row = self.conn.execute(stmt, params).first()
        return tuple(row) if row is not None else None

    async def scalar(self, stmt: Any, params: Any = None) -> Any:
        return self.conn.execute(stmt, params).scalar()

    async def run(self, stmt: Any, params: Any = None) -> int:
        if isinstance(params, list) and not params:
            return 0
        return int(self.conn.execute(stmt, params).rowcount)


def sim_db() -> SimDatabase:
    db = SimDatabase()
    extra.create_all(db.engine)
    return db


def on_both(body: Callable[[Any], Awaitable[Any]]) -> tuple[Any, Any]:
    """(what body returns in a SimDatabase transaction, what it returns on a Connection)."""
    global _counter
    _counter = itertools.count(1)
    db = sim_db()

    async def main() -> Any:
        return await db.transact(body)

    got = SimRuntime(0).run(main())
    db.raw.close()
    _counter = itertools.count(1)
    engine = create_engine("sqlite://")
    extra.create_all(engine)
    with engine.begin() as conn:
        want = SimRuntime(0).run(body(RawTx(conn)))
    engine.dispose()
    return got, want


async def _fill(tx: Tx) -> None:
    await tx.run(INSERT, [{"name": "a", "size": 1}, {"name": "b", "size": 20},
                          {"name": "c", "size": 3}])


def test_defaults_returning_and_executemany() -> None:
    async def body(tx: Tx) -> Any:
        await _fill(tx)
        # `size` omitted: its Python-side default (7) must be applied on the raw path too
        r1 = await tx.one(INSERT_RETURNING, {"name": "d"})
        r2 = await tx.one(INSERT_RETURNING, {"name": "e", "size": 2, "on": True})
        many = await tx.run(INSERT, [{"name": "f"}, {"name": "g"}])
        rows = await tx.rows(select(t.name, t.size, t.on, t.serial, t.touched).order_by(t.id))
        return r1, r2, many, [(n, s, bool(o), ser, tch) for n, s, o, ser, tch in rows]

    got, want = on_both(body)
    assert got == want
    assert got[0] == (4, 7) and got[2] == 2
    # callable default (serial) and scalar defaults were all applied
    assert [row[3] for row in got[3]] == [1, 2, 3, 4, 5, 6, 7]


def test_expanding_in_text_limit_and_counts() -> None:
    async def body(tx: Tx) -> Any:
        await _fill(tx)
        return (
            await tx.rows(BY_NAMES, {"names": ["c", "a", "zz"]}),
            await tx.rows(BY_NAMES, {"names": []}),
            await tx.rows(BY_NAMES, {"names": ["b"]}),
            await tx.rows(LIVE_SMALL, {"on": False}),
            await tx.rows(TEXT, {"min": 3}),
            await tx.rows(LIMITED),
            await tx.scalar(COUNT),
            await tx.one(BY_NAME, {"name": "nobody"}),
            await tx.scalar(BY_NAME, {"name": "nobody"}),
            await tx.rows(TWO_LISTS, {"names": ("a", "b", "c"), "sizes": [1, 20], "max": 50}),
            await tx.rows(TWO_LISTS, {"names": ["a", "c"], "sizes": [1, 3, 5], "max": 2}),
            await tx.rows(TWO_LISTS, {"names": ["c"], "sizes": [3], "max": 50}),
            await tx.rows(PAIRS, {"pairs": [("a", 1), ("b", 2), ("c", 3)]}),
            await tx.run(DELETE_SOME, {"names": ["a", "b", "nobody"]}),
            await tx.scalar(COUNT),
        )

    got, want = on_both(body)
    assert got == want
    assert got[0] == [("a",), ("c",)] and got[1] == [] and got[6] == 3
    assert got[9:] == ([("a",), ("b",)], [("a",)], [("c",)], [("a",), ("c",)], 2, 1)


def test_updates_onupdate_and_delete_returning() -> None:
    async def body(tx: Tx) -> Any:
        await _fill(tx)
        n1 = await tx.run(RENAME, {"old": "a", "new": "aa"})
        n0 = await tx.run(RENAME, {"old": "nobody", "new": "x"})
        n2 = await tx.run(RESIZE, [{"tid": 1, "size": 100}, {"tid": 2, "size": 200}])
        gone = await tx.rows(DELETE, {"name": "c"})
        left = await tx.rows(select(t.name, t.size, t.touched).order_by(t.id))
        return n1, n0, n2, gone, left

    got, want = on_both(body)
    assert got == want
    assert got[:4] == (1, 0, 2, [(3,)])
    assert got[4] == [("aa", 100, 1), ("b", 200, 1)]  # the onupdate default was applied


def test_types_that_need_processing() -> None:
    async def body(tx: Tx) -> Any:
        await tx.run(INSERT, {"name": "j", "doc": {"k": [1, 2]}, "price": Decimal("9.50"),
                              "weight": 3})
        return await tx.one(BY_NAME, {"name": "j"})

    got, want = on_both(body)
    assert got == want
    assert got[3:] == (3.0, {"k": [1, 2]}, Decimal("9.50"))


def test_same_insert_with_different_key_sets() -> None:
    async def body(tx: Tx) -> Any:
        await tx.run(INSERT, {"name": "x"})
        await tx.run(INSERT, {"name": "y", "size": 1})
        await tx.run(INSERT, {"size": 2, "name": "z"})
        return await tx.rows(select(t.name, t.size).order_by(t.id))

    got, want = on_both(body)
    assert got == want == [("x", 7), ("y", 1), ("z", 2)]


def run(db: SimDatabase, body: Callable[[Tx], Awaitable[Any]], **kw: Any) -> Any:
    async def main() -> Any:
        return await db.transact(body, **kw)

    return SimRuntime(0).run(main())


def test_unique_clash_is_duplicate_and_rolls_back_everything() -> None:
    db = sim_db()
    run(db, _fill)

    async def clash(tx: Tx) -> None:
        await tx.run(INSERT, {"name": "new"})
        await tx.run(INSERT, {"name": "a"})

    with pytest.raises(DuplicateError, match="UNIQUE"):
        run(db, clash)

    async def names(tx: Tx) -> Any:
        return await tx.rows(select(t.name).order_by(t.name))

    assert run(db, names) == [("a",), ("b",), ("c",)]

    async def fails_late(tx: Tx) -> None:
        await tx.run(INSERT, {"name": "half"})
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        run(db, fails_late)
    assert run(db, names) == [("a",), ("b",), ("c",)]


def test_begin_waits_for_the_first_write() -> None:
    """A body that only reads runs no BEGIN/COMMIT; one that reads, writes and fails
    leaves nothing of its write."""
    db = sim_db()
    run(db, _fill)
    executed: list[str] = []
    db.raw.set_trace_callback(executed.append)

    async def reads(tx: Tx) -> Any:
        return await tx.rows(BY_NAMES, {"names": ["a", "c"]})

    assert run(db, reads) == [("a",), ("c",)]
    assert not [sql for sql in executed if sql in ("BEGIN", "COMMIT")]

    async def reads_then_fails(tx: Tx) -> None:
        assert await tx.scalar(COUNT) == 3
        await tx.run(RESIZE, {"tid": 1, "size": 99})
        await tx.run(INSERT, {"name": "late"})
        raise RuntimeError("boom")

    executed.clear()
    with pytest.raises(RuntimeError):
        run(db, reads_then_fails)
    assert executed[0].startswith("SELECT") and executed[1] == "BEGIN"
    assert executed[-1] == "ROLLBACK"
    assert run(db, lambda tx: tx.rows(BY_NAME, {"name": "a"}))[0][2] == 1
    assert run(db, lambda tx: tx.scalar(COUNT)) == 3


def test_conflicts_are_retried() -> None:
    db = sim_db()
    tries: list[int] = []

    async def flaky(tx: Tx) -> int:
        await tx.run(INSERT, {"name": f"n{len(tries)}"})
        tries.append(1)
        if len(tries) < 3:
            raise ConflictError("generation changed")
        return int(await tx.scalar(COUNT))

    assert run(db, flaky, conflict_retries=2) == 1  # the failed attempts left nothing
    tries.clear()
    with pytest.raises(ConflictError):
        run(db, flaky, conflict_retries=1)


def test_missing_parameter_is_an_error() -> None:
    db = sim_db()

    async def body(tx: Tx) -> Any:
        return await tx.rows(BY_NAME, {})

    with pytest.raises(Exception, match="name"):
        run(db, body)


def test_a_body_that_suspends_is_refused() -> None:
    db = sim_db()
    rt = SimRuntime(0)

    async def sleeper(tx: Tx) -> None:
        await tx.run(INSERT, {"name": "s"})
        await rt.sleep(1.0)

    async def other(tx: Tx) -> None:
        await tx.run(INSERT, {"name": "o"})

    async def main() -> None:
        task = rt.spawn(db.transact(sleeper))
        await rt.sleep(0.5)
        with pytest.raises(DatabaseError, match="already open"):
            await db.transact(other)
        await task

    rt.run(main())


def test_statements_built_per_call_do_not_grow_the_cache_forever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sim_db_module, "PLAN_LIMIT", 50)
    db = sim_db()

    async def body(tx: Tx) -> None:
        for i in range(60):
            assert await tx.rows(select(t.id).where(t.size == i)) == []

    run(db, body)
    assert len(db._plans) < 50
