"""init_host repairs and the periodic tasks of compute (power sync, reclaim, tidy up)."""

from __future__ import annotations

from nimbus.core.compute.base import ComputeBase


class Repair(ComputeBase):
    """init_host repairs and the periodic tasks of compute (power sync, reclaim, tidy up)."""

    async def init_host(self) -> None:
        """Repair what a previous run of this service left half done."""
