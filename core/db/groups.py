"""Server groups and their members.

A server group holds instances under one policy (affinity, anti-affinity and
their soft variants) and optional rules (``max_server_per_host``); adding
members respects the ``server_group_members`` quota in the same transaction.
Host aggregates, the other kind of grouping, are in ``aggregates``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
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
    UUID_LEN,
    dumps,
    id_column,
    loads,
    metadata,
    soft_delete_columns,
    time_columns,
    uuid_column,
)
from nimbus.core.errors import InvalidInput, NotFound, QuotaExceeded

instance_groups = Table(
    "instance_groups", metadata,
    id_column(),
    uuid_column(unique=True),
    Column("name", String(NAME_LEN), nullable=False),
    Column("project_id", String(NAME_LEN), nullable=False),
    Column("user_id", String(NAME_LEN), nullable=False),
    Column("policy", String(32), nullable=False),
    Column("rules", Text, nullable=True),
    *time_columns(),
    *soft_delete_columns(),
    # a project's groups (list, and the server_groups quota count)
    Index(None, "project_id", "deleted"),
)

instance_group_member = Table(
    "instance_group_member", metadata,
    id_column(),
    Column("group_id", Integer, ForeignKey("instance_groups.id"), nullable=False),
    Column("instance_uuid", String(UUID_LEN), nullable=False),
    Column("created_at", Double, nullable=True),
    UniqueConstraint("group_id", "instance_uuid"),
    Index(None, "instance_uuid"),
)

SERVER_GROUP_POLICIES = ("affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity")


@dataclass(frozen=True, slots=True)
class ServerGroupRecord:
    """One live server group with its members (instance uuids, in the order added)."""

    id: int
    uuid: str
    name: str
    project_id: str
    user_id: str
    policy: str
    rules: dict[str, Any]
    created_at: float | None
    updated_at: float | None
    members: tuple[str, ...]

    @classmethod
    def from_row(cls, r: Row, members: Iterable[str]) -> ServerGroupRecord:
        """Build from a row of ``GROUP_COLUMNS`` and the group's members."""
        return cls(r[0], r[1], r[2], r[3], r[4], r[5], loads(r[6], {}), r[7], r[8],
                   tuple(members))


GROUP_COLUMNS = [instance_groups.c[n] for n in (
    "id", "uuid", "name", "project_id", "user_id", "policy", "rules", "created_at",
    "updated_at")]


# -- statements, built once --------------------------------------------------------
_g = instance_groups.c
_m = instance_group_member.c
_INSERT_GROUP = instance_groups.insert()
_GROUP_BY_UUID = select(*GROUP_COLUMNS).where(_g.uuid == bindparam("uuid"), _g.deleted == 0)
# Locks the group row: concurrent add_members of one group take turns, so the
# server_group_members quota holds (SQLite, which has no FOR UPDATE, serializes writers).
_LOCK_GROUP = _GROUP_BY_UUID.with_for_update()
_GROUP_OF_INSTANCE = (select(*GROUP_COLUMNS)
                      .join_from(instance_groups, instance_group_member, _m.group_id == _g.id)
                      .where(_m.instance_uuid == bindparam("instance_uuid"), _g.deleted == 0)
                      .order_by(_g.id).limit(1))
_ALL_GROUPS = select(*GROUP_COLUMNS).where(_g.deleted == 0).order_by(_g.id)
_GROUPS_OF_PROJECT = (select(*GROUP_COLUMNS)
                      .where(_g.project_id == bindparam("project_id"), _g.deleted == 0)
                      .order_by(_g.id))
_DELETE_GROUP = (instance_groups.update()
                 .where(_g.id == bindparam("gid"), _g.deleted == 0)
                 .values(deleted=_g.id, deleted_at=bindparam("now")))
_MEMBERS_OF = (select(_m.group_id, _m.instance_uuid)
               .where(_m.group_id.in_(bindparam("gids", expanding=True)))
               .order_by(_m.id))
_INSERT_MEMBER = instance_group_member.insert()
_DELETE_MEMBER = instance_group_member.delete().where(
    _m.group_id == bindparam("gid"), _m.instance_uuid == bindparam("instance_uuid"))
_DELETE_MEMBERS_OF = instance_group_member.delete().where(_m.group_id == bindparam("gid"))
#: An instance's memberships in every group (soft_delete_instance runs it too).
DELETE_INSTANCE_MEMBERSHIPS = instance_group_member.delete().where(
    _m.instance_uuid == bindparam("instance_uuid"))


class GroupStore(StoreArea):
    """Store methods for server groups and their members."""

    async def create_server_group(
        self, *, uuid: str, name: str, project_id: str, user_id: str, policy: str, now: float,
        rules: Mapping[str, Any] | None = None,
    ) -> ServerGroupRecord:
        """Create an empty server group; ``InvalidInput`` (400) for an unknown policy."""
        if policy not in SERVER_GROUP_POLICIES:
            raise InvalidInput(f"invalid server group policy {policy!r}; valid: "
                               f"{', '.join(SERVER_GROUP_POLICIES)}")

        async def body(tx: Tx) -> ServerGroupRecord:
            await tx.run(_INSERT_GROUP, {
                "uuid": uuid, "name": name, "project_id": project_id, "user_id": user_id,
                "policy": policy, "rules": dumps(dict(rules or {})), "created_at": now,
                "updated_at": now, "deleted": 0})
            return await _group(tx, uuid)

        return await self.db.transact(body)

    async def get_server_group(self, uuid: str) -> ServerGroupRecord:
        """A live server group with its members; ``NotFound`` otherwise."""
        return await self.db.transact(lambda tx: _group(tx, uuid))

    async def list_server_groups(self, project_id: str | None = None) -> list[ServerGroupRecord]:
        """Live server groups of one project, or of all projects, oldest first."""
        async def body(tx: Tx) -> list[ServerGroupRecord]:
            if project_id is None:
                rows = await tx.rows(_ALL_GROUPS)
            else:
                rows = await tx.rows(_GROUPS_OF_PROJECT, {"project_id": project_id})
            return await _groups(tx, rows)

        return await self.db.transact(body)

    async def delete_server_group(self, uuid: str, now: float) -> None:
        """Soft-delete a server group; its memberships go with it."""
        async def body(tx: Tx) -> None:
            row = await tx.one(_GROUP_BY_UUID, {"uuid": uuid})
            if row is None:
                raise NotFound(f"server group {uuid} not found")
            await tx.run(_DELETE_GROUP, {"gid": row[0], "now": now})
            await tx.run(_DELETE_MEMBERS_OF, {"gid": row[0]})

        await self.db.transact(body)

    async def add_members(
        self, uuid: str, instance_uuids: Iterable[str], now: float
    ) -> ServerGroupRecord:
        """Add instances to a group (those already in it are skipped); the group after.

        ``QuotaExceeded`` if the group would hold more members than the
        ``server_group_members`` limit of its project and user.
        """
        # quotas imports this module's tables; import it here to keep the cycle out.
        from nimbus.core.db.quotas import quota_limits_tx

        wanted = list(dict.fromkeys(instance_uuids))

        async def body(tx: Tx) -> ServerGroupRecord:
            row = await tx.one(_LOCK_GROUP, {"uuid": uuid})
            if row is None:
                raise NotFound(f"server group {uuid} not found")
            have = [r[1] for r in await tx.rows(_MEMBERS_OF, {"gids": [row[0]]})]
            present = set(have)
            new = [u for u in wanted if u not in present]
            if new:
                limit = (await quota_limits_tx(tx, row[3], row[4]))["server_group_members"]
                if 0 <= limit < len(have) + len(new):
                    raise QuotaExceeded(["server_group_members"], len(new), len(have), limit)
                await tx.run(_INSERT_MEMBER, [
                    {"group_id": row[0], "instance_uuid": u, "created_at": now} for u in new])
            return ServerGroupRecord.from_row(row, have + new)

        return await self.db.transact(body)

    async def remove_member(self, uuid: str, instance_uuid: str) -> ServerGroupRecord:
        """Take an instance out of a group; ``NotFound`` if it is not a member."""
        async def body(tx: Tx) -> ServerGroupRecord:
            row = await tx.one(_GROUP_BY_UUID, {"uuid": uuid})
            if row is None:
                raise NotFound(f"server group {uuid} not found")
            if not await tx.run(_DELETE_MEMBER, {"gid": row[0], "instance_uuid": instance_uuid}):
                raise NotFound(f"instance {instance_uuid} is not a member of server group {uuid}")
            return (await _groups(tx, [row]))[0]

        return await self.db.transact(body)

    async def remove_instance_from_groups(self, instance_uuid: str) -> int:
        """Forget a (deleted) instance in every group it is in; how many memberships."""
        return await self._run(DELETE_INSTANCE_MEMBERSHIPS, {"instance_uuid": instance_uuid})

    async def group_for_instance(self, instance_uuid: str) -> ServerGroupRecord | None:
        """The live server group an instance is a member of, if any."""
        async def body(tx: Tx) -> ServerGroupRecord | None:
            row = await tx.one(_GROUP_OF_INSTANCE, {"instance_uuid": instance_uuid})
            return (await _groups(tx, [row]))[0] if row is not None else None

        return await self.db.transact(body)


async def _group(tx: Tx, uuid: str) -> ServerGroupRecord:
    row = await found(tx, _GROUP_BY_UUID, {"uuid": uuid}, f"server group {uuid} not found")
    return (await _groups(tx, [row]))[0]


async def _groups(tx: Tx, rows: list[Row]) -> list[ServerGroupRecord]:
    members: dict[int, list[str]] = {}
    if rows:
        for gid, instance_uuid in await tx.rows(_MEMBERS_OF, {"gids": [r[0] for r in rows]}):
            members.setdefault(gid, []).append(instance_uuid)
    return [ServerGroupRecord.from_row(r, members.get(r[0], ())) for r in rows]
