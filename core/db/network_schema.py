"""The tables and records of nova-network style networking: networks, the fixed IPs
of each, instances' virtual interfaces, and floating IPs.

Every address of a network is a row of ``fixed_ips``, made in bulk when the
network is created; floating IPs likewise per pool. The Store methods are in
:mod:`nimbus.core.db.network` (networks, fixed IPs, virtual interfaces) and
:mod:`nimbus.core.db.floating_ips`; security groups, which stand apart, in
:mod:`nimbus.core.db.security_groups`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, UniqueConstraint

from nimbus.core.db.database import Row
from nimbus.core.db.meta import (
    NAME_LEN,
    UUID_LEN,
    flag,
    id_column,
    metadata,
    soft_delete_columns,
    time_columns,
    uuid_column,
)

ADDR_LEN = 39  # an IPv6 address
CIDR_LEN = 43
MAC_LEN = 17

networks = Table(
    "networks", metadata,
    id_column(),
    uuid_column(unique=True),
    Column("label", String(NAME_LEN), nullable=True),
    Column("cidr", String(CIDR_LEN), nullable=True),
    Column("netmask", String(ADDR_LEN), nullable=True),
    Column("broadcast", String(ADDR_LEN), nullable=True),
    Column("gateway", String(ADDR_LEN), nullable=True),
    Column("cidr_v6", String(CIDR_LEN), nullable=True),
    Column("gateway_v6", String(ADDR_LEN), nullable=True),
    Column("bridge", String(NAME_LEN), nullable=True),
    Column("bridge_interface", String(NAME_LEN), nullable=True),
    Column("vlan", Integer, nullable=True),
    Column("dhcp_start", String(ADDR_LEN), nullable=True),
    Column("dhcp_server", String(ADDR_LEN), nullable=True),
    flag("enable_dhcp", True),
    Column("dns1", String(ADDR_LEN), nullable=True),
    Column("dns2", String(ADDR_LEN), nullable=True),
    Column("mtu", Integer, nullable=True),
    flag("multi_host"),
    flag("share_address"),
    Column("project_id", String(NAME_LEN), nullable=True),
    Column("host", String(NAME_LEN), nullable=True),
    *time_columns(),
    *soft_delete_columns(),
    UniqueConstraint("vlan", "deleted"),
    Index(None, "project_id"),
    Index(None, "host"),
)

fixed_ips = Table(
    "fixed_ips", metadata,
    id_column(),
    Column("address", String(ADDR_LEN), nullable=False),
    Column("network_id", Integer, ForeignKey("networks.id"), nullable=False),
    Column("virtual_interface_id", Integer, nullable=True),
    Column("instance_uuid", String(UUID_LEN), nullable=True),
    flag("allocated"),
    flag("leased"),
    flag("reserved"),
    Column("host", String(NAME_LEN), nullable=True),
    *time_columns(),
    *soft_delete_columns(),
    UniqueConstraint("address", "deleted"),
    Index(None, "network_id", "instance_uuid", "reserved", "deleted"),
    Index(None, "instance_uuid"),
    Index(None, "virtual_interface_id"),
)

virtual_interfaces = Table(
    "virtual_interfaces", metadata,
    id_column(),
    uuid_column(unique=True),
    Column("address", String(MAC_LEN), nullable=False, unique=True),
    Column("network_id", Integer, ForeignKey("networks.id"), nullable=True),
    Column("instance_uuid", String(UUID_LEN), nullable=False),
    *time_columns(),
    Index(None, "instance_uuid"),
)

floating_ips = Table(
    "floating_ips", metadata,
    id_column(),
    Column("address", String(ADDR_LEN), nullable=False),
    Column("fixed_ip_id", Integer, ForeignKey("fixed_ips.id"), nullable=True),
    Column("project_id", String(NAME_LEN), nullable=True),
    Column("host", String(NAME_LEN), nullable=True),
    flag("auto_assigned"),
    Column("pool", String(NAME_LEN), nullable=False),
    Column("interface", String(NAME_LEN), nullable=True),
    *time_columns(),
    *soft_delete_columns(),
    UniqueConstraint("address", "deleted"),
    Index(None, "pool", "project_id", "deleted"),
    Index(None, "project_id"),
    Index(None, "fixed_ip_id"),
)


# -- records ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class NetworkRecord:
    """One live row of ``networks``."""

    id: int
    uuid: str
    label: str | None
    cidr: str | None
    netmask: str | None
    broadcast: str | None
    gateway: str | None
    cidr_v6: str | None
    gateway_v6: str | None
    bridge: str | None
    bridge_interface: str | None
    vlan: int | None
    dhcp_start: str | None
    dhcp_server: str | None
    enable_dhcp: bool
    dns1: str | None
    dns2: str | None
    mtu: int | None
    multi_host: bool
    share_address: bool
    project_id: str | None
    host: str | None
    created_at: float | None
    updated_at: float | None

    @classmethod
    def from_row(cls, r: Row) -> NetworkRecord:
        """Build from a row of ``NETWORK_COLUMNS``."""
        return cls(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11],
                   r[12], r[13], bool(r[14]), r[15], r[16], r[17], bool(r[18]), bool(r[19]),
                   r[20], r[21], r[22], r[23])


_n = networks.c
NETWORK_COLUMNS = [_n[k] for k in (
    "id", "uuid", "label", "cidr", "netmask", "broadcast", "gateway", "cidr_v6", "gateway_v6",
    "bridge", "bridge_interface", "vlan", "dhcp_start", "dhcp_server", "enable_dhcp", "dns1",
    "dns2", "mtu", "multi_host", "share_address", "project_id", "host", "created_at",
    "updated_at")]


@dataclass(frozen=True, slots=True)
class FixedIpRecord:
    """One live address of a network, and who has it."""

    id: int
    address: str
    network_id: int
    virtual_interface_id: int | None
    instance_uuid: str | None
    allocated: bool
    leased: bool
    reserved: bool
    host: str | None
    updated_at: float | None

    @classmethod
    def from_row(cls, r: Row) -> FixedIpRecord:
        """Build from a row of ``FIXED_COLUMNS``."""
        return cls(r[0], r[1], r[2], r[3], r[4], bool(r[5]), bool(r[6]), bool(r[7]), r[8],
                   r[9])


_f = fixed_ips.c
FIXED_COLUMNS = [_f.id, _f.address, _f.network_id, _f.virtual_interface_id, _f.instance_uuid,
                 _f.allocated, _f.leased, _f.reserved, _f.host, _f.updated_at]


@dataclass(frozen=True, slots=True)
class VirtualInterfaceRecord:
    """An instance's network interface: its MAC address on a network."""

    id: int
    uuid: str
    address: str
    network_id: int | None
    instance_uuid: str

    @classmethod
    def from_row(cls, r: Row) -> VirtualInterfaceRecord:
        """Build from a row of ``VIF_COLUMNS``."""
        return cls(r[0], r[1], r[2], r[3], r[4])


_v = virtual_interfaces.c
VIF_COLUMNS = [_v.id, _v.uuid, _v.address, _v.network_id, _v.instance_uuid]


@dataclass(frozen=True, slots=True)
class FloatingIpRecord:
    """One live floating IP, with the fixed address and instance it points at, if any."""

    id: int
    address: str
    fixed_ip_id: int | None
    project_id: str | None
    host: str | None
    auto_assigned: bool
    pool: str
    interface: str | None
    updated_at: float | None
    fixed_address: str | None
    instance_uuid: str | None

    @classmethod
    def from_row(cls, r: Row) -> FloatingIpRecord:
        """Build from a row of ``FLOATING_COLUMNS``."""
        return cls(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], r[7], r[8], r[9], r[10])


_fl = floating_ips.c
FLOATING_COLUMNS = [_fl.id, _fl.address, _fl.fixed_ip_id, _fl.project_id, _fl.host,
                    _fl.auto_assigned, _fl.pool, _fl.interface, _fl.updated_at, _f.address,
                    _f.instance_uuid]
