"""32 concurrent claims on one provider never allocate beyond its capacity.

Real connections on PostgreSQL (READ COMMITTED) and MariaDB (REPEATABLE READ),
one transaction per task. SQLite is left out: it serializes writers, so there
is no race to lose.

To show that the test can fail, the same race is run with the guard removed
(a Store whose generation compare-and-swap does nothing): it over-allocates.
To make the tasks' reads and writes reliably overlap, a Database wrapper hands
each transaction body a Tx that pauses before the body's first write (the real
bodies await nothing but their Tx, so without it a fast task could finish
before a slow one reads).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from typing import Any, TypeVar

import pytest
from sqlalchemy.sql.expression import Executable

from nimbus.core.db.database import Params, Row, Tx, TxBody
from nimbus.core.db.placement import InventorySpec
from nimbus.core.db.placement_allocations import Seen
from nimbus.core.db.store import Store
from nimbus.core.errors import CapacityExceeded, NimbusError
from nimbus.db import SqlDatabase

from .conftest import ServerDatabase, _empty, _server_db

T = TypeVar("T")
TASKS = 32
PROVIDER = "11111111-1111-1111-1111-111111111111"
#: (10 - 2) x 2.0 = 16 units, claimed one at a time by 32 tasks.
INVENTORY = InventorySpec(total=10, reserved=2, allocation_ratio=2.0)
CAPACITY = 16


class RacingStore(Store):
    """The real Store, with retries enough that every task gets a definite answer
    (each lost race means another claim committed, and at most CAPACITY can)."""

    claim_retries = 2 * TASKS


class UnguardedStore(RacingStore):
    """The Store without its guard: claims never compare-and-swap the generation."""

    async def _guard_providers(self, tx: Tx, seen: Seen, now: float) -> None:
        return None


class GapTx:
    """A Tx that pauses before the first write of its transaction (test-only hook)."""

    def __init__(self, tx: Tx, gap: float) -> None:
        self.tx = tx
        self.gap = gap
        self.wrote = False

    async def rows(self, stmt: Executable, params: Params | None = None) -> list[Row]:
        return await self.tx.rows(stmt, params)

    async def one(self, stmt: Executable, params: Params | None = None) -> Row | None:
        return await self.tx.one(stmt, params)

    async def scalar(self, stmt: Executable, params: Params | None = None) -> Any:
        return await self.tx.scalar(stmt, params)

    async def run(self, stmt: Executable,
                  params: Params | Sequence[Params] | None = None) -> int:
        if not self.wrote:
            self.wrote = True
            await asyncio.sleep(self.gap)
        return await self.tx.run(stmt, params)


class CountingDatabase:
    """Wraps a SqlDatabase: counts transaction attempts, optionally widens the race."""

    def __init__(self, db: SqlDatabase, gap: float | None) -> None:
        self.db = db
        self.dialect = db.dialect
        self.gap = gap
        self.attempts = 0

    async def transact(self, body: TxBody[T], *, conflict_retries: int = 0) -> T:
        async def counted(tx: Tx) -> T:
            self.attempts += 1
            return await body(GapTx(tx, self.gap) if self.gap is not None else tx)

        return await self.db.transact(counted, conflict_retries=conflict_retries)

    async def close(self) -> None:
        await self.db.close()


async def race(url: str, store_class: type[Store], gap: float | None) -> dict[str, Any]:
    """Set up the provider, run TASKS concurrent claims of 1 VCPU, report what happened."""
    sql = SqlDatabase(url, pool_size=TASKS + 4)
    await _empty(sql)
    db = CountingDatabase(sql, gap)
    store = store_class(db)
    try:
        await store.create_resource_provider(uuid=PROVIDER, name="cn", now=0.0)
        await store.set_inventories(PROVIDER, 0, {"VCPU": INVENTORY}, now=0.0)
        setup_attempts = db.attempts

        async def claim(i: int) -> None:
            await store.claim_allocations(f"00000000-0000-0000-0000-{i:012d}",
                                          {PROVIDER: {"VCPU": 1}}, project_id="p",
                                          user_id="u", now=1.0)

        results = await asyncio.gather(*(claim(i) for i in range(TASKS)),
                                       return_exceptions=True)
        attempts = db.attempts - setup_attempts
        outcomes = Counter(type(r).__name__ if r is not None else "ok" for r in results)
        unexpected = [r for r in results
                      if r is not None and not isinstance(r, CapacityExceeded)]
        return {
            "outcomes": outcomes, "unexpected": unexpected, "attempts": attempts,
            "used": (await store.usages_for_provider(PROVIDER))["VCPU"],
            "holders": len(await store.allocations_for_provider(PROVIDER)),
            "generation": (await store.get_resource_provider(PROVIDER)).generation,
        }
    finally:
        await store.close()


def check(report: dict[str, Any]) -> None:
    """What must hold after any race."""
    ok = report["outcomes"]["ok"]
    assert not report["unexpected"], report["unexpected"]
    assert report["used"] <= CAPACITY, f"over-allocated: {report}"
    assert report["used"] == ok == report["holders"], report
    # every success bumped the generation once, from 1 after the inventory was set
    assert report["generation"] == 1 + ok, report
    # retries suffice, so every slot was taken and every other task was refused
    assert ok == CAPACITY and report["outcomes"]["CapacityExceeded"] == TASKS - CAPACITY, report


@pytest.fixture(params=["postgresql", "mariadb"])
def server_url(request: pytest.FixtureRequest,
               server_databases: dict[str, ServerDatabase]) -> str:
    return _server_db(request.param, server_databases).url


def test_concurrent_claims_never_exceed_capacity(server_url: str) -> None:
    report = asyncio.run(race(server_url, RacingStore, gap=None))
    check(report)


def test_overlapping_claims_conflict_and_are_retried(server_url: str) -> None:
    report = asyncio.run(race(server_url, RacingStore, gap=0.02))
    check(report)
    # every task read before any wrote, so all but one lost the first round and retried
    assert report["attempts"] >= 2 * TASKS - 1, report


def test_without_the_guard_the_same_race_over_allocates(server_url: str) -> None:
    report = asyncio.run(race(server_url, UnguardedStore, gap=0.02))
    assert report["used"] > CAPACITY, report
    with pytest.raises(AssertionError, match="over-allocated"):
        check(report)


def test_unexpected_errors_fail_the_check() -> None:
    # the check itself: a task that failed otherwise than by capacity is reported
    report = {"outcomes": Counter(ok=CAPACITY), "unexpected": [NimbusError("boom")],
              "used": CAPACITY, "holders": CAPACITY, "generation": CAPACITY + 1}
    with pytest.raises(AssertionError, match="boom"):
        check(report)
