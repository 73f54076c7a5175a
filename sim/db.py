"""The simulation Database: one in-memory SQLite connection, no suspension.

Every awaitable here completes without yielding to the runtime, so a
transaction body runs atomically in virtual time and no other task can
interleave with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.expression import Executable

from nimbus.core.db.database import Params, Row, TxBody
from nimbus.core.db.meta import metadata
from nimbus.core.errors import ConflictError, DatabaseError, DuplicateError

T = TypeVar("T")


class _Tx:
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


class SimDatabase:
    """A Database in memory for simulation; the schema is created at once."""

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
                    return await body(_Tx(self.conn))
            except ConflictError:
                if attempts >= conflict_retries:
                    raise
                attempts += 1
            except sa_exc.IntegrityError as exc:
                text = str(exc.orig)
                if "UNIQUE" in text:
                    raise DuplicateError(f"duplicate: {text}") from None
                raise DatabaseError(f"integrity error: {text}") from None

    async def close(self) -> None:
        self.conn.close()
        self.engine.dispose()
