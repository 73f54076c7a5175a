"""Every route of the API, as data. The HTTP adapter binds exactly these."""

from __future__ import annotations

from nimbus.core.api import root
from nimbus.core.api.http import Route

ROUTES: tuple[Route, ...] = (
    Route("GET", "/", root.list_versions, "versions"),
    Route("GET", "/healthz", root.healthz, "healthz"),
    Route("GET", "/metrics", root.metrics, "metrics"),
)
