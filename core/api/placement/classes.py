"""Resource classes (from 1.2): ``/resource_classes`` and ``/resource_classes/{name}``.

Standard classes always exist; custom ones (``CUSTOM_*``) are created by
``POST``, or from 1.7 by a bodiless ``PUT`` that answers 201 when it created
the class and 204 when it existed. Renaming a custom class (``PUT`` with a
body, 1.2 to 1.6) is the one thing Nimbus refuses: its Store keeps no way to.
"""

from __future__ import annotations

from typing import Any

from nimbus.core.api.http import ApiContext, Response
from nimbus.core.api.placement import errors, schemas
from nimbus.core.api.placement.wire import (
    PlacementRequest,
    empty,
    json_response,
    last_modified,
    store_of,
)
from nimbus.core.db.placement import STANDARD_CLASS_IDS
from nimbus.core.errors import InUse, InvalidPlacementInput, NotFound

#: From this microversion ``PUT /resource_classes/{name}`` creates or confirms a class.
IDEMPOTENT_PUT_VERSION = 7


def class_url(name: str) -> str:
    """The path of a resource class."""
    return f"/resource_classes/{name}"


def _body(name: str) -> dict[str, Any]:
    return {"name": name, "links": [{"rel": "self", "href": class_url(name)}]}


async def list_classes(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``GET /resource_classes``: the standard classes, then the custom ones."""
    names = await store_of(ctx).list_resource_classes()
    return json_response({"resource_classes": [_body(n) for n in names]},
                         headers=last_modified(ctx, preq))


async def create_class(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``POST /resource_classes``: a new custom class; 409 if it exists."""
    store = store_of(ctx)
    name: str = preq.body(schemas.RESOURCE_CLASS)["name"]
    if not await store.ensure_resource_class(name, now=ctx.runtime.wall_time()):
        raise errors.conflict(f"Conflicting resource class already exists: {name}.")
    return empty(201, {"Location": class_url(name)})


async def show_class(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``GET /resource_classes/{name}``."""
    name = preq.param("name")
    if name not in await store_of(ctx).list_resource_classes():
        raise errors.not_found(f"No such resource class {name}.")
    return json_response(_body(name), headers=last_modified(ctx, preq))


async def put_class(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``PUT /resource_classes/{name}``: rename (1.2 to 1.6), create or confirm (1.7 on)."""
    store = store_of(ctx)
    name = preq.param("name")
    if not preq.at_least(IDEMPOTENT_PUT_VERSION):
        return await _rename(ctx, preq, name)
    schemas.validate({"name": name}, schemas.RESOURCE_CLASS)
    created = await store.ensure_resource_class(name, now=ctx.runtime.wall_time())
    return empty(201 if created else 204, {"Location": class_url(name)})


async def _rename(ctx: ApiContext, preq: PlacementRequest, name: str) -> Response:
    new: str = preq.body(schemas.RESOURCE_CLASS)["name"]
    known = await store_of(ctx).list_resource_classes()
    if name not in known:
        raise errors.not_found(f"No such resource class {name}.")
    if name in STANDARD_CLASS_IDS:
        raise errors.bad_request(f"Cannot update standard resource class {name}.")
    if new in known and new != name:
        raise errors.conflict(f"Resource class already exists: {new}.")
    if new == name:
        return json_response(_body(name))
    raise errors.bad_request(f"Renaming resource class {name} is not supported by Nimbus; "
                             f"create {new} and move the inventories to it.")


async def delete_class(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``DELETE /resource_classes/{name}``: custom classes no inventory uses."""
    name = preq.param("name")
    try:
        await store_of(ctx).delete_resource_class(name)
    except InvalidPlacementInput:
        raise errors.bad_request(f"Cannot delete standard resource class {name}.") from None
    except NotFound:
        raise errors.not_found(f"No such resource class {name}.") from None
    except InUse:
        raise errors.conflict(f"Cannot delete resource class {name}: it is in use in "
                              f"inventory.") from None
    return empty()
