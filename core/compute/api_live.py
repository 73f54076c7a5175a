"""The API side of live migration, evacuation and rebuild."""

from __future__ import annotations

from nimbus.core.compute.api_base import ApiBase


class LiveApi(ApiBase):
    """The API side of live migration, evacuation and rebuild."""
