"""Placement Store, part four: allocation candidates, what the scheduler chooses from.

Which providers can take a request is decided in SQL: inventories that can take
their class's amount (capacity left, min_unit, max_unit, step_size) are grouped
by the root of their provider tree, and a tree qualifies when it can take every
requested class (each class from one provider of the tree, preferring the
root). Required and forbidden traits and ``member_of`` apply to the root (the
compute node). Python only assembles the (at most ``limit``) rows returned.

Shared providers, simply: a provider with ``MISC_SHARES_VIA_AGGREGATE`` that
can take some of the classes serves them for trees that share an aggregate
with it and can take the rest. Those candidates follow the single-tree ones.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import Integer, Select, bindparam, func, select

from nimbus.core.db.area import StoreArea
from nimbus.core.db.database import Tx
from nimbus.core.db.placement import (
    MAX_INT,
    AllocationCandidates,
    InventorySpec,
    ProviderSummary,
    ResourceProviderRecord,
    ResourceSummary,
    check_amounts,
    inventories,
    resource_classes,
    resource_provider_traits,
    resource_providers,
    traits,
)
from nimbus.core.db.placement_sql import (
    PROVIDER_COLUMNS,
    PROVIDER_FROM,
    capable_clause,
    capable_params,
    class_ids,
    class_name,
    in_any_aggregate,
    sharing_an_aggregate_with,
    sharing_providers,
    used_sum,
    with_all_traits,
    with_any_trait,
)
from nimbus.core.errors import InvalidPlacementInput, NotFound

_inv = inventories.alias("inv")
_rp = resource_providers.alias("rp")
_FROM = _inv.join(_rp, _rp.c.id == _inv.c.resource_provider_id)


@functools.cache
def _roots_query(n: int, member_groups: int, required: bool, forbidden: bool,
                 shared: bool) -> Select[Any]:
    """Roots of trees that can take all ``n`` classes, in id order, at most ``limit``."""
    root = _rp.c.root_provider_id
    stmt = (select(root).select_from(_FROM)
            .where(capable_clause(_inv, n))
            .group_by(root)
            .having(func.count(_inv.c.resource_class_id.distinct())
                    == bindparam("n_classes", type_=Integer))
            .order_by(root)
            .limit(bindparam("limit", type_=Integer)))
    for i in range(member_groups):
        stmt = stmt.where(root.in_(in_any_aggregate(f"agg{i}")))
    if required:
        stmt = stmt.where(root.in_(with_all_traits("required", "n_required")))
    if forbidden:
        stmt = stmt.where(root.not_in(with_any_trait("forbidden")))
    if shared:
        stmt = stmt.where(root.in_(sharing_an_aggregate_with("sharing_id")),
                          root.not_in(sharing_providers()))
    return stmt


@functools.cache
def _tree_rows(n: int) -> Select[Any]:
    """(root id, provider id, provider uuid, class id) for each provider of the given
    trees that can take one of the ``n`` classes."""
    return (select(_rp.c.root_provider_id, _rp.c.id, _rp.c.uuid, _inv.c.resource_class_id)
            .select_from(_FROM)
            .where(capable_clause(_inv, n),
                   _rp.c.root_provider_id.in_(bindparam("roots", expanding=True)))
            .order_by(_rp.c.root_provider_id, _rp.c.id))


@functools.cache
def _sharing_rows(n: int) -> Select[Any]:
    """(provider id, provider uuid, class id) for each sharing provider that can take one
    of the ``n`` classes."""
    return (select(_rp.c.id, _rp.c.uuid, _inv.c.resource_class_id)
            .select_from(_FROM)
            .where(capable_clause(_inv, n), _rp.c.id.in_(sharing_providers()))
            .order_by(_rp.c.id))


_SUMMARY_PROVIDERS = (select(*PROVIDER_COLUMNS).select_from(PROVIDER_FROM)
                      .where(resource_providers.c.uuid.in_(bindparam("uuids", expanding=True))))
_SUMMARY_INVENTORIES = (
    select(inventories.c.resource_provider_id, inventories.c.resource_class_id,
           resource_classes.c.name, inventories.c.total, inventories.c.reserved,
           inventories.c.allocation_ratio, used_sum(inventories))
    .select_from(inventories.outerjoin(
        resource_classes, resource_classes.c.id == inventories.c.resource_class_id))
    .where(inventories.c.resource_provider_id.in_(bindparam("ids", expanding=True))))
_SUMMARY_TRAITS = (
    select(resource_provider_traits.c.resource_provider_id, traits.c.name)
    .select_from(resource_provider_traits.join(
        traits, traits.c.id == resource_provider_traits.c.trait_id))
    .where(resource_provider_traits.c.resource_provider_id.in_(
        bindparam("ids", expanding=True))))

#: An allocation request: provider uuid -> class -> amount.
Request = dict[str, dict[str, int]]


class CandidateStore(StoreArea):
    """Store method for allocation candidates."""

    async def allocation_candidates(
        self, resources: Mapping[str, int], *, required_traits: Collection[str] = (),
        forbidden_traits: Collection[str] = (), member_of: Collection[Collection[str]] = (),
        limit: int | None = None, summaries: bool = True,
    ) -> AllocationCandidates:
        """Ways to place ``resources`` (class -> amount) now, at most ``limit`` of them.

        ``summaries=False`` leaves out the provider summaries (a caller that only
        claims one of the requests, such as the scheduler, saves reading them).

        ``required_traits`` all on, and ``forbidden_traits`` none on, the root
        provider; ``member_of``: groups of aggregate uuids, the root is in at
        least one aggregate of each group. Single-tree candidates come first
        (in provider id order), then those with a shared provider.
        """
        wanted = dict(resources)
        if not wanted:
            raise InvalidPlacementInput("allocation candidates: no resources requested")
        check_amounts(wanted, "allocation candidates")
        cap = MAX_INT if limit is None else limit
        groups = [sorted(set(g)) for g in member_of]
        required, forbidden = sorted(set(required_traits)), sorted(set(forbidden_traits))
        params: dict[str, Any] = {"required": required, "n_required": len(required),
                                  "forbidden": forbidden}
        params.update((f"agg{i}", g) for i, g in enumerate(groups))
        shape = (len(groups), bool(required), bool(forbidden))

        async def body(tx: Tx) -> AllocationCandidates:
            try:
                ids = await class_ids(tx, wanted)
            except NotFound:
                return AllocationCandidates([], {})  # no provider has an unknown class
            need = {ids[rc]: n for rc, n in wanted.items()}
            names = {ids[rc]: rc for rc in wanted}
            requests = await _tree_requests(tx, need, names, params, shape, cap, None)
            if len(requests) < cap:
                requests += await _shared_requests(tx, need, names, params, shape,
                                                   cap - len(requests))
            return AllocationCandidates(
                requests, await _summaries(tx, requests) if summaries else {})

        return await self.db.transact(body)


async def _tree_requests(tx: Tx, need: dict[int, int], names: dict[int, str],
                         params: dict[str, Any], shape: tuple[int, bool, bool], limit: int,
                         sharing_id: int | None) -> list[Request]:
    """Requests served each by one tree (that shares an aggregate with ``sharing_id``)."""
    wanted = sorted(need.items())
    run = {**params, **capable_params(wanted), "n_classes": len(wanted), "limit": limit,
           "sharing_id": sharing_id}
    stmt = _roots_query(len(wanted), *shape, sharing_id is not None)
    roots = [r[0] for r in await tx.rows(stmt, run)]
    if not roots:
        return []
    # per tree and class, the provider that serves it: the root if it can, else the first
    chosen: dict[int, dict[int, tuple[int, str]]] = {root: {} for root in roots}
    rows = await tx.rows(_tree_rows(len(wanted)), {**run, "roots": roots})
    for root, rp_id, rp_uuid, rc_id in rows:
        picks = chosen[root]
        if rc_id not in picks or rp_id == root:
            picks[rc_id] = (rp_id, rp_uuid)
    out = []
    for root in roots:
        request: Request = {}
        for rc_id, (_, rp_uuid) in sorted(chosen[root].items()):
            request.setdefault(rp_uuid, {})[names[rc_id]] = need[rc_id]
        out.append(request)
    return out


async def _shared_requests(tx: Tx, need: dict[int, int], names: dict[int, str],
                           params: dict[str, Any], shape: tuple[int, bool, bool],
                           limit: int) -> list[Request]:
    """Requests where one sharing provider serves every class it can, a tree the rest."""
    wanted = sorted(need.items())
    rows = await tx.rows(_sharing_rows(len(wanted)), capable_params(wanted))
    sharing: dict[int, tuple[str, set[int]]] = {}
    for rp_id, rp_uuid, rc_id in rows:
        sharing.setdefault(rp_id, (rp_uuid, set()))[1].add(rc_id)
    out: list[Request] = []
    for sp_id, (sp_uuid, covered) in sharing.items():
        rest = {rc: n for rc, n in need.items() if rc not in covered}
        if not rest or len(out) >= limit:
            continue  # a sharing provider that serves it all alone is a tree of its own
        part = {names[rc]: need[rc] for rc in sorted(covered)}
        for request in await _tree_requests(tx, rest, names, params, shape,
                                            limit - len(out), sp_id):
            out.append({**request, sp_uuid: part})
    return out


async def _summaries(tx: Tx, requests: list[Request]) -> dict[str, ProviderSummary]:
    """Summaries of every provider named in ``requests``."""
    uuids = {u for request in requests for u in request}
    if not uuids:
        return {}
    providers = await tx.rows(_SUMMARY_PROVIDERS, {"uuids": sorted(uuids)})
    ids = sorted(r[0] for r in providers)
    resources: dict[int, dict[str, ResourceSummary]] = {i: {} for i in ids}
    for rp_id, rc_id, custom, total, reserved, ratio, used in await tx.rows(
            _SUMMARY_INVENTORIES, {"ids": ids}):
        capacity = InventorySpec(total, reserved, allocation_ratio=ratio).capacity
        resources[rp_id][class_name(rc_id, custom)] = ResourceSummary(capacity, int(used))
    names: dict[int, set[str]] = {i: set() for i in ids}
    for rp_id, trait in await tx.rows(_SUMMARY_TRAITS, {"ids": ids}):
        names[rp_id].add(trait)
    out = {}
    for row in providers:
        rp = ResourceProviderRecord.from_row(row)
        out[rp.uuid] = ProviderSummary(rp.uuid, rp.name, rp.generation, rp.root_provider_uuid,
                                       rp.parent_provider_uuid, resources[rp.id],
                                       frozenset(names[rp.id]))
    return out
