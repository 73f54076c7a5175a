"""The API side of resize, cold migrate, confirm and revert."""

from __future__ import annotations

from nimbus.core.compute.api_base import ApiBase


class MoveApi(ApiBase):
    """The API side of resize, cold migrate, confirm and revert."""
