"""A fleet registered in the Store as a compute host registers itself, for scheduler tests.

Each host gets a ``nimbus-compute`` service that has just reported, a compute
node, and a resource provider (the node's uuid) with VCPU, MEMORY_MB and
DISK_GB inventories.
"""

from __future__ import annotations

from dataclasses import dataclass

from nimbus.core.db.instance_schema import NewInstance
from nimbus.core.db.placement import InventorySpec
from nimbus.core.db.store import Store

T = 1_767_225_600.0  # SimRuntime's default epoch: the sim's wall_time() starts here


def node_uuid(i: int) -> str:
    return f"00000000-0000-0000-0000-{i:012d}"


@dataclass(frozen=True)
class Host:
    name: str
    uuid: str
    service_id: int


async def register_host(store: Store, i: int, *, vcpus: int = 4, memory_mb: int = 8192,
                        disk_gb: int = 100, cpu_ratio: float = 1.0, reserved_mb: int = 0,
                        now: float = T) -> Host:
    """Host ``h<i>``: service, compute node and resource provider with inventories."""
    name = f"h{i}"
    svc = await store.create_service(uuid=f"svc-{i}", host=name, binary="nimbus-compute",
                                     topic="compute", now=now)
    await store.service_heartbeat(svc.id, now)
    node = await store.create_compute_node(
        uuid=node_uuid(i), service_id=svc.id, host=name, hypervisor_hostname=name,
        hypervisor_type="QEMU", vcpus=vcpus, memory_mb=memory_mb, local_gb=disk_gb, now=now,
        cpu_allocation_ratio=cpu_ratio, ram_allocation_ratio=1.0)
    await store.create_resource_provider(uuid=node.uuid, name=name, now=now)
    await store.set_inventories(node.uuid, 0, {
        "VCPU": InventorySpec(vcpus, allocation_ratio=cpu_ratio),
        "MEMORY_MB": InventorySpec(memory_mb, reserved=reserved_mb),
        "DISK_GB": InventorySpec(disk_gb)}, now=now)
    return Host(name, node.uuid, svc.id)


async def register_fleet(store: Store, n: int, **kw: float) -> list[Host]:
    """Hosts ``h0`` .. ``h<n-1>``, all alike."""
    return [await register_host(store, i, **kw) for i in range(n)]  # type: ignore[arg-type]


async def place_instance(store: Store, uuid: str, host: str, *, now: float = T,
                         task_state: str | None = None) -> None:
    """An instance already running on ``host``."""
    await store.create_instance(NewInstance(
        uuid=uuid, project_id="p", user_id="u",
        flavor={"flavorid": "1", "vcpus": 1, "memory_mb": 512, "root_gb": 1}),
        now=now, request_id="req-test")
    await store.update_instance(uuid, now=now, host=host, node=host, vm_state="active",
                                task_state=task_state)


async def usage_by_host(store: Store, hosts: list[Host]) -> dict[str, dict[str, int]]:
    """What placement holds on each host's provider."""
    return {h.name: await store.usages_for_provider(h.uuid) for h in hosts}
