"""Quota limits, and usage counted from the real rows (as modern Nova counts it).

A limit resolves, most specific first: the user's override in the project
(``project_user_quotas``), the project's (``quotas``), the ``default`` quota
class (``quota_classes``), then Nova's built-in default. -1 means unlimited.

There are no usage or reservation tables: usage is counted when asked, from
``instances`` (instances, cores, ram: live rows not soft-deleted nor hidden,
by the instance Store's own :func:`~nimbus.core.db.instances.usage_query`),
``key_pairs`` (per user), ``instance_groups`` (server groups per project, and
per user within it) and ``instance_group_member`` (members per group). The
other resources (metadata items, injected files) limit one request's values,
so their usage is always 0.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    Column,
    Integer,
    ScalarSelect,
    Select,
    String,
    Table,
    UniqueConstraint,
    bindparam,
    func,
    literal_column,
    select,
    union_all,
)

from nimbus.core.db.area import StoreArea
from nimbus.core.db.database import Tx
from nimbus.core.db.flavors import key_pairs
from nimbus.core.db.groups import instance_group_member, instance_groups
from nimbus.core.db.instances import USAGE_RESOURCES, usage_query
from nimbus.core.db.meta import NAME_LEN, id_column, metadata, time_columns
from nimbus.core.errors import InvalidInput, QuotaExceeded

RESOURCE_LEN = 64

quotas = Table(
    "quotas", metadata,
    id_column(),
    Column("project_id", String(NAME_LEN), nullable=False),
    Column("resource", String(RESOURCE_LEN), nullable=False),
    Column("hard_limit", Integer, nullable=False),
    *time_columns(),
    UniqueConstraint("project_id", "resource"),
)

project_user_quotas = Table(
    "project_user_quotas", metadata,
    id_column(),
    Column("project_id", String(NAME_LEN), nullable=False),
    Column("user_id", String(NAME_LEN), nullable=False),
    Column("resource", String(RESOURCE_LEN), nullable=False),
    Column("hard_limit", Integer, nullable=False),
    *time_columns(),
    UniqueConstraint("project_id", "user_id", "resource"),
)

quota_classes = Table(
    "quota_classes", metadata,
    id_column(),
    Column("class_name", String(NAME_LEN), nullable=False),
    Column("resource", String(RESOURCE_LEN), nullable=False),
    Column("hard_limit", Integer, nullable=False),
    *time_columns(),
    UniqueConstraint("class_name", "resource"),
)

#: Nova's built-in defaults, under any ``default`` quota class rows.
QUOTA_DEFAULTS: dict[str, int] = {
    "instances": 10,
    "cores": 20,
    "ram": 51200,
    "metadata_items": 128,
    "key_pairs": 100,
    "server_groups": 10,
    "server_group_members": 10,
    "injected_files": 5,
    "injected_file_content_bytes": 10240,
    "injected_file_path_bytes": 255,
}
DEFAULT_CLASS = "default"
#: Counted per project, and per user within it.
PROJECT_COUNTED = (*USAGE_RESOURCES, "server_groups")
#: Counted per user only (keypairs belong to no project).
USER_COUNTED = ("key_pairs",)
#: Counted per server group.
GROUP_COUNTED = ("server_group_members",)

# -- statements, built once --------------------------------------------------------
_q, _u, _qc = quotas.c, project_user_quotas.c, quota_classes.c
# Every level of limits in one round trip: 0 class, 1 project, 2 user (none if user_id is NULL).
_LIMITS = union_all(
    select(literal_column("0").label("level"), _qc.resource, _qc.hard_limit)
    .where(_qc.class_name == bindparam("class_name")),
    select(literal_column("1"), _q.resource, _q.hard_limit)
    .where(_q.project_id == bindparam("project_id")),
    select(literal_column("2"), _u.resource, _u.hard_limit)
    .where(_u.project_id == bindparam("project_id"), _u.user_id == bindparam("user_id")),
)
_CLASS_LIMITS = select(_qc.resource, _qc.hard_limit).where(
    _qc.class_name == bindparam("class_name"))
_PROJECT_LIMITS = select(_q.resource, _q.hard_limit).where(
    _q.project_id == bindparam("project_id"))
_USER_LIMITS = select(_u.resource, _u.hard_limit).where(
    _u.project_id == bindparam("project_id"), _u.user_id == bindparam("user_id"))
_INSERT_CLASS = quota_classes.insert()
_UPDATE_CLASS = (quota_classes.update()
                 .where(_qc.class_name == bindparam("cname"), _qc.resource == bindparam("res"))
                 .values(hard_limit=bindparam("hard"), updated_at=bindparam("now")))
_INSERT_PROJECT = quotas.insert()
_UPDATE_PROJECT = (quotas.update()
                   .where(_q.project_id == bindparam("pid"), _q.resource == bindparam("res"))
                   .values(hard_limit=bindparam("hard"), updated_at=bindparam("now")))
_DELETE_PROJECT = quotas.delete().where(_q.project_id == bindparam("project_id"))
_INSERT_USER = project_user_quotas.insert()
_UPDATE_USER = (project_user_quotas.update()
                .where(_u.project_id == bindparam("pid"), _u.user_id == bindparam("uid"),
                       _u.resource == bindparam("res"))
                .values(hard_limit=bindparam("hard"), updated_at=bindparam("now")))
_DELETE_USERS_OF_PROJECT = project_user_quotas.delete().where(
    _u.project_id == bindparam("project_id"))
_DELETE_USER = project_user_quotas.delete().where(
    _u.project_id == bindparam("project_id"), _u.user_id == bindparam("user_id"))

_k, _g, _m = key_pairs.c, instance_groups.c, instance_group_member.c


def _counter(resource: str, by_user: bool) -> ScalarSelect[Any]:
    """A scalar subquery counting one resource of the project (or of the user in it)."""
    stmt: Select[Any]
    if resource in USAGE_RESOURCES:
        stmt = usage_query((resource,), by_user=by_user)
    elif resource == "server_groups":
        stmt = select(func.count()).select_from(instance_groups).where(
            _g.project_id == bindparam("project_id"), _g.deleted == 0)
        if by_user:
            stmt = stmt.where(_g.user_id == bindparam("user_id"))
    elif resource == "key_pairs":
        stmt = select(func.count()).select_from(key_pairs).where(
            _k.user_id == bindparam("user_id"), _k.deleted == 0)
    else:  # server_group_members
        stmt = (select(func.count())
                .select_from(instance_group_member)
                .join(instance_groups, _g.id == _m.group_id)
                .where(_g.uuid == bindparam("group_uuid"), _g.deleted == 0))
    return stmt.scalar_subquery()


@functools.cache
def _usage_query(
    resources: tuple[str, ...], by_user: bool
) -> tuple[Select[Any], tuple[tuple[str, str], ...]]:
    """One SELECT of scalar subqueries, and what each column counts: (scope, resource)."""
    cols: list[ScalarSelect[Any]] = []
    labels: list[tuple[str, str]] = []
    for r in resources:
        if r in PROJECT_COUNTED:
            cols.append(_counter(r, False))
            labels.append(("project", r))
            if by_user:
                cols.append(_counter(r, True))
                labels.append(("user", r))
        elif r in USER_COUNTED:
            cols.append(_counter(r, True))
            labels.append(("user", r))
        elif r in GROUP_COUNTED:
            cols.append(_counter(r, False))
            labels.append(("group", r))
    return select(*cols), tuple(labels)


async def quota_limits_tx(
    tx: Tx, project_id: str, user_id: str | None = None
) -> dict[str, int]:
    """Inside a transaction: the limits of a project, or of a user in it."""
    project, user = await _limits(tx, project_id, user_id)
    return user if user_id is not None else project


async def check_quota_tx(
    tx: Tx, project_id: str, user_id: str | None, deltas: Mapping[str, int], *,
    group_uuid: str | None = None,
) -> None:
    """Inside a transaction: ``QuotaExceeded`` if adding ``deltas`` would pass a limit.

    Counted resources are checked against the project's usage and limit and, given
    ``user_id``, the user's too; ``key_pairs`` needs ``user_id`` and
    ``server_group_members`` needs ``group_uuid``. For the other resources a delta
    is the request's own value (e.g. its number of metadata items). Zero and
    negative deltas never fail.
    """
    _check_resources(deltas)
    wanted = {r: d for r, d in deltas.items() if d > 0}
    if not wanted:
        return
    if "key_pairs" in wanted and user_id is None:
        raise ValueError("checking the key_pairs quota needs a user_id")
    if "server_group_members" in wanted and group_uuid is None:
        raise ValueError("checking the server_group_members quota needs a group_uuid")
    project_limits, user_limits = await _limits(tx, project_id, user_id)
    # an unlimited resource (-1 for the project and the user) needs no counting
    limited = tuple(sorted(r for r in wanted
                           if project_limits[r] >= 0 or user_limits[r] >= 0))
    usage = await _usage(tx, limited, project_id, user_id, group_uuid)
    overs: list[str] = []
    first: tuple[int, int, int] | None = None
    for resource in limited:
        delta = wanted[resource]
        for used, limit in _checks(resource, usage, project_limits, user_limits, user_id):
            if 0 <= limit < used + delta:
                overs.append(resource)
                first = first or (delta, used, limit)
                break
    if first is not None:
        raise QuotaExceeded(overs, *first)


def _checks(
    resource: str, usage: Mapping[tuple[str, str], int], project_limits: Mapping[str, int],
    user_limits: Mapping[str, int], user_id: str | None,
) -> list[tuple[int, int]]:
    """(used, limit) pairs that must each leave room for the delta."""
    if resource in PROJECT_COUNTED:
        pairs = [(usage["project", resource], project_limits[resource])]
        if user_id is not None:
            pairs.append((usage["user", resource], user_limits[resource]))
        return pairs
    limits = user_limits if user_id is not None else project_limits
    if resource in USER_COUNTED:
        return [(usage["user", resource], limits[resource])]
    if resource in GROUP_COUNTED:
        return [(usage["group", resource], limits[resource])]
    return [(0, limits[resource])]


async def _limits(
    tx: Tx, project_id: str, user_id: str | None
) -> tuple[dict[str, int], dict[str, int]]:
    """(project limits, user limits); the user's are the project's if user_id is None."""
    project = dict(QUOTA_DEFAULTS)
    user: dict[str, int] = {}
    rows = await tx.rows(_LIMITS, {"class_name": DEFAULT_CLASS, "project_id": project_id,
                                   "user_id": user_id})
    for level, resource, hard_limit in sorted(rows, key=lambda r: int(r[0])):
        if resource not in QUOTA_DEFAULTS:
            continue
        if int(level) < 2:
            project[resource] = int(hard_limit)
        else:
            user[resource] = int(hard_limit)
    return project, {**project, **user}


async def _usage(
    tx: Tx, resources: tuple[str, ...], project_id: str, user_id: str | None,
    group_uuid: str | None,
) -> dict[tuple[str, str], int]:
    stmt, labels = _usage_query(resources, user_id is not None)
    if not labels:
        return {}
    row = await tx.one(stmt, {"project_id": project_id, "user_id": user_id,
                              "group_uuid": group_uuid})
    assert row is not None
    return {label: int(v or 0) for label, v in zip(labels, row, strict=True)}


def _check_resources(limits: Mapping[str, int]) -> None:
    unknown = sorted(set(limits) - set(QUOTA_DEFAULTS))
    if unknown:
        raise InvalidInput(f"unknown quota resource(s) {', '.join(unknown)}; valid: "
                           f"{', '.join(QUOTA_DEFAULTS)}")


def _check_limits(limits: Mapping[str, int]) -> None:
    _check_resources(limits)
    bad = sorted(r for r, v in limits.items() if v < -1)
    if bad:
        raise InvalidInput(f"quota limit must be -1 (unlimited) or more: {', '.join(bad)}")


async def _upsert(
    tx: Tx, have: set[str], limits: Mapping[str, int], now: float, update: Any, insert: Any,
    keys: Mapping[str, str], where: Mapping[str, str],
) -> None:
    """Update the resources that have a row, insert the others (one statement each).

    ``keys`` are the row's key columns, ``where`` the same values by the UPDATE's names.
    """
    await tx.run(update, [{**where, "res": r, "hard": v, "now": now}
                          for r, v in limits.items() if r in have])
    await tx.run(insert, [{**keys, "resource": r, "hard_limit": v, "created_at": now,
                           "updated_at": now} for r, v in limits.items() if r not in have])


class QuotaStore(StoreArea):
    """Store methods for quota limits and usage."""

    async def get_quota_limits(
        self, project_id: str, user_id: str | None = None
    ) -> dict[str, int]:
        """Every resource's limit for a project, or for a user in it (-1: unlimited)."""
        return await self.db.transact(lambda tx: quota_limits_tx(tx, project_id, user_id))

    async def set_project_quotas(
        self, project_id: str, limits: Mapping[str, int], now: float
    ) -> dict[str, int]:
        """Set some of a project's limits; all its limits after. ``InvalidInput`` if bad."""
        _check_limits(limits)

        async def body(tx: Tx) -> dict[str, int]:
            have = {r[0] for r in await tx.rows(_PROJECT_LIMITS, {"project_id": project_id})}
            await _upsert(tx, have, limits, now, _UPDATE_PROJECT, _INSERT_PROJECT,
                          {"project_id": project_id}, {"pid": project_id})
            return await quota_limits_tx(tx, project_id)

        return await self.db.transact(body)

    async def set_user_quotas(
        self, project_id: str, user_id: str, limits: Mapping[str, int], now: float
    ) -> dict[str, int]:
        """Set some of a user's limits within a project; all the user's limits after."""
        _check_limits(limits)

        async def body(tx: Tx) -> dict[str, int]:
            have = {r[0] for r in await tx.rows(
                _USER_LIMITS, {"project_id": project_id, "user_id": user_id})}
            await _upsert(tx, have, limits, now, _UPDATE_USER, _INSERT_USER,
                          {"project_id": project_id, "user_id": user_id},
                          {"pid": project_id, "uid": user_id})
            return await quota_limits_tx(tx, project_id, user_id)

        return await self.db.transact(body)

    async def delete_project_quotas(self, project_id: str) -> None:
        """Revert a project (and every user override in it) to the default limits."""
        async def body(tx: Tx) -> None:
            await tx.run(_DELETE_PROJECT, {"project_id": project_id})
            await tx.run(_DELETE_USERS_OF_PROJECT, {"project_id": project_id})

        await self.db.transact(body)

    async def delete_user_quotas(self, project_id: str, user_id: str) -> None:
        """Revert a user within a project to the project's limits."""
        async def body(tx: Tx) -> None:
            await tx.run(_DELETE_USER, {"project_id": project_id, "user_id": user_id})

        await self.db.transact(body)

    async def get_quota_class(self, class_name: str = DEFAULT_CLASS) -> dict[str, int]:
        """A quota class's limits, the built-in defaults under them."""
        async def body(tx: Tx) -> dict[str, int]:
            rows = await tx.rows(_CLASS_LIMITS, {"class_name": class_name})
            return {**QUOTA_DEFAULTS,
                    **{r: int(v) for r, v in rows if r in QUOTA_DEFAULTS}}

        return await self.db.transact(body)

    async def set_quota_class(
        self, class_name: str, limits: Mapping[str, int], now: float
    ) -> dict[str, int]:
        """Set some limits of a quota class (``default`` is every project's default)."""
        _check_limits(limits)

        async def body(tx: Tx) -> None:
            have = {r[0] for r in await tx.rows(_CLASS_LIMITS, {"class_name": class_name})}
            await _upsert(tx, have, limits, now, _UPDATE_CLASS, _INSERT_CLASS,
                          {"class_name": class_name}, {"cname": class_name})

        await self.db.transact(body)
        return await self.get_quota_class(class_name)

    async def count_usage(self, project_id: str, user_id: str | None = None) -> dict[str, int]:
        """What a project (or a user in it) uses now, counted from the rows.

        instances, cores, ram and server_groups of the project, or of the user
        within it; key_pairs of the user (0 without one).
        """
        resources = (*PROJECT_COUNTED, *USER_COUNTED)
        usage = await self.db.transact(lambda tx: _usage(tx, resources, project_id, user_id, None))
        scope = "user" if user_id is not None else "project"
        out = {r: usage[scope, r] for r in PROJECT_COUNTED}
        out["key_pairs"] = usage.get(("user", "key_pairs"), 0) if user_id is not None else 0
        return out

    async def check_quota(
        self, project_id: str, user_id: str | None, deltas: Mapping[str, int], *,
        group_uuid: str | None = None,
    ) -> None:
        """``QuotaExceeded`` (403) if adding ``deltas`` would pass a limit; see
        :func:`check_quota_tx`, which does the same inside a caller's transaction."""
        async def body(tx: Tx) -> None:
            await check_quota_tx(tx, project_id, user_id, deltas, group_uuid=group_uuid)

        await self.db.transact(body)
