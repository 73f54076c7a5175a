"""The Database contract itself, on every engine: Tx results, atomicity, retries, errors."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import bindparam, func, select

from nimbus.core.db.database import Tx
from nimbus.core.db.services import services
from nimbus.core.db.store import Store
from nimbus.core.errors import (
    ConflictError,
    DuplicateError,
    GenerationConflict,
    InUse,
    StaleVersionError,
    UnexpectedStateError,
)

from .conftest import StoreRunner

c = services.c
INSERT = services.insert()
HOSTS = select(c.host).order_by(c.host)
COUNT = select(func.count()).select_from(services)
BY_HOST = select(c.id, c.host, c.disabled).where(c.host == bindparam("host"))
BY_HOSTS = select(c.host).where(c.host.in_(bindparam("hosts", expanding=True))).order_by(c.host)
RETIRE = services.update().where(c.host == bindparam("h")).values(disabled=True)


def row(host: str, binary: str = "nimbus-compute") -> dict[str, Any]:
    return {"uuid": f"{host}-{binary}", "host": host, "binary": binary, "topic": "compute",
            "disabled": False, "forced_down": False, "deleted": 0}


async def hosts(store: Store) -> list[str]:
    async def body(tx: Tx) -> list[str]:
        return [r[0] for r in await tx.rows(HOSTS)]

    return await store.db.transact(body)


def test_tx_results(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        async def work(tx: Tx) -> None:
            assert await tx.run(INSERT, [row("a"), row("b"), row("c")]) == 3
            assert await tx.run(INSERT, []) == 0
            assert await tx.scalar(COUNT) == 3
            got = await tx.one(BY_HOST, {"host": "b"})
            assert got is not None and got[1] == "b" and not got[2]
            assert await tx.one(BY_HOST, {"host": "zz"}) is None
            assert await tx.scalar(BY_HOST, {"host": "zz"}) is None
            assert await tx.rows(BY_HOSTS, {"hosts": ["c", "a", "q"]}) == [("a",), ("c",)]
            assert await tx.rows(BY_HOSTS, {"hosts": []}) == []
            assert await tx.run(RETIRE, {"h": "a"}) == 1
            assert await tx.run(RETIRE, {"h": "nobody"}) == 0
            assert await tx.run(RETIRE, [{"h": "b"}, {"h": "c"}]) == 2

        await store.db.transact(work)

    run_store(body)


def test_a_failed_transaction_leaves_no_partial_rows(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        async def seed(tx: Tx) -> None:
            await tx.run(INSERT, row("a"))

        await store.db.transact(seed)

        async def fails_late(tx: Tx) -> None:
            await tx.run(INSERT, [row("b"), row("c")])
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            await store.db.transact(fails_late)
        assert await hosts(store) == ["a"]

        async def clashes(tx: Tx) -> None:
            await tx.run(INSERT, row("d"))
            await tx.run(INSERT, row("a"))  # same (host, binary, deleted)

        with pytest.raises(DuplicateError):
            await store.db.transact(clashes)
        assert await hosts(store) == ["a"]

        async def clashes_in_many(tx: Tx) -> None:
            await tx.run(INSERT, [row("e"), row("f"), row("e")])

        with pytest.raises(DuplicateError):
            await store.db.transact(clashes_in_many)
        assert await hosts(store) == ["a"]

    run_store(body)


def test_conflicts_rerun_the_body_from_scratch(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        attempts: list[int] = []

        async def flaky(tx: Tx) -> int:
            attempts.append(1)
            await tx.run(INSERT, row(f"try{len(attempts)}"))
            if len(attempts) < 3:
                raise ConflictError("generation changed")
            return int(await tx.scalar(COUNT))

        assert await store.db.transact(flaky, conflict_retries=5) == 1
        assert await hosts(store) == ["try3"]
        attempts.clear()
        with pytest.raises(ConflictError):
            await store.db.transact(flaky, conflict_retries=1)
        assert len(attempts) == 2 and await hosts(store) == ["try3"]

    run_store(body)


def test_only_retryable_conflicts_rerun_the_body(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        attempts: list[int] = []
        finals: list[ConflictError] = [
            DuplicateError("taken"), UnexpectedStateError("i1", "task_state", "spawning", [None]),
            InUse("in use"), GenerationConflict("generation 3 is stale")]
        for final in finals:
            assert not final.retryable
            attempts.clear()

            async def refuses(tx: Tx, final: ConflictError = final) -> None:
                attempts.append(1)
                await tx.run(INSERT, row(f"refused{len(attempts)}"))
                raise final

            with pytest.raises(type(final)):
                await store.db.transact(refuses, conflict_retries=5)
            assert len(attempts) == 1, type(final).__name__

        # A unique-key clash found by the database is not re-run either.
        attempts.clear()

        async def clashes(tx: Tx) -> None:
            attempts.append(1)
            await tx.run(INSERT, [row("a"), row("a")])

        with pytest.raises(DuplicateError):
            await store.db.transact(clashes, conflict_retries=5)
        assert len(attempts) == 1
        assert await hosts(store) == []

        # A retryable subclass is re-run from scratch, as ConflictError itself is.
        attempts.clear()

        async def stale(tx: Tx) -> int:
            attempts.append(1)
            await tx.run(INSERT, row(f"stale{len(attempts)}"))
            if len(attempts) < 3:
                raise StaleVersionError("instance changed")
            return len(attempts)

        assert StaleVersionError.retryable and ConflictError.retryable
        assert await store.db.transact(stale, conflict_retries=5) == 3
        assert await hosts(store) == ["stale3"]

    run_store(body)
