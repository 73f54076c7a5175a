"""Migrations: an instance moving, or changing size, between (or on) compute hosts.

One row per move (cold migration, resize, live migration, evacuation), with
where it goes from and to, the flavors before and after, a status that the
conductor and computes advance (``pre-migrating`` ... ``finished``,
``confirmed``, ``reverted``, ``error``, ...) and, for live migrations, memory
and disk progress. The resource tracker asks for the moves still in progress on
its host; the ``os-migrations`` and server-migrations APIs list them. Rows are
soft-deleted with their instance.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Table,
    Update,
    and_,
    bindparam,
    column,
    or_,
    select,
    table,
)

from nimbus.core.db import paging
from nimbus.core.db.area import StoreArea, found
from nimbus.core.db.database import Row, Tx
from nimbus.core.db.meta import (
    NAME_LEN,
    UUID_LEN,
    flag,
    id_column,
    metadata,
    soft_delete_columns,
    time_columns,
    uuid_column,
)
from nimbus.core.errors import ConflictError, NotFound

MIGRATION_TYPES = ("migration", "resize", "live-migration", "evacuation")
#: Statuses after which a move no longer holds resources on either host.
DONE_STATUSES = ("confirmed", "reverted", "error", "failed", "completed", "cancelled", "done")

migrations = Table(
    "migrations", metadata,
    id_column(),
    uuid_column(unique=True),
    Column("instance_uuid", String(UUID_LEN), ForeignKey("instances.uuid"), nullable=False),
    Column("migration_type", String(32), nullable=False),
    Column("status", String(NAME_LEN), nullable=False),
    Column("source_compute", String(NAME_LEN), nullable=True),
    Column("source_node", String(NAME_LEN), nullable=True),
    Column("dest_compute", String(NAME_LEN), nullable=True),
    Column("dest_node", String(NAME_LEN), nullable=True),
    Column("dest_host", String(NAME_LEN), nullable=True),
    Column("old_instance_type_id", Integer, nullable=True),
    Column("new_instance_type_id", Integer, nullable=True),
    flag("hidden"),
    flag("cross_cell_move"),
    Column("memory_total", BigInteger, nullable=True),
    Column("memory_processed", BigInteger, nullable=True),
    Column("memory_remaining", BigInteger, nullable=True),
    Column("disk_total", BigInteger, nullable=True),
    Column("disk_processed", BigInteger, nullable=True),
    Column("disk_remaining", BigInteger, nullable=True),
    Column("user_id", String(NAME_LEN), nullable=True),
    Column("project_id", String(NAME_LEN), nullable=True),
    *time_columns(),
    *soft_delete_columns(),
    Index(None, "instance_uuid", "status"),
    Index(None, "source_compute", "source_node", "status"),
    Index(None, "dest_compute", "dest_node", "status"),
    Index(None, "updated_at"),
    Index(None, "created_at"),
)


@dataclass(frozen=True, slots=True)
class MigrationRecord:
    """One row of ``migrations``."""

    id: int
    uuid: str
    instance_uuid: str
    migration_type: str
    status: str
    source_compute: str | None
    source_node: str | None
    dest_compute: str | None
    dest_node: str | None
    dest_host: str | None
    old_instance_type_id: int | None
    new_instance_type_id: int | None
    hidden: bool
    cross_cell_move: bool
    memory_total: int | None
    memory_processed: int | None
    memory_remaining: int | None
    disk_total: int | None
    disk_processed: int | None
    disk_remaining: int | None
    user_id: str | None
    project_id: str | None
    created_at: float | None
    updated_at: float | None

    @classmethod
    def from_row(cls, r: Row) -> MigrationRecord:
        """Build from a row of ``MIGRATION_COLUMNS``."""
        return cls(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11],
                   bool(r[12]), bool(r[13]), r[14], r[15], r[16], r[17], r[18], r[19], r[20],
                   r[21], r[22], r[23])

    @property
    def in_progress(self) -> bool:
        """Still holding resources on its hosts."""
        return self.status not in DONE_STATUSES


MIGRATION_NAMES = (
    "id", "uuid", "instance_uuid", "migration_type", "status", "source_compute", "source_node",
    "dest_compute", "dest_node", "dest_host", "old_instance_type_id", "new_instance_type_id",
    "hidden", "cross_cell_move", "memory_total", "memory_processed", "memory_remaining",
    "disk_total", "disk_processed", "disk_remaining", "user_id", "project_id", "created_at",
    "updated_at")
MIGRATION_COLUMNS = [migrations.c[n] for n in MIGRATION_NAMES]

#: What ``update_migration`` may change.
MUTABLE = frozenset(MIGRATION_NAMES) - {"id", "uuid", "instance_uuid", "migration_type",
                                        "user_id", "project_id", "created_at", "updated_at"}
_LIST_SORT = paging.normalize_sort([("created_at", "desc")], frozenset({"created_at"}))

# The instances table, as far as this module needs it (instances.py imports this one).
_instances = table("instances", column("id", Integer), column("uuid", String(UUID_LEN)),
                   column("deleted", Integer))

# -- statements, built once --------------------------------------------------------
_m = migrations.c
_live = _m.deleted == 0
_INSTANCE_LIVE = select(_instances.c.id).where(_instances.c.uuid == bindparam("uuid"),
                                               _instances.c.deleted == 0)
_INSERT = migrations.insert().returning(_m.id)
_BY_ID = select(*MIGRATION_COLUMNS).where(_m.id == bindparam("mid"), _live)
_BY_UUID = select(*MIGRATION_COLUMNS).where(_m.uuid == bindparam("uuid"), _live)
_BY_INSTANCE = (select(*MIGRATION_COLUMNS)
                .where(_m.instance_uuid == bindparam("uuid"), _live).order_by(_m.id))
_BY_INSTANCE_STATUS = (select(*MIGRATION_COLUMNS)
                       .where(_m.instance_uuid == bindparam("uuid"),
                              _m.status == bindparam("status"), _live)
                       .order_by(_m.id.desc()).limit(1))
_MARKER = select(_m.created_at, _m.id).where(_m.uuid == bindparam("marker"), _live)


@functools.cache
def _in_progress_query(by_node: bool) -> Select[Any]:
    source = _m.source_compute == bindparam("host")
    dest = _m.dest_compute == bindparam("host")
    if by_node:
        source = and_(source, _m.source_node == bindparam("node"))
        dest = and_(dest, _m.dest_node == bindparam("node"))
    return (select(*MIGRATION_COLUMNS)
            .where(_live, _m.status.not_in(DONE_STATUSES), or_(source, dest))
            .order_by(_m.id))


@functools.lru_cache(maxsize=256)
def _update_stmt(names: tuple[str, ...], n_expected: int | None) -> Update:
    values: dict[str, Any] = {n: bindparam(f"v_{n}") for n in names}
    values["updated_at"] = bindparam("now")
    stmt = migrations.update().where(_m.id == bindparam("mid"), _live)
    if n_expected is not None:
        stmt = stmt.where(_m.status.in_([bindparam(f"es_{i}", type_=String)
                                         for i in range(n_expected)]))
    return stmt.values(values)


@functools.lru_cache(maxsize=256)
def _list_query(filters: tuple[str, ...], hidden: bool, since: bool, before: bool,
                marker_nulls: tuple[bool, ...] | None, limit: bool) -> Select[Any]:
    stmt = select(*MIGRATION_COLUMNS).where(_live)
    for name in filters:
        if name == "host":
            host = bindparam("host", type_=String)
            stmt = stmt.where(or_(_m.source_compute == host, _m.dest_compute == host))
        else:
            stmt = stmt.where(_m[name] == bindparam(name))
    if not hidden:
        stmt = stmt.where(_m.hidden.is_(False))
    if since:
        stmt = stmt.where(_m.updated_at >= bindparam("since", type_=Double))
    if before:
        stmt = stmt.where(_m.updated_at <= bindparam("before", type_=Double))
    if marker_nulls is not None:
        stmt = stmt.where(paging.after_marker(migrations, _LIST_SORT, marker_nulls))
    stmt = stmt.order_by(*paging.order_by(migrations, _LIST_SORT))
    if limit:
        stmt = stmt.limit(bindparam("limit", type_=Integer))
    return stmt


class MigrationStore(StoreArea):
    """Store methods for migrations."""

    async def create_migration(
        self, *, uuid: str, instance_uuid: str, migration_type: str, now: float,
        status: str = "pre-migrating", source_compute: str | None = None,
        source_node: str | None = None, dest_compute: str | None = None,
        dest_node: str | None = None, dest_host: str | None = None,
        old_instance_type_id: int | None = None, new_instance_type_id: int | None = None,
        user_id: str | None = None, project_id: str | None = None, hidden: bool = False,
        cross_cell_move: bool = False,
    ) -> MigrationRecord:
        """Record a move of a live instance; ``NotFound`` if it is gone."""
        if migration_type not in MIGRATION_TYPES:
            raise ValueError(f"invalid migration type {migration_type!r}; "
                             f"valid: {', '.join(MIGRATION_TYPES)}")
        values: dict[str, Any] = {
            "uuid": uuid, "instance_uuid": instance_uuid, "migration_type": migration_type,
            "status": status, "source_compute": source_compute, "source_node": source_node,
            "dest_compute": dest_compute, "dest_node": dest_node, "dest_host": dest_host,
            "old_instance_type_id": old_instance_type_id,
            "new_instance_type_id": new_instance_type_id, "hidden": hidden,
            "cross_cell_move": cross_cell_move, "memory_total": None, "memory_processed": None,
            "memory_remaining": None, "disk_total": None, "disk_processed": None,
            "disk_remaining": None, "user_id": user_id, "project_id": project_id,
            "created_at": now, "updated_at": now, "deleted": 0,
        }

        async def body(tx: Tx) -> MigrationRecord:
            if await tx.scalar(_INSTANCE_LIVE, {"uuid": instance_uuid}) is None:
                raise NotFound(f"instance {instance_uuid} not found")
            values["id"] = await tx.scalar(_INSERT, values)
            return MigrationRecord.from_row([values[n] for n in MIGRATION_NAMES])

        return await self.db.transact(body)

    async def get_migration(self, migration_id: int) -> MigrationRecord:
        """A migration by id; ``NotFound`` otherwise."""
        return await self.db.transact(lambda tx: _migration(tx, migration_id))

    async def get_migration_by_uuid(self, uuid: str) -> MigrationRecord:
        """A migration by uuid; ``NotFound`` otherwise."""
        row = await self._found(_BY_UUID, {"uuid": uuid}, f"migration {uuid} not found")
        return MigrationRecord.from_row(row)

    async def update_migration_status(
        self, migration_id: int, status: str, *, now: float,
        expected_statuses: Sequence[str] | None = None,
    ) -> MigrationRecord:
        """Advance a migration's status; with ``expected_statuses``, only from one of those
        (``ConflictError`` naming the actual status otherwise)."""
        return await self.update_migration(migration_id, now=now,
                                           expected_statuses=expected_statuses, status=status)

    async def update_migration(
        self, migration_id: int, /, *, now: float, expected_statuses: Sequence[str] | None = None,
        **changes: Any,
    ) -> MigrationRecord:
        """Change a migration's hosts, flavor, status or progress (names in ``MUTABLE``)."""
        bad = set(changes) - MUTABLE
        if bad:
            raise ValueError(f"cannot update migration field(s) {', '.join(sorted(bad))}; "
                             f"valid: {', '.join(sorted(MUTABLE))}")
        names = tuple(sorted(changes))
        expected = tuple(expected_statuses) if expected_statuses is not None else None
        stmt = _update_stmt(names, None if expected is None else len(expected))
        params: dict[str, Any] = {f"v_{n}": changes[n] for n in names}
        params.update({"mid": migration_id, "now": now})
        params.update({f"es_{i}": s for i, s in enumerate(expected or ())})

        async def body(tx: Tx) -> MigrationRecord:
            if not await tx.run(stmt, params):
                current = await _migration(tx, migration_id)
                raise ConflictError(
                    f"migration {migration_id} is {current.status!r}, expected one of "
                    f"{', '.join(map(repr, expected or ()))}")
            return await _migration(tx, migration_id)

        return await self.db.transact(body)

    async def migrations_by_instance(self, instance_uuid: str) -> list[MigrationRecord]:
        """An instance's migrations, oldest first."""
        rows = await self._rows(_BY_INSTANCE, {"uuid": instance_uuid})
        return [MigrationRecord.from_row(r) for r in rows]

    async def migration_by_instance_and_status(
        self, instance_uuid: str, status: str
    ) -> MigrationRecord:
        """The instance's latest migration in ``status`` (e.g. the resize to confirm)."""
        row = await self._found(_BY_INSTANCE_STATUS, {"uuid": instance_uuid, "status": status},
                                f"no {status} migration of instance {instance_uuid}")
        return MigrationRecord.from_row(row)

    async def in_progress_migrations_by_host(
        self, host: str, node: str | None = None
    ) -> list[MigrationRecord]:
        """Moves not yet done into or out of ``host`` (and ``node``): what the resource
        tracker must count on both ends."""
        stmt = _in_progress_query(node is not None)
        rows = await self._rows(stmt, {"host": host, "node": node})
        return [MigrationRecord.from_row(r) for r in rows]

    async def list_migrations(
        self, *, host: str | None = None, status: str | None = None,
        instance_uuid: str | None = None, migration_type: str | None = None,
        project_id: str | None = None, user_id: str | None = None,
        changes_since: float | None = None, changes_before: float | None = None,
        include_hidden: bool = False, marker: str | None = None, limit: int | None = None,
    ) -> list[MigrationRecord]:
        """Migrations, newest first, filtered as ``os-migrations`` does: ``host`` matches
        either end, ``changes_*`` bound ``updated_at``; ``marker`` is a migration uuid
        (``NotFound`` if unknown)."""
        params: dict[str, Any] = {
            "host": host, "status": status, "instance_uuid": instance_uuid,
            "migration_type": migration_type, "project_id": project_id, "user_id": user_id,
            "since": changes_since, "before": changes_before, "limit": limit,
        }
        filters = tuple(n for n in ("host", "status", "instance_uuid", "migration_type",
                                    "project_id", "user_id") if params[n] is not None)

        async def body(tx: Tx) -> list[Row]:
            nulls = await paging.read_marker(tx, _MARKER, marker, params,
                                             NotFound(f"marker migration {marker} not found"))
            stmt = _list_query(filters, include_hidden, changes_since is not None,
                               changes_before is not None, nulls, limit is not None)
            return await tx.rows(stmt, params)

        return [MigrationRecord.from_row(r) for r in await self.db.transact(body)]


async def _migration(tx: Tx, migration_id: int) -> MigrationRecord:
    row = await found(tx, _BY_ID, {"mid": migration_id}, f"migration {migration_id} not found")
    return MigrationRecord.from_row(row)
