"""What every area of the Store shares: the Database it runs on, and the shape of the
simplest transactions.

Most Store reads are one statement in a transaction of its own: every row of a
listing, or the one row of a lookup that must find it (``NotFound`` naming
what is missing otherwise). :class:`StoreArea` runs those, so that each area
module writes only its statements and what to make of the rows; :func:`found`
is the lookup inside a larger transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.sql.expression import Executable

from nimbus.core.db.database import Database, Params, Row, Tx
from nimbus.core.errors import NotFound


async def found(tx: Tx, stmt: Executable, params: Params, missing: str) -> Row:
    """Inside a transaction: the first row of ``stmt``; ``NotFound(missing)`` if none."""
    row = await tx.one(stmt, params)
    if row is None:
        raise NotFound(missing)
    return row


class StoreArea:
    """Base of the Store's mixins, one per area (the Store sets ``db``)."""

    db: Database

    async def _rows(self, stmt: Executable, params: Params | None = None) -> list[Row]:
        """Every row of one statement, in a transaction of its own."""
        async def body(tx: Tx) -> list[Row]:
            return await tx.rows(stmt, params)

        return await self.db.transact(body)

    async def _one(self, stmt: Executable, params: Params | None = None) -> Row | None:
        """The first row of one statement, in a transaction of its own; None if none."""
        async def body(tx: Tx) -> Row | None:
            return await tx.one(stmt, params)

        return await self.db.transact(body)

    async def _found(self, stmt: Executable, params: Params, missing: str) -> Row:
        """The first row of one statement, in a transaction of its own;
        ``NotFound(missing)`` if there is none."""
        async def body(tx: Tx) -> Row:
            return await found(tx, stmt, params, missing)

        return await self.db.transact(body)

    async def _run(self, stmt: Executable, params: Params | Sequence[Params]) -> int:
        """One write statement in a transaction of its own; how many rows it changed."""
        async def body(tx: Tx) -> int:
            return await tx.run(stmt, params)

        return await self.db.transact(body)
