"""Instances: the servers users boot, with their root disk and their faults.

An instance row holds what Nova spreads over ``instances`` and
``instance_extra``: the flavor snapshot (whole, as JSON, plus ``vcpus``,
``memory_mb``, ``root_gb`` and ``ephemeral_gb`` as columns for quota counting
and scheduling), user and system metadata as JSON, and the state machine
(``vm_state``, ``task_state``, ``power_state``).

Writers race (the API, the conductor, computes, periodic tasks), so every
update bumps ``version`` and may be made conditional: on the version a caller
read (compare-and-swap), and/or on the task and vm states it expects, as
Nova's ``instance.save(expected_task_state=...)`` does. A guard that fails is
one conditional UPDATE that changes nothing, then a ``ConflictError`` naming
what the row actually holds.

Deleting is soft (``deleted`` = the row id, ``vm_state`` ``deleted``), so the
API can still show a deleted server and its actions; purging removes deleted
instances and everything hanging off them for good.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import (
    Column,
    ColumnElement,
    Double,
    Index,
    Integer,
    Select,
    String,
    Table,
    Text,
    Update,
    and_,
    bindparam,
    false,
    func,
    or_,
    select,
)
from sqlalchemy.dialects.mysql import MEDIUMTEXT

from nimbus.core.db import paging
from nimbus.core.db.actions import insert_action, instance_action_events, instance_actions
from nimbus.core.db.block_devices import (
    INSERT_BDM,
    BlockDeviceSpec,
    bdm_values,
    block_device_mappings,
)
from nimbus.core.db.database import Database, Row, Tx
from nimbus.core.db.faults import instance_faults
from nimbus.core.db.instance_migrations import migrations
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
from nimbus.core.errors import ConflictError, NotFound

#: Up to 16 MiB on MariaDB, where TEXT stops at 64 KiB (user data may be larger).
LONG_TEXT = Text().with_variant(MEDIUMTEXT(), "mysql", "mariadb")

BUILDING, DELETED, SOFT_DELETED = "building", "deleted", "soft-delete"
SCHEDULING = "scheduling"

instances = Table(
    "instances", metadata,
    id_column(),
    uuid_column(unique=True),
    Column("project_id", String(NAME_LEN), nullable=False),
    Column("user_id", String(NAME_LEN), nullable=False),
    Column("display_name", String(NAME_LEN), nullable=True),
    Column("display_description", String(NAME_LEN), nullable=True),
    Column("hostname", String(NAME_LEN), nullable=True),
    Column("flavor_id", String(NAME_LEN), nullable=False),
    Column("vcpus", Integer, nullable=False),
    Column("memory_mb", Integer, nullable=False),
    Column("root_gb", Integer, nullable=False),
    Column("ephemeral_gb", Integer, nullable=False),
    Column("flavor", Text, nullable=False),
    Column("old_flavor", Text, nullable=True),
    Column("new_flavor", Text, nullable=True),
    Column("image_ref", String(NAME_LEN), nullable=True),
    Column("kernel_id", String(NAME_LEN), nullable=True),
    Column("ramdisk_id", String(NAME_LEN), nullable=True),
    Column("root_device_name", String(NAME_LEN), nullable=True),
    Column("key_name", String(NAME_LEN), nullable=True),
    Column("key_data", Text, nullable=True),
    Column("user_data", LONG_TEXT, nullable=True),
    Column("metadata", Text, nullable=False),
    Column("system_metadata", Text, nullable=False),
    Column("vm_state", String(NAME_LEN), nullable=False),
    Column("task_state", String(NAME_LEN), nullable=True),
    Column("power_state", Integer, nullable=False),
    Column("host", String(NAME_LEN), nullable=True),
    Column("node", String(NAME_LEN), nullable=True),
    Column("launched_on", String(NAME_LEN), nullable=True),
    Column("availability_zone", String(NAME_LEN), nullable=True),
    Column("launched_at", Double, nullable=True),
    Column("terminated_at", Double, nullable=True),
    Column("scheduled_at", Double, nullable=True),
    flag("locked"),
    Column("locked_by", String(16), nullable=True),
    flag("config_drive"),
    flag("auto_disk_config"),
    Column("access_ip_v4", String(39), nullable=True),
    Column("access_ip_v6", String(39), nullable=True),
    Column("progress", Integer, nullable=False),
    Column("reservation_id", String(NAME_LEN), nullable=True),
    Column("launch_index", Integer, nullable=False),
    flag("hidden"),
    flag("cleaned"),
    Column("version", Integer, nullable=False),
    *time_columns(),
    *soft_delete_columns(),
    Index(None, "project_id", "user_id", "deleted"),
    Index(None, "host", "node", "deleted"),
    Index(None, "deleted", "created_at"),
    Index(None, "deleted", "updated_at"),
    Index(None, "deleted", "deleted_at"),
    Index(None, "task_state", "updated_at"),
    Index(None, "reservation_id"),
)


class UnexpectedStateError(ConflictError):
    """An instance's task or vm state is not one the caller expected
    (Nova's ``UnexpectedTaskStateError``); ``field``, ``actual``, ``expected`` say how."""

    def __init__(self, uuid: str, field: str, actual: str | None,
                 expected: Sequence[str | None]) -> None:
        super().__init__(f"instance {uuid}: {field} is {actual!r}, expected "
                         f"{' or '.join(map(repr, expected)) or 'nothing'}")
        self.field = field
        self.actual = actual
        self.expected = tuple(expected)


class StaleVersionError(ConflictError):
    """An instance changed since the caller read it; re-read and retry."""


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    """One row of ``instances``."""

    id: int
    uuid: str
    project_id: str
    user_id: str
    display_name: str | None
    display_description: str | None
    hostname: str | None
    flavor_id: str
    vcpus: int
    memory_mb: int
    root_gb: int
    ephemeral_gb: int
    flavor: dict[str, Any]
    old_flavor: dict[str, Any] | None
    new_flavor: dict[str, Any] | None
    image_ref: str | None
    kernel_id: str | None
    ramdisk_id: str | None
    root_device_name: str | None
    key_name: str | None
    key_data: str | None
    user_data: str | None
    metadata: dict[str, Any]
    system_metadata: dict[str, Any]
    vm_state: str
    task_state: str | None
    power_state: int
    host: str | None
    node: str | None
    launched_on: str | None
    availability_zone: str | None
    launched_at: float | None
    terminated_at: float | None
    scheduled_at: float | None
    locked: bool
    locked_by: str | None
    config_drive: bool
    auto_disk_config: bool
    access_ip_v4: str | None
    access_ip_v6: str | None
    progress: int
    reservation_id: str | None
    launch_index: int
    hidden: bool
    cleaned: bool
    version: int
    created_at: float | None
    updated_at: float | None
    deleted_at: float | None
    deleted: bool

    @classmethod
    def from_row(cls, r: Row) -> InstanceRecord:
        """Build from a row of ``INSTANCE_COLUMNS``."""
        v = list(r)
        for i in _JSON_AT:
            v[i] = loads(v[i], {})
        for i in _OPTIONAL_JSON_AT:
            v[i] = loads(v[i])
        for i in _BOOL_AT:
            v[i] = bool(v[i])
        return cls(*v)

    @property
    def name(self) -> str:
        """The hypervisor's name for it (Nova's default ``instance-%08x``)."""
        return f"instance-{self.id:08x}"


INSTANCE_NAMES = tuple(InstanceRecord.__dataclass_fields__)
INSTANCE_COLUMNS = [instances.c[n] for n in INSTANCE_NAMES]
_JSON_AT = tuple(INSTANCE_NAMES.index(n) for n in ("flavor", "metadata", "system_metadata"))
_OPTIONAL_JSON_AT = tuple(INSTANCE_NAMES.index(n) for n in ("old_flavor", "new_flavor"))
_BOOL_AT = tuple(INSTANCE_NAMES.index(n) for n in (
    "locked", "config_drive", "auto_disk_config", "hidden", "cleaned", "deleted"))
_JSON_FIELDS = frozenset({"metadata", "system_metadata", "flavor", "old_flavor", "new_flavor"})

#: What ``update_instance`` may change (``flavor`` also sets its numeric columns).
MUTABLE = frozenset(INSTANCE_NAMES) - {
    "id", "uuid", "version", "created_at", "updated_at", "deleted_at", "deleted"}
#: What ``list_instances`` may sort by.
SORT_KEYS = frozenset({
    "access_ip_v4", "access_ip_v6", "auto_disk_config", "availability_zone", "config_drive",
    "created_at", "display_description", "display_name", "ephemeral_gb", "flavor_id", "host",
    "hostname", "id", "image_ref", "kernel_id", "key_name", "launch_index", "launched_at",
    "locked", "locked_by", "memory_mb", "node", "power_state", "progress", "project_id",
    "ramdisk_id", "reservation_id", "root_device_name", "root_gb", "task_state",
    "terminated_at", "updated_at", "user_id", "uuid", "vcpus", "vm_state"})
#: Equality filters of ``list_instances``, in cache-key order.
_EQ_FILTERS = ("project_id", "user_id", "host", "node", "image_ref", "flavor_id",
               "availability_zone", "reservation_id", "key_name", "locked")


class InstanceUsage(NamedTuple):
    """What live instances use, for quota checks."""

    instances: int
    cores: int
    ram: int


@dataclass(frozen=True, slots=True)
class NewInstance:
    """What the API knows of an instance when it asks for one."""

    uuid: str
    project_id: str
    user_id: str
    #: The flavor as booted: at least ``flavorid``, ``vcpus``, ``memory_mb``, ``root_gb``.
    flavor: Mapping[str, Any]
    image_ref: str | None = None
    display_name: str | None = None
    display_description: str | None = None
    hostname: str | None = None
    key_name: str | None = None
    key_data: str | None = None
    user_data: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    system_metadata: Mapping[str, Any] = field(default_factory=dict)
    availability_zone: str | None = None
    reservation_id: str | None = None
    launch_index: int = 0
    config_drive: bool = False
    auto_disk_config: bool = False
    access_ip_v4: str | None = None
    access_ip_v6: str | None = None
    kernel_id: str | None = None
    ramdisk_id: str | None = None
    root_device_name: str | None = None
    vm_state: str = BUILDING
    task_state: str | None = SCHEDULING
    power_state: int = 0
    hidden: bool = False


def flavor_columns(flavor: Mapping[str, Any]) -> dict[str, Any]:
    """The columns a flavor snapshot sets; ``ValueError`` if it lacks a number we count."""
    try:
        return {"flavor": dumps(dict(flavor)), "flavor_id": str(flavor["flavorid"]),
                "vcpus": int(flavor["vcpus"]), "memory_mb": int(flavor["memory_mb"]),
                "root_gb": int(flavor["root_gb"]),
                "ephemeral_gb": int(flavor.get("ephemeral_gb") or 0)}
    except KeyError as exc:
        raise ValueError(f"flavor snapshot lacks {exc.args[0]!r}") from None


# -- statements, built once --------------------------------------------------------
_i = instances.c
_b = block_device_mappings.c
_f = instance_faults.c
_m = migrations.c
_INSERT = instances.insert().returning(_i.id)
_BY_UUID = select(*INSTANCE_COLUMNS).where(_i.uuid == bindparam("uuid"), _i.deleted == 0)
_BY_UUID_ANY = select(*INSTANCE_COLUMNS).where(_i.uuid == bindparam("uuid"))
_STATE = select(_i.version, _i.task_state, _i.vm_state).where(
    _i.uuid == bindparam("uuid"), _i.deleted == 0)
_SET_METADATA = (instances.update()
                 .where(_i.uuid == bindparam("iuuid"), _i.deleted == 0,
                        _i.version == bindparam("ev"))
                 .values(metadata=bindparam("md"), version=_i.version + 1,
                         updated_at=bindparam("now")))
_DELETE_BDMS = (block_device_mappings.update()
                .where(_b.instance_uuid == bindparam("iuuid"), _b.deleted == 0)
                .values(deleted=_b.id, deleted_at=bindparam("now"), updated_at=bindparam("now")))
_DELETE_MIGRATIONS = (migrations.update()
                      .where(_m.instance_uuid == bindparam("iuuid"), _m.deleted == 0)
                      .values(deleted=_m.id, deleted_at=bindparam("now")))

_usage = (select(func.count(_i.id), func.coalesce(func.sum(_i.vcpus), 0),
                 func.coalesce(func.sum(_i.memory_mb), 0))
          .where(_i.project_id == bindparam("project_id"), _i.deleted == 0,
                 _i.vm_state != SOFT_DELETED, _i.hidden.is_(False)))
_USAGE_PROJECT = _usage
_USAGE_USER = _usage.where(_i.user_id == bindparam("user_id"))


@functools.cache
def _by_host_query(by_node: bool) -> Select[Any]:
    stmt = select(*INSTANCE_COLUMNS).where(_i.host == bindparam("host"), _i.deleted == 0)
    if by_node:
        stmt = stmt.where(_i.node == bindparam("node"))
    return stmt.order_by(_i.id)


#: A state guard's shape: how many non-NULL states, and whether NULL is one of them.
Shape = tuple[int, bool]


def _shape(states: Sequence[str | None] | None) -> Shape | None:
    if states is None:
        return None
    return sum(s is not None for s in states), None in states


def _state_params(prefix: str, states: Sequence[str | None] | None) -> dict[str, Any]:
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
def _update_stmt(names: tuple[str, ...], versioned: bool, task: Shape | None,
                 vm: Shape | None) -> Update:
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
def _soft_delete_stmt(task: Shape | None) -> Update:
    now = bindparam("now", type_=Double)
    stmt = instances.update().where(_i.uuid == bindparam("iuuid"), _i.deleted == 0)
    if task is not None:
        stmt = stmt.where(_in_states(_i.task_state, "ets", task))
    return stmt.values(deleted=_i.id, deleted_at=now, updated_at=now, vm_state=DELETED,
                       task_state=None, terminated_at=func.coalesce(_i.terminated_at, now),
                       version=_i.version + 1)


@functools.lru_cache(maxsize=128)
def _marker_query(sort: paging.Sort) -> Select[Any]:
    # The marker may itself be deleted (as in Nova): it only says where the page starts.
    return select(*(_i[n] for n, _ in sort)).where(_i.uuid == bindparam("marker"))


@functools.lru_cache(maxsize=1024)
def _list_query(eq: tuple[str, ...], vm: Shape | None, task: Shape | None, name: bool,
                since: bool, before: bool, deleted: bool | None, sort: paging.Sort,
                marker_nulls: tuple[bool, ...] | None, limit: bool) -> Select[Any]:
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


def _like_pattern(text: str) -> str:
    escaped = text.lower().replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"%{escaped}%"


# Purging: everything hanging off instances deleted before a time, children first.
_before = bindparam("before", type_=Double)
_doomed = select(_i.uuid).where(_i.deleted != 0, _i.deleted_at < _before)
_a = instance_actions.c
_PURGE_DEPENDENTS = (
    instance_action_events.delete().where(instance_action_events.c.action_id.in_(
        select(_a.id).where(_a.instance_uuid.in_(_doomed)))),
    instance_actions.delete().where(_a.instance_uuid.in_(_doomed)),
    instance_faults.delete().where(_f.instance_uuid.in_(_doomed)),
    block_device_mappings.delete().where(or_(
        _b.instance_uuid.in_(_doomed), and_(_b.deleted != 0, _b.deleted_at < _before))),
    migrations.delete().where(_m.instance_uuid.in_(_doomed)),
)
_PURGE_INSTANCES = instances.delete().where(_i.deleted != 0, _i.deleted_at < _before)


class InstanceStore:
    """Store methods for instances."""

    db: Database

    async def create_instance(
        self, spec: NewInstance, *, now: float, request_id: str,
        block_devices: Sequence[BlockDeviceSpec] = (), action: str = "create",
        action_user_id: str | None = None, action_project_id: str | None = None,
    ) -> InstanceRecord:
        """Create an instance with its disks and its ``create`` action, all or nothing.

        ``DuplicateError`` if the uuid (or a disk's uuid) is taken. The action is
        recorded for ``request_id`` as asked by the instance's owner unless
        ``action_user_id``/``action_project_id`` say who asked.
        """
        values: dict[str, Any] = {
            "uuid": spec.uuid, "project_id": spec.project_id, "user_id": spec.user_id,
            "display_name": spec.display_name, "display_description": spec.display_description,
            "hostname": spec.hostname, **flavor_columns(spec.flavor), "old_flavor": None,
            "new_flavor": None, "image_ref": spec.image_ref, "kernel_id": spec.kernel_id,
            "ramdisk_id": spec.ramdisk_id, "root_device_name": spec.root_device_name,
            "key_name": spec.key_name, "key_data": spec.key_data, "user_data": spec.user_data,
            "metadata": dumps(dict(spec.metadata)),
            "system_metadata": dumps(dict(spec.system_metadata)),
            "vm_state": spec.vm_state, "task_state": spec.task_state,
            "power_state": spec.power_state, "host": None, "node": None, "launched_on": None,
            "availability_zone": spec.availability_zone, "launched_at": None,
            "terminated_at": None, "scheduled_at": None, "locked": False, "locked_by": None,
            "config_drive": spec.config_drive, "auto_disk_config": spec.auto_disk_config,
            "access_ip_v4": spec.access_ip_v4, "access_ip_v6": spec.access_ip_v6,
            "progress": 0, "reservation_id": spec.reservation_id,
            "launch_index": spec.launch_index, "hidden": spec.hidden, "cleaned": False,
            "version": 1, "created_at": now, "updated_at": now, "deleted_at": None,
            "deleted": 0,
        }
        disks = [bdm_values(spec.uuid, d, now) for d in block_devices]

        async def body(tx: Tx) -> InstanceRecord:
            values["id"] = await tx.scalar(_INSERT, values)
            await tx.run(INSERT_BDM, disks)
            await insert_action(
                tx, instance_uuid=spec.uuid, action=action, request_id=request_id,
                user_id=action_user_id or spec.user_id,
                project_id=action_project_id or spec.project_id, now=now)
            return InstanceRecord.from_row([values[n] for n in INSTANCE_NAMES])

        return await self.db.transact(body)

    async def get_instance(self, uuid: str, *, read_deleted: bool = False) -> InstanceRecord:
        """An instance by uuid (soft-deleted ones too with ``read_deleted``)."""
        stmt = _BY_UUID_ANY if read_deleted else _BY_UUID

        async def body(tx: Tx) -> Row | None:
            return await tx.one(stmt, {"uuid": uuid})

        row = await self.db.transact(body)
        if row is None:
            raise NotFound(f"instance {uuid} not found")
        return InstanceRecord.from_row(row)

    async def instances_by_host(self, host: str, node: str | None = None) -> list[InstanceRecord]:
        """The live instances on ``host`` (and hypervisor ``node``), oldest first."""
        stmt = _by_host_query(node is not None)

        async def body(tx: Tx) -> list[Row]:
            return await tx.rows(stmt, {"host": host, "node": node})

        return [InstanceRecord.from_row(r) for r in await self.db.transact(body)]

    async def list_instances(
        self, *, project_id: str | None = None, user_id: str | None = None,
        host: str | None = None, node: str | None = None, image_ref: str | None = None,
        flavor_id: str | None = None, availability_zone: str | None = None,
        reservation_id: str | None = None, key_name: str | None = None,
        locked: bool | None = None, vm_states: Sequence[str] | None = None,
        task_states: Sequence[str | None] | None = None, name: str | None = None,
        changes_since: float | None = None, changes_before: float | None = None,
        deleted: bool | None = False, sort: Sequence[tuple[str, str]] = (("created_at", "desc"),),
        marker: str | None = None, limit: int | None = None,
    ) -> list[InstanceRecord]:
        """Instances as the servers API lists them.

        Filters are ANDed: equality on the named columns; ``vm_states`` and
        ``task_states`` (``None`` in it meaning no task) any of; ``name`` a
        case-insensitive substring of the display name; ``changes_since`` /
        ``changes_before`` bound ``updated_at`` inclusively; ``deleted`` False for
        live instances, True for soft-deleted ones, None for both. ``sort`` is
        ``(key, "asc"|"desc")`` pairs from ``SORT_KEYS`` (``ValueError`` otherwise),
        NULL sorting first; ``marker`` is the uuid of the last instance of the
        previous page (``NotFound`` if there is none), ``limit`` the page size.
        """
        order = paging.normalize_sort(sort, SORT_KEYS)
        eq_values = {"project_id": project_id, "user_id": user_id, "host": host, "node": node,
                     "image_ref": image_ref, "flavor_id": flavor_id,
                     "availability_zone": availability_zone, "reservation_id": reservation_id,
                     "key_name": key_name, "locked": locked}
        eq = tuple(n for n in _EQ_FILTERS if eq_values[n] is not None)
        params: dict[str, Any] = {n: eq_values[n] for n in eq}
        params.update(_state_params("vms", vm_states), **_state_params("tss", task_states))
        params.update(since=changes_since, before=changes_before, limit=limit,
                      name_like=_like_pattern(name) if name is not None else None)
        shape = (eq, _shape(vm_states), _shape(task_states), name is not None,
                 changes_since is not None, changes_before is not None, deleted, order)

        async def body(tx: Tx) -> list[Row]:
            nulls = None
            if marker is not None:
                mark = await tx.one(_marker_query(order), {"marker": marker})
                if mark is None:
                    raise NotFound(f"marker instance {marker} not found")
                nulls = paging.marker_nulls(mark)
                params.update(paging.marker_params(mark))
            return await tx.rows(_list_query(*shape, nulls, limit is not None), params)

        return [InstanceRecord.from_row(r) for r in await self.db.transact(body)]

    async def update_instance(
        self, uuid: str, /, *, now: float, expected_version: int | None = None,
        expected_task_states: Sequence[str | None] | None = None,
        expected_vm_states: Sequence[str] | None = None, **changes: Any,
    ) -> InstanceRecord:
        """Change a live instance's fields (names in ``MUTABLE``) and return it as it is now.

        Conditional, all in one UPDATE: on ``expected_version`` (else
        ``StaleVersionError``) and on the task and vm states being among the
        expected ones (``[None]`` meaning no task; else ``UnexpectedStateError``
        naming the actual state). Both are ``ConflictError``. Setting ``flavor``
        also sets the flavor's numeric columns.
        """
        bad = set(changes) - MUTABLE
        if bad:
            raise ValueError(f"cannot update instance field(s) {', '.join(sorted(bad))}")
        values = dict(changes)
        if "flavor" in values:
            values.update(flavor_columns(values["flavor"]))
        for key in _JSON_FIELDS.intersection(values):
            if values[key] is not None or key in ("metadata", "system_metadata"):
                values[key] = dumps(values[key] or {})
        names = tuple(sorted(values))
        stmt = _update_stmt(names, expected_version is not None, _shape(expected_task_states),
                            _shape(expected_vm_states))
        params: dict[str, Any] = {f"v_{n}": values[n] for n in names}
        params.update(iuuid=uuid, now=now, ev=expected_version,
                      **_state_params("ets", expected_task_states),
                      **_state_params("evs", expected_vm_states))

        async def body(tx: Tx) -> InstanceRecord:
            if not await tx.run(stmt, params):
                await _explain_conflict(tx, uuid, expected_version, expected_task_states,
                                        expected_vm_states)
            return await _instance(tx, uuid)

        return await self.db.transact(body)

    async def update_instance_metadata(
        self, uuid: str, *, now: float, updates: Mapping[str, Any] | None = None,
        deletes: Sequence[str] = (), replace_all: bool = False,
    ) -> InstanceRecord:
        """Set, replace or delete user metadata items without losing a concurrent change
        (read, change, compare-and-swap on the version, retried); ``NotFound`` if an item
        to delete is not there."""
        async def body(tx: Tx) -> InstanceRecord:
            current = await _instance(tx, uuid)
            items = {} if replace_all else dict(current.metadata)
            for key in deletes:
                if key not in items:
                    raise NotFound(f"metadata item {key!r} of instance {uuid} not found")
                del items[key]
            items.update(updates or {})
            if not await tx.run(_SET_METADATA, {"iuuid": uuid, "ev": current.version,
                                                "md": dumps(items), "now": now}):
                raise StaleVersionError(f"instance {uuid} changed while updating metadata")
            return await _instance(tx, uuid)

        return await self.db.transact(body, conflict_retries=8)

    async def soft_delete_instance(
        self, uuid: str, *, now: float, expected_task_states: Sequence[str | None] | None = None
    ) -> InstanceRecord:
        """Mark a live instance deleted (``vm_state`` deleted, no task, terminated), with its
        disks and migrations; faults and actions stay. Returns the deleted record."""
        stmt = _soft_delete_stmt(_shape(expected_task_states))
        params = {"iuuid": uuid, "now": now, **_state_params("ets", expected_task_states)}

        async def body(tx: Tx) -> InstanceRecord:
            if not await tx.run(stmt, params):
                await _explain_conflict(tx, uuid, None, expected_task_states, None)
            await tx.run(_DELETE_BDMS, {"iuuid": uuid, "now": now})
            await tx.run(_DELETE_MIGRATIONS, {"iuuid": uuid, "now": now})
            row = await tx.one(_BY_UUID_ANY, {"uuid": uuid})
            assert row is not None
            return InstanceRecord.from_row(row)

        return await self.db.transact(body)

    async def purge_deleted_instances(self, before: float) -> int:
        """Remove for good the instances soft-deleted before ``before``, with their disks,
        faults, actions, events and migrations; how many instances went."""
        async def body(tx: Tx) -> int:
            for stmt in _PURGE_DEPENDENTS:
                await tx.run(stmt, {"before": before})
            return await tx.run(_PURGE_INSTANCES, {"before": before})

        return await self.db.transact(body)

    async def count_instances_for_quota(
        self, project_id: str, user_id: str | None = None
    ) -> InstanceUsage:
        """Instances, cores and RAM (MiB) used by a project (or one user of it), counted
        from the rows as modern Nova does: live, not soft-deleted (restorable), not hidden."""
        stmt = _USAGE_PROJECT if user_id is None else _USAGE_USER

        async def body(tx: Tx) -> Row | None:
            return await tx.one(stmt, {"project_id": project_id, "user_id": user_id})

        row = await self.db.transact(body)
        assert row is not None
        return InstanceUsage(int(row[0]), int(row[1]), int(row[2]))


async def _instance(tx: Tx, uuid: str) -> InstanceRecord:
    row = await tx.one(_BY_UUID, {"uuid": uuid})
    if row is None:
        raise NotFound(f"instance {uuid} not found")
    return InstanceRecord.from_row(row)


async def _explain_conflict(
    tx: Tx, uuid: str, version: int | None, task_states: Sequence[str | None] | None,
    vm_states: Sequence[str] | None,
) -> None:
    """Raise the reason a guarded write to ``uuid`` changed nothing."""
    row = await tx.one(_STATE, {"uuid": uuid})
    if row is None:
        raise NotFound(f"instance {uuid} not found")
    actual_version, task_state, vm_state = row
    if task_states is not None and task_state not in task_states:
        raise UnexpectedStateError(uuid, "task_state", task_state, task_states)
    if vm_states is not None and vm_state not in vm_states:
        raise UnexpectedStateError(uuid, "vm_state", vm_state, vm_states)
    if version is not None and actual_version != version:
        raise StaleVersionError(
            f"instance {uuid} changed: version is {actual_version}, expected {version}")
    raise ConflictError(f"instance {uuid} changed while being updated; retry")
