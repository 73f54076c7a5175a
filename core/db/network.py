"""Networks (nova-network style): networks, their fixed IPs, and instances' virtual
interfaces.

Every address of a network is a row of ``fixed_ips``, made in bulk when the
network is created (floating IPs likewise per pool, in
:mod:`nimbus.core.db.floating_ips`). Allocation picks a free row and claims it
with a conditional UPDATE (``... WHERE id = :id AND instance_uuid IS NULL``):
if another transaction claimed it first, zero rows change and the allocation
starts over in a fresh transaction, so two concurrent allocations never get the
same address on any engine. On PostgreSQL and MariaDB the pick is ``FOR UPDATE
SKIP LOCKED``, so concurrent allocations mostly pick different rows instead of
retrying.

The tables and records are in :mod:`nimbus.core.db.network_schema`; security
groups in :mod:`nimbus.core.db.security_groups`.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Select, bindparam, false, select

from nimbus.core.db.area import StoreArea, found
from nimbus.core.db.database import Tx
from nimbus.core.db.network_schema import (
    FIXED_COLUMNS,
    NETWORK_COLUMNS,
    VIF_COLUMNS,
    FixedIpRecord,
    NetworkRecord,
    VirtualInterfaceRecord,
    fixed_ips,
    floating_ips,
    networks,
    virtual_interfaces,
)
from nimbus.core.errors import ConflictError, InUse, NotFound

#: The most addresses one network or floating range may have (a /16).
MAX_ADDRESSES = 65536
#: Fresh transactions an allocation may start when another claimed its pick first.
ALLOCATION_RETRIES = 64


class NoMoreAddresses(NotFound):
    """No free address is left in the network or floating pool."""


_n = networks.c
_f = fixed_ips.c
_v = virtual_interfaces.c
_fl = floating_ips.c

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
_FIXED_OF_INSTANCES = (select(_f.instance_uuid, *FIXED_COLUMNS)
                       .where(_f.instance_uuid.in_(bindparam("uuids", expanding=True)),
                              _f.deleted == 0)
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
_FLOATING_ON_FIXED = select(_fl.address).where(_fl.fixed_ip_id == bindparam("fid"),
                                               _fl.deleted == 0).limit(1)
_SET_LEASED = (fixed_ips.update().where(_f.address == bindparam("addr"), _f.deleted == 0)
               .values(leased=bindparam("leased"), updated_at=bindparam("now")))

_INSERT_VIF = virtual_interfaces.insert().returning(_v.id)
_VIFS_OF_INSTANCE = (select(*VIF_COLUMNS).where(_v.instance_uuid == bindparam("uuid"))
                     .order_by(_v.id))
_VIFS_OF_INSTANCES = (select(_v.instance_uuid, *VIF_COLUMNS)
                      .where(_v.instance_uuid.in_(bindparam("uuids", expanding=True)))
                      .order_by(_v.id))
_UNLINK_VIFS_OF_INSTANCE = (
    fixed_ips.update()
    .where(_f.virtual_interface_id.in_(
        select(_v.id).where(_v.instance_uuid == bindparam("uuid")).scalar_subquery()))
    .values(virtual_interface_id=None))
_DELETE_VIFS_OF_INSTANCE = virtual_interfaces.delete().where(
    _v.instance_uuid == bindparam("uuid"))


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


def addresses(cidr: str, *, hosts_only: bool) -> list[str]:
    """Every address of ``cidr`` (only its host addresses with ``hosts_only``);
    ``ValueError`` beyond ``MAX_ADDRESSES``."""
    net = ipaddress.ip_network(cidr, strict=False)
    if net.num_addresses > MAX_ADDRESSES:
        raise ValueError(f"{cidr} has {net.num_addresses} addresses; at most {MAX_ADDRESSES}")
    return [str(a) for a in (net.hosts() if hosts_only else net)]


class NetworkStore(StoreArea):
    """Store methods for networks, their fixed IPs and virtual interfaces."""

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
        return await self.db.transact(lambda tx: _network(tx, network_id))

    async def get_network_by_uuid(self, uuid: str) -> NetworkRecord:
        """A live network by uuid (what the API names it by); ``NotFound`` otherwise."""
        row = await self._found(_NETWORK_BY_UUID, {"uuid": uuid}, f"network {uuid} not found")
        return NetworkRecord.from_row(row)

    async def list_networks(
        self, *, project_id: str | None = None, host: str | None = None
    ) -> list[NetworkRecord]:
        """Live networks, optionally of one project and/or served by one host."""
        stmt = _networks_query(project_id is not None, host is not None)
        rows = await self._rows(stmt, {"project_id": project_id, "host": host})
        return [NetworkRecord.from_row(r) for r in rows]

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
                    for a in addresses(block, hosts_only=False)]
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
                ip = await fixed_ip_by_address(tx, str(address))
                if ip.network_id != network_id:
                    raise NotFound(f"fixed IP {address} not found in network {network_id}")
                raise InUse(f"fixed IP {address} is "
                            + ("reserved" if ip.reserved else "already in use"))
            return await fixed_ip_by_address(tx, str(address))

        if address is not None:
            return await self.db.transact(requested)
        return await self.db.transact(pick, conflict_retries=ALLOCATION_RETRIES)

    async def release_fixed_ip(self, address: str, now: float) -> FixedIpRecord:
        """Take an address back from its instance; ``InUse`` while a floating IP is
        associated with it (disassociate that first). The address as it was."""
        async def body(tx: Tx) -> FixedIpRecord:
            ip = await fixed_ip_by_address(tx, address)
            floating = await tx.scalar(_FLOATING_ON_FIXED, {"fid": ip.id})
            if floating is not None:
                raise InUse(f"fixed IP {address} has floating IP {floating} associated")
            await tx.run(_RELEASE_FIXED, {"fid": ip.id, "now": now})
            return ip

        return await self.db.transact(body)

    async def set_fixed_ip_leased(self, address: str, leased: bool, now: float) -> None:
        """Record that DHCP leased (or released) an address."""
        if not await self._run(_SET_LEASED, {"addr": address, "leased": leased, "now": now}):
            raise NotFound(f"fixed IP {address} not found")

    async def get_fixed_ip_by_address(self, address: str) -> FixedIpRecord:
        """A live address (how the metadata service finds an instance by its IP)."""
        return await self.db.transact(lambda tx: fixed_ip_by_address(tx, address))

    async def fixed_ips_for_instance(self, instance_uuid: str) -> list[FixedIpRecord]:
        """The addresses an instance has, in the order it got them."""
        rows = await self._rows(_FIXED_OF_INSTANCE, {"uuid": instance_uuid})
        return [FixedIpRecord.from_row(r) for r in rows]

    async def fixed_ips_for_instances(
        self, instance_uuids: Sequence[str]
    ) -> dict[str, list[FixedIpRecord]]:
        """The addresses of each of these instances that has any (one query for a page)."""
        if not instance_uuids:
            return {}
        out: dict[str, list[FixedIpRecord]] = {}
        for r in await self._rows(_FIXED_OF_INSTANCES, {"uuids": list(instance_uuids)}):
            out.setdefault(r[0], []).append(FixedIpRecord.from_row(r[1:]))
        return out

    async def fixed_ips_for_network(
        self, network_id: int, *, allocated_only: bool = False
    ) -> list[FixedIpRecord]:
        """The addresses of a network (only those held by instances, for DHCP hosts)."""
        stmt = _fixed_of_network_query(allocated_only)
        return [FixedIpRecord.from_row(r) for r in await self._rows(stmt, {"nid": network_id})]

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
        rows = await self._rows(_VIFS_OF_INSTANCE, {"uuid": instance_uuid})
        return [VirtualInterfaceRecord.from_row(r) for r in rows]

    async def virtual_interfaces_for_instances(
        self, instance_uuids: Sequence[str]
    ) -> dict[str, list[VirtualInterfaceRecord]]:
        """The interfaces of each of these instances that has any (one query for a page)."""
        if not instance_uuids:
            return {}
        out: dict[str, list[VirtualInterfaceRecord]] = {}
        for r in await self._rows(_VIFS_OF_INSTANCES, {"uuids": list(instance_uuids)}):
            out.setdefault(r[0], []).append(VirtualInterfaceRecord.from_row(r[1:]))
        return out

    async def delete_virtual_interfaces_for_instance(self, instance_uuid: str) -> int:
        """Remove an instance's interfaces (their MACs may be reused); how many."""
        async def body(tx: Tx) -> int:
            await tx.run(_UNLINK_VIFS_OF_INSTANCE, {"uuid": instance_uuid})
            return await tx.run(_DELETE_VIFS_OF_INSTANCE, {"uuid": instance_uuid})

        return await self.db.transact(body)


async def _network(tx: Tx, network_id: int) -> NetworkRecord:
    row = await found(tx, _NETWORK_BY_ID, {"id": network_id}, f"network {network_id} not found")
    return NetworkRecord.from_row(row)


async def _fixed_by_id(tx: Tx, fixed_id: int) -> FixedIpRecord:
    row = await found(tx, _FIXED_BY_ID, {"id": fixed_id}, f"fixed IP {fixed_id} not found")
    return FixedIpRecord.from_row(row)


async def fixed_ip_by_address(tx: Tx, address: str) -> FixedIpRecord:
    """A live fixed IP by address; ``NotFound`` otherwise."""
    row = await found(tx, _FIXED_BY_ADDRESS, {"address": address}, f"fixed IP {address} not found")
    return FixedIpRecord.from_row(row)
