"""What the Store runs its statements on: a Database of transactions.

The Store holds statements, never an engine. A :class:`Database` runs a
transaction body (an async function of a :class:`Tx`) and commits it, or rolls
it back if the body raises. Implementations:

* ``nimbus.db.SqlDatabase``: SQLAlchemy's async engine on aiosqlite, asyncpg or
  aiomysql, chosen by URL; real I/O, real concurrency.
* ``nimbus.sim.db.SimDatabase``: one in-memory SQLite connection; each statement
  is compiled once and run on ``sqlite3`` directly; every awaitable completes
  without suspending, so a transaction body is atomic in virtual time.

Rows come back as plain tuples in the order of the statement's columns.
Driver errors are translated: a unique-key clash is ``DuplicateError`` (not
retryable), a deadlock or serialization failure ``ConflictError`` (retryable),
a lost connection ``DatabaseUnavailable`` (after the Database's own retries).

A transaction body must await nothing but its ``Tx``: it may be re-run when the
connection is lost, and in simulation it must not yield to other tasks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from sqlalchemy.sql.expression import Executable

from nimbus.core.errors import ConflictError

T = TypeVar("T")

Params = Mapping[str, Any]
Row = Sequence[Any]


class Tx(Protocol):
    """One open transaction."""

    async def rows(self, stmt: Executable, params: Params | None = None) -> list[Row]:
        """Run a statement that returns rows (SELECT, or ... RETURNING); all of them."""
        ...

    async def one(self, stmt: Executable, params: Params | None = None) -> Row | None:
        """The first row, or None."""
        ...

    async def scalar(self, stmt: Executable, params: Params | None = None) -> Any:
        """The first column of the first row, or None."""
        ...

    async def run(
        self, stmt: Executable, params: Params | Sequence[Params] | None = None
    ) -> int:
        """Run a statement (a list of params runs it once per item); rows affected."""
        ...


#: A transaction body.
TxBody = Callable[[Tx], Awaitable[T]]


def retryable(exc: BaseException) -> bool:
    """Whether ``transact`` may re-run a body that raised ``exc`` (or whose database
    raised it): a ``ConflictError`` whose class says a retry may succeed."""
    return isinstance(exc, ConflictError) and exc.retryable


class Database(Protocol):
    """Runs transaction bodies; see the module docstring."""

    #: The SQLAlchemy dialect name: "sqlite", "postgresql" or "mysql".
    dialect: str

    async def transact(self, body: TxBody[T], *, conflict_retries: int = 0) -> T:
        """Run ``body`` in a transaction and commit; roll back if it raises.

        A lost connection is retried by the Database itself. A retryable
        ``ConflictError`` (see :func:`retryable`: a lost race raised by the body,
        or a deadlock or serialization failure from the database) re-runs the
        body from scratch up to ``conflict_retries`` times before it propagates.
        A conflict that is not retryable (``DuplicateError``, from the body or
        from a unique key; ``UnexpectedStateError``, ``InUse``,
        ``GenerationConflict``...) propagates at once: a re-run would only
        give the same answer.
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
