"""A provider's inventories (``.../inventories``, ``.../inventories/{resource_class}``)
and usages (``.../usages``).

Writes carry the provider generation the client last read; a stale one is a
409 ``placement.concurrent_update``. Removing an inventory that has
allocations (or, in Nimbus, shrinking it below them) is a 409
``placement.inventory.inuse``.
"""

from __future__ import annotations

from typing import Any

from nimbus.core.api.http import ApiContext, Response
from nimbus.core.api.placement import errors, schemas
from nimbus.core.api.placement.providers import get_provider, provider_url
from nimbus.core.api.placement.wire import (
    PlacementRequest,
    empty,
    json_response,
    last_modified,
    store_of,
)
from nimbus.core.db.placement import InventorySpec, ProviderInventories
from nimbus.core.db.store import Store
from nimbus.core.errors import InUse, NotFound


def inventory_body(spec: InventorySpec) -> dict[str, Any]:
    """One inventory's fields."""
    return {"total": spec.total, "reserved": spec.reserved, "min_unit": spec.min_unit,
            "max_unit": spec.max_unit, "step_size": spec.step_size,
            "allocation_ratio": spec.allocation_ratio}


def _spec(data: dict[str, Any]) -> InventorySpec:
    return InventorySpec(
        total=data["total"], reserved=data.get("reserved", 0),
        min_unit=data.get("min_unit", 1), max_unit=data.get("max_unit", schemas.MAX_INT),
        step_size=data.get("step_size", 1),
        allocation_ratio=float(data.get("allocation_ratio", 1.0)))


def _check_capacity(preq: PlacementRequest, uuid: str, rc: str, spec: InventorySpec) -> None:
    """400 for an inventory with no capacity (before 1.26, reserved may not equal total)."""
    capacity = int((spec.total - spec.reserved) * spec.allocation_ratio)
    if capacity < 0 or (capacity == 0 and not preq.at_least(26)):
        allowed = "not more than" if preq.at_least(26) else "less than"
        raise errors.bad_request(
            f"Unable to update inventory for resource provider {uuid}: invalid inventory of "
            f"{rc}: reserved ({spec.reserved}) must be {allowed} total ({spec.total}) and "
            f"the capacity above 0.")


async def _inventories(store: Store, uuid: str) -> ProviderInventories:
    try:
        return await store.get_inventories(uuid)
    except NotFound:
        raise errors.not_found(f"No resource provider with uuid {uuid} found.") from None


def _check_generation(uuid: str, given: int, current: int) -> None:
    if given != current:
        raise errors.conflict(f"Resource provider {uuid} generation conflict: given {given}, "
                              f"current {current}; read it again.", errors.CONCURRENT_UPDATE)


async def list_inventories(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``GET .../inventories``."""
    found = await _inventories(store_of(ctx), preq.param("uuid"))
    return json_response({
        "resource_provider_generation": found.generation,
        "inventories": {rc: inventory_body(spec) for rc, spec in found.inventories.items()},
    }, headers=last_modified(ctx, preq))


async def show_inventory(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``GET .../inventories/{resource_class}``."""
    uuid, rc = preq.param("uuid"), preq.param("resource_class")
    found = await _inventories(store_of(ctx), uuid)
    spec = found.inventories.get(rc)
    if spec is None:
        raise errors.not_found(f"No inventory of class {rc} for {uuid}.")
    return json_response({**inventory_body(spec),
                          "resource_provider_generation": found.generation},
                         headers=last_modified(ctx, preq))


async def create_inventory(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``POST .../inventories``: one new class; 409 if the provider has it already."""
    store = store_of(ctx)
    uuid = preq.param("uuid")
    data = preq.body(schemas.INVENTORY_POST)
    rc: str = data["resource_class"]
    found = await _inventories(store, uuid)
    if rc in found.inventories:
        raise errors.conflict(f"Update conflict: resource provider {uuid} already has an "
                              f"inventory of {rc}.", errors.CONCURRENT_UPDATE)
    spec = _spec(data)
    _check_capacity(preq, uuid, rc, spec)
    try:
        generation = await store.update_inventory(uuid, found.generation, rc, spec,
                                                  now=ctx.runtime.wall_time())
    except NotFound as exc:
        raise errors.bad_request(f"Unable to create inventory for resource provider {uuid}: "
                                 f"{exc.message}") from None
    return json_response({**inventory_body(spec), "resource_provider_generation": generation},
                         201, {"Location": f"{provider_url(uuid)}/inventories/{rc}",
                               **last_modified(ctx, preq)})


async def replace_inventories(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``PUT .../inventories``: every class at once; the ones left out are removed."""
    store = store_of(ctx)
    uuid = preq.param("uuid")
    data = preq.body(schemas.INVENTORIES_PUT)
    found = await _inventories(store, uuid)
    _check_generation(uuid, data["resource_provider_generation"], found.generation)
    wanted = {rc: _spec(fields) for rc, fields in data["inventories"].items()}
    for rc, spec in wanted.items():
        _check_capacity(preq, uuid, rc, spec)
    try:
        generation = await store.set_inventories(uuid, found.generation, wanted,
                                                 now=ctx.runtime.wall_time())
    except NotFound as exc:
        raise errors.bad_request(f"Unknown resource class in inventory for resource provider "
                                 f"{uuid}: {exc.message}") from None
    except InUse as exc:
        raise errors.conflict(f"Update conflict: {exc.message}", errors.INVENTORY_INUSE) \
            from None
    return json_response({
        "resource_provider_generation": generation,
        "inventories": {rc: inventory_body(spec) for rc, spec in wanted.items()},
    }, headers=last_modified(ctx, preq))


async def update_inventory(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``PUT .../inventories/{resource_class}``: change a class the provider has."""
    store = store_of(ctx)
    uuid, rc = preq.param("uuid"), preq.param("resource_class")
    data = preq.body(schemas.INVENTORY_PUT)
    found = await _inventories(store, uuid)
    _check_generation(uuid, data["resource_provider_generation"], found.generation)
    if rc not in found.inventories:
        raise errors.bad_request(f"No inventory of class {rc} on resource provider {uuid} to "
                                 f"update.")
    spec = _spec(data)
    _check_capacity(preq, uuid, rc, spec)
    try:
        generation = await store.update_inventory(uuid, found.generation, rc, spec,
                                                  now=ctx.runtime.wall_time())
    except InUse as exc:
        raise errors.conflict(f"Update conflict: {exc.message}", errors.INVENTORY_INUSE) \
            from None
    return json_response({**inventory_body(spec), "resource_provider_generation": generation},
                         headers=last_modified(ctx, preq))


async def delete_inventory(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``DELETE .../inventories/{resource_class}``: 409 while it has allocations."""
    store = store_of(ctx)
    uuid, rc = preq.param("uuid"), preq.param("resource_class")
    found = await _inventories(store, uuid)
    try:
        await store.delete_inventory(uuid, found.generation, rc, now=ctx.runtime.wall_time())
    except NotFound:
        raise errors.not_found(f"No inventory of class {rc} found for delete.") from None
    except InUse as exc:
        # Placement gives this refusal the concurrent-update code, unlike PUT's
        raise errors.conflict(f"Unable to delete inventory of class {rc}: {exc.message}",
                              errors.CONCURRENT_UPDATE) from None
    return empty()


async def delete_inventories(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``DELETE .../inventories`` (from 1.5): every class; 409 if one has allocations."""
    store = store_of(ctx)
    uuid = preq.param("uuid")
    found = await _inventories(store, uuid)
    try:
        await store.set_inventories(uuid, found.generation, {}, now=ctx.runtime.wall_time())
    except InUse as exc:
        raise errors.conflict(exc.message, errors.INVENTORY_INUSE) from None
    return empty()


async def provider_usages(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``GET .../usages``: what is allocated of each class the provider has."""
    store = store_of(ctx)
    rp = await get_provider(store, preq.param("uuid"))
    try:
        usages = await store.usages_for_provider(rp.uuid)
    except NotFound:
        raise errors.not_found(f"No resource provider with uuid {rp.uuid} found.") from None
    return json_response({"resource_provider_generation": rp.generation, "usages": usages},
                         headers=last_modified(ctx, preq))
