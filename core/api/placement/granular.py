"""Allocation candidates for granular requests (numbered groups, microversion 1.25).

The Store answers one request group at a time: the unnumbered group with
``Store.allocation_candidates`` (spread over a provider tree and sharing
providers), a numbered group with ``Store.list_resource_providers`` (every
provider that can take the whole group alone). This module combines the
answers as Placement does: per *anchor* (the root of a non-sharing tree), one
choice per group; under ``group_policy=isolate`` numbered groups use distinct
providers; amounts that land on the same provider and class are added up and
must still fit its capacity and ``max_unit``.

It also holds :class:`ProviderInfo`, the per-provider facts (capacity, usage,
traits) that provider summaries are made of, read once per request.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

from nimbus.core.db.placement import MISC_SHARES_VIA_AGGREGATE, ResourceProviderRecord
from nimbus.core.db.store import Store

#: provider uuid -> class -> amount.
Amounts = dict[str, dict[str, int]]


@dataclass(slots=True)
class RequestGroup:
    """One group of a request: all from one provider if ``suffix``, else from one tree."""

    suffix: str
    resources: dict[str, int] = field(default_factory=dict)
    required: set[str] = field(default_factory=set)
    forbidden: set[str] = field(default_factory=set)
    member_of: list[set[str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Usage:
    """One class on one provider: capacity, what is used, the largest single allocation."""

    capacity: int
    used: int
    max_unit: int


class ProviderInfo:
    """Facts about providers for one request, each read from the Store at most once."""

    def __init__(self, store: Store, providers: list[ResourceProviderRecord]) -> None:
        self.store = store
        #: Every provider, oldest first.
        self.providers = {rp.uuid: rp for rp in providers}
        self._usage: dict[str, dict[str, Usage]] = {}
        self._traits: dict[str, frozenset[str]] = {}
        self._trees: dict[str, list[str]] = {}
        for rp in providers:
            self._trees.setdefault(rp.root_provider_uuid, []).append(rp.uuid)
        #: Roots of trees with more than one provider.
        self.nested_roots = frozenset(r for r, members in self._trees.items() if len(members) > 1)

    def root(self, uuid: str) -> str:
        """The root of a provider's tree."""
        rp = self.providers.get(uuid)
        return rp.root_provider_uuid if rp is not None else uuid

    def tree(self, root: str) -> list[str]:
        """Every provider of a tree, oldest first."""
        return self._trees.get(root, [])

    def remember(self, uuid: str, usage: dict[str, Usage], traits: frozenset[str]) -> None:
        """Record facts already read (from the Store's candidate summaries)."""
        self._usage[uuid] = usage
        self._traits[uuid] = traits

    async def usage(self, uuid: str) -> dict[str, Usage]:
        """Capacity, usage and max_unit of each class the provider has inventory of."""
        if uuid not in self._usage:
            inventories = (await self.store.get_inventories(uuid)).inventories
            used = await self.store.usages_for_provider(uuid)
            self._usage[uuid] = {rc: Usage(spec.capacity, used.get(rc, 0), spec.max_unit)
                                 for rc, spec in inventories.items()}
        return self._usage[uuid]

    async def traits(self, uuid: str) -> frozenset[str]:
        """The provider's traits."""
        if uuid not in self._traits:
            self._traits[uuid] = (await self.store.get_traits(uuid)).traits
        return self._traits[uuid]


async def combine(store: Store, info: ProviderInfo, groups: dict[str, RequestGroup],
                  isolate: bool, limit: int | None) -> list[Amounts]:
    """Allocation requests that satisfy every group, at most ``limit`` of them."""
    sharing = {rp.uuid for rp in await store.list_resource_providers(
        required_traits=[MISC_SHARES_VIA_AGGREGATE])}
    options: dict[str, dict[str, list[Amounts]]] = {}  # anchor -> suffix -> choices
    for suffix, group in groups.items():
        found = (await _tree_options(store, info, group, sharing) if not suffix
                 else await _provider_options(store, info, group, sharing))
        for anchor, choice in found:
            options.setdefault(anchor, {}).setdefault(suffix, []).append(choice)
    out: list[Amounts] = []
    # Placement tells candidates apart by their amounts and by which provider served which
    # group, so two that differ only in the latter are both returned (as Placement does).
    seen: set[tuple[object, ...]] = set()
    anchors = [a for a in info.providers if a in options] + sorted(
        a for a in options if a not in info.providers)
    for anchor in anchors:
        by_suffix = options[anchor]
        if set(by_suffix) != set(groups):
            continue
        suffixes = sorted(by_suffix)
        for combo in itertools.product(*(by_suffix[s] for s in suffixes)):
            if isolate and not _isolated(suffixes, combo):
                continue
            merged = _merge(combo)
            key = (*sorted((rp, rc, n) for rp, res in merged.items() for rc, n in res.items()),
                   *((s, *sorted(choice)) for s, choice in zip(suffixes, combo, strict=True)))
            if key in seen or not await _fits(info, merged):
                continue
            seen.add(key)
            out.append(merged)
            if limit is not None and len(out) >= limit:
                return out
    return out


async def _tree_options(store: Store, info: ProviderInfo, group: RequestGroup,
                        sharing: set[str]) -> list[tuple[str, Amounts]]:
    """The unnumbered group's candidates, each with its anchor."""
    found = await store.allocation_candidates(
        group.resources, required_traits=group.required, forbidden_traits=group.forbidden,
        member_of=group.member_of)
    out = []
    for request in found.allocation_requests:
        own = [rp for rp in request if rp not in sharing] or list(request)
        out.append((info.root(own[0]), request))
    return out


async def _provider_options(store: Store, info: ProviderInfo, group: RequestGroup,
                            sharing: set[str]) -> list[tuple[str, Amounts]]:
    """A numbered group's candidates: each provider able to take it all, per anchor."""
    found = await store.list_resource_providers(
        required_traits=group.required, forbidden_traits=group.forbidden,
        member_of=group.member_of, resources=group.resources)
    out: list[tuple[str, Amounts]] = []
    for rp in found:
        choice = {rp.uuid: dict(group.resources)}
        anchors = {rp.root_provider_uuid}
        if rp.uuid in sharing:
            aggregates = (await store.get_provider_aggregates(rp.uuid)).aggregates
            if aggregates:
                anchors |= {peer.root_provider_uuid for peer in
                            await store.list_resource_providers(member_of=[aggregates])}
        out.extend((anchor, choice) for anchor in sorted(anchors))
    return out


def _isolated(suffixes: list[str], combo: tuple[Amounts, ...]) -> bool:
    """Whether the numbered groups of a combination use pairwise distinct providers."""
    used = [next(iter(choice)) for suffix, choice in zip(suffixes, combo, strict=True)
            if suffix]
    return len(used) == len(set(used))


def _merge(combo: tuple[Amounts, ...]) -> Amounts:
    merged: Amounts = {}
    for choice in combo:
        for rp, resources in choice.items():
            mine = merged.setdefault(rp, {})
            for rc, amount in resources.items():
                mine[rc] = mine.get(rc, 0) + amount
    return merged


async def _fits(info: ProviderInfo, merged: Amounts) -> bool:
    """Whether added-up amounts still fit each provider's capacity and max_unit."""
    for rp, resources in merged.items():
        usage = await info.usage(rp)
        for rc, amount in resources.items():
            have = usage.get(rc)
            if have is None or have.used + amount > have.capacity or amount > have.max_unit:
                return False
    return True


def iter_requests(requests: list[Amounts]) -> Iterator[str]:
    """Every provider named in some requests, each once, in order of appearance."""
    seen: set[str] = set()
    for request in requests:
        for rp in request:
            if rp not in seen:
                seen.add(rp)
                yield rp
