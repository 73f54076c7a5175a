"""``/resource_providers/{uuid}/aggregates`` (from 1.1): the aggregates a provider is in.

Before 1.19 the body is a bare list of aggregate uuids; from 1.19 it is
``{"aggregates": [...], "resource_provider_generation": N}`` both ways, and a
``PUT`` with a stale generation is a 409 ``placement.concurrent_update``.
"""

from __future__ import annotations

from typing import Any

from nimbus.core.api.http import ApiContext, Response
from nimbus.core.api.placement import errors, schemas
from nimbus.core.api.placement.wire import PlacementRequest, json_response, last_modified, store_of
from nimbus.core.db.placement import ProviderAggregates
from nimbus.core.db.store import Store
from nimbus.core.errors import NotFound

#: The first microversion whose aggregate bodies carry the provider generation.
GENERATION_VERSION = 19


def _body(preq: PlacementRequest, aggregates: list[str], generation: int) -> dict[str, Any]:
    body: dict[str, Any] = {"aggregates": aggregates}
    if preq.at_least(GENERATION_VERSION):
        body["resource_provider_generation"] = generation
    return body


async def _current(store: Store, uuid: str) -> ProviderAggregates:
    try:
        return await store.get_provider_aggregates(uuid)
    except NotFound:
        raise errors.not_found(f"No resource provider with uuid {uuid} found.") from None


async def show_aggregates(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``GET .../aggregates``."""
    found = await _current(store_of(ctx), preq.param("uuid"))
    return json_response(_body(preq, sorted(found.aggregates), found.generation),
                         headers=last_modified(ctx, preq))


async def set_aggregates(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``PUT .../aggregates``: replace the provider's aggregates."""
    store = store_of(ctx)
    uuid = preq.param("uuid")
    with_generation = preq.at_least(GENERATION_VERSION)
    data = preq.body(schemas.AGGREGATES_PUT_1_19 if with_generation else schemas.AGGREGATES_PUT)
    found = await _current(store, uuid)
    wanted: list[str] = data["aggregates"] if with_generation else data
    if with_generation and data["resource_provider_generation"] != found.generation:
        raise errors.conflict(
            f"Resource provider {uuid} changed since generation "
            f"{data['resource_provider_generation']} (it is at {found.generation}); read it "
            f"again and retry.", errors.CONCURRENT_UPDATE)
    generation = await store.set_provider_aggregates(uuid, found.generation, wanted,
                                                     now=ctx.runtime.wall_time())
    return json_response(_body(preq, wanted, generation), headers=last_modified(ctx, preq))
