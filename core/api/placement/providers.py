"""``/resource_providers`` and ``/resource_providers/{uuid}``: list, create, show, change, delete.

A provider's representation grows with the microversion: links to its
aggregates (1.1), traits (1.6) and allocations (1.11); its parent and root
(1.14). ``POST`` answers 201 without a body before 1.20, 200 with the
provider from 1.20.
"""

from __future__ import annotations

import uuid as uuidlib
from typing import Any

from nimbus.core.api.http import ApiContext, Response
from nimbus.core.api.placement import errors, query, schemas
from nimbus.core.api.placement.wire import (
    PlacementRequest,
    empty,
    json_response,
    last_modified,
    newest,
    store_of,
)
from nimbus.core.db.placement import ResourceProviderRecord
from nimbus.core.db.store import Store
from nimbus.core.errors import DuplicateError, InUse, NotFound


def provider_url(uuid: str) -> str:
    """The path of a provider (relative, as Placement gives it)."""
    return f"/resource_providers/{uuid}"


def provider_body(preq: PlacementRequest, rp: ResourceProviderRecord) -> dict[str, Any]:
    """A provider as Placement shows it at the request's microversion."""
    url = provider_url(rp.uuid)
    rels = ["inventories", "usages"]
    for minor, rel in ((1, "aggregates"), (6, "traits"), (11, "allocations")):
        if preq.at_least(minor):
            rels.append(rel)
    body: dict[str, Any] = {
        "uuid": rp.uuid,
        "name": rp.name,
        "generation": rp.generation,
        "links": [{"rel": "self", "href": url},
                  *({"rel": rel, "href": f"{url}/{rel}"} for rel in rels)],
    }
    if preq.at_least(14):
        body["parent_provider_uuid"] = rp.parent_provider_uuid
        body["root_provider_uuid"] = rp.root_provider_uuid
    return body


async def get_provider(store: Store, uuid: str) -> ResourceProviderRecord:
    """A provider, or Placement's 404."""
    try:
        return await store.get_resource_provider(uuid)
    except NotFound:
        raise errors.not_found(f"No resource provider with uuid {uuid} found.") from None


def _query_schema(preq: PlacementRequest) -> schemas.Schema:
    for minor, schema in ((18, schemas.PROVIDERS_QUERY_1_18), (14, schemas.PROVIDERS_QUERY_1_14),
                          (4, schemas.PROVIDERS_QUERY_1_4), (3, schemas.PROVIDERS_QUERY_1_3)):
        if preq.at_least(minor):
            return schema
    return schemas.PROVIDERS_QUERY


async def list_providers(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``GET /resource_providers``: filtered by name, uuid, member_of, in_tree, required,
    resources."""
    store = store_of(ctx)
    params = preq.query(_query_schema(preq))
    groups: list[set[str]] = []
    if "member_of" in params:
        groups = query.member_of(preq.values("member_of"), allow_multiple=preq.at_least(24))
    required: set[str] = set()
    forbidden: set[str] = set()
    if "required" in params:
        required, forbidden = query.traits(params["required"],
                                           allow_forbidden=preq.at_least(22))
        await query.check_traits_exist(store, required | forbidden)
    wanted: dict[str, int] | None = None
    if "resources" in params:
        wanted = query.resources(params["resources"])
        await query.check_classes_exist(store, wanted)
    found = await store.list_resource_providers(
        name=params.get("name"), uuid=params.get("uuid"), member_of=groups,
        in_tree=params.get("in_tree"), required_traits=required, forbidden_traits=forbidden,
        resources=wanted)
    stamp = newest(*(newest(rp.updated_at, rp.created_at) for rp in found))
    return json_response({"resource_providers": [provider_body(preq, rp) for rp in found]},
                         headers=last_modified(ctx, preq, stamp))


async def create_provider(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``POST /resource_providers``."""
    store = store_of(ctx)
    data = preq.body(schemas.PROVIDER_POST_1_14 if preq.at_least(14) else schemas.PROVIDER_POST)
    name: str = data["name"]
    uuid = str(uuidlib.UUID(data["uuid"])) if data.get("uuid") else ctx.runtime.new_id()
    parent = data.get("parent_provider_uuid")
    parent = str(uuidlib.UUID(parent)) if parent else None
    try:
        rp = await store.create_resource_provider(
            uuid=uuid, name=name, now=ctx.runtime.wall_time(), parent_provider_uuid=parent)
    except DuplicateError:
        raise errors.conflict(
            f"Conflicting resource provider {await _duplicate(store, uuid, name)} already "
            f"exists.", errors.DUPLICATE_NAME) from None
    except NotFound:
        raise errors.bad_request(
            f"Unable to create resource provider {name!r}, {uuid}: the parent provider "
            f"{parent} does not exist.") from None
    location = {"Location": provider_url(uuid)}
    if not preq.at_least(20):
        return empty(201, location)
    return json_response(provider_body(preq, rp),
                         headers={**location, **last_modified(ctx, preq, rp.updated_at)})


async def _duplicate(store: Store, uuid: str, name: str) -> str:
    """Which unique field of a new provider clashed: ``uuid: ...``, ``name: ...`` or both."""
    clashes = []
    try:
        await store.get_resource_provider(uuid)
        clashes.append(f"uuid: {uuid}")
    except NotFound:
        pass
    if await store.list_resource_providers(name=name):
        clashes.append(f"name: {name}")
    return ", ".join(clashes) or f"name: {name}"


async def show_provider(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``GET /resource_providers/{uuid}``."""
    rp = await get_provider(store_of(ctx), preq.param("uuid"))
    return json_response(provider_body(preq, rp),
                         headers=last_modified(ctx, preq, newest(rp.updated_at, rp.created_at)))


async def update_provider(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``PUT /resource_providers/{uuid}``: a new name; the parent cannot change before 1.37."""
    store = store_of(ctx)
    data = preq.body(schemas.PROVIDER_PUT_1_14 if preq.at_least(14) else schemas.PROVIDER_PUT)
    rp = await get_provider(store, preq.param("uuid"))
    if "parent_provider_uuid" in data:
        parent = data["parent_provider_uuid"]
        parent = str(uuidlib.UUID(parent)) if parent else None
        if parent != rp.parent_provider_uuid:
            if rp.parent_provider_uuid is None:
                why = "Nimbus cannot give an existing root provider a parent"
            elif parent is None:
                why = "un-parenting a provider is not allowed at this microversion"
            else:
                why = "re-parenting a provider is not allowed at this microversion"
            raise errors.bad_request(f"Unable to save resource provider {rp.uuid}: {why}.")
    if data["name"] != rp.name:
        try:
            rp = await store.rename_resource_provider(rp.uuid, data["name"],
                                                      now=ctx.runtime.wall_time())
        except DuplicateError:
            raise errors.conflict(f"Conflicting resource provider {data['name']} already "
                                  f"exists.", errors.DUPLICATE_NAME) from None
    return json_response(provider_body(preq, rp), headers=last_modified(ctx, preq, rp.updated_at))


async def delete_provider(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``DELETE /resource_providers/{uuid}``: 409 while it has allocations or children."""
    store = store_of(ctx)
    uuid = preq.param("uuid")
    try:
        await store.delete_resource_provider(uuid)
    except NotFound:
        raise errors.not_found(f"No resource provider with uuid {uuid} found for delete.") \
            from None
    except InUse as exc:
        if await store.allocations_for_provider(uuid):
            raise errors.conflict(f"Unable to delete resource provider {uuid}: {exc.message}",
                                  errors.PROVIDER_IN_USE) from None
        raise errors.conflict(f"Unable to delete parent resource provider {uuid}: it has "
                              f"child resource providers.",
                              errors.PROVIDER_CANNOT_DELETE_PARENT) from None
    return empty()
