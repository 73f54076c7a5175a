"""Store throughput on each engine, as ratios against a baseline measured in the same run.

    nimbus bench store [--n N] [--aio-n N] [--runs R]

One *lifecycle* is five Store calls a service makes: ``create_service``,
``service_heartbeat``, ``get_service``, ``list_services(host=...)`` and
``set_service_status`` (seven SQL statements). Prints Store calls/s and
statements/s, one line each, for:

* the baseline: the Store on a SQLAlchemy sync ``Connection`` over in-memory
  SQLite (statements built once, executed through SQLAlchemy: what SimDatabase
  did before it ran statements on ``sqlite3`` itself);
* SimDatabase: each statement compiled once, run on a raw ``sqlite3``
  connection; its ratio to the baseline;
* SqlDatabase over aiosqlite on a file in a temporary directory (real I/O:
  every transaction commits to disk); its ratio to SimDatabase.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.expression import Executable

from nimbus.core.db.database import Database, Params, Row, TxBody, retryable
from nimbus.core.db.store import Store, metadata
from nimbus.core.errors import ConflictError
from nimbus.db import SqlDatabase
from nimbus.sim.db import SimDatabase
from nimbus.sim.runtime import SimRuntime

T = TypeVar("T")

#: Store calls per lifecycle.
CALLS = 5


class _ConnTx:
    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def rows(self, stmt: Executable, params: Params | None = None) -> list[Row]:
        return [tuple(r) for r in self.conn.execute(stmt, params).all()]

    async def one(self, stmt: Executable, params: Params | None = None) -> Row | None:
        row = self.conn.execute(stmt, params).first()
        return tuple(row) if row is not None else None

    async def scalar(self, stmt: Executable, params: Params | None = None) -> Any:
        row = self.conn.execute(stmt, params).first()
        return row[0] if row is not None else None

    async def run(self, stmt: Executable, params: Params | Sequence[Params] | None = None) -> int:
        if isinstance(params, Sequence) and not params:
            return 0
        return int(self.conn.execute(stmt, params).rowcount)


class ConnectionDatabase:
    """The baseline: a Database on one SQLAlchemy sync Connection to in-memory SQLite."""

    dialect = "sqlite"

    def __init__(self) -> None:
        self.engine = create_engine("sqlite://", poolclass=StaticPool)

        @event.listens_for(self.engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute("PRAGMA foreign_keys=ON")

        metadata.create_all(self.engine)
        self.conn = self.engine.connect()

    async def transact(self, body: TxBody[T], *, conflict_retries: int = 0) -> T:
        attempts = 0
        while True:
            try:
                with self.conn.begin():
                    return await body(_ConnTx(self.conn))
            except ConflictError as exc:
                if not retryable(exc) or attempts >= conflict_retries:
                    raise
                attempts += 1

    async def close(self) -> None:
        self.conn.close()
        self.engine.dispose()


async def lifecycles(store: Store, n: int, tag: str) -> float:
    """Run ``n`` lifecycles; Store calls per second."""
    t0 = time.perf_counter()
    for i in range(n):
        host = f"{tag}-h{i}"
        svc = await store.create_service(uuid=f"{tag}-{i}", host=host, binary="nimbus-compute",
                                         topic="compute", now=float(i))
        await store.service_heartbeat(svc.id, float(i) + 1.0)
        await store.get_service(svc.id)
        await store.list_services(host=host)
        await store.set_service_status(svc.id, disabled=True, reason="bench",
                                       forced_down=False, now=float(i) + 2.0)
    return CALLS * n / (time.perf_counter() - t0)


def statements_per_lifecycle() -> float:
    """Counted on SimDatabase, which counts what it runs (the same Store code everywhere)."""
    db = SimDatabase()
    SimRuntime(0).run(lifecycles(Store(db), 10, "count"))
    return db.statements / 10


def in_sim(make: Callable[[], Database], n: int) -> float:
    """Calls/s of a synchronous Database, driven by SimRuntime as a simulation would."""
    store = Store(make())

    async def main() -> float:
        await lifecycles(store, min(n, 200), "warm")
        rate = await lifecycles(store, n, "run")
        await store.close()
        return rate

    return SimRuntime(0).run(main())


def on_aiosqlite(n: int) -> float:
    with tempfile.TemporaryDirectory(prefix="nimbus-bench-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite'}"

        async def main() -> float:
            db = SqlDatabase(url)
            async with db.engine.begin() as conn:
                await conn.run_sync(metadata.create_all)
            store = Store(db)
            try:
                await lifecycles(store, min(n, 100), "warm")
                return await lifecycles(store, n, "run")
            finally:
                await store.close()

        return asyncio.run(main())


def best_of(runs: int, fn: Callable[[], float]) -> float:
    """The best rate of several runs (the least disturbed by the rest of the machine)."""
    return max(fn() for _ in range(runs))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="nimbus bench store", description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=5_000, help="lifecycles per in-memory run")
    p.add_argument("--aio-n", type=int, default=1_000, help="lifecycles per aiosqlite run")
    p.add_argument("--runs", type=int, default=3, help="runs of each; the best counts")
    a = p.parse_args(argv)

    per = statements_per_lifecycle() / CALLS
    base = best_of(a.runs, lambda: in_sim(ConnectionDatabase, a.n))
    sim = best_of(a.runs, lambda: in_sim(SimDatabase, a.n))
    aio = best_of(a.runs, lambda: on_aiosqlite(a.aio_n))
    print(f"lifecycle: {CALLS} Store calls, {per * CALLS:.0f} statements")
    print(f"SQLAlchemy Connection, SQLite memory (baseline) {base:9,.0f} calls/s"
          f" {base * per:9,.0f} statements/s")
    print(f"SimDatabase, raw sqlite3 memory                 {sim:9,.0f} calls/s"
          f" {sim * per:9,.0f} statements/s   ratio to baseline {sim / base:.2f}")
    print(f"SqlDatabase, aiosqlite file                     {aio:9,.0f} calls/s"
          f" {aio * per:9,.0f} statements/s   ratio to SimDatabase {aio / sim:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
