"""Services and compute nodes: who runs where, and what each hypervisor has.

Tables, records and the Store methods that read and write them. Up or down is
not stored: it is derived from ``last_seen_up`` and the configured down time
(and ``forced_down``) by whoever asks.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    select,
)

from nimbus.core.db.area import StoreArea, found
from nimbus.core.db.database import Row, Tx
from nimbus.core.db.meta import (
    NAME_LEN,
    dumps,
    flag,
    id_column,
    loads,
    metadata,
    soft_delete_columns,
    time_columns,
    uuid_column,
)
from nimbus.core.errors import NotFound

services = Table(
    "services", metadata,
    id_column(),
    uuid_column(unique=True),
    Column("host", String(NAME_LEN), nullable=False),
    Column("binary", String(NAME_LEN), nullable=False),
    Column("topic", String(NAME_LEN), nullable=False),
    flag("disabled"),
    Column("disabled_reason", String(NAME_LEN), nullable=True),
    flag("forced_down"),
    Column("last_seen_up", Double, nullable=True),
    Column("report_count", Integer, nullable=False, default=0),
    Column("version", Integer, nullable=False, default=0),
    *time_columns(),
    *soft_delete_columns(),
    UniqueConstraint("host", "binary", "deleted"),
)

compute_nodes = Table(
    "compute_nodes", metadata,
    id_column(),
    uuid_column(unique=True),
    Column("service_id", Integer, ForeignKey("services.id"), nullable=True),
    Column("host", String(NAME_LEN), nullable=False),
    Column("hypervisor_hostname", String(NAME_LEN), nullable=False),
    Column("hypervisor_type", String(NAME_LEN), nullable=False),
    Column("hypervisor_version", Integer, nullable=False, default=0),
    Column("host_ip", String(64), nullable=True),
    Column("vcpus", Integer, nullable=False),
    Column("memory_mb", Integer, nullable=False),
    Column("local_gb", Integer, nullable=False),
    Column("vcpus_used", Integer, nullable=False, default=0),
    Column("memory_mb_used", Integer, nullable=False, default=0),
    Column("local_gb_used", Integer, nullable=False, default=0),
    Column("running_vms", Integer, nullable=False, default=0),
    Column("cpu_allocation_ratio", Double, nullable=False, default=16.0),
    Column("ram_allocation_ratio", Double, nullable=False, default=1.5),
    Column("disk_allocation_ratio", Double, nullable=False, default=1.0),
    Column("stats", Text, nullable=True),
    *time_columns(),
    *soft_delete_columns(),
    UniqueConstraint("host", "hypervisor_hostname", "deleted"),
    Index(None, "host"),
)


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    """One row of ``services``."""

    id: int
    uuid: str
    host: str
    binary: str
    topic: str
    disabled: bool
    disabled_reason: str | None
    forced_down: bool
    last_seen_up: float | None
    report_count: int
    version: int
    created_at: float | None
    updated_at: float | None

    @classmethod
    def from_row(cls, r: Row) -> ServiceRecord:
        """Build from a row of ``SERVICE_COLUMNS``."""
        return cls(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], bool(r[7]), r[8], r[9],
                   r[10], r[11], r[12])

    def is_up(self, now: float, down_time: float) -> bool:
        """Up if it reported within ``down_time`` seconds and is not forced down."""
        return (not self.forced_down and self.last_seen_up is not None
                and now - self.last_seen_up <= down_time)


SERVICE_COLUMNS = [services.c[n] for n in (
    "id", "uuid", "host", "binary", "topic", "disabled", "disabled_reason", "forced_down",
    "last_seen_up", "report_count", "version", "created_at", "updated_at")]


@dataclass(frozen=True, slots=True)
class ComputeNodeRecord:
    """One row of ``compute_nodes``."""

    id: int
    uuid: str
    service_id: int | None
    host: str
    hypervisor_hostname: str
    hypervisor_type: str
    hypervisor_version: int
    host_ip: str | None
    vcpus: int
    memory_mb: int
    local_gb: int
    vcpus_used: int
    memory_mb_used: int
    local_gb_used: int
    running_vms: int
    cpu_allocation_ratio: float
    ram_allocation_ratio: float
    disk_allocation_ratio: float
    stats: dict[str, Any]
    updated_at: float | None

    @classmethod
    def from_row(cls, r: Row) -> ComputeNodeRecord:
        """Build from a row of ``NODE_COLUMNS``."""
        return cls(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11],
                   r[12], r[13], r[14], r[15], r[16], r[17], loads(r[18], {}), r[19])


NODE_COLUMNS = [compute_nodes.c[n] for n in (
    "id", "uuid", "service_id", "host", "hypervisor_hostname", "hypervisor_type",
    "hypervisor_version", "host_ip", "vcpus", "memory_mb", "local_gb", "vcpus_used",
    "memory_mb_used", "local_gb_used", "running_vms", "cpu_allocation_ratio",
    "ram_allocation_ratio", "disk_allocation_ratio", "stats", "updated_at")]

# -- statements, built once --------------------------------------------------------
_c = services.c
_INSERT_SERVICE = services.insert().returning(_c.id)
_SERVICE_BY_ID = select(*SERVICE_COLUMNS).where(_c.id == bindparam("id"), _c.deleted == 0)
_SERVICE_BY_HOST_BINARY = select(*SERVICE_COLUMNS).where(
    _c.host == bindparam("host"), _c.binary == bindparam("binary"), _c.deleted == 0)
_HEARTBEAT = (services.update()
              .where(_c.id == bindparam("sid"), _c.deleted == 0)
              .values(last_seen_up=bindparam("now"), report_count=_c.report_count + 1))
_SET_STATUS = (services.update()
               .where(_c.id == bindparam("sid"), _c.deleted == 0)
               .values(disabled=bindparam("disabled"), disabled_reason=bindparam("reason"),
                       forced_down=bindparam("forced_down"), updated_at=bindparam("now")))
_DELETE_SERVICE = (services.update()
                   .where(_c.id == bindparam("sid"), _c.deleted == 0)
                   .values(deleted=_c.id, deleted_at=bindparam("now")))

_n = compute_nodes.c
_INSERT_NODE = compute_nodes.insert().returning(_n.id)
_NODE_BY_UUID = select(*NODE_COLUMNS).where(_n.uuid == bindparam("uuid"), _n.deleted == 0)
_NODE_BY_HOST_NAME = select(*NODE_COLUMNS).where(
    _n.host == bindparam("host"), _n.hypervisor_hostname == bindparam("name"), _n.deleted == 0)
_UPDATE_NODE_USAGE = (compute_nodes.update()
                .where(_n.id == bindparam("nid"))
                .values(vcpus=bindparam("vcpus"), memory_mb=bindparam("memory_mb"),
                        local_gb=bindparam("local_gb"), vcpus_used=bindparam("vcpus_used"),
                        memory_mb_used=bindparam("memory_mb_used"),
                        local_gb_used=bindparam("local_gb_used"),
                        running_vms=bindparam("running_vms"), stats=bindparam("stats"),
                        updated_at=bindparam("now")))
_DELETE_NODES_OF_SERVICE = (compute_nodes.update()
                            .where(_n.service_id == bindparam("sid"), _n.deleted == 0)
                            .values(deleted=_n.id, deleted_at=bindparam("now")))


@functools.cache
def _services_query(by_host: bool, by_binary: bool) -> Select[Any]:
    stmt = select(*SERVICE_COLUMNS).where(_c.deleted == 0)
    if by_host:
        stmt = stmt.where(_c.host == bindparam("host"))
    if by_binary:
        stmt = stmt.where(_c.binary == bindparam("binary"))
    return stmt.order_by(_c.id)


@functools.cache
def _nodes_query(by_host: bool) -> Select[Any]:
    stmt = select(*NODE_COLUMNS).where(_n.deleted == 0)
    if by_host:
        stmt = stmt.where(_n.host == bindparam("host"))
    return stmt.order_by(_n.id)


class ServiceStore(StoreArea):
    """Store methods for services and compute nodes."""

    async def create_service(
        self, *, uuid: str, host: str, binary: str, topic: str, now: float, version: int = 0
    ) -> ServiceRecord:
        """Register a service; ``DuplicateError`` if (host, binary) is taken."""
        async def body(tx: Tx) -> ServiceRecord:
            sid = await tx.scalar(_INSERT_SERVICE, {
                "uuid": uuid, "host": host, "binary": binary, "topic": topic,
                "disabled": False, "forced_down": False, "last_seen_up": now,
                "report_count": 0, "version": version, "created_at": now, "updated_at": now,
                "deleted": 0,
            })
            return await _service(tx, sid)

        return await self.db.transact(body)

    async def get_service(self, service_id: int) -> ServiceRecord:
        """A live service by id; ``NotFound`` otherwise."""
        return await self.db.transact(lambda tx: _service(tx, service_id))

    async def service_by_host_binary(self, host: str, binary: str) -> ServiceRecord | None:
        """The live service ``binary`` on ``host``, if registered."""
        row = await self._one(_SERVICE_BY_HOST_BINARY, {"host": host, "binary": binary})
        return ServiceRecord.from_row(row) if row is not None else None

    async def list_services(
        self, *, host: str | None = None, binary: str | None = None
    ) -> list[ServiceRecord]:
        """Live services, optionally of one host and/or one binary, oldest first."""
        stmt = _services_query(host is not None, binary is not None)
        params = {"host": host, "binary": binary}
        return [ServiceRecord.from_row(r) for r in await self._rows(stmt, params)]

    async def service_heartbeat(self, service_id: int, now: float) -> None:
        """Record that a service reported at ``now``; ``NotFound`` if it was deleted."""
        if not await self._run(_HEARTBEAT, {"sid": service_id, "now": now}):
            raise NotFound(f"service {service_id} not found")

    async def set_service_status(
        self, service_id: int, *, disabled: bool, reason: str | None, forced_down: bool,
        now: float,
    ) -> ServiceRecord:
        """Enable or disable a service (with a reason), or force it down."""
        async def body(tx: Tx) -> ServiceRecord:
            n = await tx.run(_SET_STATUS, {"sid": service_id, "disabled": disabled,
                                           "reason": reason, "forced_down": forced_down,
                                           "now": now})
            if not n:
                raise NotFound(f"service {service_id} not found")
            return await _service(tx, service_id)

        return await self.db.transact(body)

    async def delete_service(self, service_id: int, now: float) -> None:
        """Soft-delete a service and its compute nodes."""
        async def body(tx: Tx) -> None:
            if not await tx.run(_DELETE_SERVICE, {"sid": service_id, "now": now}):
                raise NotFound(f"service {service_id} not found")
            await tx.run(_DELETE_NODES_OF_SERVICE, {"sid": service_id, "now": now})

        await self.db.transact(body)

    async def create_compute_node(
        self, *, uuid: str, service_id: int | None, host: str, hypervisor_hostname: str,
        hypervisor_type: str, vcpus: int, memory_mb: int, local_gb: int, now: float,
        host_ip: str | None = None, cpu_allocation_ratio: float = 16.0,
        ram_allocation_ratio: float = 1.5, disk_allocation_ratio: float = 1.0,
    ) -> ComputeNodeRecord:
        """Register a hypervisor node; ``DuplicateError`` if (host, name) is taken."""
        async def body(tx: Tx) -> ComputeNodeRecord:
            await tx.run(_INSERT_NODE, {
                "uuid": uuid, "service_id": service_id, "host": host,
                "hypervisor_hostname": hypervisor_hostname, "hypervisor_type": hypervisor_type,
                "hypervisor_version": 0, "host_ip": host_ip, "vcpus": vcpus,
                "memory_mb": memory_mb, "local_gb": local_gb, "vcpus_used": 0,
                "memory_mb_used": 0, "local_gb_used": 0, "running_vms": 0,
                "cpu_allocation_ratio": cpu_allocation_ratio,
                "ram_allocation_ratio": ram_allocation_ratio,
                "disk_allocation_ratio": disk_allocation_ratio, "stats": dumps({}),
                "created_at": now, "updated_at": now, "deleted": 0,
            })
            row = await tx.one(_NODE_BY_UUID, {"uuid": uuid})
            assert row is not None
            return ComputeNodeRecord.from_row(row)

        return await self.db.transact(body)

    async def get_compute_node(self, uuid: str) -> ComputeNodeRecord:
        """A live compute node by uuid; ``NotFound`` otherwise."""
        row = await self._found(_NODE_BY_UUID, {"uuid": uuid}, f"compute node {uuid} not found")
        return ComputeNodeRecord.from_row(row)

    async def compute_node_by_host(
        self, host: str, hypervisor_hostname: str
    ) -> ComputeNodeRecord | None:
        """The live node ``hypervisor_hostname`` of ``host``, if any."""
        row = await self._one(_NODE_BY_HOST_NAME, {"host": host, "name": hypervisor_hostname})
        return ComputeNodeRecord.from_row(row) if row is not None else None

    async def list_compute_nodes(self, *, host: str | None = None) -> list[ComputeNodeRecord]:
        """Live compute nodes, optionally of one host."""
        stmt = _nodes_query(host is not None)
        return [ComputeNodeRecord.from_row(r) for r in await self._rows(stmt, {"host": host})]

    async def update_compute_node_usage(
        self, node_id: int, *, vcpus: int, memory_mb: int, local_gb: int, vcpus_used: int,
        memory_mb_used: int, local_gb_used: int, running_vms: int, stats: dict[str, Any],
        now: float,
    ) -> None:
        """What the resource tracker reports: capacity and what is used of it."""
        await self.db.transact(lambda tx: write_node_usage(
            tx, node_id, vcpus=vcpus, memory_mb=memory_mb, local_gb=local_gb,
            vcpus_used=vcpus_used, memory_mb_used=memory_mb_used, local_gb_used=local_gb_used,
            running_vms=running_vms, stats=stats, now=now))


async def write_node_usage(
    tx: Tx, node_id: int, *, vcpus: int, memory_mb: int, local_gb: int, vcpus_used: int,
    memory_mb_used: int, local_gb_used: int, running_vms: int, stats: dict[str, Any],
    now: float,
) -> None:
    """Inside a transaction: write a compute node's capacity and usage; ``NotFound``
    naming the node if it is gone."""
    usage = {"nid": node_id, "vcpus": vcpus, "memory_mb": memory_mb, "local_gb": local_gb,
             "vcpus_used": vcpus_used, "memory_mb_used": memory_mb_used,
             "local_gb_used": local_gb_used, "running_vms": running_vms,
             "stats": dumps(stats), "now": now}
    if not await tx.run(_UPDATE_NODE_USAGE, usage):
        raise NotFound(f"compute node {node_id} not found")


async def _service(tx: Tx, service_id: int) -> ServiceRecord:
    row = await found(tx, _SERVICE_BY_ID, {"id": service_id}, f"service {service_id} not found")
    return ServiceRecord.from_row(row)
