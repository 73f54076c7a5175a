"""The unversioned root of the Compute API, health and metrics."""

from __future__ import annotations

from typing import Any

from nimbus.core.api.http import ApiContext, Request, Response
from nimbus.core.api.versions import (
    MAX_MICROVERSION,
    MIN_MICROVERSION,
    V2_0_UPDATED,
    V2_1_UPDATED,
)
from nimbus.core.metrics import CONTENT_TYPE


def version_documents(base: str) -> list[dict[str, Any]]:
    """Nova's description of each major version, with links under ``base``."""
    return [
        {
            "id": "v2.0",
            "links": [{"href": f"{base}/v2/", "rel": "self"}],
            "status": "SUPPORTED",
            "version": "",
            "min_version": "",
            "updated": V2_0_UPDATED,
        },
        {
            "id": "v2.1",
            "links": [{"href": f"{base}/v2.1/", "rel": "self"}],
            "status": "CURRENT",
            "version": MAX_MICROVERSION,
            "min_version": MIN_MICROVERSION,
            "updated": V2_1_UPDATED,
        },
    ]


async def list_versions(ctx: ApiContext, req: Request) -> Response:
    """``GET /``: every major version of the Compute API (Nova answers 200, not 300)."""
    return Response(200, {"versions": version_documents(ctx.public_url(req))})


async def healthz(ctx: ApiContext, req: Request) -> Response:
    """``GET /healthz``: 200 while the API process answers at all."""
    return Response(200, {"status": "ok"})


async def metrics(ctx: ApiContext, req: Request) -> Response:
    """``GET /metrics``: every Prometheus metric of this process, as text."""
    return Response(200, ctx.metrics.render(), CONTENT_TYPE)
