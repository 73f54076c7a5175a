"""Instance faults: why an instance went to ERROR, as the API's ``fault`` shows it.

Each failure adds a row; the API shows the latest one per instance (for a page
of servers at once with :meth:`FaultStore.latest_faults`). Faults outlive the
instance and go only when it is purged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    column,
    func,
    select,
    table,
)

from nimbus.core.db.area import StoreArea
from nimbus.core.db.database import Row, Tx
from nimbus.core.db.meta import NAME_LEN, UUID_LEN, id_column, metadata
from nimbus.core.errors import NotFound

instance_faults = Table(
    "instance_faults", metadata,
    id_column(),
    Column("instance_uuid", String(UUID_LEN), ForeignKey("instances.uuid"), nullable=False),
    Column("code", Integer, nullable=False),
    Column("message", String(NAME_LEN), nullable=False),
    Column("details", Text, nullable=True),
    Column("host", String(NAME_LEN), nullable=True),
    Column("created_at", Double, nullable=True),
    Index(None, "instance_uuid"),
)


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """One row of ``instance_faults``."""

    id: int
    instance_uuid: str
    code: int
    message: str
    details: str | None
    host: str | None
    created_at: float | None

    @classmethod
    def from_row(cls, r: Row) -> FaultRecord:
        """Build from a row of ``FAULT_COLUMNS``."""
        return cls(*r)


FAULT_NAMES = tuple(FaultRecord.__dataclass_fields__)
FAULT_COLUMNS = [instance_faults.c[n] for n in FAULT_NAMES]

# The instances table, as far as this module needs it.
_instances = table("instances", column("id", Integer), column("uuid", String(UUID_LEN)))

_f = instance_faults.c
_INSTANCE_KNOWN = select(_instances.c.id).where(_instances.c.uuid == bindparam("uuid"))
_INSERT = instance_faults.insert().returning(_f.id)
_LATEST = (select(*FAULT_COLUMNS).where(_f.instance_uuid == bindparam("uuid"))
           .order_by(_f.id.desc()).limit(1))
_LATEST_OF_MANY = select(*FAULT_COLUMNS).where(_f.id.in_(
    select(func.max(_f.id))
    .where(_f.instance_uuid.in_(bindparam("uuids", expanding=True)))
    .group_by(_f.instance_uuid)))


class FaultStore(StoreArea):
    """Store methods for instance faults."""

    async def add_instance_fault(
        self, instance_uuid: str, *, code: int, message: str, now: float,
        details: str | None = None, host: str | None = None,
    ) -> FaultRecord:
        """Record a fault of an instance (deleted or not); the message is cut to 255
        characters, as the API shows it; ``NotFound`` if there is no such instance."""
        values: dict[str, Any] = {"instance_uuid": instance_uuid, "code": code,
                                  "message": message[:NAME_LEN], "details": details,
                                  "host": host, "created_at": now}

        async def body(tx: Tx) -> FaultRecord:
            if await tx.scalar(_INSTANCE_KNOWN, {"uuid": instance_uuid}) is None:
                raise NotFound(f"instance {instance_uuid} not found")
            values["id"] = await tx.scalar(_INSERT, values)
            return FaultRecord.from_row([values[n] for n in FAULT_NAMES])

        return await self.db.transact(body)

    async def latest_fault(self, instance_uuid: str) -> FaultRecord | None:
        """An instance's most recent fault, if it has any."""
        row = await self._one(_LATEST, {"uuid": instance_uuid})
        return FaultRecord.from_row(row) if row is not None else None

    async def latest_faults(self, instance_uuids: Sequence[str]) -> dict[str, FaultRecord]:
        """The most recent fault of each of these instances that has one, by uuid."""
        if not instance_uuids:
            return {}
        rows = await self._rows(_LATEST_OF_MANY, {"uuids": list(instance_uuids)})
        faults = (FaultRecord.from_row(r) for r in rows)
        return {f.instance_uuid: f for f in faults}
