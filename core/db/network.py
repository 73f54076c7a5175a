"""Networks (nova-network style): networks, fixed and floating IPs, virtual interfaces,
security groups, their rules and which instances are in them.

Every address of a network is a row of ``fixed_ips``, made in bulk when the
network is created; floating IPs likewise per pool. Allocation picks a free row
and claims it with a conditional UPDATE (``... WHERE id = :id AND instance_uuid
IS NULL``): if another transaction claimed it first, zero rows change and the
allocation starts over in a fresh transaction, so two concurrent allocations
never get the same address on any engine. On PostgreSQL and MariaDB the pick
is ``FOR UPDATE SKIP LOCKED``, so concurrent allocations mostly pick different
rows instead of retrying.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    false,
    or_,
    select,
)

from nimbus.core.db.database import Database, Row, Tx
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
from nimbus.core.errors import ConflictError, DuplicateError, NimbusError, NotFound

ADDR_LEN = 39  # an IPv6 address
CIDR_LEN = 43
MAC_LEN = 17
#: The most addresses one network or floating range may have (a /16).
MAX_ADDRESSES = 65536
#: Fresh transactions an allocation may start when another claimed its pick first.
ALLOCATION_RETRIES = 64


class NoMoreAddresses(NotFound):
    """No free address is left in the network or floating pool."""


class InUse(NimbusError):
    """The network, address or security group is in use and cannot be changed so."""

    status = 409


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

security_groups = Table(
    "security_groups", metadata,
    id_column(),
    Column("name", String(NAME_LEN), nullable=False),
    Column("description", Text, nullable=True),
    Column("project_id", String(NAME_LEN), nullable=False),
    Column("user_id", String(NAME_LEN), nullable=True),
    *time_columns(),
    *soft_delete_columns(),
    UniqueConstraint("project_id", "name", "deleted"),
)

security_group_rules = Table(
    "security_group_rules", metadata,
    id_column(),
    Column("parent_group_id", Integer, ForeignKey("security_groups.id"), nullable=False),
    Column("protocol", String(16), nullable=True),
    Column("from_port", Integer, nullable=True),
    Column("to_port", Integer, nullable=True),
    Column("cidr", String(CIDR_LEN), nullable=True),
    Column("group_id", Integer, ForeignKey("security_groups.id"), nullable=True),
    *time_columns(),
    Index(None, "parent_group_id"),
    Index(None, "group_id"),
)

security_group_instance_association = Table(
    "security_group_instance_association", metadata,
    id_column(),
    Column("security_group_id", Integer, ForeignKey("security_groups.id"), nullable=False),
    Column("instance_uuid", String(UUID_LEN), nullable=False),
    UniqueConstraint("security_group_id", "instance_uuid"),
    Index(None, "instance_uuid"),
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
class SecurityGroupRecord:
    """One live security group of a project."""

    id: int
    name: str
    description: str | None
    project_id: str
    user_id: str | None
    created_at: float | None

    @classmethod
    def from_row(cls, r: Row) -> SecurityGroupRecord:
        """Build from a row of ``GROUP_COLUMNS``."""
        return cls(r[0], r[1], r[2], r[3], r[4], r[5])


_g = security_groups.c
GROUP_COLUMNS = [_g.id, _g.name, _g.description, _g.project_id, _g.user_id, _g.created_at]


@dataclass(frozen=True, slots=True)
class SecurityGroupRuleRecord:
    """An ingress rule of a group: traffic from ``cidr`` or from members of ``group_id``."""

    id: int
    parent_group_id: int
    protocol: str | None
    from_port: int | None
    to_port: int | None
    cidr: str | None
    group_id: int | None

    @classmethod
    def from_row(cls, r: Row) -> SecurityGroupRuleRecord:
        """Build from a row of ``RULE_COLUMNS``."""
        return cls(r[0], r[1], r[2], r[3], r[4], r[5], r[6])


_ru = security_group_rules.c
RULE_COLUMNS = [_ru.id, _ru.parent_group_id, _ru.protocol, _ru.from_port, _ru.to_port,
                _ru.cidr, _ru.group_id]
_sa = security_group_instance_association.c

# -- statements, built once --------------------------------------------------------
_INSERT_NETWORK = networks.insert().returning(_n.id)
_NETWORK_BY_ID = select(*NETWORK_COLUMNS).where(_n.id == bindparam("id"), _n.deleted == 0)
_NETWORK_BY_UUID = select(*NETWORK_COLUMNS).where(_n.uuid == bindparam("uuid"),
                                                  _n.deleted == 0)
_CLAIM_NETWORK_HOST = (networks.update()
                       .where(_n.id == bindparam("nid"), _n.deleted == 0, _n.host.is_(None))
                       .values(host=bindparam("host"), updated_at=bindparam("now")))
_PICK_FREE_NETWORK = (select(_n.id).where(_n.project_id.is_(None), _n.deleted == 0)
                      .order_by(_n.id).limit(1).with_for_update(skip_locked=True))
_CLAIM_NETWORK = (networks.update()
                  .where(_n.id == bindparam("nid"), _n.deleted == 0, _n.project_id.is_(None))
                  .values(project_id=bindparam("project_id"), updated_at=bindparam("now")))
_NETWORK_USED = select(_f.id).where(_f.network_id == bindparam("nid"), _f.deleted == 0,
                                    _f.instance_uuid.is_not(None)).limit(1)
_DELETE_NETWORK = (networks.update().where(_n.id == bindparam("nid"), _n.deleted == 0)
                   .values(deleted=_n.id, deleted_at=bindparam("now")))
_DELETE_FIXED_OF_NETWORK = (fixed_ips.update()
                            .where(_f.network_id == bindparam("nid"), _f.deleted == 0)
                            .values(deleted=_f.id, deleted_at=bindparam("now")))

_INSERT_FIXED = fixed_ips.insert()
_FIXED_BY_ID = select(*FIXED_COLUMNS).where(_f.id == bindparam("id"))
_FIXED_BY_ADDRESS = select(*FIXED_COLUMNS).where(_f.address == bindparam("address"),
                                                 _f.deleted == 0)
_FIXED_OF_INSTANCE = (select(*FIXED_COLUMNS)
                      .where(_f.instance_uuid == bindparam("uuid"), _f.deleted == 0)
                      .order_by(_f.id))
_PICK_FIXED = (select(_f.id)
               .where(_f.network_id == bindparam("nid"), _f.instance_uuid.is_(None),
                      _f.reserved == false(), _f.deleted == 0)
               .order_by(_f.id).limit(1).with_for_update(skip_locked=True))
_CLAIM_FIXED_VALUES = {"instance_uuid": bindparam("uuid"), "allocated": True,
                       "host": bindparam("host"), "virtual_interface_id": bindparam("vif_id"),
                       "updated_at": bindparam("now")}
_CLAIM_FIXED = (fixed_ips.update()
                .where(_f.id == bindparam("fid"), _f.instance_uuid.is_(None), _f.deleted == 0)
                .values(**_CLAIM_FIXED_VALUES))
_CLAIM_FIXED_ADDRESS = (fixed_ips.update()
                        .where(_f.network_id == bindparam("nid"),
                               _f.address == bindparam("addr"), _f.instance_uuid.is_(None),
                               _f.reserved == false(), _f.deleted == 0)
                        .values(**_CLAIM_FIXED_VALUES))
_RELEASE_FIXED = (fixed_ips.update().where(_f.id == bindparam("fid"))
                  .values(instance_uuid=None, allocated=False, leased=False,
                          virtual_interface_id=None, host=None, updated_at=bindparam("now")))
_SET_LEASED = (fixed_ips.update().where(_f.address == bindparam("addr"), _f.deleted == 0)
               .values(leased=bindparam("leased"), updated_at=bindparam("now")))
_FLOATING_ON_FIXED = select(_fl.address).where(_fl.fixed_ip_id == bindparam("fid"),
                                               _fl.deleted == 0).limit(1)

_INSERT_FLOATING = floating_ips.insert()
_FLOATING_FROM = floating_ips.outerjoin(fixed_ips, _fl.fixed_ip_id == _f.id)
_FLOATING_BY_ADDRESS = (select(*FLOATING_COLUMNS).select_from(_FLOATING_FROM)
                        .where(_fl.address == bindparam("address"), _fl.deleted == 0))
_FLOATING_BY_ID = (select(*FLOATING_COLUMNS).select_from(_FLOATING_FROM)
                   .where(_fl.id == bindparam("id")))
_FLOATING_OF_PROJECT = (select(*FLOATING_COLUMNS).select_from(_FLOATING_FROM)
                        .where(_fl.project_id == bindparam("project_id"), _fl.deleted == 0)
                        .order_by(_fl.id))
_FLOATING_OF_INSTANCE = (select(*FLOATING_COLUMNS).select_from(_FLOATING_FROM)
                         .where(_f.instance_uuid == bindparam("uuid"), _fl.deleted == 0)
                         .order_by(_fl.id))
_PICK_FLOATING = (select(_fl.id)
                  .where(_fl.pool == bindparam("pool"), _fl.project_id.is_(None),
                         _fl.deleted == 0)
                  .order_by(_fl.id).limit(1).with_for_update(skip_locked=True))
_CLAIM_FLOATING = (floating_ips.update()
                   .where(_fl.id == bindparam("flid"), _fl.project_id.is_(None),
                          _fl.deleted == 0)
                   .values(project_id=bindparam("project_id"),
                           auto_assigned=bindparam("auto_assigned"),
                           updated_at=bindparam("now")))
_ASSOCIATE_FLOATING = (floating_ips.update()
                       .where(_fl.address == bindparam("addr"), _fl.deleted == 0,
                              _fl.project_id.is_not(None),
                              or_(_fl.fixed_ip_id.is_(None),
                                  _fl.fixed_ip_id == bindparam("fid")))
                       .values(fixed_ip_id=bindparam("fid"), host=bindparam("host"),
                               updated_at=bindparam("now")))
_DISASSOCIATE_FLOATING = (floating_ips.update()
                          .where(_fl.address == bindparam("addr"), _fl.deleted == 0)
                          .values(fixed_ip_id=None, host=None, updated_at=bindparam("now")))
_DEALLOCATE_FLOATING = (floating_ips.update()
                        .where(_fl.address == bindparam("addr"), _fl.deleted == 0,
                               _fl.fixed_ip_id.is_(None))
                        .values(project_id=None, host=None, auto_assigned=False,
                                updated_at=bindparam("now")))

_INSERT_VIF = virtual_interfaces.insert().returning(_v.id)
_VIFS_OF_INSTANCE = (select(*VIF_COLUMNS).where(_v.instance_uuid == bindparam("uuid"))
                     .order_by(_v.id))
_UNLINK_VIFS_OF_INSTANCE = (
    fixed_ips.update()
    .where(_f.virtual_interface_id.in_(
        select(_v.id).where(_v.instance_uuid == bindparam("uuid")).scalar_subquery()))
    .values(virtual_interface_id=None))
_DELETE_VIFS_OF_INSTANCE = virtual_interfaces.delete().where(
    _v.instance_uuid == bindparam("uuid"))

_INSERT_GROUP = security_groups.insert().returning(_g.id)
_GROUP_BY_ID = select(*GROUP_COLUMNS).where(_g.id == bindparam("id"), _g.deleted == 0)
_GROUP_BY_NAME = select(*GROUP_COLUMNS).where(
    _g.project_id == bindparam("project_id"), _g.name == bindparam("name"), _g.deleted == 0)
_GROUP_USED = select(_sa.id).where(_sa.security_group_id == bindparam("id")).limit(1)
_DELETE_RULES_OF_GROUP = security_group_rules.delete().where(
    or_(_ru.parent_group_id == bindparam("id"), _ru.group_id == bindparam("id")))
_DELETE_GROUP = (security_groups.update().where(_g.id == bindparam("gid"), _g.deleted == 0)
                 .values(deleted=_g.id, deleted_at=bindparam("now")))
_INSERT_RULE = security_group_rules.insert().returning(_ru.id)
_SAME_RULE = select(_ru.id).where(
    _ru.parent_group_id == bindparam("parent_group_id"),
    _ru.protocol.is_not_distinct_from(bindparam("protocol")),
    _ru.from_port.is_not_distinct_from(bindparam("from_port")),
    _ru.to_port.is_not_distinct_from(bindparam("to_port")),
    _ru.cidr.is_not_distinct_from(bindparam("cidr")),
    _ru.group_id.is_not_distinct_from(bindparam("group_id"))).limit(1)
_RULE_BY_ID = select(*RULE_COLUMNS).where(_ru.id == bindparam("id"))
_RULES_OF_GROUP = (select(*RULE_COLUMNS).where(_ru.parent_group_id == bindparam("id"))
                   .order_by(_ru.id))
_DELETE_RULE = security_group_rules.delete().where(_ru.id == bindparam("id"))
_INSERT_MEMBERSHIP = security_group_instance_association.insert()
_DELETE_MEMBERSHIP = security_group_instance_association.delete().where(
    _sa.security_group_id == bindparam("id"), _sa.instance_uuid == bindparam("uuid"))
_DELETE_MEMBERSHIPS_OF_INSTANCE = security_group_instance_association.delete().where(
    _sa.instance_uuid == bindparam("uuid"))
_GROUPS_OF_INSTANCE = (select(*GROUP_COLUMNS)
                       .join(security_group_instance_association,
                             _sa.security_group_id == _g.id)
                       .where(_sa.instance_uuid == bindparam("uuid"), _g.deleted == 0)
                       .order_by(_g.name, _g.id))
_INSTANCES_OF_GROUP = (select(_sa.instance_uuid).where(_sa.security_group_id == bindparam("id"))
                       .order_by(_sa.instance_uuid))


@functools.cache
def _networks_query(by_project: bool, by_host: bool) -> Select[Any]:
    stmt = select(*NETWORK_COLUMNS).where(_n.deleted == 0)
    if by_project:
        stmt = stmt.where(_n.project_id == bindparam("project_id"))
    if by_host:
        stmt = stmt.where(_n.host == bindparam("host"))
    return stmt.order_by(_n.id)


@functools.cache
def _fixed_of_network_query(allocated_only: bool) -> Select[Any]:
    stmt = select(*FIXED_COLUMNS).where(_f.network_id == bindparam("nid"), _f.deleted == 0)
    if allocated_only:
        stmt = stmt.where(_f.instance_uuid.is_not(None))
    return stmt.order_by(_f.id)


@functools.cache
def _groups_query(by_project: bool) -> Select[Any]:
    stmt = select(*GROUP_COLUMNS).where(_g.deleted == 0)
    if by_project:
        stmt = stmt.where(_g.project_id == bindparam("project_id"))
    return stmt.order_by(_g.project_id, _g.name, _g.id)


def _addresses(cidr: str, *, hosts_only: bool) -> list[str]:
    net = ipaddress.ip_network(cidr, strict=False)
    if net.num_addresses > MAX_ADDRESSES:
        raise ValueError(f"{cidr} has {net.num_addresses} addresses; at most {MAX_ADDRESSES}")
    return [str(a) for a in (net.hosts() if hosts_only else net)]


class NetworkStore:
    """Store methods for networks, fixed and floating IPs, interfaces and security groups."""

    db: Database

    # -- networks -------------------------------------------------------------------

    async def create_network(
        self, *, uuid: str, label: str, cidr: str | None, now: float,
        netmask: str | None = None, broadcast: str | None = None, gateway: str | None = None,
        cidr_v6: str | None = None, gateway_v6: str | None = None, bridge: str | None = None,
        bridge_interface: str | None = None, vlan: int | None = None,
        dhcp_start: str | None = None, dhcp_server: str | None = None,
        enable_dhcp: bool = True, dns1: str | None = None, dns2: str | None = None,
        mtu: int | None = None, multi_host: bool = False, share_address: bool = False,
        project_id: str | None = None, host: str | None = None,
    ) -> NetworkRecord:
        """Create a network; what is not given of netmask, broadcast, gateway (the first
        address), DHCP start (the next) and DHCP server (the gateway) follows from the
        IPv4 ``cidr``, as ``nova-manage network create`` does. ``DuplicateError`` if
        the uuid or VLAN is taken. Its addresses come from :meth:`create_fixed_ips`."""
        if cidr is not None:
            net = ipaddress.ip_network(cidr, strict=False)
            netmask = netmask or str(net.netmask)
            broadcast = broadcast or str(net.broadcast_address)
            if net.num_addresses > 2:
                gateway = gateway or str(net.network_address + 1)
                dhcp_start = dhcp_start or str(net.network_address + 2)
            dhcp_server = dhcp_server or gateway
        values = {
            "uuid": uuid, "label": label, "cidr": cidr, "netmask": netmask,
            "broadcast": broadcast, "gateway": gateway, "cidr_v6": cidr_v6,
            "gateway_v6": gateway_v6, "bridge": bridge, "bridge_interface": bridge_interface,
            "vlan": vlan, "dhcp_start": dhcp_start, "dhcp_server": dhcp_server,
            "enable_dhcp": enable_dhcp, "dns1": dns1, "dns2": dns2, "mtu": mtu,
            "multi_host": multi_host, "share_address": share_address,
            "project_id": project_id, "host": host, "created_at": now, "updated_at": now,
            "deleted": 0}

        async def body(tx: Tx) -> NetworkRecord:
            return await _network(tx, await tx.scalar(_INSERT_NETWORK, values))

        return await self.db.transact(body)

    async def get_network(self, network_id: int) -> NetworkRecord:
        """A live network by id; ``NotFound`` otherwise."""
        async def body(tx: Tx) -> NetworkRecord:
            return await _network(tx, network_id)

        return await self.db.transact(body)

    async def get_network_by_uuid(self, uuid: str) -> NetworkRecord:
        """A live network by uuid (what the API names it by); ``NotFound`` otherwise."""
        async def body(tx: Tx) -> Row | None:
            return await tx.one(_NETWORK_BY_UUID, {"uuid": uuid})

        row = await self.db.transact(body)
        if row is None:
            raise NotFound(f"network {uuid} not found")
        return NetworkRecord.from_row(row)

    async def list_networks(
        self, *, project_id: str | None = None, host: str | None = None
    ) -> list[NetworkRecord]:
        """Live networks, optionally of one project and/or served by one host."""
        stmt = _networks_query(project_id is not None, host is not None)

        async def body(tx: Tx) -> list[Row]:
            return await tx.rows(stmt, {"project_id": project_id, "host": host})

        return [NetworkRecord.from_row(r) for r in await self.db.transact(body)]

    async def claim_network_host(self, network_id: int, host: str, now: float) -> str:
        """Make ``host`` the network's host unless it has one; the host it has after."""
        async def body(tx: Tx) -> str:
            await tx.run(_CLAIM_NETWORK_HOST, {"nid": network_id, "host": host, "now": now})
            net = await _network(tx, network_id)
            assert net.host is not None
            return net.host

        return await self.db.transact(body)

    async def associate_network_with_project(self, project_id: str, now: float) -> NetworkRecord:
        """Give a project a network of its own (VLAN mode): the first one without a
        project, claimed atomically. ``NotFound`` if none is left."""
        async def body(tx: Tx) -> NetworkRecord:
            nid = await tx.scalar(_PICK_FREE_NETWORK)
            if nid is None:
                raise NotFound("no network left to give to a project")
            if not await tx.run(_CLAIM_NETWORK, {"nid": nid, "project_id": project_id,
                                                 "now": now}):
                raise ConflictError(f"network {nid} was claimed concurrently")
            return await _network(tx, nid)

        return await self.db.transact(body, conflict_retries=ALLOCATION_RETRIES)

    async def delete_network(self, network_id: int, now: float) -> None:
        """Soft-delete a network and its addresses; ``InUse`` while any is allocated."""
        async def body(tx: Tx) -> None:
            await _network(tx, network_id)
            if await tx.scalar(_NETWORK_USED, {"nid": network_id}) is not None:
                raise InUse(f"network {network_id} has allocated addresses")
            await tx.run(_DELETE_FIXED_OF_NETWORK, {"nid": network_id, "now": now})
            await tx.run(_DELETE_NETWORK, {"nid": network_id, "now": now})

        await self.db.transact(body)

    # -- fixed IPs ------------------------------------------------------------------

    async def create_fixed_ips(
        self, network_id: int, *, now: float, cidr: str | None = None,
        reserved: Collection[str] = (),
    ) -> int:
        """Make a row for every address of the network's CIDR (or ``cidr``), in one
        statement execution. The network address, broadcast address, gateway and DHCP
        server are reserved (never allocated), and so is every address in ``reserved``.
        How many rows; ``DuplicateError`` if any address exists already."""
        async def body(tx: Tx) -> int:
            net = await _network(tx, network_id)
            block = cidr or net.cidr
            if block is None:
                raise ValueError(f"network {network_id} has no IPv4 CIDR")
            parsed = ipaddress.ip_network(block, strict=False)
            held = {str(parsed.network_address), str(parsed.broadcast_address), *reserved}
            held.update(a for a in (net.gateway, net.dhcp_server) if a is not None)
            rows = [{"address": a, "network_id": network_id, "virtual_interface_id": None,
                     "instance_uuid": None, "allocated": False, "leased": False,
                     "reserved": a in held, "host": None, "created_at": now,
                     "updated_at": now, "deleted": 0}
                    for a in _addresses(block, hosts_only=False)]
            return await tx.run(_INSERT_FIXED, rows)

        return await self.db.transact(body)

    async def allocate_fixed_ip(
        self, network_id: int, instance_uuid: str, *, now: float, host: str | None = None,
        virtual_interface_id: int | None = None, address: str | None = None,
    ) -> FixedIpRecord:
        """Give an instance a free, unreserved address of a network (or the requested
        ``address``). Concurrent allocations never get the same address.
        ``NoMoreAddresses`` if none is free; ``InUse`` if ``address`` is taken or reserved."""
        params = {"nid": network_id, "uuid": instance_uuid, "host": host,
                  "vif_id": virtual_interface_id, "now": now, "addr": address}

        async def pick(tx: Tx) -> FixedIpRecord:
            fid = await tx.scalar(_PICK_FIXED, params)
            if fid is None:
                raise NoMoreAddresses(f"no fixed IP left in network {network_id}")
            if not await tx.run(_CLAIM_FIXED, {**params, "fid": fid}):
                raise ConflictError(f"fixed IP {fid} was allocated concurrently")
            return await _fixed_by_id(tx, fid)

        async def requested(tx: Tx) -> FixedIpRecord:
            if not await tx.run(_CLAIM_FIXED_ADDRESS, params):
                ip = await _fixed_by_address(tx, str(address))
                if ip.network_id != network_id:
                    raise NotFound(f"fixed IP {address} not found in network {network_id}")
                raise InUse(f"fixed IP {address} is "
                            + ("reserved" if ip.reserved else "already in use"))
            return await _fixed_by_address(tx, str(address))

        if address is not None:
            return await self.db.transact(requested)
        return await self.db.transact(pick, conflict_retries=ALLOCATION_RETRIES)

    async def release_fixed_ip(self, address: str, now: float) -> FixedIpRecord:
        """Take an address back from its instance; ``InUse`` while a floating IP is
        associated with it (disassociate that first). The address as it was."""
        async def body(tx: Tx) -> FixedIpRecord:
            ip = await _fixed_by_address(tx, address)
            floating = await tx.scalar(_FLOATING_ON_FIXED, {"fid": ip.id})
            if floating is not None:
                raise InUse(f"fixed IP {address} has floating IP {floating} associated")
            await tx.run(_RELEASE_FIXED, {"fid": ip.id, "now": now})
            return ip

        return await self.db.transact(body)

    async def set_fixed_ip_leased(self, address: str, leased: bool, now: float) -> None:
        """Record that DHCP leased (or released) an address."""
        async def body(tx: Tx) -> int:
            return await tx.run(_SET_LEASED, {"addr": address, "leased": leased,
                                              "now": now})

        if not await self.db.transact(body):
            raise NotFound(f"fixed IP {address} not found")

    async def get_fixed_ip_by_address(self, address: str) -> FixedIpRecord:
        """A live address (how the metadata service finds an instance by its IP)."""
        async def body(tx: Tx) -> FixedIpRecord:
            return await _fixed_by_address(tx, address)

        return await self.db.transact(body)

    async def fixed_ips_for_instance(self, instance_uuid: str) -> list[FixedIpRecord]:
        """The addresses an instance has, in the order it got them."""
        async def body(tx: Tx) -> list[Row]:
            return await tx.rows(_FIXED_OF_INSTANCE, {"uuid": instance_uuid})

        return [FixedIpRecord.from_row(r) for r in await self.db.transact(body)]

    async def fixed_ips_for_network(
        self, network_id: int, *, allocated_only: bool = False
    ) -> list[FixedIpRecord]:
        """The addresses of a network (only those held by instances, for DHCP hosts)."""
        stmt = _fixed_of_network_query(allocated_only)

        async def body(tx: Tx) -> list[Row]:
            return await tx.rows(stmt, {"nid": network_id})

        return [FixedIpRecord.from_row(r) for r in await self.db.transact(body)]

    # -- floating IPs -----------------------------------------------------------------

    async def create_floating_ips(
        self, *, pool: str, ip_range: str, now: float, interface: str | None = None
    ) -> int:
        """Add every host address of ``ip_range`` (a CIDR) to a pool, in one statement
        execution; how many. ``DuplicateError`` if any address exists already."""
        rows = [{"address": a, "fixed_ip_id": None, "project_id": None, "host": None,
                 "auto_assigned": False, "pool": pool, "interface": interface,
                 "created_at": now, "updated_at": now, "deleted": 0}
                for a in _addresses(ip_range, hosts_only=True)]

        async def body(tx: Tx) -> int:
            return await tx.run(_INSERT_FLOATING, rows)

        return await self.db.transact(body)

    async def allocate_floating_ip(
        self, project_id: str, *, pool: str, now: float, auto_assigned: bool = False
    ) -> FloatingIpRecord:
        """Give a project a free floating IP of a pool, atomically;
        ``NoMoreAddresses`` if the pool has none left."""
        async def body(tx: Tx) -> FloatingIpRecord:
            fid = await tx.scalar(_PICK_FLOATING, {"pool": pool})
            if fid is None:
                raise NoMoreAddresses(f"no floating IP left in pool {pool}")
            if not await tx.run(_CLAIM_FLOATING, {"flid": fid, "project_id": project_id,
                                                  "auto_assigned": auto_assigned,
                                                  "now": now}):
                raise ConflictError(f"floating IP {fid} was allocated concurrently")
            row = await tx.one(_FLOATING_BY_ID, {"id": fid})
            assert row is not None
            return FloatingIpRecord.from_row(row)

        return await self.db.transact(body, conflict_retries=ALLOCATION_RETRIES)

    async def associate_floating_ip(
        self, address: str, *, fixed_address: str, host: str | None, now: float
    ) -> FloatingIpRecord:
        """Point an allocated floating IP at an instance's fixed address.
        ``NotFound`` if either is missing or the floating IP is not allocated;
        ``InUse`` if it points at another fixed address already."""
        async def body(tx: Tx) -> FloatingIpRecord:
            fixed = await _fixed_by_address(tx, fixed_address)
            n = await tx.run(_ASSOCIATE_FLOATING, {"addr": address, "fid": fixed.id,
                                                   "host": host, "now": now})
            floating = await _floating(tx, address)
            if not n:
                if floating.project_id is None:
                    raise NotFound(f"floating IP {address} is not allocated")
                raise InUse(f"floating IP {address} is associated with "
                            f"{floating.fixed_address}")
            return floating

        return await self.db.transact(body)

    async def disassociate_floating_ip(self, address: str, now: float) -> str | None:
        """Stop a floating IP pointing at a fixed address; the address it pointed at."""
        async def body(tx: Tx) -> str | None:
            floating = await _floating(tx, address)
            await tx.run(_DISASSOCIATE_FLOATING, {"addr": address, "now": now})
            return floating.fixed_address

        return await self.db.transact(body)

    async def deallocate_floating_ip(self, address: str, now: float) -> None:
        """Return a floating IP to its pool; ``InUse`` while it is associated."""
        async def body(tx: Tx) -> None:
            if not await tx.run(_DEALLOCATE_FLOATING, {"addr": address, "now": now}):
                floating = await _floating(tx, address)
                raise InUse(f"floating IP {address} is associated with "
                            f"{floating.fixed_address}")

        await self.db.transact(body)

    async def get_floating_ip(self, address: str) -> FloatingIpRecord:
        """A live floating IP by address; ``NotFound`` otherwise."""
        async def body(tx: Tx) -> FloatingIpRecord:
            return await _floating(tx, address)

        return await self.db.transact(body)

    async def floating_ips_for_project(self, project_id: str) -> list[FloatingIpRecord]:
        """The floating IPs a project holds."""
        async def body(tx: Tx) -> list[Row]:
            return await tx.rows(_FLOATING_OF_PROJECT, {"project_id": project_id})

        return [FloatingIpRecord.from_row(r) for r in await self.db.transact(body)]

    async def floating_ips_for_instance(self, instance_uuid: str) -> list[FloatingIpRecord]:
        """The floating IPs pointing at an instance's fixed addresses."""
        async def body(tx: Tx) -> list[Row]:
            return await tx.rows(_FLOATING_OF_INSTANCE, {"uuid": instance_uuid})

        return [FloatingIpRecord.from_row(r) for r in await self.db.transact(body)]

    # -- virtual interfaces ---------------------------------------------------------

    async def create_virtual_interface(
        self, *, uuid: str, address: str, instance_uuid: str, network_id: int | None,
        now: float,
    ) -> VirtualInterfaceRecord:
        """Give an instance an interface with MAC ``address``; ``DuplicateError`` if
        that MAC is taken (draw another)."""
        async def body(tx: Tx) -> int:
            return int(await tx.scalar(_INSERT_VIF, {
                "uuid": uuid, "address": address, "instance_uuid": instance_uuid,
                "network_id": network_id, "created_at": now, "updated_at": now}))

        vid = await self.db.transact(body)
        return VirtualInterfaceRecord(vid, uuid, address, network_id, instance_uuid)

    async def virtual_interfaces_for_instance(
        self, instance_uuid: str
    ) -> list[VirtualInterfaceRecord]:
        """An instance's interfaces, in the order they were made."""
        async def body(tx: Tx) -> list[Row]:
            return await tx.rows(_VIFS_OF_INSTANCE, {"uuid": instance_uuid})

        return [VirtualInterfaceRecord.from_row(r) for r in await self.db.transact(body)]

    async def delete_virtual_interfaces_for_instance(self, instance_uuid: str) -> int:
        """Remove an instance's interfaces (their MACs may be reused); how many."""
        async def body(tx: Tx) -> int:
            await tx.run(_UNLINK_VIFS_OF_INSTANCE, {"uuid": instance_uuid})
            return await tx.run(_DELETE_VIFS_OF_INSTANCE, {"uuid": instance_uuid})

        return await self.db.transact(body)

    # -- security groups --------------------------------------------------------------

    async def create_security_group(
        self, *, project_id: str, name: str, now: float, description: str | None = None,
        user_id: str | None = None,
    ) -> SecurityGroupRecord:
        """Create a group; ``DuplicateError`` if the project has one of that name."""
        async def body(tx: Tx) -> SecurityGroupRecord:
            gid = await tx.scalar(_INSERT_GROUP, {
                "project_id": project_id, "user_id": user_id, "name": name,
                "description": description, "created_at": now, "updated_at": now,
                "deleted": 0})
            return await _group(tx, gid)

        return await self.db.transact(body)

    async def ensure_default_security_group(
        self, project_id: str, *, now: float, user_id: str | None = None
    ) -> SecurityGroupRecord:
        """The project's ``default`` group, created (with no rules) if missing."""
        async def body(tx: Tx) -> Row | None:
            return await tx.one(_GROUP_BY_NAME, {"project_id": project_id, "name": "default"})

        row = await self.db.transact(body)
        if row is not None:
            return SecurityGroupRecord.from_row(row)
        try:
            return await self.create_security_group(
                project_id=project_id, name="default", description="default", now=now,
                user_id=user_id)
        except DuplicateError:  # made concurrently
            return await self.security_group_by_name(project_id, "default")

    async def get_security_group(self, group_id: int) -> SecurityGroupRecord:
        """A live group by id; ``NotFound`` otherwise."""
        async def body(tx: Tx) -> SecurityGroupRecord:
            return await _group(tx, group_id)

        return await self.db.transact(body)

    async def security_group_by_name(self, project_id: str, name: str) -> SecurityGroupRecord:
        """A project's group by name; ``NotFound`` otherwise."""
        async def body(tx: Tx) -> Row | None:
            return await tx.one(_GROUP_BY_NAME, {"project_id": project_id, "name": name})

        row = await self.db.transact(body)
        if row is None:
            raise NotFound(f"security group {name!r} of project {project_id} not found")
        return SecurityGroupRecord.from_row(row)

    async def list_security_groups(
        self, *, project_id: str | None = None
    ) -> list[SecurityGroupRecord]:
        """Live groups, of one project or of all, by name."""
        stmt = _groups_query(project_id is not None)

        async def body(tx: Tx) -> list[Row]:
            return await tx.rows(stmt, {"project_id": project_id})

        return [SecurityGroupRecord.from_row(r) for r in await self.db.transact(body)]

    async def delete_security_group(self, group_id: int, now: float) -> None:
        """Delete a group and every rule of it or naming it as source. ``InUse`` for a
        project's ``default`` group or while an instance is in the group."""
        async def body(tx: Tx) -> None:
            group = await _group(tx, group_id)
            if group.name == "default":
                raise InUse("the default security group cannot be deleted")
            if await tx.scalar(_GROUP_USED, {"id": group_id}) is not None:
                raise InUse(f"security group {group_id} is in use by instances")
            await tx.run(_DELETE_RULES_OF_GROUP, {"id": group_id})
            await tx.run(_DELETE_GROUP, {"gid": group_id, "now": now})

        await self.db.transact(body)

    async def add_security_group_rule(
        self, *, parent_group_id: int, now: float, protocol: str | None = None,
        from_port: int | None = None, to_port: int | None = None, cidr: str | None = None,
        group_id: int | None = None,
    ) -> SecurityGroupRuleRecord:
        """Allow traffic into a group from ``cidr`` or from members of ``group_id``.
        ``NotFound`` if either group is missing; ``DuplicateError`` for a rule the
        group has already."""
        values = {"parent_group_id": parent_group_id, "protocol": protocol,
                  "from_port": from_port, "to_port": to_port, "cidr": cidr,
                  "group_id": group_id}

        async def body(tx: Tx) -> SecurityGroupRuleRecord:
            await _group(tx, parent_group_id)
            if group_id is not None:
                await _group(tx, group_id)
            if await tx.scalar(_SAME_RULE, values) is not None:
                raise DuplicateError(f"security group {parent_group_id} has this rule already")
            rid = await tx.scalar(_INSERT_RULE, {**values, "created_at": now,
                                                 "updated_at": now})
            return SecurityGroupRuleRecord(rid, parent_group_id, protocol, from_port, to_port,
                                           cidr, group_id)

        return await self.db.transact(body)

    async def get_security_group_rule(self, rule_id: int) -> SecurityGroupRuleRecord:
        """A rule by id; ``NotFound`` otherwise."""
        async def body(tx: Tx) -> Row | None:
            return await tx.one(_RULE_BY_ID, {"id": rule_id})

        row = await self.db.transact(body)
        if row is None:
            raise NotFound(f"security group rule {rule_id} not found")
        return SecurityGroupRuleRecord.from_row(row)

    async def remove_security_group_rule(self, rule_id: int) -> None:
        """Delete a rule; ``NotFound`` if missing."""
        async def body(tx: Tx) -> int:
            return await tx.run(_DELETE_RULE, {"id": rule_id})

        if not await self.db.transact(body):
            raise NotFound(f"security group rule {rule_id} not found")

    async def rules_for_group(self, group_id: int) -> list[SecurityGroupRuleRecord]:
        """A group's rules, oldest first."""
        async def body(tx: Tx) -> list[Row]:
            return await tx.rows(_RULES_OF_GROUP, {"id": group_id})

        return [SecurityGroupRuleRecord.from_row(r) for r in await self.db.transact(body)]

    async def add_instance_to_security_group(self, instance_uuid: str, group_id: int) -> None:
        """Put an instance in a group; ``NotFound`` if the group is missing,
        ``DuplicateError`` if the instance is in it already."""
        async def body(tx: Tx) -> None:
            await _group(tx, group_id)
            await tx.run(_INSERT_MEMBERSHIP, {"security_group_id": group_id,
                                              "instance_uuid": instance_uuid})

        await self.db.transact(body)

    async def remove_instance_from_security_group(
        self, instance_uuid: str, group_id: int
    ) -> None:
        """Take an instance out of a group; ``NotFound`` if it was not in it."""
        async def body(tx: Tx) -> int:
            return await tx.run(_DELETE_MEMBERSHIP, {"id": group_id, "uuid": instance_uuid})

        if not await self.db.transact(body):
            raise NotFound(f"instance {instance_uuid} is not in security group {group_id}")

    async def remove_instance_from_all_security_groups(self, instance_uuid: str) -> int:
        """Take a (deleted) instance out of every group; how many it was in."""
        async def body(tx: Tx) -> int:
            return await tx.run(_DELETE_MEMBERSHIPS_OF_INSTANCE, {"uuid": instance_uuid})

        return await self.db.transact(body)

    async def security_groups_for_instance(self, instance_uuid: str) -> list[SecurityGroupRecord]:
        """The groups an instance is in, by name."""
        async def body(tx: Tx) -> list[Row]:
            return await tx.rows(_GROUPS_OF_INSTANCE, {"uuid": instance_uuid})

        return [SecurityGroupRecord.from_row(r) for r in await self.db.transact(body)]

    async def instances_in_security_group(self, group_id: int) -> list[str]:
        """The uuids of the instances in a group (whose firewalls a rule change touches)."""
        async def body(tx: Tx) -> list[Row]:
            return await tx.rows(_INSTANCES_OF_GROUP, {"id": group_id})

        return [r[0] for r in await self.db.transact(body)]


async def _network(tx: Tx, network_id: int) -> NetworkRecord:
    row = await tx.one(_NETWORK_BY_ID, {"id": network_id})
    if row is None:
        raise NotFound(f"network {network_id} not found")
    return NetworkRecord.from_row(row)


async def _fixed_by_id(tx: Tx, fixed_id: int) -> FixedIpRecord:
    row = await tx.one(_FIXED_BY_ID, {"id": fixed_id})
    if row is None:
        raise NotFound(f"fixed IP {fixed_id} not found")
    return FixedIpRecord.from_row(row)


async def _fixed_by_address(tx: Tx, address: str) -> FixedIpRecord:
    row = await tx.one(_FIXED_BY_ADDRESS, {"address": address})
    if row is None:
        raise NotFound(f"fixed IP {address} not found")
    return FixedIpRecord.from_row(row)


async def _floating(tx: Tx, address: str) -> FloatingIpRecord:
    row = await tx.one(_FLOATING_BY_ADDRESS, {"address": address})
    if row is None:
        raise NotFound(f"floating IP {address} not found")
    return FloatingIpRecord.from_row(row)


async def _group(tx: Tx, group_id: int) -> SecurityGroupRecord:
    row = await tx.one(_GROUP_BY_ID, {"id": group_id})
    if row is None:
        raise NotFound(f"security group {group_id} not found")
    return SecurityGroupRecord.from_row(row)
