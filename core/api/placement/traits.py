"""Traits (from 1.6): ``/traits``, ``/traits/{name}`` and ``/resource_providers/{uuid}/traits``.

Standard traits always exist; custom ones (``CUSTOM_*``) are created with
``PUT /traits/{name}`` and may be deleted while no provider has them.
Setting a provider's traits replaces them all and needs its generation.
"""

from __future__ import annotations

import re

from nimbus.core.api.http import ApiContext, Response
from nimbus.core.api.placement import errors, schemas
from nimbus.core.api.placement.wire import (
    PlacementRequest,
    empty,
    json_response,
    last_modified,
    store_of,
)
from nimbus.core.db.placement import ProviderTraits
from nimbus.core.db.store import Store
from nimbus.core.errors import InUse, InvalidPlacementInput, NotFound

_CUSTOM_TRAIT = re.compile(schemas.CUSTOM_PATTERN)


def trait_url(name: str) -> str:
    """The path of a trait."""
    return f"/traits/{name}"


async def list_traits(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``GET /traits?name=in:A,B|startswith:P&associated=true|false``."""
    params = preq.query(schemas.TRAITS_QUERY)
    names: set[str] | None = None
    prefix: str | None = None
    if "name" in params:
        op, sep, value = params["name"].partition(":")
        if not sep:
            raise errors.bad_request(f"Badly formatted name parameter: expected "
                                     f"?name=in:A,B or ?name=startswith:PREFIX, got "
                                     f"{params['name']!r}.")
        if op == "in":
            names = set(value.split(","))
        elif op == "startswith":
            prefix = value
    associated: bool | None = None
    if "associated" in params:
        flag = params["associated"].lower()
        if flag not in ("true", "false"):
            raise errors.bad_request('The query parameter "associated" only accepts "true" '
                                     'or "false".')
        associated = flag == "true"
    found = await store_of(ctx).list_traits(names=names, prefix=prefix, associated=associated)
    return json_response({"traits": found}, headers=last_modified(ctx, preq))


async def _exists(store: Store, name: str) -> bool:
    return bool(await store.list_traits(names=[name]))


async def show_trait(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``GET /traits/{name}``: 204 if it exists, else 404."""
    name = preq.param("name")
    if not await _exists(store_of(ctx), name):
        raise errors.not_found(f"No such trait(s): {name}.")
    return empty(204, last_modified(ctx, preq))


async def put_trait(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``PUT /traits/{name}``: create a custom trait (201) or confirm it exists (204)."""
    store = store_of(ctx)
    name = preq.param("name")
    if len(name) > 255 or not _CUSTOM_TRAIT.match(name):
        raise errors.bad_request("The trait is invalid: a valid trait is at most 255 "
                                 "characters, starts with CUSTOM_ and holds only A-Z, 0-9 "
                                 "and _.")
    status = 204
    if not await _exists(store, name):
        await store.ensure_traits([name], now=ctx.runtime.wall_time())
        status = 201
    return empty(status, {"Location": trait_url(name), **last_modified(ctx, preq)})


async def delete_trait(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``DELETE /traits/{name}``: custom traits no provider has."""
    name = preq.param("name")
    try:
        await store_of(ctx).delete_trait(name)
    except InvalidPlacementInput:
        raise errors.bad_request(f"Cannot delete standard trait {name}.") from None
    except NotFound:
        raise errors.not_found(f"No such trait(s): {name}.") from None
    except InUse:
        raise errors.conflict(f"The trait {name} is in use by a resource provider.") from None
    return empty()


async def _provider_traits(store: Store, uuid: str) -> ProviderTraits:
    try:
        return await store.get_traits(uuid)
    except NotFound:
        raise errors.not_found(f"No resource provider with uuid {uuid} found.") from None


async def show_provider_traits(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``GET /resource_providers/{uuid}/traits``."""
    found = await _provider_traits(store_of(ctx), preq.param("uuid"))
    return json_response({"traits": sorted(found.traits),
                          "resource_provider_generation": found.generation},
                         headers=last_modified(ctx, preq))


async def set_provider_traits(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``PUT /resource_providers/{uuid}/traits``: replace them all (each must exist)."""
    store = store_of(ctx)
    uuid = preq.param("uuid")
    data = preq.body(schemas.PROVIDER_TRAITS_PUT)
    found = await _provider_traits(store, uuid)
    if data["resource_provider_generation"] != found.generation:
        raise errors.conflict(
            f"Resource provider {uuid} changed since generation "
            f"{data['resource_provider_generation']} (it is at {found.generation}); read it "
            f"again and retry.", errors.CONCURRENT_UPDATE)
    wanted = set(data["traits"])
    missing = sorted(wanted - set(await store.list_traits(names=wanted)))
    if missing:
        raise errors.bad_request(f"No such trait(s): {', '.join(missing)}.")
    generation = await store.set_traits(uuid, found.generation, wanted,
                                        now=ctx.runtime.wall_time())
    return json_response({"traits": sorted(wanted), "resource_provider_generation": generation},
                         headers=last_modified(ctx, preq))


async def delete_provider_traits(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``DELETE /resource_providers/{uuid}/traits``: take every trait off the provider."""
    store = store_of(ctx)
    uuid = preq.param("uuid")
    found = await _provider_traits(store, uuid)
    await store.set_traits(uuid, found.generation, (), now=ctx.runtime.wall_time())
    return empty()
