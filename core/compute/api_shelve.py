"""The API side of shelve, shelve-offload, unshelve and create image."""

from __future__ import annotations

from nimbus.core.compute.api_base import ApiBase


class ShelveApi(ApiBase):
    """The API side of shelve, shelve-offload, unshelve and create image."""
