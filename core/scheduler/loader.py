"""Host states from the Store: the scheduler's columns loaded, refreshed and updated.

:meth:`HostStatesLoader.refresh` reads, in a handful of queries,

* the compute nodes: one host row each, named by the node's host, its uuid
  being its resource provider's in placement;
* their ``nimbus-compute`` services: up when heard from within
  ``service_down_time`` seconds and not forced down; disabled;
* placement: each provider's inventories (total, reserved, allocation ratio) and
  what is allocated of them, which is the host's capacity and usage;
* the host aggregates, with their metadata (a host's availability zone comes
  from its aggregates' ``availability_zone``);
* the live instances per host (their count, those in I/O-heavy task states) and
  the server groups they are members of.

It writes into :class:`HostStates` only what changed, so the masks and
shortlists cached for the hosts that did not change stay valid. Between
refreshes, :func:`apply_update` takes a compute host's own report
(:class:`HostReport`), and the claimer writes each claim.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from nimbus.core.db.placement import InventorySpec
from nimbus.core.db.placement_snapshot import ProviderCapacity
from nimbus.core.db.services import ComputeNodeRecord
from nimbus.core.db.store import Store
from nimbus.core.errors import NotFound
from nimbus.core.messages import message
from nimbus.core.scheduler.host_spec import HostSpec, HostUsage
from nimbus.core.scheduler.host_state import HostStates

#: Task states whose work loads the host's disks and network (Nova's num_io_ops).
IO_TASK_STATES = frozenset({"spawning", "resize_migrating", "rebuilding", "resize_prep",
                            "image_snapshot", "image_backup", "unshelving"})
#: Compute node ``stats`` keys that are not capabilities.
_NOT_CAPABILITIES = frozenset({"cpu_info", "supported_instances", "failed_builds"})


@message("scheduler.host_report")
@dataclass(frozen=True, slots=True)
class HostReport:
    """What a compute host reports between refreshes: capacity and usage (a cast)."""

    host: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    vcpus_used: float
    memory_mb_used: float
    disk_gb_used: float
    num_instances: int = 0
    io_ops: int = 0
    failed_builds: int = 0


@dataclass(frozen=True, slots=True)
class Refreshed:
    """What one refresh changed: hosts added, removed, and updated (any column)."""

    added: int
    removed: int
    updated: int


class HostStatesLoader:
    """Builds and refreshes :class:`HostStates` from the Store (see the module docstring)."""

    def __init__(self, store: Store, *, service_down_time: float = 60.0,
                 compute_binary: str = "nimbus-compute") -> None:
        self.store = store
        self.service_down_time = service_down_time
        self.compute_binary = compute_binary

    async def load(self, now: float, default_az: str = "nova") -> HostStates:
        """A HostStates of every compute host, as of ``now``."""
        states = HostStates(default_az=default_az)
        await self.refresh(states, now)
        return states

    async def refresh(self, states: HostStates, now: float) -> Refreshed:
        """Bring ``states`` in line with the Store, writing only what changed."""
        store = self.store
        nodes = await store.list_compute_nodes()
        services = {s.host: s for s in await store.list_services(binary=self.compute_binary)}
        capacity = await store.provider_snapshot()
        aggregates = await store.list_aggregates()
        group_of = {member: g.uuid for g in await store.list_server_groups()
                    for member in g.members}
        running: dict[str, list[tuple[str, str | None]]] = {}
        io_ops: dict[str, int] = {}
        for uuid, host, vm_state, task_state in await store.placed_instances():
            running.setdefault(host, []).append((uuid, group_of.get(uuid)))
            if task_state in IO_TASK_STATES or vm_state == "building":
                io_ops[host] = io_ops.get(host, 0) + 1

        zone: dict[str, str] = {}
        for agg in aggregates:
            if agg.availability_zone:
                for host in agg.hosts:
                    zone.setdefault(host, agg.availability_zone)
        self._sync_aggregates(states, {a.uuid: (a.metadata, a.hosts) for a in aggregates})

        listed = {}
        added = updated = 0
        current = _instances_by_row(states)
        for node in nodes:
            listed[node.host] = node
            spec = host_spec(node, capacity.get(node.uuid), zone.get(node.host))
            usage = host_usage(node, capacity.get(node.uuid), running.get(node.host, []),
                               io_ops.get(node.host, 0))
            svc = services.get(node.host)
            up = svc is not None and svc.is_up(now, self.service_down_time)
            disabled = svc is None or svc.disabled
            try:
                row = states.index(node.host)
            except NotFound:
                row = states.add_host(spec, usage, up=up, disabled=disabled)
                states.set_instances(row, running.get(node.host, []))
                added += 1
                continue
            changed = False
            if states.specs[row] != spec:
                states.update_host(row, spec)
                changed = True
            if _usage_of(states, row) != usage:
                states.update_usage(row, usage)
                changed = True
            if (bool(states.up[row]), bool(states.disabled[row])) != (up, disabled):
                states.set_service(row, up=up, disabled=disabled)
                changed = True
            instances = sorted(running.get(node.host, []), key=_by_uuid)
            if current.get(row, []) != instances:
                states.set_instances(row, instances)
                changed = True
            updated += changed
        removed = 0
        for name in [n for n in states.names if n is not None and n not in listed]:
            states.remove_host(states.index(name))
            removed += 1
        return Refreshed(added, removed, updated)

    @staticmethod
    def _sync_aggregates(states: HostStates,
                         wanted: Mapping[str, tuple[dict[str, str], tuple[str, ...]]]) -> None:
        table = states.aggregates
        for col in table.live_columns():
            name = table.names[col]
            if name is not None and name not in wanted:
                states.delete_aggregate(name)
        for uuid, (metadata, hosts) in wanted.items():
            at = table.column(uuid)
            if at is None or table.metadata[at] != metadata or table.hosts[at] != set(hosts):
                states.set_aggregate(uuid, metadata, hosts)


def host_spec(node: ComputeNodeRecord, provider: ProviderCapacity | None,
              zone: str | None) -> HostSpec:
    """A compute node as the scheduler sees it; placement's inventories give the capacity
    when the node has a provider, else the node's own figures (nothing reserved)."""
    inv = provider.inventories if provider is not None else {}
    vcpu = inv.get("VCPU") or InventorySpec(max(node.vcpus, 1),
                                            allocation_ratio=node.cpu_allocation_ratio)
    ram = inv.get("MEMORY_MB") or InventorySpec(max(node.memory_mb, 1),
                                                allocation_ratio=node.ram_allocation_ratio)
    disk = inv.get("DISK_GB") or InventorySpec(max(node.local_gb, 1),
                                               allocation_ratio=node.disk_allocation_ratio)
    stats = node.stats
    supported = stats.get("supported_instances") or ()
    cpu_info = stats.get("cpu_info")
    return HostSpec(
        node.host, vcpu.total, ram.total, disk.total,
        vcpus_reserved=vcpu.reserved, memory_mb_reserved=ram.reserved,
        disk_gb_reserved=disk.reserved, cpu_allocation_ratio=vcpu.allocation_ratio,
        ram_allocation_ratio=ram.allocation_ratio, disk_allocation_ratio=disk.allocation_ratio,
        availability_zone=zone, hypervisor_type=node.hypervisor_type,
        hypervisor_version=node.hypervisor_version,
        cpu_info=cpu_info if isinstance(cpu_info, (dict, str)) else None,
        supported_instances=tuple((str(a), str(h), str(m)) for a, h, m in supported),
        stats={k: v for k, v in stats.items() if k not in _NOT_CAPABILITIES},
        uuid=node.uuid)


def host_usage(node: ComputeNodeRecord, provider: ProviderCapacity | None,
               running: list[tuple[str, str | None]], io_ops: int) -> HostUsage:
    """What is used on a host: placement's allocations when the node has a provider."""
    used: dict[str, int] = provider.used if provider is not None else {
        "VCPU": node.vcpus_used, "MEMORY_MB": node.memory_mb_used,
        "DISK_GB": node.local_gb_used}
    failed: Any = node.stats.get("failed_builds", 0)
    return HostUsage(float(used.get("VCPU", 0)), float(used.get("MEMORY_MB", 0)),
                     float(used.get("DISK_GB", 0)), len(running) or node.running_vms, io_ops,
                     int(failed) if isinstance(failed, (int, float, str)) else 0)


def apply_update(states: HostStates, report: HostReport) -> None:
    """A compute host's report between refreshes: its capacity and usage.

    Capacity keeps the reserved amounts and ratios placement gave at the last refresh.
    """
    row = states.index(report.host)
    spec = states.specs[row]
    assert spec is not None
    if (spec.vcpus, spec.memory_mb, spec.disk_gb) != (report.vcpus, report.memory_mb,
                                                      report.disk_gb):
        states.update_host(row, replace(spec, vcpus=report.vcpus, memory_mb=report.memory_mb,
                                        disk_gb=report.disk_gb))
    states.update_usage(row, HostUsage(report.vcpus_used, report.memory_mb_used,
                                       report.disk_gb_used, report.num_instances,
                                       report.io_ops, report.failed_builds))


def _usage_of(states: HostStates, row: int) -> HostUsage:
    return HostUsage(float(states.vcpus_used[row]), float(states.ram_used[row]),
                     float(states.disk_used[row]), int(states.num_instances[row]),
                     int(states.io_ops[row]), int(states.failed_builds[row]))


def _instances_by_row(states: HostStates) -> dict[int, list[tuple[str, str | None]]]:
    out: dict[int, list[tuple[str, str | None]]] = {}
    for uuid, (row, group) in states.instances.items():
        out.setdefault(row, []).append((uuid, group))
    for listed in out.values():
        listed.sort(key=_by_uuid)
    return out


def _by_uuid(item: tuple[str, str | None]) -> str:
    return item[0]
