"""Placement Store, part two: resource classes, traits and provider aggregates.

Standard resource classes and traits are known to the code; custom ones
(``CUSTOM_*``) are created by whoever needs them. Setting a provider's traits or
aggregates replaces them all, takes the provider's generation from the caller
and bumps it (``GenerationConflict`` if it is stale).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TypeVar

from sqlalchemy import bindparam, func, select

from nimbus.core.db.area import StoreArea
from nimbus.core.db.database import Database, Tx, TxBody
from nimbus.core.db.placement import (
    CUSTOM_CLASS_START,
    STANDARD_CLASS_IDS,
    STANDARD_RESOURCE_CLASSES,
    STANDARD_TRAITS,
    ProviderAggregates,
    ProviderTraits,
    check_class_name,
    check_trait_names,
    inventories,
    placement_aggregates,
    resource_classes,
    resource_provider_aggregates,
    resource_provider_traits,
    traits,
)
from nimbus.core.db.placement_sql import (
    bump_generation,
    check_generation,
    provider_id_gen,
)
from nimbus.core.errors import DuplicateError, InUse, InvalidPlacementInput, NotFound

T = TypeVar("T")

_rc = resource_classes.c
_CLASS_BY_NAME = select(_rc.id).where(_rc.name == bindparam("name"))
_MAX_CLASS_ID = select(func.max(_rc.id))
_INSERT_CLASS = resource_classes.insert()
_CUSTOM_CLASSES = select(_rc.name).where(_rc.id >= CUSTOM_CLASS_START).order_by(_rc.id)
_STANDARD_CLASS_ROWS = select(_rc.id).where(_rc.id < CUSTOM_CLASS_START)
_CLASS_IN_USE = select(inventories.c.id).where(
    inventories.c.resource_class_id == bindparam("rc_id")).limit(1)
_DELETE_CLASS = resource_classes.delete().where(_rc.id == bindparam("rc_id"))

_t = traits.c
_rpt = resource_provider_traits.c
_TRAIT_IDS = select(_t.name, _t.id).where(_t.name.in_(bindparam("names", expanding=True)))
_TRAIT_BY_NAME = select(_t.id).where(_t.name == bindparam("name"))
_INSERT_TRAIT = traits.insert()
_ALL_TRAITS = select(_t.name)
_ASSOCIATED_TRAITS = select(_t.name).where(_t.id.in_(select(_rpt.trait_id)))
_TRAIT_IN_USE = select(_rpt.resource_provider_id).where(
    _rpt.trait_id == bindparam("trait_id")).limit(1)
_DELETE_TRAIT = traits.delete().where(_t.id == bindparam("trait_id"))
_TRAITS_OF = (select(_t.name)
              .select_from(resource_provider_traits.join(traits, _t.id == _rpt.trait_id))
              .where(_rpt.resource_provider_id == bindparam("rp_id")))
_UNLINK_TRAITS = resource_provider_traits.delete().where(
    _rpt.resource_provider_id == bindparam("rp_id"))
_LINK_TRAIT = resource_provider_traits.insert()

_agg = placement_aggregates.c
_rpa = resource_provider_aggregates.c
_AGGREGATE_IDS = select(_agg.uuid, _agg.id).where(
    _agg.uuid.in_(bindparam("uuids", expanding=True)))
_INSERT_AGGREGATE = placement_aggregates.insert()
_AGGREGATES_OF = (select(_agg.uuid)
                  .select_from(resource_provider_aggregates.join(
                      placement_aggregates, _agg.id == _rpa.aggregate_id))
                  .where(_rpa.resource_provider_id == bindparam("rp_id")))
_UNLINK_AGGREGATES = resource_provider_aggregates.delete().where(
    _rpa.resource_provider_id == bindparam("rp_id"))
_LINK_AGGREGATE = resource_provider_aggregates.insert()


async def _retry_duplicates(db: Database, body: TxBody[T], attempts: int = 4) -> T:
    """Run ``body``; again if it lost a race to insert the same name (it then finds it)."""
    for attempt in range(attempts):
        try:
            return await db.transact(body)
        except DuplicateError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


async def _trait_ids(tx: Tx, names: Collection[str], now: float, *,
                     create_custom: bool) -> dict[str, int]:
    """Ids of traits by name, inserting missing standard ones (and custom ones if asked)."""
    if not names:
        return {}
    ids = {r[0]: r[1] for r in await tx.rows(_TRAIT_IDS, {"names": list(names)})}
    missing = sorted(set(names) - ids.keys())
    unknown = [n for n in missing if n not in STANDARD_TRAITS]
    if unknown and not create_custom:
        raise NotFound(f"trait(s) {', '.join(unknown)} not found")
    if missing:
        await tx.run(_INSERT_TRAIT, [{"name": n, "created_at": now, "updated_at": now}
                                     for n in missing])
        ids.update((r[0], r[1]) for r in await tx.rows(_TRAIT_IDS, {"names": missing}))
    return ids


class PlacementNameStore(StoreArea):
    """Store methods for resource classes, traits and provider aggregates."""

    async def ensure_resource_class(self, name: str, *, now: float) -> bool:
        """Make a resource class exist; True if this call created it.

        Standard classes always exist (this only seeds their row); a custom one
        must be ``CUSTOM_[A-Z0-9_]+`` and gets the next id from 10000 up.
        """
        check_class_name(name)

        async def body(tx: Tx) -> bool:
            if await tx.one(_CLASS_BY_NAME, {"name": name}) is not None:
                return False
            if name in STANDARD_CLASS_IDS:
                await tx.run(_INSERT_CLASS, {"id": STANDARD_CLASS_IDS[name], "name": name,
                                             "created_at": now, "updated_at": now})
                return False
            top = await tx.scalar(_MAX_CLASS_ID)
            rc_id = max(CUSTOM_CLASS_START, (top or 0) + 1)
            await tx.run(_INSERT_CLASS, {"id": rc_id, "name": name, "created_at": now,
                                         "updated_at": now})
            return True

        return await _retry_duplicates(self.db, body)

    async def sync_standard_resource_classes(self, *, now: float) -> int:
        """Insert the rows of standard classes missing from ``resource_classes``; how many."""
        async def body(tx: Tx) -> int:
            present = {r[0] for r in await tx.rows(_STANDARD_CLASS_ROWS)}
            rows = [{"id": i, "name": n, "created_at": now, "updated_at": now}
                    for i, n in enumerate(STANDARD_RESOURCE_CLASSES) if i not in present]
            await tx.run(_INSERT_CLASS, rows)
            return len(rows)

        return await _retry_duplicates(self.db, body)

    async def list_resource_classes(self) -> list[str]:
        """Every resource class: the standard ones, then custom ones oldest first."""
        async def body(tx: Tx) -> list[str]:
            return [r[0] for r in await tx.rows(_CUSTOM_CLASSES)]

        return [*STANDARD_RESOURCE_CLASSES, *await self.db.transact(body)]

    async def delete_resource_class(self, name: str) -> None:
        """Delete a custom class; ``InUse`` if any provider has inventory of it."""
        if name in STANDARD_CLASS_IDS:
            raise InvalidPlacementInput(f"standard resource class {name} cannot be deleted")

        async def body(tx: Tx) -> None:
            rc_id = await tx.scalar(_CLASS_BY_NAME, {"name": name})
            if rc_id is None:
                raise NotFound(f"resource class {name} not found")
            if await tx.one(_CLASS_IN_USE, {"rc_id": rc_id}) is not None:
                raise InUse(f"resource class {name} is in use by inventories")
            await tx.run(_DELETE_CLASS, {"rc_id": rc_id})

        await self.db.transact(body)

    async def ensure_traits(self, names: Collection[str], *, now: float) -> None:
        """Make traits exist (standard ones, or custom ``CUSTOM_[A-Z0-9_]+`` ones)."""
        wanted = set(names)
        check_trait_names(wanted)

        async def body(tx: Tx) -> None:
            await _trait_ids(tx, wanted, now, create_custom=True)

        await _retry_duplicates(self.db, body)

    async def list_traits(
        self, *, names: Collection[str] | None = None, prefix: str | None = None,
        associated: bool | None = None,
    ) -> list[str]:
        """Trait names, sorted: all standard and custom ones, or only those in ``names``,
        starting with ``prefix``, and (if ``associated`` is given) with or without providers."""
        async def body(tx: Tx) -> tuple[list[str], set[str]]:
            every = [r[0] for r in await tx.rows(_ALL_TRAITS)]
            linked = ({r[0] for r in await tx.rows(_ASSOCIATED_TRAITS)}
                      if associated is not None else set())
            return every, linked

        every, linked = await self.db.transact(body)
        found = set(every) | STANDARD_TRAITS
        if associated is True:
            found = linked
        elif associated is False:
            found -= linked
        if names is not None:
            found &= set(names)
        if prefix is not None:
            found = {n for n in found if n.startswith(prefix)}
        return sorted(found)

    async def delete_trait(self, name: str) -> None:
        """Delete a custom trait; ``InUse`` if a provider has it."""
        if name in STANDARD_TRAITS:
            raise InvalidPlacementInput(f"standard trait {name} cannot be deleted")

        async def body(tx: Tx) -> None:
            trait_id = await tx.scalar(_TRAIT_BY_NAME, {"name": name})
            if trait_id is None:
                raise NotFound(f"trait {name} not found")
            if await tx.one(_TRAIT_IN_USE, {"trait_id": trait_id}) is not None:
                raise InUse(f"trait {name} is in use by resource providers")
            await tx.run(_DELETE_TRAIT, {"trait_id": trait_id})

        await self.db.transact(body)

    async def get_traits(self, uuid: str) -> ProviderTraits:
        """A provider's traits, with its generation."""
        async def body(tx: Tx) -> ProviderTraits:
            rp_id, generation = await provider_id_gen(tx, uuid)
            rows = await tx.rows(_TRAITS_OF, {"rp_id": rp_id})
            return ProviderTraits(generation, frozenset(r[0] for r in rows))

        return await self.db.transact(body)

    async def set_traits(
        self, uuid: str, generation: int, names: Collection[str], *, now: float
    ) -> int:
        """Replace a provider's traits; the new generation.

        Standard traits are created as needed; a custom one must exist
        (:meth:`ensure_traits`), else ``NotFound`` naming it.
        """
        wanted = set(names)
        check_trait_names(wanted)

        async def body(tx: Tx) -> int:
            rp_id, current = await provider_id_gen(tx, uuid)
            check_generation(uuid, generation, current)
            ids = await _trait_ids(tx, wanted, now, create_custom=False)
            new_generation = await bump_generation(tx, rp_id, generation, uuid, now)
            await tx.run(_UNLINK_TRAITS, {"rp_id": rp_id})
            await tx.run(_LINK_TRAIT, [{"resource_provider_id": rp_id, "trait_id": i}
                                       for i in ids.values()])
            return new_generation

        return await _retry_duplicates(self.db, body)

    async def get_provider_aggregates(self, uuid: str) -> ProviderAggregates:
        """The uuids of a provider's aggregates, with its generation."""
        async def body(tx: Tx) -> ProviderAggregates:
            rp_id, generation = await provider_id_gen(tx, uuid)
            rows = await tx.rows(_AGGREGATES_OF, {"rp_id": rp_id})
            return ProviderAggregates(generation, frozenset(r[0] for r in rows))

        return await self.db.transact(body)

    async def set_provider_aggregates(
        self, uuid: str, generation: int, aggregate_uuids: Collection[str], *, now: float
    ) -> int:
        """Replace the aggregates a provider is in (creating unknown ones); the new generation."""
        wanted = sorted(set(aggregate_uuids))

        async def body(tx: Tx) -> int:
            rp_id, current = await provider_id_gen(tx, uuid)
            check_generation(uuid, generation, current)
            ids: dict[str, int] = {}
            if wanted:
                ids = {r[0]: r[1] for r in await tx.rows(_AGGREGATE_IDS, {"uuids": wanted})}
                missing = [u for u in wanted if u not in ids]
                if missing:
                    await tx.run(_INSERT_AGGREGATE, [
                        {"uuid": u, "created_at": now, "updated_at": now} for u in missing])
                    ids.update((r[0], r[1])
                               for r in await tx.rows(_AGGREGATE_IDS, {"uuids": missing}))
            new_generation = await bump_generation(tx, rp_id, generation, uuid, now)
            await tx.run(_UNLINK_AGGREGATES, {"rp_id": rp_id})
            await tx.run(_LINK_AGGREGATE, [{"resource_provider_id": rp_id, "aggregate_id": i}
                                           for i in ids.values()])
            return new_generation

        return await _retry_duplicates(self.db, body)
