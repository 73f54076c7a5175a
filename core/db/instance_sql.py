"""The statements the instance Store builds for each shape of call, each built once
and cached: updates and soft deletes guarded on the states a caller expects, and
listings by filters, sort and marker.

A guard on states is a shape (how many states, and whether "no state" is one of
them) in the statement's cache key, and parameters ``<prefix>_0``, ... at
execution, so that a statement is built per shape, not per call.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Double,
    Integer,
    Select,
    String,
    Update,
    bindparam,
    case,
    false,
    func,
    or_,
    select,
)

from nimbus.core.db import paging
from nimbus.core.db.instance_schema import DELETED, INSTANCE_COLUMNS, instances

_i = instances.c


@functools.cache
def by_host_query(by_node: bool) -> Select[Any]:
    """The live instances on ``host`` (and ``node``), oldest first."""
    stmt = select(*INSTANCE_COLUMNS).where(_i.host == bindparam("host"), _i.deleted == 0)
    if by_node:
        stmt = stmt.where(_i.node == bindparam("node"))
    return stmt.order_by(_i.id)


#: How many live instances ``host`` has, and how many of them are busy (a task in
#: ``busy`` under way, or building): what a compute host reports of its load.
HOST_COUNTS = select(
    func.count(),
    func.coalesce(func.sum(case(
        (or_(_i.task_state.in_(bindparam("busy", expanding=True)), _i.vm_state == "building"),
         1), else_=0)), 0),
).where(_i.host == bindparam("host"), _i.deleted == 0)


#: (uuid, host, vm_state, task_state) of every live instance that has a host.
PLACED = (select(_i.uuid, _i.host, _i.vm_state, _i.task_state)
          .where(_i.deleted == 0, _i.host.is_not(None)).order_by(_i.id))


#: (uuid, vm_state, task_state, deleted, created_at, launched_at) of every instance,
#: live or deleted, changed at or after ``since``, in the order of their last change: a
#: watcher's look, without records. (Ordered by ``id`` alone, SQLite would rather scan
#: the whole table in rowid order than range over the updated_at index.)
CHANGED_STATES = (select(_i.uuid, _i.vm_state, _i.task_state, _i.deleted != 0,
                         _i.created_at, _i.launched_at)
                  .where(_i.updated_at >= bindparam("since", type_=Double))
                  .order_by(_i.updated_at, _i.id))


#: A state guard's shape: how many non-NULL states, and whether NULL is one of them.
Shape = tuple[int, bool]


def state_shape(states: Sequence[str | None] | None) -> Shape | None:
    """The shape of a guard on ``states`` (None: no guard), part of a cache key."""
    if states is None:
        return None
    return sum(s is not None for s in states), None in states


def state_params(prefix: str, states: Sequence[str | None] | None) -> dict[str, Any]:
    """The parameters of a guard on ``states`` built with ``prefix``."""
    return {f"{prefix}_{i}": s
            for i, s in enumerate(s for s in states or () if s is not None)}


def _in_states(col: ColumnElement[Any], prefix: str, shape: Shape) -> ColumnElement[bool]:
    count, with_null = shape
    options: list[ColumnElement[bool]] = []
    if count:
        options.append(col.in_([bindparam(f"{prefix}_{i}", type_=String) for i in range(count)]))
    if with_null:
        options.append(col.is_(None))
    return or_(*options) if options else false()


@functools.lru_cache(maxsize=512)
def update_stmt(names: tuple[str, ...], versioned: bool, task: Shape | None,
                vm: Shape | None) -> Update:
    """Set ``v_<name>`` for each of ``names`` on live instance ``iuuid``, bumping its
    version; guarded on version ``ev`` and on the task / vm states ``ets_*`` / ``evs_*``."""
    stmt = instances.update().where(_i.uuid == bindparam("iuuid"), _i.deleted == 0)
    if versioned:
        stmt = stmt.where(_i.version == bindparam("ev", type_=Integer))
    if task is not None:
        stmt = stmt.where(_in_states(_i.task_state, "ets", task))
    if vm is not None:
        stmt = stmt.where(_in_states(_i.vm_state, "evs", vm))
    values: dict[str, Any] = {n: bindparam(f"v_{n}") for n in names}
    values.update(version=_i.version + 1, updated_at=bindparam("now"))
    return stmt.values(values)


@functools.lru_cache(maxsize=64)
def soft_delete_stmt(task: Shape | None) -> Update:
    """Soft-delete live instance ``iuuid`` at ``now``, guarded on task states ``ets_*``."""
    now = bindparam("now", type_=Double)
    stmt = instances.update().where(_i.uuid == bindparam("iuuid"), _i.deleted == 0)
    if task is not None:
        stmt = stmt.where(_in_states(_i.task_state, "ets", task))
    return stmt.values(deleted=_i.id, deleted_at=now, updated_at=now, vm_state=DELETED,
                       task_state=None, terminated_at=func.coalesce(_i.terminated_at, now),
                       version=_i.version + 1)


@functools.lru_cache(maxsize=128)
def marker_query(sort: paging.Sort) -> Select[Any]:
    """The sort values of marker instance ``marker``, for the next page."""
    # The marker may itself be deleted (as in Nova): it only says where the page starts.
    return select(*(_i[n] for n, _ in sort)).where(_i.uuid == bindparam("marker"))


@functools.lru_cache(maxsize=1024)
def list_query(eq: tuple[str, ...], vm: Shape | None, task: Shape | None, name: bool,
               since: bool, before: bool, deleted: bool | None, sort: paging.Sort,
               marker_nulls: tuple[bool, ...] | None, limit: bool) -> Select[Any]:
    """A listing of instances with these filters, sort and page (see ``list_instances``)."""
    stmt = select(*INSTANCE_COLUMNS)
    for col in eq:
        stmt = stmt.where(_i[col] == bindparam(col))
    if vm is not None:
        stmt = stmt.where(_in_states(_i.vm_state, "vms", vm))
    if task is not None:
        stmt = stmt.where(_in_states(_i.task_state, "tss", task))
    if name:
        stmt = stmt.where(func.lower(_i.display_name).like(
            bindparam("name_like", type_=String), escape="/"))
    if since:
        stmt = stmt.where(_i.updated_at >= bindparam("since", type_=Double))
    if before:
        stmt = stmt.where(_i.updated_at <= bindparam("before", type_=Double))
    if deleted is not None:
        stmt = stmt.where(_i.deleted != 0 if deleted else _i.deleted == 0)
    if marker_nulls is not None:
        stmt = stmt.where(paging.after_marker(instances, sort, marker_nulls))
    stmt = stmt.order_by(*paging.order_by(instances, sort))
    if limit:
        stmt = stmt.limit(bindparam("limit", type_=Integer))
    return stmt


def like_pattern(text: str) -> str:
    """A case-insensitive LIKE pattern (escape ``/``) for a substring."""
    escaped = text.lower().replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"%{escaped}%"
