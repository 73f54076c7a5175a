"""Allocations: ``/allocations/{consumer}``, ``POST /allocations``, a provider's
``.../allocations``, and ``/usages``.

Bodies change with the microversion: a list of ``{resource_provider, resources}``
before 1.12, a dict by provider uuid from 1.12; ``project_id`` and ``user_id``
are required from 1.8; from 1.28 a ``consumer_generation`` (null for a new
consumer) guards every write, and an empty dict releases everything. Before
1.8 a consumer belongs to Placement's "incomplete consumer" project and user.

``POST /allocations`` (1.13) changes several consumers. The Store changes one
consumer per transaction, so this handler checks every consumer's generation
and every provider first, writes releases before claims, and on a failure puts
back what it already changed: all or nothing, except against a concurrent
writer of the same consumers.
"""

from __future__ import annotations

import uuid as uuidlib
from typing import Any

from nimbus.core.api.http import ApiContext, Response
from nimbus.core.api.placement import errors, schemas
from nimbus.core.api.placement.providers import get_provider
from nimbus.core.api.placement.wire import (
    PlacementRequest,
    empty,
    json_response,
    last_modified,
    store_of,
)
from nimbus.core.db.placement import ConsumerAllocations
from nimbus.core.db.store import Store
from nimbus.core.errors import (
    CapacityExceeded,
    ConflictError,
    GenerationConflict,
    InvalidPlacementInput,
    NimbusError,
    NotFound,
)

#: The project and user of consumers written before microversion 1.8.
INCOMPLETE_CONSUMER_ID = "00000000-0000-0000-0000-000000000000"

Amounts = dict[str, dict[str, int]]


def _put_schema(preq: PlacementRequest) -> schemas.Schema:
    if preq.at_least(28):
        return schemas.ALLOCATIONS_PUT_1_28
    if preq.at_least(12):
        return schemas.ALLOCATIONS_PUT_1_12
    if preq.at_least(8):
        return schemas.ALLOCATIONS_PUT_1_8
    return schemas.ALLOCATIONS_PUT


def _amounts(preq: PlacementRequest, allocations: Any) -> Amounts:
    """provider uuid -> class -> amount, from either body form."""
    if preq.at_least(12):
        return {rp: dict(entry["resources"]) for rp, entry in allocations.items()}
    return {item["resource_provider"]["uuid"]: dict(item["resources"]) for item in allocations}


def _claim_error(consumer: str, exc: NimbusError) -> errors.PlacementError:
    """Placement's answer for a claim the Store refused."""
    if isinstance(exc, GenerationConflict):
        return errors.conflict(f"consumer generation conflict: {exc.message}",
                               errors.CONCURRENT_UPDATE)
    if isinstance(exc, (NotFound, InvalidPlacementInput)):
        return errors.bad_request(f"Unable to allocate inventory for consumer {consumer}: "
                                  f"{exc.message}")
    if isinstance(exc, CapacityExceeded):
        return errors.conflict(f"Unable to allocate inventory: {exc.message}")
    if isinstance(exc, ConflictError):
        return errors.conflict(f"Inventory and/or allocations changed while attempting to "
                               f"allocate: {exc.message}", errors.CONCURRENT_UPDATE)
    return errors.as_placement_error(exc)


async def show_consumer(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``GET /allocations/{consumer_uuid}``: what the consumer holds, by provider."""
    store = store_of(ctx)
    held = await store.get_allocations(preq.param("consumer_uuid"))
    allocations: dict[str, Any] = {}
    for rp_uuid, resources in held.allocations.items():
        rp = await store.get_resource_provider(rp_uuid)
        allocations[rp_uuid] = {"generation": rp.generation, "resources": resources}
    body: dict[str, Any] = {"allocations": allocations}
    if allocations and preq.at_least(12):
        body["project_id"] = held.project_id
        body["user_id"] = held.user_id
        if preq.at_least(28):
            body["consumer_generation"] = held.generation
    return json_response(body, headers=last_modified(ctx, preq))


async def put_consumer(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``PUT /allocations/{consumer_uuid}``: replace everything the consumer holds."""
    store = store_of(ctx)
    raw = preq.param("consumer_uuid")
    if not schemas.is_uuid_like(raw):
        raise errors.bad_request(f"Malformed consumer_uuid: {raw}")
    consumer = str(uuidlib.UUID(raw))
    data = preq.body(_put_schema(preq))
    wanted = _amounts(preq, data["allocations"])
    if preq.at_least(28):
        generation = data["consumer_generation"]
    else:  # no guard before 1.28: write over whatever is there
        generation = (await store.get_allocations(consumer)).generation
    try:
        await store.claim_allocations(
            consumer, wanted, project_id=data.get("project_id", INCOMPLETE_CONSUMER_ID),
            user_id=data.get("user_id", INCOMPLETE_CONSUMER_ID), now=ctx.runtime.wall_time(),
            consumer_generation=generation)
    except NimbusError as exc:
        raise _claim_error(consumer, exc) from None
    return empty()


async def delete_consumer(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``DELETE /allocations/{consumer_uuid}``: release everything (no generation check)."""
    consumer = preq.param("consumer_uuid")
    try:
        await store_of(ctx).delete_allocations(consumer)
    except NotFound:
        raise errors.not_found(f"No allocations for consumer {consumer!r}.") from None
    return empty()


async def post_allocations(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``POST /allocations`` (from 1.13): replace what several consumers hold."""
    store = store_of(ctx)
    with_generations = preq.at_least(28)
    data = preq.body(schemas.ALLOCATIONS_POST_1_28 if with_generations
                     else schemas.ALLOCATIONS_POST)
    wanted = {c: _amounts(preq, part["allocations"]) for c, part in data.items()}
    current = {c: await store.get_allocations(c) for c in data}
    if with_generations:
        for c, part in data.items():
            if part["consumer_generation"] != current[c].generation:
                raise errors.conflict(
                    f"consumer generation conflict: consumer {c} is at generation "
                    f"{current[c].generation}, not {part['consumer_generation']}",
                    errors.CONCURRENT_UPDATE)
    for rp_uuid in sorted({rp for amounts in wanted.values() for rp in amounts}):
        try:
            await store.get_resource_provider(rp_uuid)
        except NotFound:
            raise errors.bad_request(f"Allocation for resource provider {rp_uuid!r} that does "
                                     f"not exist.") from None
    # releases first, so that what they free can be claimed in the same request
    order = sorted(data, key=lambda c: bool(wanted[c]))
    done: list[tuple[str, int | None]] = []
    for c in order:
        try:
            after = await store.claim_allocations(
                c, wanted[c], project_id=data[c]["project_id"], user_id=data[c]["user_id"],
                now=ctx.runtime.wall_time(), consumer_generation=current[c].generation)
        except NimbusError as exc:
            await _put_back(ctx, store, done, current)
            raise _claim_error(c, exc) from None
        done.append((c, after.generation))
    return empty()


async def _put_back(ctx: ApiContext, store: Store, done: list[tuple[str, int | None]],
                    before: dict[str, ConsumerAllocations]) -> None:
    """Undo the claims of a ``POST /allocations`` that failed part way, newest first."""
    for consumer, generation in reversed(done):
        prior = before[consumer]
        try:
            await store.claim_allocations(
                consumer, prior.allocations,
                project_id=prior.project_id or INCOMPLETE_CONSUMER_ID,
                user_id=prior.user_id or INCOMPLETE_CONSUMER_ID,
                now=ctx.runtime.wall_time(), consumer_generation=generation)
        except NimbusError:
            pass  # someone else wrote this consumer since; theirs is the newer state


async def provider_allocations(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``GET /resource_providers/{uuid}/allocations``: what each consumer holds of it."""
    store = store_of(ctx)
    rp = await get_provider(store, preq.param("uuid"))
    held = await store.allocations_for_provider(rp.uuid)
    allocations: dict[str, Any] = {}
    for consumer, resources in held.items():
        entry: dict[str, Any] = {"resources": resources}
        if preq.at_least(28):
            entry["consumer_generation"] = (await store.get_allocations(consumer)).generation
        allocations[consumer] = entry
    return json_response({"allocations": allocations,
                          "resource_provider_generation": rp.generation},
                         headers=last_modified(ctx, preq))


async def usages(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``GET /usages?project_id=&user_id=`` (from 1.9): what a project (or user) holds."""
    params = preq.query(schemas.USAGES_QUERY)
    found = await store_of(ctx).usages_for_project(params["project_id"], params.get("user_id"))
    return json_response({"usages": found}, headers=last_modified(ctx, preq))
