"""Floating IPs (nova-network style): pools of public addresses that a project
allocates and points at an instance's fixed IP.

Every address of a pool is a row of ``floating_ips``, made in bulk. Allocation
claims a free row with a conditional UPDATE and starts over in a fresh
transaction if another claimed it first, as for fixed IPs (see
:mod:`nimbus.core.db.network`). The table and record are in
:mod:`nimbus.core.db.network_schema`.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, or_, select

from nimbus.core.db.area import StoreArea, found
from nimbus.core.db.database import Tx
from nimbus.core.db.network import (
    ALLOCATION_RETRIES,
    NoMoreAddresses,
    addresses,
    fixed_ip_by_address,
)
from nimbus.core.db.network_schema import (
    FLOATING_COLUMNS,
    FloatingIpRecord,
    fixed_ips,
    floating_ips,
)
from nimbus.core.errors import ConflictError, InUse, NotFound

_fl = floating_ips.c
_f = fixed_ips.c

# -- statements, built once --------------------------------------------------------
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
_FLOATING_OF_INSTANCES = (select(_f.instance_uuid, *FLOATING_COLUMNS).select_from(_FLOATING_FROM)
                          .where(_f.instance_uuid.in_(bindparam("uuids", expanding=True)),
                                 _fl.deleted == 0)
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


class FloatingIpStore(StoreArea):
    """Store methods for floating IPs."""

    async def create_floating_ips(
        self, *, pool: str, ip_range: str, now: float, interface: str | None = None
    ) -> int:
        """Add every host address of ``ip_range`` (a CIDR) to a pool, in one statement
        execution; how many. ``DuplicateError`` if any address exists already."""
        rows = [{"address": a, "fixed_ip_id": None, "project_id": None, "host": None,
                 "auto_assigned": False, "pool": pool, "interface": interface,
                 "created_at": now, "updated_at": now, "deleted": 0}
                for a in addresses(ip_range, hosts_only=True)]
        return await self._run(_INSERT_FLOATING, rows)

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
            fixed = await fixed_ip_by_address(tx, fixed_address)
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
        return await self.db.transact(lambda tx: _floating(tx, address))

    async def floating_ips_for_project(self, project_id: str) -> list[FloatingIpRecord]:
        """The floating IPs a project holds."""
        rows = await self._rows(_FLOATING_OF_PROJECT, {"project_id": project_id})
        return [FloatingIpRecord.from_row(r) for r in rows]

    async def floating_ips_for_instance(self, instance_uuid: str) -> list[FloatingIpRecord]:
        """The floating IPs pointing at an instance's fixed addresses."""
        rows = await self._rows(_FLOATING_OF_INSTANCE, {"uuid": instance_uuid})
        return [FloatingIpRecord.from_row(r) for r in rows]

    async def floating_ips_for_instances(
        self, instance_uuids: Sequence[str]
    ) -> dict[str, list[FloatingIpRecord]]:
        """The floating IPs of each of these instances that has any (one query for a page)."""
        if not instance_uuids:
            return {}
        out: dict[str, list[FloatingIpRecord]] = {}
        for r in await self._rows(_FLOATING_OF_INSTANCES, {"uuids": list(instance_uuids)}):
            out.setdefault(r[0], []).append(FloatingIpRecord.from_row(r[1:]))
        return out


async def _floating(tx: Tx, address: str) -> FloatingIpRecord:
    row = await found(tx, _FLOATING_BY_ADDRESS, {"address": address},
                      f"floating IP {address} not found")
    return FloatingIpRecord.from_row(row)
