"""A compute host's usage report in one transaction.

The resource tracker reports what is used on its node: placement's allocations
against the node's provider, how many live instances the host has and how many
of them are busy, written to the compute node record. Read and written in one
transaction, so compute makes one round trip through the conductor for it, not
three (it runs after every batch of instance changes on every host).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nimbus.core.db.area import StoreArea
from nimbus.core.db.database import Tx
from nimbus.core.db.instances import count_host_instances
from nimbus.core.db.placement_allocations import provider_usages
from nimbus.core.db.services import write_node_usage


@dataclass(frozen=True, slots=True)
class NodeUsage:
    """What one usage report found: allocated amounts by class, live and busy instances."""

    used: dict[str, int]
    running: int
    busy: int


class NodeUsageStore(StoreArea):
    """The resource tracker's usage report (see the module docstring)."""

    async def record_node_usage(
        self, node_id: int, provider_uuid: str, host: str, *, vcpus: int, memory_mb: int,
        local_gb: int, busy_task_states: Sequence[str], stats: dict[str, Any], now: float,
    ) -> NodeUsage:
        """Read what is used on ``host`` and its provider, write it to compute node
        ``node_id`` (``stats`` gains ``io_workload``: the busy count) and return it.
        ``NotFound`` when the provider or the node is gone."""
        async def body(tx: Tx) -> NodeUsage:
            used = await provider_usages(tx, provider_uuid)
            running, busy = await count_host_instances(tx, host, busy_task_states)
            await write_node_usage(
                tx, node_id, vcpus=vcpus, memory_mb=memory_mb, local_gb=local_gb,
                vcpus_used=used.get("VCPU", 0), memory_mb_used=used.get("MEMORY_MB", 0),
                local_gb_used=used.get("DISK_GB", 0), running_vms=running,
                stats={**stats, "io_workload": busy}, now=now)
            return NodeUsage(used, running, busy)

        return await self.db.transact(body)
