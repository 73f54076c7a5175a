"""The compute service: one per hypervisor host, every action family composed.

:class:`ComputeService` (topic ``compute``, host topic ``compute.<host>``) is
:class:`~nimbus.core.compute.base.ComputeBase` plus one mixin per family of
actions. Starting it registers the service, the compute node and its resource
provider (:mod:`resource_tracker`), then repairs what a previous run left half
done (``init_host``).
"""

from __future__ import annotations

from nimbus.core.compute.build import BuildActions
from nimbus.core.compute.live_migration import LiveMigrationActions
from nimbus.core.compute.moves import MoveActions
from nimbus.core.compute.periodic import PeriodicTasks
from nimbus.core.compute.power import PowerActions
from nimbus.core.compute.rebuild import RebuildActions
from nimbus.core.compute.repair import Repair
from nimbus.core.compute.resource_tracker import ResourceTracking
from nimbus.core.compute.shelve import ShelveActions


class ComputeService(PowerActions, MoveActions, LiveMigrationActions, RebuildActions,
                     ShelveActions, PeriodicTasks, Repair, BuildActions, ResourceTracking):
    """A compute host's service: its driver's guests, their lifecycle and its resources."""

    async def on_start(self) -> None:
        await self.driver.init_host(self.host)
        await self.register_service()
        await self.register_node()
        await self.init_host()
        await self.report_usage()

    def after_instance_change(self) -> None:
        """Report usage soon; the changes that come while a report waits share it."""
        if self._report_waiting:
            return
        self._report_waiting = True
        self.runtime.spawn(self._report_soon(), name=f"compute.{self.host}:report")

    async def _report_soon(self) -> None:
        try:
            delay = self.config.usage_report_delay
            await self.runtime.sleep(delay)
        finally:
            self._report_waiting = False  # a change during the report asks for another
        await self.report_usage()
