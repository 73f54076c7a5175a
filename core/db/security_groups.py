"""Security groups (nova-network style): a project's groups, their ingress rules,
and which instances are in them.

A rule lets traffic in from a CIDR or from the members of another group; the
network service compiles the rules of an instance's groups to iptables rules.
Groups are soft-deleted (so their names may be reused); rules and memberships
are deleted for good.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
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
    or_,
    select,
)

from nimbus.core.db.area import StoreArea, found
from nimbus.core.db.database import Row, Tx
from nimbus.core.db.meta import (
    NAME_LEN,
    UUID_LEN,
    id_column,
    metadata,
    soft_delete_columns,
    time_columns,
)
from nimbus.core.db.network_schema import CIDR_LEN
from nimbus.core.errors import DuplicateError, InUse, NotFound

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
_GROUPS_OF_INSTANCES = (select(_sa.instance_uuid, *GROUP_COLUMNS)
                        .join(security_group_instance_association,
                              _sa.security_group_id == _g.id)
                        .where(_sa.instance_uuid.in_(bindparam("uuids", expanding=True)),
                               _g.deleted == 0)
                        .order_by(_g.name, _g.id))
_INSTANCES_OF_GROUP = (select(_sa.instance_uuid).where(_sa.security_group_id == bindparam("id"))
                       .order_by(_sa.instance_uuid))


@functools.cache
def _groups_query(by_project: bool) -> Select[Any]:
    stmt = select(*GROUP_COLUMNS).where(_g.deleted == 0)
    if by_project:
        stmt = stmt.where(_g.project_id == bindparam("project_id"))
    return stmt.order_by(_g.project_id, _g.name, _g.id)


class SecurityGroupStore(StoreArea):
    """Store methods for security groups, their rules and their instances."""

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
        row = await self._one(_GROUP_BY_NAME, {"project_id": project_id, "name": "default"})
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
        return await self.db.transact(lambda tx: _group(tx, group_id))

    async def security_group_by_name(self, project_id: str, name: str) -> SecurityGroupRecord:
        """A project's group by name; ``NotFound`` otherwise."""
        row = await self._found(_GROUP_BY_NAME, {"project_id": project_id, "name": name},
                                f"security group {name!r} of project {project_id} not found")
        return SecurityGroupRecord.from_row(row)

    async def list_security_groups(
        self, *, project_id: str | None = None
    ) -> list[SecurityGroupRecord]:
        """Live groups, of one project or of all, by name."""
        stmt = _groups_query(project_id is not None)
        rows = await self._rows(stmt, {"project_id": project_id})
        return [SecurityGroupRecord.from_row(r) for r in rows]

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

    # -- rules ----------------------------------------------------------------------

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
        row = await self._found(_RULE_BY_ID, {"id": rule_id},
                                f"security group rule {rule_id} not found")
        return SecurityGroupRuleRecord.from_row(row)

    async def remove_security_group_rule(self, rule_id: int) -> None:
        """Delete a rule; ``NotFound`` if missing."""
        if not await self._run(_DELETE_RULE, {"id": rule_id}):
            raise NotFound(f"security group rule {rule_id} not found")

    async def rules_for_group(self, group_id: int) -> list[SecurityGroupRuleRecord]:
        """A group's rules, oldest first."""
        rows = await self._rows(_RULES_OF_GROUP, {"id": group_id})
        return [SecurityGroupRuleRecord.from_row(r) for r in rows]

    # -- members --------------------------------------------------------------------

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
        if not await self._run(_DELETE_MEMBERSHIP, {"id": group_id, "uuid": instance_uuid}):
            raise NotFound(f"instance {instance_uuid} is not in security group {group_id}")

    async def remove_instance_from_all_security_groups(self, instance_uuid: str) -> int:
        """Take a (deleted) instance out of every group; how many it was in."""
        return await self._run(_DELETE_MEMBERSHIPS_OF_INSTANCE, {"uuid": instance_uuid})

    async def security_groups_for_instance(self, instance_uuid: str) -> list[SecurityGroupRecord]:
        """The groups an instance is in, by name."""
        rows = await self._rows(_GROUPS_OF_INSTANCE, {"uuid": instance_uuid})
        return [SecurityGroupRecord.from_row(r) for r in rows]

    async def security_groups_for_instances(
        self, instance_uuids: Sequence[str]
    ) -> dict[str, list[SecurityGroupRecord]]:
        """The groups of each of these instances that is in any (one query for a page)."""
        if not instance_uuids:
            return {}
        out: dict[str, list[SecurityGroupRecord]] = {}
        for r in await self._rows(_GROUPS_OF_INSTANCES, {"uuids": list(instance_uuids)}):
            out.setdefault(r[0], []).append(SecurityGroupRecord.from_row(r[1:]))
        return out

    async def instances_in_security_group(self, group_id: int) -> list[str]:
        """The uuids of the instances in a group (whose firewalls a rule change touches)."""
        return [r[0] for r in await self._rows(_INSTANCES_OF_GROUP, {"id": group_id})]


async def _group(tx: Tx, group_id: int) -> SecurityGroupRecord:
    row = await found(tx, _GROUP_BY_ID, {"id": group_id}, f"security group {group_id} not found")
    return SecurityGroupRecord.from_row(row)
