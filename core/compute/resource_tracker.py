"""The resource tracker: the host's compute node, resource provider and inventory, kept true.

When compute starts it registers its hypervisor as a compute node and as a
resource provider in placement (the node's uuid is the provider's), with
VCPU, MEMORY_MB and DISK_GB inventories shaped by the allocation ratios and
reserved amounts of the ``[compute]`` section, and the host's traits. Every
``update_resources_interval`` seconds, and after an instance comes or goes, it
writes what is used to the compute node record and reports it to the
scheduler (a :class:`~nimbus.core.scheduler.loader.HostReport` fanout), so the
scheduler's columns follow between its refreshes.
"""

from __future__ import annotations

import logging
import math

from nimbus.core.compute.base import ComputeBase
from nimbus.core.db.placement import InventorySpec
from nimbus.core.db.services import ComputeNodeRecord
from nimbus.core.errors import ConflictError, NotFound
from nimbus.core.scheduler.loader import IO_TASK_STATES, HostReport
from nimbus.core.service import periodic

log = logging.getLogger(__name__)

#: Task states a usage report counts as busy (the io_workload stat).
_BUSY = sorted(IO_TASK_STATES)


class ResourceTracking(ComputeBase):
    """Compute node, provider and inventory registration and reporting."""

    async def register_service(self) -> int:
        """This host's service record (created on first start); its id."""
        db, cfg = self.db, self.config
        svc = await db.service_by_host_binary(self.host, cfg.binary)
        if svc is None:
            svc = await db.create_service(uuid=self.runtime.new_id(), host=self.host,
                                          binary=cfg.binary, topic=self.topic, now=self.wall())
        self.service_id = svc.id
        await db.service_heartbeat(svc.id, self.wall())
        return svc.id

    async def register_node(self) -> ComputeNodeRecord:
        """The compute node and resource provider of this host, with current inventory."""
        db, cfg = self.db, self.config
        res = self.resources = await self.driver.host_resources()
        node = await db.compute_node_by_host(self.host, res.hostname)
        if node is None:
            node = await db.create_compute_node(
                uuid=self.runtime.new_id(), service_id=self.service_id, host=self.host,
                hypervisor_hostname=res.hostname, hypervisor_type=res.hypervisor_type,
                vcpus=res.vcpus, memory_mb=res.memory_mb, local_gb=res.local_gb,
                now=self.wall(), host_ip=res.host_ip,
                cpu_allocation_ratio=cfg.cpu_allocation_ratio,
                ram_allocation_ratio=cfg.ram_allocation_ratio,
                disk_allocation_ratio=cfg.disk_allocation_ratio)
        self.node = node
        try:
            await db.get_resource_provider(node.uuid)
        except NotFound:
            await db.create_resource_provider(uuid=node.uuid, name=res.hostname, now=self.wall())
        await self.sync_inventory()
        return node

    def inventory(self) -> dict[str, InventorySpec]:
        """What this host offers placement, from the driver's figures and the config."""
        res, cfg = self.resources, self.config
        assert res is not None
        return {
            "VCPU": InventorySpec(max(res.vcpus, 1), reserved=min(cfg.reserved_host_cpus,
                                                                  res.vcpus),
                                  max_unit=max(res.vcpus, 1),
                                  allocation_ratio=cfg.cpu_allocation_ratio),
            "MEMORY_MB": InventorySpec(max(res.memory_mb, 1),
                                       reserved=min(cfg.reserved_host_memory_mb, res.memory_mb),
                                       max_unit=max(res.memory_mb, 1),
                                       allocation_ratio=cfg.ram_allocation_ratio),
            "DISK_GB": InventorySpec(max(res.local_gb, 1),
                                     reserved=min(math.ceil(cfg.reserved_host_disk_mb / 1024),
                                                  res.local_gb),
                                     max_unit=max(res.local_gb, 1),
                                     allocation_ratio=cfg.disk_allocation_ratio),
        }

    async def sync_inventory(self) -> None:
        """Write the inventory and traits to placement where they differ (generation-safe)."""
        db, uuid, res = self.db, self.node_uuid, self.resources
        assert res is not None
        wanted = self.inventory()
        for _ in range(3):
            current = await db.get_inventories(uuid)
            try:
                generation = current.generation
                if current.inventories != wanted:
                    generation = await db.set_inventories(uuid, generation, wanted,
                                                          now=self.wall())
                if res.traits:
                    have = await db.get_traits(uuid)
                    if set(have.traits) != set(res.traits):
                        custom = [t for t in res.traits if t.startswith("CUSTOM_")]
                        if custom:
                            await db.ensure_traits(custom, now=self.wall())
                        await db.set_traits(uuid, have.generation, sorted(res.traits),
                                            now=self.wall())
                return
            except ConflictError as exc:  # a racing writer, or usage above a shrunk total
                log.warning("%s: inventory update refused: %s", self.host, exc)
        log.error("%s: inventory not updated after 3 tries", self.host)

    @periodic("report_interval", jitter=1.0)
    async def report_state(self) -> None:
        """Heartbeat: tell the cloud this compute service is alive."""
        if self.service_id is None:
            return
        try:
            await self.db.service_heartbeat(self.service_id, self.wall())
        except NotFound:
            log.warning("%s: service record deleted; registering again", self.host)
            await self.register_service()

    @periodic("update_resources_interval", jitter=5.0)
    async def update_available_resource(self) -> None:
        """Re-read the driver's capacity, sync inventory, record and report usage."""
        if self.node is None:
            return
        res = await self.driver.host_resources()
        if res != self.resources:
            self.resources = res
            await self.sync_inventory()
        await self.report_usage()

    async def report_usage(self) -> None:
        """Write what is used here to the compute node record, and tell the schedulers."""
        if self.node is None or self.resources is None:
            return
        res = self.resources
        usage = await self.db.record_node_usage(
            self.node.id, self.node_uuid, self.host, vcpus=res.vcpus, memory_mb=res.memory_mb,
            local_gb=res.local_gb, busy_task_states=_BUSY, now=self.wall(),
            stats={"failed_builds": self.failed_builds})
        used, running, io_ops = usage.used, usage.running, usage.busy
        await self.rpc.fanout("scheduler", HostReport(
            self.host, res.vcpus, res.memory_mb, res.local_gb, float(used.get("VCPU", 0)),
            float(used.get("MEMORY_MB", 0)), float(used.get("DISK_GB", 0)), running,
            io_ops, self.failed_builds))
