"""The conductor service: the database proxy of compute, and every orchestration task.

:class:`ConductorService` (topic ``conductor``) is
:class:`~nimbus.core.conductor.base.ConductorBase` plus one mixin per family
of tasks (builds and reschedules; moves; watching over hosts that went down),
and it answers :class:`~nimbus.core.conductor.store_proxy.StoreCall`, through
which compute reads and writes the database.
"""

from __future__ import annotations

from nimbus.core.conductor.build import BuildTasks
from nimbus.core.conductor.live import LiveTasks
from nimbus.core.conductor.moves import MoveTasks
from nimbus.core.conductor.shelve import UnshelveTasks
from nimbus.core.conductor.store_proxy import StoreCall, StoreResult, serve_store_call
from nimbus.core.conductor.watch import WatchTasks
from nimbus.core.service import endpoint


class ConductorService(MoveTasks, LiveTasks, UnshelveTasks, WatchTasks, BuildTasks):
    """Orchestration and the database proxy of compute (see the module docstring)."""

    @endpoint(StoreCall)
    async def store_call(self, msg: StoreCall) -> StoreResult:
        """Run an allowed Store method for a compute service."""
        return await serve_store_call(self.store, msg)
