"""``GET /v2.1``: the version document clients discover microversions with (no token)."""

from __future__ import annotations

from nimbus.core.api.compute.microversion import MIN_VERSION
from nimbus.core.api.compute.wire import ComputeEnv, json
from nimbus.core.api.http import ApiContext, Request, Response, Route
from nimbus.core.api.versions import V2_1_UPDATED


def routes(env: ComputeEnv) -> list[Route]:
    """``GET /v2.1`` and ``GET /v2.1/``: the v2.1 version document."""
    async def show(ctx: ApiContext, req: Request) -> Response:
        base = env.base_url.rstrip("/") or ctx.public_url(req)
        return json({"version": {
            "id": "v2.1", "status": "CURRENT", "version": str(env.max_version),
            "min_version": str(MIN_VERSION), "updated": V2_1_UPDATED,
            "links": [{"rel": "self", "href": f"{base}/v2.1/"},
                      {"rel": "describedby", "type": "text/html",
                       "href": "https://docs.openstack.org/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.compute+json;version=2.1"}],
        }})

    return [Route("GET", "/v2.1", show, "version-v2.1"),
            Route("GET", "/v2.1/", show, "version-v2.1-slash")]
