"""Instance actions and their events: what was asked of an instance, and how it went.

One action per API request that changes an instance (create, reboot, resize,
delete, ...), keyed by the instance and the request id; each step a service
takes for it (``compute_reboot_instance``, ``conductor_migrate_server``, ...) is
an event with its own start, finish and result. An event that finishes with
result ``Error`` marks its action's message ``Error``, as Nova does; this is the
``os-instance-actions`` API. Actions outlive the instance (they are shown for
deleted servers) and go only when the instance is purged.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
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
    bindparam,
    column,
    func,
    select,
    table,
)

from nimbus.core.db.area import StoreArea, found
from nimbus.core.db.database import Row, Tx
from nimbus.core.db.meta import NAME_LEN, UUID_LEN, id_column, metadata, time_columns
from nimbus.core.errors import NotFound

instance_actions = Table(
    "instance_actions", metadata,
    id_column(),
    Column("action", String(NAME_LEN), nullable=False),
    Column("instance_uuid", String(UUID_LEN), ForeignKey("instances.uuid"), nullable=False),
    Column("request_id", String(NAME_LEN), nullable=False),
    Column("user_id", String(NAME_LEN), nullable=True),
    Column("project_id", String(NAME_LEN), nullable=True),
    Column("start_time", Double, nullable=False),
    Column("finish_time", Double, nullable=True),
    Column("message", String(NAME_LEN), nullable=True),
    *time_columns(),
    Index(None, "instance_uuid", "request_id"),
    Index(None, "instance_uuid", "updated_at"),
)

instance_action_events = Table(
    "instance_actions_events", metadata,
    id_column(),
    Column("action_id", Integer, ForeignKey("instance_actions.id"), nullable=False),
    Column("event", String(NAME_LEN), nullable=False),
    Column("start_time", Double, nullable=False),
    Column("finish_time", Double, nullable=True),
    Column("result", String(NAME_LEN), nullable=True),
    Column("traceback", Text, nullable=True),
    Column("host", String(NAME_LEN), nullable=True),
    Column("details", Text, nullable=True),
    *time_columns(),
    Index(None, "action_id", "event"),
)

#: What an event's result is when it failed; its action's message becomes this too.
ERROR = "Error"
SUCCESS = "Success"


@dataclass(frozen=True, slots=True)
class InstanceActionRecord:
    """One row of ``instance_actions``."""

    id: int
    action: str
    instance_uuid: str
    request_id: str
    user_id: str | None
    project_id: str | None
    start_time: float
    finish_time: float | None
    message: str | None
    created_at: float | None
    updated_at: float | None

    @classmethod
    def from_row(cls, r: Row) -> InstanceActionRecord:
        """Build from a row of ``ACTION_COLUMNS``."""
        return cls(*r)


@dataclass(frozen=True, slots=True)
class ActionEventRecord:
    """One row of ``instance_actions_events``."""

    id: int
    action_id: int
    event: str
    start_time: float
    finish_time: float | None
    result: str | None
    traceback: str | None
    host: str | None
    details: str | None
    created_at: float | None
    updated_at: float | None

    @classmethod
    def from_row(cls, r: Row) -> ActionEventRecord:
        """Build from a row of ``EVENT_COLUMNS``."""
        return cls(*r)


ACTION_NAMES = ("id", "action", "instance_uuid", "request_id", "user_id", "project_id",
                "start_time", "finish_time", "message", "created_at", "updated_at")
ACTION_COLUMNS = [instance_actions.c[n] for n in ACTION_NAMES]
EVENT_NAMES = ("id", "action_id", "event", "start_time", "finish_time", "result", "traceback",
               "host", "details", "created_at", "updated_at")
EVENT_COLUMNS = [instance_action_events.c[n] for n in EVENT_NAMES]

# The instances table, as far as this module needs it (instances.py imports this one).
_instances = table("instances", column("id", Integer), column("uuid", String(UUID_LEN)))

# -- statements, built once --------------------------------------------------------
_a = instance_actions.c
_e = instance_action_events.c
_INSTANCE_KNOWN = select(_instances.c.id).where(_instances.c.uuid == bindparam("uuid"))
_INSERT_ACTION = instance_actions.insert().returning(_a.id)
_ACTION_BY_REQUEST = (select(*ACTION_COLUMNS)
                      .where(_a.instance_uuid == bindparam("uuid"),
                             _a.request_id == bindparam("request_id"))
                      .order_by(_a.id.desc()).limit(1))
_FINISH_ACTION = (instance_actions.update()
                  .where(_a.id == bindparam("aid"))
                  .values(finish_time=bindparam("now"), updated_at=bindparam("now"),
                          message=func.coalesce(bindparam("msg", type_=String), _a.message)))
_TOUCH_ACTION = (instance_actions.update()
                 .where(_a.id == bindparam("aid"))
                 .values(updated_at=bindparam("now")))
_FAIL_ACTION = (instance_actions.update()
                .where(_a.id == bindparam("aid"))
                .values(message=ERROR, updated_at=bindparam("now")))
_INSERT_EVENT = instance_action_events.insert().returning(_e.id)
_FINISH_EVENT = (instance_action_events.update()
                 .where(_e.id == bindparam("eid"))
                 .values(finish_time=bindparam("now"), updated_at=bindparam("now"),
                         result=bindparam("res"), traceback=bindparam("tb"),
                         details=func.coalesce(bindparam("det", type_=Text), _e.details)))
#: The latest step named ``event`` of the request's (latest) action, in one statement.
_EVENT_OF_REQUEST = (
    select(*EVENT_COLUMNS)
    .where(_e.action_id == _ACTION_BY_REQUEST.with_only_columns(_a.id).scalar_subquery(),
           _e.event == bindparam("event"))
    .order_by(_e.id.desc()).limit(1))
_EVENTS_OF_ACTION = select(*EVENT_COLUMNS).where(_e.action_id == bindparam("aid")).order_by(_e.id)


@functools.cache
def _actions_query(since: bool, before: bool, marker: bool, limit: bool) -> Select[Any]:
    # Newest first; ids grow with time, so "after the marker" is simply a smaller id.
    stmt = select(*ACTION_COLUMNS).where(_a.instance_uuid == bindparam("uuid"))
    if since:
        stmt = stmt.where(_a.updated_at >= bindparam("since", type_=Double))
    if before:
        stmt = stmt.where(_a.updated_at <= bindparam("before", type_=Double))
    if marker:
        stmt = stmt.where(_a.id < bindparam("marker_id", type_=Integer))
    stmt = stmt.order_by(_a.id.desc())
    if limit:
        stmt = stmt.limit(bindparam("limit", type_=Integer))
    return stmt


async def insert_action(
    tx: Tx, *, instance_uuid: str, action: str, request_id: str, user_id: str | None,
    project_id: str | None, now: float, message: str | None = None,
) -> InstanceActionRecord:
    """Record that ``action`` started (inside a caller's transaction)."""
    values: dict[str, Any] = {
        "action": action, "instance_uuid": instance_uuid, "request_id": request_id,
        "user_id": user_id, "project_id": project_id, "start_time": now, "finish_time": None,
        "message": message, "created_at": now, "updated_at": now,
    }
    values["id"] = await tx.scalar(_INSERT_ACTION, values)
    return InstanceActionRecord.from_row([values[n] for n in ACTION_NAMES])


class InstanceActionStore(StoreArea):
    """Store methods for instance actions and their events."""

    async def start_action(
        self, instance_uuid: str, *, action: str, request_id: str, user_id: str | None,
        project_id: str | None, now: float, message: str | None = None,
    ) -> InstanceActionRecord:
        """Record that ``action`` was asked of an instance (deleted or not) by a request."""
        async def body(tx: Tx) -> InstanceActionRecord:
            await _require_instance(tx, instance_uuid)
            return await insert_action(
                tx, instance_uuid=instance_uuid, action=action, request_id=request_id,
                user_id=user_id, project_id=project_id, now=now, message=message)

        return await self.db.transact(body)

    async def finish_action(
        self, instance_uuid: str, request_id: str, *, now: float, message: str | None = None
    ) -> InstanceActionRecord:
        """Mark the request's action finished (and set its message, if given)."""
        async def body(tx: Tx) -> InstanceActionRecord:
            found = await _action(tx, instance_uuid, request_id)
            await tx.run(_FINISH_ACTION, {"aid": found.id, "now": now, "msg": message})
            return await _action(tx, instance_uuid, request_id)

        return await self.db.transact(body)

    async def start_event(
        self, instance_uuid: str, request_id: str, event: str, *, now: float,
        host: str | None = None, details: str | None = None,
    ) -> ActionEventRecord:
        """Record that a step of the request's action started; ``NotFound`` without an action."""
        async def body(tx: Tx) -> ActionEventRecord:
            found = await _action(tx, instance_uuid, request_id)
            values: dict[str, Any] = {
                "action_id": found.id, "event": event, "start_time": now, "finish_time": None,
                "result": None, "traceback": None, "host": host, "details": details,
                "created_at": now, "updated_at": now,
            }
            values["id"] = await tx.scalar(_INSERT_EVENT, values)
            await tx.run(_TOUCH_ACTION, {"aid": found.id, "now": now})
            return ActionEventRecord.from_row([values[n] for n in EVENT_NAMES])

        return await self.db.transact(body)

    async def finish_event(
        self, instance_uuid: str, request_id: str, event: str, *, now: float,
        result: str = SUCCESS, traceback: str | None = None, details: str | None = None,
    ) -> ActionEventRecord:
        """Record how the latest step named ``event`` ended; ``Error`` marks the action too."""
        async def body(tx: Tx) -> ActionEventRecord:
            row = await tx.one(_EVENT_OF_REQUEST, {"uuid": instance_uuid,
                                                   "request_id": request_id, "event": event})
            if row is None:
                await _action(tx, instance_uuid, request_id)  # NotFound naming the action
                raise NotFound(f"event {event} of request {request_id} on instance "
                               f"{instance_uuid} not found")
            started = ActionEventRecord.from_row(row)
            await tx.run(_FINISH_EVENT, {"eid": started.id, "now": now, "res": result,
                                         "tb": traceback, "det": details})
            failed = result.lower() == ERROR.lower()
            await tx.run(_FAIL_ACTION if failed else _TOUCH_ACTION,
                         {"aid": started.action_id, "now": now})
            return replace(started, finish_time=now, result=result, traceback=traceback,
                           details=started.details if details is None else details,
                           updated_at=now)

        return await self.db.transact(body)

    async def list_actions(
        self, instance_uuid: str, *, changes_since: float | None = None,
        changes_before: float | None = None, marker: str | None = None,
        limit: int | None = None,
    ) -> list[InstanceActionRecord]:
        """An instance's actions, newest first; ``marker`` is a request id (``NotFound`` if
        unknown), ``changes_since``/``changes_before`` bound ``updated_at`` inclusively."""
        stmt = _actions_query(changes_since is not None, changes_before is not None,
                              marker is not None, limit is not None)
        params: dict[str, Any] = {"uuid": instance_uuid, "since": changes_since,
                                  "before": changes_before, "limit": limit}

        async def body(tx: Tx) -> list[Row]:
            await _require_instance(tx, instance_uuid)
            if marker is not None:
                params["marker_id"] = (await _action(tx, instance_uuid, marker)).id
            return await tx.rows(stmt, params)

        return [InstanceActionRecord.from_row(r) for r in await self.db.transact(body)]

    async def get_action(
        self, instance_uuid: str, request_id: str
    ) -> tuple[InstanceActionRecord, list[ActionEventRecord]]:
        """The request's action on an instance and its events (oldest first)."""
        async def body(tx: Tx) -> tuple[InstanceActionRecord, list[ActionEventRecord]]:
            found = await _action(tx, instance_uuid, request_id)
            rows = await tx.rows(_EVENTS_OF_ACTION, {"aid": found.id})
            return found, [ActionEventRecord.from_row(r) for r in rows]

        return await self.db.transact(body)


async def _require_instance(tx: Tx, uuid: str) -> None:
    if await tx.scalar(_INSTANCE_KNOWN, {"uuid": uuid}) is None:
        raise NotFound(f"instance {uuid} not found")


async def _action(tx: Tx, instance_uuid: str, request_id: str) -> InstanceActionRecord:
    row = await found(tx, _ACTION_BY_REQUEST, {"uuid": instance_uuid, "request_id": request_id},
                      f"action for request {request_id} on instance {instance_uuid} not found")
    return InstanceActionRecord.from_row(row)
