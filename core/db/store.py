"""The Store: every statement Nimbus runs, behind methods named for what services need.

One class, composed of one mixin per area (services and nodes, instances,
placement, identity, ...), each in its own module beside its tables. The Store
holds statements, never an engine: it runs them on the :class:`Database` it is
given, which is an async engine in real mode and an in-memory SQLite in
simulation.
"""

from __future__ import annotations

from nimbus.core.db import schema
from nimbus.core.db.database import Database
from nimbus.core.db.services import ServiceStore


class Store(ServiceStore):
    """All state of the cloud, reached through named methods."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @property
    def dialect(self) -> str:
        """The database's dialect name."""
        return self.db.dialect

    async def close(self) -> None:
        """Release the database's connections."""
        await self.db.close()


#: The MetaData of the whole schema (for migrations and tests).
metadata = schema.metadata
