"""``GET /allocation_candidates`` (from 1.10): ways to place a request, and the providers in them.

Query parameters by microversion: ``resources`` (1.10), ``limit`` (1.16),
``required`` (1.17, forbidden ``!`` traits from 1.22), ``member_of`` (1.21,
repeatable from 1.24), numbered groups ``resourcesN``/``requiredN``/
``member_ofN`` with ``group_policy`` (1.25). The answer's shape changes too:
allocation requests as a dict by provider from 1.12, traits in the provider
summaries from 1.17, every class of a summarized provider from 1.27, parent
and root from 1.29. Before 1.29 the request is not "nested aware": candidates
that touch a provider tree of more than one provider are left out.

Nimbus's Store checks the traits and aggregates of the unnumbered group on the
root of each tree (Placement: on the providers in the candidate); for fleets
of one provider per compute node, as Nova makes, the two agree.
"""

from __future__ import annotations

import re
from typing import Any

from nimbus.core.api.http import ApiContext, Response
from nimbus.core.api.placement import errors, query, schemas
from nimbus.core.api.placement.granular import (
    Amounts,
    ProviderInfo,
    RequestGroup,
    Usage,
    combine,
    iter_requests,
)
from nimbus.core.api.placement.wire import PlacementRequest, json_response, last_modified, store_of
from nimbus.core.db.store import Store

_GROUP_KEY = re.compile(rf"^(resources|required|member_of)({schemas.GROUP_SUFFIX})?$")


def _query_schema(preq: PlacementRequest) -> schemas.Schema:
    for minor, schema in ((25, schemas.CANDIDATES_QUERY_1_25), (21, schemas.CANDIDATES_QUERY_1_21),
                          (17, schemas.CANDIDATES_QUERY_1_17), (16, schemas.CANDIDATES_QUERY_1_16)):
        if preq.at_least(minor):
            return schema
    return schemas.CANDIDATES_QUERY


def parse_groups(preq: PlacementRequest, params: dict[str, str]) -> dict[str, RequestGroup]:
    """The request groups by suffix ("" for the unnumbered one), checked as Placement does."""
    groups: dict[str, RequestGroup] = {}
    for key in params:
        match = _GROUP_KEY.match(key)
        if match is None:
            continue
        kind, suffix = match.group(1), match.group(2) or ""
        group = groups.setdefault(suffix, RequestGroup(suffix))
        if kind == "resources":
            group.resources = query.resources(params[key], key)
        elif kind == "required":
            group.required, group.forbidden = query.traits(
                params[key], allow_forbidden=preq.at_least(22), key=key)
        else:
            group.member_of = query.member_of(preq.values(key),
                                              allow_multiple=preq.at_least(24), key=key)
    orphans = [f"{kind}{g.suffix}" for g in groups.values() if not g.resources
               for kind, present in (("required", g.required or g.forbidden),
                                     ("member_of", g.member_of)) if present]
    if orphans:
        raise errors.bad_request(f"Every traits and member_of parameter needs resources with "
                                 f"the same suffix; orphaned: {', '.join(sorted(orphans))}.")
    if not groups:
        raise errors.bad_request("At least one request group (resources or resourcesN) is "
                                 "required.", errors.QUERY_MISSING_VALUE)
    if preq.at_least(22):
        clashes = [f"required{g.suffix}: {', '.join(sorted(g.required & g.forbidden))}"
                   for g in groups.values() if g.required & g.forbidden]
        if clashes:
            raise errors.bad_request(f"Conflicting required and forbidden traits found in "
                                     f"the following traits keys: {'; '.join(clashes)}.")
    return groups


async def list_candidates(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``GET /allocation_candidates``."""
    store = store_of(ctx)
    params = preq.query(_query_schema(preq))
    groups = parse_groups(preq, params)
    numbered = [s for s in groups if s]
    policy = params.get("group_policy")
    if len(numbered) > 1 and policy is None:
        raise errors.bad_request('The "group_policy" parameter is required when specifying '
                                 'more than one "resources{N}" parameter.')
    limit = int(params["limit"]) if "limit" in params else None
    classes = {rc for g in groups.values() for rc in g.resources}
    await query.check_classes_exist(store, classes)
    await query.check_traits_exist(
        store, {t for g in groups.values() for t in g.required | g.forbidden})
    info = ProviderInfo(store, await store.list_resource_providers())
    nested_aware = preq.at_least(29)
    # Before 1.29 nested trees are left out, so the Store's limit cannot be trusted then.
    cut = limit if nested_aware or not info.nested_roots else None
    if numbered:
        requests = await combine(store, info, groups, policy == "isolate", cut)
    else:
        requests = await _single_group(store, info, groups[""], cut)
    if not nested_aware:
        requests = [r for r in requests
                    if not any(info.root(rp) in info.nested_roots for rp in r)]
    if limit is not None:
        requests = requests[:limit]
    return json_response({
        "allocation_requests": [_request_body(preq, r) for r in requests],
        "provider_summaries": await _summaries(preq, info, requests, classes),
    }, headers=last_modified(ctx, preq))


async def _single_group(store: Store, info: ProviderInfo, group: RequestGroup,
                        limit: int | None) -> list[Amounts]:
    found = await store.allocation_candidates(
        group.resources, required_traits=group.required, forbidden_traits=group.forbidden,
        member_of=group.member_of, limit=limit)
    for uuid, summary in found.provider_summaries.items():
        usage = {rc: Usage(r.capacity, r.used, schemas.MAX_INT)
                 for rc, r in summary.resources.items()}
        info.remember(uuid, usage, summary.traits)
    return found.allocation_requests


def _request_body(preq: PlacementRequest, request: Amounts) -> dict[str, Any]:
    if preq.at_least(12):
        return {"allocations": {rp: {"resources": res} for rp, res in request.items()}}
    return {"allocations": [{"resource_provider": {"uuid": rp}, "resources": res}
                            for rp, res in request.items()]}


async def _summaries(preq: PlacementRequest, info: ProviderInfo, requests: list[Amounts],
                     classes: set[str]) -> dict[str, Any]:
    """Every provider of every tree in the requests (and the sharing ones they use)."""
    wanted: dict[str, None] = {}
    for rp in iter_requests(requests):
        wanted.update(dict.fromkeys(info.tree(info.root(rp)) or [rp]))
    out: dict[str, Any] = {}
    for uuid in wanted:
        usage = await info.usage(uuid)
        summary: dict[str, Any] = {"resources": {
            rc: {"capacity": u.capacity, "used": u.used} for rc, u in usage.items()
            if preq.at_least(27) or rc in classes}}
        if preq.at_least(17):
            summary["traits"] = sorted(await info.traits(uuid))
        if preq.at_least(29):
            known = info.providers.get(uuid)
            summary["parent_provider_uuid"] = known.parent_provider_uuid if known else None
            summary["root_provider_uuid"] = known.root_provider_uuid if known else uuid
        out[uuid] = summary
    return out
