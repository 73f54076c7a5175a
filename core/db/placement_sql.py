"""Statements and helpers shared by the placement Store modules.

Lookups every part needs (a provider's id and generation, class ids by name),
the generation compare-and-swap, and the SQL pieces that decide in the database
which providers can take which amounts (:func:`capable_clause`) and which match
trait and aggregate filters, for the statement builders of the other modules.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, bindparam, case, func, select
from sqlalchemy.sql.expression import FromClause

from nimbus.core.db.database import Tx
from nimbus.core.db.placement import (
    MISC_SHARES_VIA_AGGREGATE,
    STANDARD_CLASS_IDS,
    STANDARD_RESOURCE_CLASSES,
    allocations,
    placement_aggregates,
    resource_classes,
    resource_provider_aggregates,
    resource_provider_traits,
    resource_providers,
    traits,
)
from nimbus.core.errors import ConflictError, GenerationConflict, NotFound

# -- shared statements -------------------------------------------------------------

_rp = resource_providers.c
_root = resource_providers.alias("root_rp")
_parent = resource_providers.alias("parent_rp")

PROVIDER_COLUMNS = [
    _rp.id, _rp.uuid, _rp.name, _rp.generation, _root.c.uuid.label("root_uuid"),
    _parent.c.uuid.label("parent_uuid"), _rp.created_at, _rp.updated_at,
]
#: Providers joined with their root and parent (for their uuids).
PROVIDER_FROM = resource_providers.outerjoin(
    _root, _root.c.id == _rp.root_provider_id).outerjoin(
    _parent, _parent.c.id == _rp.parent_provider_id)

PROVIDER_BY_UUID = select(*PROVIDER_COLUMNS).select_from(PROVIDER_FROM).where(
    _rp.uuid == bindparam("uuid"))
_PROVIDER_ID_GEN = select(_rp.id, _rp.generation).where(_rp.uuid == bindparam("uuid"))
_BUMP_IF = (resource_providers.update()
            .where(_rp.id == bindparam("rp_id"), _rp.generation == bindparam("seen"))
            .values(generation=_rp.generation + 1, updated_at=bindparam("now")))

_rc = resource_classes.c
_CUSTOM_CLASS_IDS = select(_rc.name, _rc.id).where(
    _rc.name.in_(bindparam("names", expanding=True)))


async def provider_id_gen(tx: Tx, uuid: str) -> tuple[int, int]:
    """(id, generation) of a provider; ``NotFound`` naming it otherwise."""
    row = await tx.one(_PROVIDER_ID_GEN, {"uuid": uuid})
    if row is None:
        raise NotFound(f"resource provider {uuid} not found")
    return row[0], row[1]


async def bump_generation(tx: Tx, rp_id: int, seen: int, uuid: str, now: float) -> int:
    """Compare-and-swap a provider's generation from ``seen``; ``ConflictError`` if it moved.

    The UPDATE re-reads the row under its lock (on PostgreSQL after any writer
    that held it commits; on MariaDB as a locking read), so whoever bumps second
    from the same ``seen`` matches no row.
    """
    if not await tx.run(_BUMP_IF, {"rp_id": rp_id, "seen": seen, "now": now}):
        raise ConflictError(
            f"resource provider {uuid} changed concurrently (generation {seen} is stale)")
    return seen + 1


def check_generation(uuid: str, expected: int, actual: int) -> None:
    """``GenerationConflict`` if the caller's generation of a provider is not the current
    one (final: a re-run of the transaction would compare the same numbers)."""
    if expected != actual:
        raise GenerationConflict(f"resource provider {uuid} generation conflict: "
                            f"expected {expected}, current is {actual}")


async def class_ids(tx: Tx, names: Collection[str]) -> dict[str, int]:
    """Ids of resource classes by name; ``NotFound`` naming any unknown custom class."""
    ids = {n: STANDARD_CLASS_IDS[n] for n in names if n in STANDARD_CLASS_IDS}
    custom = [n for n in names if n not in ids]
    if custom:
        ids.update((r[0], r[1]) for r in await tx.rows(_CUSTOM_CLASS_IDS, {"names": custom}))
        missing = sorted(set(custom) - ids.keys())
        if missing:
            raise NotFound(f"resource class(es) {', '.join(missing)} not found")
    return ids


def class_name(rc_id: int, custom_name: str | None) -> str:
    """The name of a class from its id and its ``resource_classes`` name (if joined)."""
    if custom_name is not None:
        return custom_name
    if 0 <= rc_id < len(STANDARD_RESOURCE_CLASSES):
        return STANDARD_RESOURCE_CLASSES[rc_id]
    return f"UNKNOWN_{rc_id}"


def used_sum(inv: FromClause, *, but_consumer: bool = False) -> ColumnElement[Any]:
    """What is allocated of each row of ``inv`` (inventories), as a correlated subquery.

    With ``but_consumer``, leaves out the allocations of consumer ``consumer``
    (a claim replaces them).
    """
    usage = allocations.alias("usage")
    stmt = select(func.coalesce(func.sum(usage.c.used), 0)).where(
        usage.c.resource_provider_id == inv.c.resource_provider_id,
        usage.c.resource_class_id == inv.c.resource_class_id)
    if but_consumer:
        stmt = stmt.where(usage.c.consumer_id != bindparam("consumer"))
    return stmt.correlate(inv).scalar_subquery()


def capable_clause(inv: FromClause, n: int) -> ColumnElement[bool]:
    """Rows of ``inv`` (inventories) that can take one of ``n`` requested amounts.

    Parameters ``rc0``.. and ``amt0``.. (see :func:`capable_params`): the row's
    class is one of them, the amount fits its min_unit, max_unit and step_size,
    and what is allocated plus the amount is within its capacity. Grouping the
    rows by provider and counting them tells which providers can take them all.
    """
    rcs = [bindparam(f"rc{i}", type_=Integer) for i in range(n)]
    amts = [bindparam(f"amt{i}", type_=Integer) for i in range(n)]
    c = inv.c
    need = case(*[(c.resource_class_id == rc, amt) for rc, amt in zip(rcs, amts, strict=True)])
    used = used_sum(inv)
    return (c.resource_class_id.in_(rcs) & (c.min_unit <= need) & (c.max_unit >= need)
            & ((need % c.step_size) == 0)
            & ((c.total - c.reserved) * c.allocation_ratio >= used + need))


def capable_params(wanted: Sequence[tuple[int, int]]) -> dict[str, Any]:
    """Parameters of :func:`capable_clause` for (class id, amount) pairs."""
    params: dict[str, Any] = {}
    for i, (rc_id, amount) in enumerate(wanted):
        params[f"rc{i}"] = rc_id
        params[f"amt{i}"] = amount
    return params


# -- filter subqueries (for cached statement builders) ---------------------------------

def with_all_traits(key: str, count_key: str) -> Select[Any]:
    """Ids of providers that have every trait named in ``key`` (``count_key``: how many)."""
    rpt, t = resource_provider_traits.c, traits.c
    return (select(rpt.resource_provider_id)
            .select_from(resource_provider_traits.join(traits, t.id == rpt.trait_id))
            .where(t.name.in_(bindparam(key, expanding=True)))
            .group_by(rpt.resource_provider_id)
            .having(func.count() == bindparam(count_key, type_=Integer)))


def with_any_trait(key: str) -> Select[Any]:
    """Ids of providers that have at least one trait named in ``key``."""
    rpt, t = resource_provider_traits.c, traits.c
    return (select(rpt.resource_provider_id)
            .select_from(resource_provider_traits.join(traits, t.id == rpt.trait_id))
            .where(t.name.in_(bindparam(key, expanding=True))))


def in_any_aggregate(key: str) -> Select[Any]:
    """Ids of providers in at least one aggregate whose uuid is in ``key``."""
    rpa, agg = resource_provider_aggregates.c, placement_aggregates.c
    return (select(rpa.resource_provider_id)
            .select_from(resource_provider_aggregates.join(
                placement_aggregates, agg.id == rpa.aggregate_id))
            .where(agg.uuid.in_(bindparam(key, expanding=True))))


def sharing_an_aggregate_with(key: str) -> Select[Any]:
    """Ids of providers in an aggregate together with provider id ``key``."""
    mine = resource_provider_aggregates.alias("mine")
    theirs = resource_provider_aggregates.alias("theirs")
    return (select(theirs.c.resource_provider_id)
            .select_from(mine.join(theirs, theirs.c.aggregate_id == mine.c.aggregate_id))
            .where(mine.c.resource_provider_id == bindparam(key, type_=Integer)))


def sharing_providers() -> Select[Any]:
    """Ids of providers with the trait MISC_SHARES_VIA_AGGREGATE."""
    rpt, t = resource_provider_traits.c, traits.c
    return (select(rpt.resource_provider_id)
            .select_from(resource_provider_traits.join(traits, t.id == rpt.trait_id))
            .where(t.name == MISC_SHARES_VIA_AGGREGATE))
