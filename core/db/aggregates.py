"""Host aggregates: named sets of hosts with string metadata.

As in Nova, an availability zone is not a table of its own: it is the aggregate
metadata key ``availability_zone``, and a host's zone is that of the aggregates
it is in. A host may be in several aggregates, but not in two zones. Changes to
an aggregate's hosts or metadata lock its row, so they take turns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import (
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    and_,
    bindparam,
    select,
)

from nimbus.core.db.area import StoreArea, found
from nimbus.core.db.database import Row, Tx
from nimbus.core.db.meta import (
    KEEP,
    NAME_LEN,
    Keep,
    id_column,
    metadata,
    soft_delete_columns,
    time_columns,
    uuid_column,
)
from nimbus.core.errors import DuplicateError, InvalidInput, NotFound

aggregates = Table(
    "aggregates", metadata,
    id_column(),
    uuid_column(unique=True),
    Column("name", String(NAME_LEN), nullable=False),
    *time_columns(),
    *soft_delete_columns(),
    UniqueConstraint("name", "deleted"),
)

aggregate_hosts = Table(
    "aggregate_hosts", metadata,
    id_column(),
    Column("aggregate_id", Integer, ForeignKey("aggregates.id"), nullable=False),
    Column("host", String(NAME_LEN), nullable=False),
    Column("created_at", Double, nullable=True),
    # host leads: aggregates_for_host and the zone of a host
    UniqueConstraint("host", "aggregate_id"),
    Index(None, "aggregate_id"),
)

aggregate_metadata = Table(
    "aggregate_metadata", metadata,
    id_column(),
    Column("aggregate_id", Integer, ForeignKey("aggregates.id"), nullable=False),
    Column("key", String(NAME_LEN), nullable=False),
    Column("value", String(NAME_LEN), nullable=False),
    *time_columns(),
    UniqueConstraint("aggregate_id", "key"),
    # aggregates by metadata, e.g. by availability_zone
    Index(None, "key", "value"),
)

#: The metadata key that holds an aggregate's availability zone.
AZ_KEY = "availability_zone"


@dataclass(frozen=True, slots=True)
class AggregateRecord:
    """One live aggregate with its hosts (sorted) and metadata."""

    id: int
    uuid: str
    name: str
    created_at: float | None
    updated_at: float | None
    hosts: tuple[str, ...]
    metadata: dict[str, str]

    @property
    def availability_zone(self) -> str | None:
        """The zone this aggregate makes of its hosts, if any."""
        return self.metadata.get(AZ_KEY)


AGGREGATE_COLUMNS = [aggregates.c[n] for n in (
    "id", "uuid", "name", "created_at", "updated_at")]

# -- statements, built once --------------------------------------------------------
_a = aggregates.c
_h = aggregate_hosts.c
_md = aggregate_metadata.c
_INSERT_AGGREGATE = aggregates.insert().returning(_a.id)
_AGGREGATE_BY_ID = select(*AGGREGATE_COLUMNS).where(_a.id == bindparam("aid"), _a.deleted == 0)
_AGGREGATE_BY_UUID = select(*AGGREGATE_COLUMNS).where(
    _a.uuid == bindparam("uuid"), _a.deleted == 0)
# Locks the aggregate row while its hosts or metadata change.
_LOCK_AGGREGATE = _AGGREGATE_BY_ID.with_for_update()
_ALL_AGGREGATES = select(*AGGREGATE_COLUMNS).where(_a.deleted == 0).order_by(_a.id)
_AGGREGATES_OF_HOST = (select(*AGGREGATE_COLUMNS)
                       .join_from(aggregates, aggregate_hosts, _h.aggregate_id == _a.id)
                       .where(_h.host == bindparam("host"), _a.deleted == 0)
                       .order_by(_a.id))
_RENAME_AGGREGATE = (aggregates.update()
                     .where(_a.id == bindparam("aid"))
                     .values(name=bindparam("name"), updated_at=bindparam("now")))
_TOUCH_AGGREGATE = (aggregates.update()
                    .where(_a.id == bindparam("aid"))
                    .values(updated_at=bindparam("now")))
_DELETE_AGGREGATE = (aggregates.update()
                     .where(_a.id == bindparam("aid"), _a.deleted == 0)
                     .values(deleted=_a.id, deleted_at=bindparam("now")))
_HOSTS_OF = (select(_h.aggregate_id, _h.host)
             .where(_h.aggregate_id.in_(bindparam("aids", expanding=True)))
             .order_by(_h.host))
_INSERT_HOST = aggregate_hosts.insert()
_DELETE_HOST = aggregate_hosts.delete().where(
    _h.aggregate_id == bindparam("aid"), _h.host == bindparam("host"))
_METADATA_OF = select(_md.aggregate_id, _md.key, _md.value).where(
    _md.aggregate_id.in_(bindparam("aids", expanding=True)))
_INSERT_METADATA = aggregate_metadata.insert()
_UPDATE_METADATA = (aggregate_metadata.update()
                    .where(_md.aggregate_id == bindparam("aid"), _md.key == bindparam("k"))
                    .values(value=bindparam("v"), updated_at=bindparam("now")))
_DELETE_METADATA = aggregate_metadata.delete().where(
    _md.aggregate_id == bindparam("aid"), _md.key == bindparam("k"))
_DELETE_METADATA_OF = aggregate_metadata.delete().where(_md.aggregate_id == bindparam("aid"))
# The zones of some hosts given by live aggregates other than one.
_ZONES_OF_HOSTS = (select(_h.host, _md.value).distinct()
                   .join_from(aggregate_hosts, aggregates, _a.id == _h.aggregate_id)
                   .join(aggregate_metadata, and_(_md.aggregate_id == _h.aggregate_id,
                                                  _md.key == AZ_KEY))
                   .where(_h.host.in_(bindparam("hosts", expanding=True)),
                          _h.aggregate_id != bindparam("aid"), _a.deleted == 0))
_ZONES_OF_HOST = (select(_md.value).distinct()
                  .join_from(aggregate_hosts, aggregates, _a.id == _h.aggregate_id)
                  .join(aggregate_metadata, and_(_md.aggregate_id == _h.aggregate_id,
                                                 _md.key == AZ_KEY))
                  .where(_h.host == bindparam("host"), _a.deleted == 0)
                  .order_by(_md.value))
# Every host in a live aggregate with each of its aggregates' metadata (or NULLs).
_HOST_METADATA = (select(_h.host, _md.key, _md.value)
                  .join_from(aggregate_hosts, aggregates, _a.id == _h.aggregate_id)
                  .outerjoin(aggregate_metadata, _md.aggregate_id == _h.aggregate_id)
                  .where(_a.deleted == 0))


class AggregateStore(StoreArea):
    """Store methods for host aggregates and availability zones."""

    async def create_aggregate(
        self, *, uuid: str, name: str, now: float, availability_zone: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> AggregateRecord:
        """Create an aggregate (no hosts yet); ``DuplicateError`` if the name is taken."""
        meta = dict(metadata or {})
        if availability_zone is not None:
            meta[AZ_KEY] = availability_zone

        async def body(tx: Tx) -> AggregateRecord:
            aid = await tx.scalar(_INSERT_AGGREGATE, {
                "uuid": uuid, "name": name, "created_at": now, "updated_at": now,
                "deleted": 0})
            await tx.run(_INSERT_METADATA, [
                {"aggregate_id": aid, "key": k, "value": v, "created_at": now,
                 "updated_at": now} for k, v in meta.items()])
            return await _aggregate(tx, aid)

        try:
            return await self.db.transact(body)
        except DuplicateError:
            raise DuplicateError(f"aggregate {name!r} already exists") from None

    async def get_aggregate(self, aggregate_id: int) -> AggregateRecord:
        """A live aggregate by id, with hosts and metadata; ``NotFound`` otherwise."""
        return await self.db.transact(lambda tx: _aggregate(tx, aggregate_id))

    async def aggregate_by_uuid(self, uuid: str) -> AggregateRecord:
        """A live aggregate by uuid; ``NotFound`` otherwise."""
        async def body(tx: Tx) -> AggregateRecord:
            row = await tx.one(_AGGREGATE_BY_UUID, {"uuid": uuid})
            if row is None:
                raise NotFound(f"aggregate {uuid} not found")
            return (await _aggregates(tx, [row]))[0]

        return await self.db.transact(body)

    async def list_aggregates(self) -> list[AggregateRecord]:
        """Every live aggregate, oldest first."""
        async def body(tx: Tx) -> list[AggregateRecord]:
            return await _aggregates(tx, await tx.rows(_ALL_AGGREGATES))

        return await self.db.transact(body)

    async def update_aggregate(
        self, aggregate_id: int, *, now: float, name: str | None = None,
        availability_zone: str | Keep | None = KEEP,
    ) -> AggregateRecord:
        """Rename an aggregate and/or set its zone (None removes it).

        ``DuplicateError`` if the name is taken; ``InvalidInput`` (400) if a host of the
        aggregate is in another zone.
        """
        async def body(tx: Tx) -> AggregateRecord:
            agg = await _lock_aggregate(tx, aggregate_id)
            if name is not None:
                await tx.run(_RENAME_AGGREGATE, {"aid": aggregate_id, "name": name, "now": now})
            if availability_zone is not KEEP:
                await _set_metadata(tx, agg, {AZ_KEY: availability_zone}, now)
            return await _aggregate(tx, aggregate_id)

        try:
            return await self.db.transact(body)
        except DuplicateError:
            raise DuplicateError(f"aggregate {name!r} already exists") from None

    async def delete_aggregate(self, aggregate_id: int, now: float) -> None:
        """Soft-delete an empty aggregate; ``InvalidInput`` (400) while it has hosts, as Nova."""
        async def body(tx: Tx) -> None:
            await _lock_aggregate(tx, aggregate_id)
            if await tx.rows(_HOSTS_OF, {"aids": [aggregate_id]}):
                raise InvalidInput(f"Cannot remove aggregate {aggregate_id}. "
                                   "Reason: Host aggregate is not empty")
            await tx.run(_DELETE_AGGREGATE, {"aid": aggregate_id, "now": now})
            await tx.run(_DELETE_METADATA_OF, {"aid": aggregate_id})

        await self.db.transact(body)

    async def add_host(self, aggregate_id: int, host: str, now: float) -> AggregateRecord:
        """Put a host in an aggregate; the aggregate after.

        ``DuplicateError`` if it is there already; ``InvalidInput`` (400) if the
        aggregate has a zone and the host is in another zone.
        """
        async def body(tx: Tx) -> AggregateRecord:
            agg = await _lock_aggregate(tx, aggregate_id)
            if host in agg.hosts:
                raise DuplicateError(f"host {host} is already in aggregate {aggregate_id}")
            zone = agg.availability_zone
            if zone is not None:
                await _check_zone(tx, aggregate_id, [host], zone)
            await tx.run(_INSERT_HOST, {"aggregate_id": aggregate_id, "host": host,
                                        "created_at": now})
            await tx.run(_TOUCH_AGGREGATE, {"aid": aggregate_id, "now": now})
            return await _aggregate(tx, aggregate_id)

        return await self.db.transact(body)

    async def remove_host(self, aggregate_id: int, host: str, now: float) -> AggregateRecord:
        """Take a host out of an aggregate; ``NotFound`` if it is not in it."""
        async def body(tx: Tx) -> AggregateRecord:
            await _lock_aggregate(tx, aggregate_id)
            if not await tx.run(_DELETE_HOST, {"aid": aggregate_id, "host": host}):
                raise NotFound(f"host {host} is not in aggregate {aggregate_id}")
            await tx.run(_TOUCH_AGGREGATE, {"aid": aggregate_id, "now": now})
            return await _aggregate(tx, aggregate_id)

        return await self.db.transact(body)

    async def set_aggregate_metadata(
        self, aggregate_id: int, metadata: Mapping[str, str | None], now: float
    ) -> AggregateRecord:
        """Merge metadata into an aggregate (a None value deletes that key).

        Setting ``availability_zone`` is refused (``InvalidInput``, 400) if a host of
        the aggregate is in another zone.
        """
        async def body(tx: Tx) -> AggregateRecord:
            agg = await _lock_aggregate(tx, aggregate_id)
            await _set_metadata(tx, agg, metadata, now)
            return await _aggregate(tx, aggregate_id)

        return await self.db.transact(body)

    async def aggregates_for_host(self, host: str) -> list[AggregateRecord]:
        """The live aggregates a host is in, oldest first."""
        async def body(tx: Tx) -> list[AggregateRecord]:
            return await _aggregates(tx, await tx.rows(_AGGREGATES_OF_HOST, {"host": host}))

        return await self.db.transact(body)

    async def availability_zone_of_host(self, host: str) -> str | None:
        """A host's zone from its aggregates' metadata; None if none gives one.

        Should aggregates disagree (data written around the Store), the zones are
        joined with commas, as Nova shows them.
        """
        zones = [r[0] for r in await self._rows(_ZONES_OF_HOST, {"host": host})]
        return ",".join(zones) if zones else None

    async def hosts_aggregate_metadata(self) -> dict[str, dict[str, set[str]]]:
        """For the scheduler, in one query: every host in a live aggregate -> key -> values.

        A host in several aggregates gets the union of their values per key; a host
        in aggregates with no metadata maps to an empty dict.
        """
        out: dict[str, dict[str, set[str]]] = {}
        for host, key, value in await self._rows(_HOST_METADATA):
            meta = out.setdefault(host, {})
            if key is not None:
                meta.setdefault(key, set()).add(value)
        return out


async def _aggregate(tx: Tx, aggregate_id: int) -> AggregateRecord:
    row = await found(tx, _AGGREGATE_BY_ID, {"aid": aggregate_id},
                      f"aggregate {aggregate_id} not found")
    return (await _aggregates(tx, [row]))[0]


async def _lock_aggregate(tx: Tx, aggregate_id: int) -> AggregateRecord:
    row = await found(tx, _LOCK_AGGREGATE, {"aid": aggregate_id},
                      f"aggregate {aggregate_id} not found")
    return (await _aggregates(tx, [row]))[0]


async def _aggregates(tx: Tx, rows: list[Row]) -> list[AggregateRecord]:
    hosts: dict[int, list[str]] = {}
    meta: dict[int, dict[str, str]] = {}
    if rows:
        aids = {"aids": [r[0] for r in rows]}
        for aid, host in await tx.rows(_HOSTS_OF, aids):
            hosts.setdefault(aid, []).append(host)
        for aid, key, value in await tx.rows(_METADATA_OF, aids):
            meta.setdefault(aid, {})[key] = value
    return [AggregateRecord(r[0], r[1], r[2], r[3], r[4], tuple(hosts.get(r[0], ())),
                            meta.get(r[0], {})) for r in rows]


async def _set_metadata(
    tx: Tx, have: AggregateRecord, metadata: Mapping[str, str | None], now: float
) -> None:
    """Merge metadata into a locked aggregate, checking a new zone against its hosts."""
    aggregate_id = have.id
    zone = metadata.get(AZ_KEY)
    if zone is not None and have.hosts:
        await _check_zone(tx, aggregate_id, list(have.hosts), zone)
    await tx.run(_DELETE_METADATA, [{"aid": aggregate_id, "k": k}
                                    for k, v in metadata.items()
                                    if v is None and k in have.metadata])
    await tx.run(_UPDATE_METADATA, [{"aid": aggregate_id, "k": k, "v": v, "now": now}
                                    for k, v in metadata.items()
                                    if v is not None and k in have.metadata])
    await tx.run(_INSERT_METADATA, [
        {"aggregate_id": aggregate_id, "key": k, "value": v, "created_at": now,
         "updated_at": now}
        for k, v in metadata.items() if v is not None and k not in have.metadata])
    await tx.run(_TOUCH_AGGREGATE, {"aid": aggregate_id, "now": now})


async def _check_zone(tx: Tx, aggregate_id: int, hosts: list[str], zone: str) -> None:
    """``InvalidInput`` (400) if any of ``hosts`` is in a zone other than ``zone``."""
    rows = await tx.rows(_ZONES_OF_HOSTS, {"hosts": hosts, "aid": aggregate_id})
    clashes = sorted({value for _host, value in rows if value != zone})
    if clashes:
        raise InvalidInput(f"Cannot add host(s) to zone {zone!r} of aggregate {aggregate_id}: "
                           f"one or more hosts already in availability zone(s) {clashes}")
