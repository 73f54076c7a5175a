"""The API side of reboot, stop/start, pause, suspend, rescue and consoles."""

from __future__ import annotations

from nimbus.core.compute.api_base import ApiBase


class PowerApi(ApiBase):
    """The API side of reboot, stop/start, pause, suspend, rescue and consoles."""
