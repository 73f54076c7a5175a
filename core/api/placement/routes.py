"""Every route of the Placement API, as data; ``nimbus.services.PlacementService`` binds them.

``since`` is the microversion (1.x) a route appeared in; below it the route
answers 404, or 405 where Placement does (``DELETE .../inventories``).
"""

from __future__ import annotations

from typing import Any

from nimbus.core.api.http import ApiContext, Response, Route
from nimbus.core.api.placement import (
    aggregates,
    allocations,
    candidates,
    classes,
    inventories,
    providers,
    traits,
)
from nimbus.core.api.placement.microversion import MAX_VERSION, MIN_VERSION
from nimbus.core.api.placement.wire import PlacementRequest, json_response, last_modified, route


def version_document() -> dict[str, Any]:
    """The one major version of Placement, with the microversion range served."""
    return {"versions": [{
        "id": f"v{MIN_VERSION}",
        "max_version": str(MAX_VERSION),
        "min_version": str(MIN_VERSION),
        "status": "CURRENT",
        # relative, as Placement gives it: "this same URL", wherever it is mounted
        "links": [{"rel": "self", "href": ""}],
    }]}


async def root(ctx: ApiContext, preq: PlacementRequest) -> Response:
    """``GET /``: the version document (no token needed; clients discover with it)."""
    return json_response(version_document(), headers=last_modified(ctx, preq))


RP = "/resource_providers/{uuid}"

ROUTES: tuple[Route, ...] = (
    route("GET", "/", root, json_out=False, name="placement-root"),
    route("GET", "/resource_providers", providers.list_providers),
    route("POST", "/resource_providers", providers.create_provider),
    route("GET", RP, providers.show_provider),
    route("PUT", RP, providers.update_provider),
    route("DELETE", RP, providers.delete_provider),
    route("GET", f"{RP}/inventories", inventories.list_inventories),
    route("POST", f"{RP}/inventories", inventories.create_inventory),
    route("PUT", f"{RP}/inventories", inventories.replace_inventories),
    route("DELETE", f"{RP}/inventories", inventories.delete_inventories, since=5, below=405),
    route("GET", f"{RP}/inventories/{{resource_class}}", inventories.show_inventory),
    route("PUT", f"{RP}/inventories/{{resource_class}}", inventories.update_inventory),
    route("DELETE", f"{RP}/inventories/{{resource_class}}", inventories.delete_inventory),
    route("GET", f"{RP}/usages", inventories.provider_usages),
    route("GET", f"{RP}/aggregates", aggregates.show_aggregates, since=1),
    route("PUT", f"{RP}/aggregates", aggregates.set_aggregates, since=1),
    route("GET", f"{RP}/traits", traits.show_provider_traits, since=6),
    route("PUT", f"{RP}/traits", traits.set_provider_traits, since=6),
    route("DELETE", f"{RP}/traits", traits.delete_provider_traits, since=6),
    route("GET", f"{RP}/allocations", allocations.provider_allocations),
    route("POST", "/allocations", allocations.post_allocations, since=13),
    route("GET", "/allocations/{consumer_uuid}", allocations.show_consumer),
    route("PUT", "/allocations/{consumer_uuid}", allocations.put_consumer),
    route("DELETE", "/allocations/{consumer_uuid}", allocations.delete_consumer),
    route("GET", "/allocation_candidates", candidates.list_candidates, since=10),
    route("GET", "/traits", traits.list_traits, since=6),
    route("GET", "/traits/{name}", traits.show_trait, since=6, json_out=False),
    route("PUT", "/traits/{name}", traits.put_trait, since=6),
    route("DELETE", "/traits/{name}", traits.delete_trait, since=6),
    route("GET", "/resource_classes", classes.list_classes, since=2),
    route("POST", "/resource_classes", classes.create_class, since=2),
    route("GET", "/resource_classes/{name}", classes.show_class, since=2),
    route("PUT", "/resource_classes/{name}", classes.put_class, since=2),
    route("DELETE", "/resource_classes/{name}", classes.delete_class, since=2),
    route("GET", "/usages", allocations.usages, since=9),
)
