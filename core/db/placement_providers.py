"""Placement Store, part one: resource providers and their inventories.

Every write that changes what a provider offers takes the provider's generation
from the caller and bumps it with a compare-and-swap (``GenerationConflict`` if
it is stale), as placement's PUT calls do. Traits, aggregates and resource classes
are in :mod:`nimbus.core.db.placement_names`.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import Integer, Select, bindparam, func, select

from nimbus.core.db.area import StoreArea, found
from nimbus.core.db.database import Row, Tx
from nimbus.core.db.placement import (
    InventorySpec,
    ProviderInventories,
    ResourceProviderRecord,
    allocations,
    check_amounts,
    check_class_name,
    inventories,
    resource_classes,
    resource_provider_aggregates,
    resource_provider_traits,
    resource_providers,
)
from nimbus.core.db.placement_sql import (
    PROVIDER_BY_UUID,
    PROVIDER_COLUMNS,
    PROVIDER_FROM,
    bump_generation,
    capable_clause,
    capable_params,
    check_generation,
    class_ids,
    class_name,
    in_any_aggregate,
    provider_id_gen,
    with_all_traits,
    with_any_trait,
)
from nimbus.core.errors import ConflictError, InUse, NotFound

_rp = resource_providers.c
_inv = inventories.c
_al = allocations.c

_INSERT_PROVIDER = resource_providers.insert().returning(_rp.id)
_ROOT_IS_SELF = (resource_providers.update().where(_rp.id == bindparam("rp_id"))
                 .values(root_provider_id=_rp.id))
_PARENT = select(_rp.id, _rp.root_provider_id).where(_rp.uuid == bindparam("uuid"))
_RENAME = (resource_providers.update().where(_rp.uuid == bindparam("rp_uuid"))
           .values(name=bindparam("new_name"), updated_at=bindparam("now")))
_HAS_ALLOCATIONS = select(_al.id).where(_al.resource_provider_id == bindparam("rp_id")).limit(1)
_HAS_CHILDREN = select(_rp.id).where(_rp.parent_provider_id == bindparam("rp_id")).limit(1)
_DELETE_PROVIDER_IF = resource_providers.delete().where(
    _rp.id == bindparam("rp_id"), _rp.generation == bindparam("seen"))
_DELETE_INVENTORIES_OF = inventories.delete().where(
    _inv.resource_provider_id == bindparam("rp_id"))
_DELETE_TRAITS_OF = resource_provider_traits.delete().where(
    resource_provider_traits.c.resource_provider_id == bindparam("rp_id"))
_DELETE_AGGREGATES_OF = resource_provider_aggregates.delete().where(
    resource_provider_aggregates.c.resource_provider_id == bindparam("rp_id"))

_INVENTORIES_OF = (
    select(_inv.resource_class_id, resource_classes.c.name, _inv.total, _inv.reserved,
           _inv.min_unit, _inv.max_unit, _inv.step_size, _inv.allocation_ratio)
    .select_from(inventories.outerjoin(
        resource_classes, resource_classes.c.id == _inv.resource_class_id))
    .where(_inv.resource_provider_id == bindparam("rp_id"))
    .order_by(_inv.resource_class_id))
_USED_BY_CLASS = (select(_al.resource_class_id, func.sum(_al.used))
                  .where(_al.resource_provider_id == bindparam("rp_id"))
                  .group_by(_al.resource_class_id))
_INSERT_INVENTORY = inventories.insert()
_DELETE_INVENTORY = inventories.delete().where(
    _inv.resource_provider_id == bindparam("rp_id"),
    _inv.resource_class_id == bindparam("rc_id"))

_tree = resource_providers.alias("tree")
_inv_f = inventories.alias("inv")


@functools.cache
def _providers_query(by_name: bool, by_uuid: bool, member_groups: int, in_tree: bool,
                     required: bool, forbidden: bool, n_resources: int) -> Select[Any]:
    stmt = select(*PROVIDER_COLUMNS).select_from(PROVIDER_FROM)
    if by_name:
        stmt = stmt.where(_rp.name == bindparam("name"))
    if by_uuid:
        stmt = stmt.where(_rp.uuid == bindparam("uuid"))
    for i in range(member_groups):
        stmt = stmt.where(_rp.id.in_(in_any_aggregate(f"agg{i}")))
    if in_tree:
        stmt = stmt.where(_rp.root_provider_id == select(_tree.c.root_provider_id).where(
            _tree.c.uuid == bindparam("tree")).scalar_subquery())
    if required:
        stmt = stmt.where(_rp.id.in_(with_all_traits("required", "n_required")))
    if forbidden:
        stmt = stmt.where(_rp.id.not_in(with_any_trait("forbidden")))
    if n_resources:
        stmt = stmt.where(_rp.id.in_(
            select(_inv_f.c.resource_provider_id)
            .where(capable_clause(_inv_f, n_resources))
            .group_by(_inv_f.c.resource_provider_id)
            .having(func.count() == bindparam("n_classes", type_=Integer))))
    return stmt.order_by(_rp.id)


class ProviderStore(StoreArea):
    """Store methods for resource providers and their inventories."""

    async def create_resource_provider(
        self, *, uuid: str, name: str, now: float, parent_provider_uuid: str | None = None
    ) -> ResourceProviderRecord:
        """A new provider at generation 0, a root or the child of ``parent_provider_uuid``.

        ``DuplicateError`` if the uuid or the name is taken; ``NotFound`` for an
        unknown parent.
        """
        async def body(tx: Tx) -> ResourceProviderRecord:
            parent_id: int | None = None
            root_id: int | None = None
            if parent_provider_uuid is not None:
                parent = await tx.one(_PARENT, {"uuid": parent_provider_uuid})
                if parent is None:
                    raise NotFound(f"parent resource provider {parent_provider_uuid} not found")
                parent_id, root_id = parent[0], parent[1]
            rp_id = await tx.scalar(_INSERT_PROVIDER, {
                "uuid": uuid, "name": name, "generation": 0, "root_provider_id": root_id,
                "parent_provider_id": parent_id, "created_at": now, "updated_at": now})
            if root_id is None:
                await tx.run(_ROOT_IS_SELF, {"rp_id": rp_id})
            return await _provider(tx, uuid)

        return await self.db.transact(body)

    async def get_resource_provider(self, uuid: str) -> ResourceProviderRecord:
        """A provider by uuid; ``NotFound`` otherwise."""
        return await self.db.transact(lambda tx: _provider(tx, uuid))

    async def list_resource_providers(
        self, *, name: str | None = None, uuid: str | None = None,
        member_of: Collection[Collection[str]] = (), in_tree: str | None = None,
        required_traits: Collection[str] = (), forbidden_traits: Collection[str] = (),
        resources: Mapping[str, int] | None = None,
    ) -> list[ResourceProviderRecord]:
        """Providers matching every filter given, oldest first.

        ``member_of``: groups of aggregate uuids; a provider is in at least one
        aggregate of each group. ``in_tree``: in the same tree as that provider.
        ``required_traits`` all present, ``forbidden_traits`` all absent.
        ``resources``: can take these amounts now (capacity left, and within
        min_unit, max_unit and step_size of each class).
        """
        groups = [list(g) for g in member_of]
        required, forbidden = set(required_traits), set(forbidden_traits)
        params: dict[str, Any] = {"name": name, "uuid": uuid, "tree": in_tree,
                                  "required": sorted(required), "n_required": len(required),
                                  "forbidden": sorted(forbidden)}
        params.update((f"agg{i}", g) for i, g in enumerate(groups))
        wanted = dict(resources or {})
        check_amounts(wanted, "resources filter")
        stmt = _providers_query(name is not None, uuid is not None, len(groups),
                                in_tree is not None, bool(required), bool(forbidden),
                                len(wanted))

        async def body(tx: Tx) -> list[Row]:
            if wanted:
                try:
                    ids = await class_ids(tx, wanted)
                except NotFound:
                    return []  # nobody has a class that does not exist
                params.update(capable_params([(ids[rc], n) for rc, n in wanted.items()]))
                params["n_classes"] = len(wanted)
            return await tx.rows(stmt, params)

        return [ResourceProviderRecord.from_row(r) for r in await self.db.transact(body)]

    async def rename_resource_provider(
        self, uuid: str, name: str, *, now: float
    ) -> ResourceProviderRecord:
        """Give a provider a new name; ``DuplicateError`` if another has it."""
        async def body(tx: Tx) -> ResourceProviderRecord:
            if not await tx.run(_RENAME, {"rp_uuid": uuid, "new_name": name, "now": now}):
                raise NotFound(f"resource provider {uuid} not found")
            return await _provider(tx, uuid)

        return await self.db.transact(body)

    async def delete_resource_provider(self, uuid: str) -> None:
        """Delete a provider with its inventories, traits and aggregate links.

        ``InUse`` (a ``ConflictError``) if it has allocations or child providers.
        """
        async def body(tx: Tx) -> None:
            rp_id, seen = await provider_id_gen(tx, uuid)
            if await tx.one(_HAS_ALLOCATIONS, {"rp_id": rp_id}) is not None:
                raise InUse(f"resource provider {uuid} has allocations")
            if await tx.one(_HAS_CHILDREN, {"rp_id": rp_id}) is not None:
                raise InUse(f"resource provider {uuid} has child providers")
            for stmt in (_DELETE_INVENTORIES_OF, _DELETE_TRAITS_OF, _DELETE_AGGREGATES_OF):
                await tx.run(stmt, {"rp_id": rp_id})
            # a claim that read the provider before us fails its generation swap (retried)
            if not await tx.run(_DELETE_PROVIDER_IF, {"rp_id": rp_id, "seen": seen}):
                raise ConflictError(f"resource provider {uuid} changed while being deleted")

        await self.db.transact(body, conflict_retries=3)

    async def get_inventories(self, uuid: str) -> ProviderInventories:
        """A provider's inventories by class name, with its generation."""
        async def body(tx: Tx) -> ProviderInventories:
            rp_id, generation = await provider_id_gen(tx, uuid)
            rows = await tx.rows(_INVENTORIES_OF, {"rp_id": rp_id})
            return ProviderInventories(generation, {
                class_name(r[0], r[1]): InventorySpec.from_row(r[2:]) for r in rows})

        return await self.db.transact(body)

    async def set_inventories(
        self, uuid: str, generation: int, inventories: Mapping[str, InventorySpec], *,
        now: float,
    ) -> int:
        """Replace all of a provider's inventories; the new generation.

        ``ConflictError`` if ``generation`` is stale, or if a class with
        allocations would be removed or shrunk below what is allocated (the
        message names the class and the numbers).
        """
        for rc, spec in inventories.items():
            check_class_name(rc)
            spec.check(rc)
        return await self._change_inventories(uuid, generation, dict(inventories), now,
                                              replace_all=True)

    async def update_inventory(
        self, uuid: str, generation: int, resource_class: str, inventory: InventorySpec, *,
        now: float,
    ) -> int:
        """Add or replace one class's inventory of a provider; the new generation.

        ``ConflictError`` as for :meth:`set_inventories`.
        """
        check_class_name(resource_class)
        inventory.check(resource_class)
        return await self._change_inventories(uuid, generation, {resource_class: inventory},
                                              now, replace_all=False)

    async def delete_inventory(
        self, uuid: str, generation: int, resource_class: str, *, now: float
    ) -> int:
        """Remove one class's inventory; the new generation. ``NotFound`` if there is none,
        ``ConflictError`` if the generation is stale or the class has allocations."""
        return await self._change_inventories(uuid, generation, {resource_class: None}, now,
                                              replace_all=False)

    async def _change_inventories(
        self, uuid: str, generation: int, changes: dict[str, InventorySpec | None], now: float,
        *, replace_all: bool,
    ) -> int:
        async def body(tx: Tx) -> int:
            rp_id, current = await provider_id_gen(tx, uuid)
            check_generation(uuid, generation, current)
            ids = await class_ids(tx, changes)
            existing = {r[0]: class_name(r[0], r[1])
                        for r in await tx.rows(_INVENTORIES_OF, {"rp_id": rp_id})}
            used = {r[0]: int(r[1]) for r in await tx.rows(_USED_BY_CLASS, {"rp_id": rp_id})}
            new = {ids[rc]: spec for rc, spec in changes.items()}
            names = {**existing, **{ids[rc]: rc for rc in changes}}
            removed = ([i for i in existing if i not in new] if replace_all
                       else [i for i, spec in new.items() if spec is None])
            for rc_id in removed:
                if rc_id not in existing:
                    raise NotFound(f"resource provider {uuid} has no inventory of {names[rc_id]}")
                if used.get(rc_id, 0):
                    raise InUse(
                        f"inventory of {names[rc_id]} on resource provider {uuid} is in use "
                        f"({used[rc_id]} allocated): it cannot be removed")
            for rc_id, spec in new.items():
                if spec is not None and spec.capacity < used.get(rc_id, 0):
                    raise InUse(
                        f"inventory of {names[rc_id]} on resource provider {uuid} would have "
                        f"capacity {spec.capacity} but {used[rc_id]} is allocated")
            new_generation = await bump_generation(tx, rp_id, generation, uuid, now)
            for rc_id in removed:
                await tx.run(_DELETE_INVENTORY, {"rp_id": rp_id, "rc_id": rc_id})
            rows = []
            for rc_id, spec in new.items():
                if spec is None:
                    continue
                if rc_id in existing:
                    await tx.run(_DELETE_INVENTORY, {"rp_id": rp_id, "rc_id": rc_id})
                rows.append({"resource_provider_id": rp_id, "resource_class_id": rc_id,
                             "total": spec.total, "reserved": spec.reserved,
                             "min_unit": spec.min_unit, "max_unit": spec.max_unit,
                             "step_size": spec.step_size,
                             "allocation_ratio": spec.allocation_ratio,
                             "created_at": now, "updated_at": now})
            await tx.run(_INSERT_INVENTORY, rows)
            return new_generation

        return await self.db.transact(body)


async def _provider(tx: Tx, uuid: str) -> ResourceProviderRecord:
    row = await found(tx, PROVIDER_BY_UUID, {"uuid": uuid}, f"resource provider {uuid} not found")
    return ResourceProviderRecord.from_row(row)
