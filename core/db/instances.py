"""Instances: the servers users boot, with their root disk and their faults.

Writers race (the API, the conductor, computes, periodic tasks), so every
update bumps ``version`` and may be made conditional: on the version a caller
read (compare-and-swap), and/or on the task and vm states it expects, as
Nova's ``instance.save(expected_task_state=...)`` does. A guard that fails is
one conditional UPDATE that changes nothing, then a ``ConflictError`` naming
what the row actually holds.

Deleting is soft (``deleted`` = the row id, ``vm_state`` ``deleted``), so the
API can still show a deleted server and its actions; purging removes deleted
instances and everything hanging off them for good.

The table and its records are in :mod:`nimbus.core.db.instance_schema`, the
statements built per shape of call (guarded updates, listings) in
:mod:`nimbus.core.db.instance_sql`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    Double,
    Select,
    and_,
    bindparam,
    func,
    or_,
    select,
)

from nimbus.core.db import paging
from nimbus.core.db.actions import insert_action, instance_action_events, instance_actions
from nimbus.core.db.area import StoreArea, found
from nimbus.core.db.block_devices import (
    INSERT_BDM,
    BlockDeviceSpec,
    bdm_values,
    block_device_mappings,
)
from nimbus.core.db.database import Row, Tx
from nimbus.core.db.faults import instance_faults
from nimbus.core.db.groups import DELETE_INSTANCE_MEMBERSHIPS
from nimbus.core.db.instance_migrations import migrations
from nimbus.core.db.instance_schema import (
    INSTANCE_COLUMNS,
    INSTANCE_NAMES,
    MUTABLE,
    SOFT_DELETED,
    SORT_KEYS,
    InstanceRecord,
    InstanceState,
    InstanceUsage,
    NewInstance,
    flavor_columns,
    instances,
)
from nimbus.core.db.instance_sql import (
    CHANGED_STATES,
    HOST_COUNTS,
    PLACED,
    by_host_query,
    like_pattern,
    list_query,
    marker_query,
    soft_delete_stmt,
    state_params,
    state_shape,
    update_stmt,
)
from nimbus.core.db.meta import dumps
from nimbus.core.errors import ConflictError, NotFound, StaleVersionError, UnexpectedStateError

#: The fields ``update_instance`` stores as JSON text.
_JSON_FIELDS = frozenset({"metadata", "system_metadata", "flavor", "old_flavor", "new_flavor"})
#: Equality filters of ``list_instances``, in cache-key order.
_EQ_FILTERS = ("project_id", "user_id", "host", "node", "image_ref", "flavor_id",
               "availability_zone", "reservation_id", "key_name", "locked")

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

#: What instances hold of each quota resource they count for.
USAGE_RESOURCES = ("instances", "cores", "ram")
_USAGE_SUMS = {"instances": func.count(), "cores": func.coalesce(func.sum(_i.vcpus), 0),
               "ram": func.coalesce(func.sum(_i.memory_mb), 0)}


@functools.cache
def usage_query(resources: tuple[str, ...] = USAGE_RESOURCES, *,
                by_user: bool = False) -> Select[Any]:
    """What the instances of project ``project_id`` (and, ``by_user``, of user
    ``user_id`` in it) hold of ``resources`` (of ``USAGE_RESOURCES``), one column each.

    Counted from the rows as modern Nova does: a soft-deleted instance
    (restorable for a while) holds no quota, nor does a hidden one (the copy a
    cross-cell move leaves behind). The quota checks use it as a subquery.
    """
    stmt = (select(*(_USAGE_SUMS[r] for r in resources)).select_from(instances)
            .where(_i.project_id == bindparam("project_id"), _i.deleted == 0,
                   _i.vm_state != SOFT_DELETED, _i.hidden.is_(False)))
    if by_user:
        stmt = stmt.where(_i.user_id == bindparam("user_id"))
    return stmt


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


class InstanceStore(StoreArea):
    """Store methods for instances."""

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
        row = await self._found(stmt, {"uuid": uuid}, f"instance {uuid} not found")
        return InstanceRecord.from_row(row)

    async def instances_by_host(self, host: str, node: str | None = None) -> list[InstanceRecord]:
        """The live instances on ``host`` (and hypervisor ``node``), oldest first."""
        stmt = by_host_query(node is not None)
        rows = await self._rows(stmt, {"host": host, "node": node})
        return [InstanceRecord.from_row(r) for r in rows]

    async def host_instance_counts(self, host: str,
                                   busy_task_states: Sequence[str]) -> tuple[int, int]:
        """(live instances on ``host``, those building or in one of ``busy_task_states``),
        counted in the database: a host's load report without reading the records."""
        return await self.db.transact(
            lambda tx: count_host_instances(tx, host, busy_task_states))

    async def placed_instances(self) -> list[tuple[str, str, str, str | None]]:
        """(uuid, host, vm_state, task_state) of every live instance on a host, oldest
        first: what the scheduler needs of them, without reading whole records."""
        rows = await self.db.transact(lambda tx: tx.rows(PLACED))
        return [(str(r[0]), str(r[1]), str(r[2]), r[3]) for r in rows]

    async def instance_states_since(self, since: float) -> list[InstanceState]:
        """The states of the instances (live or deleted) changed at or after ``since``, in
        the order of their last change: what a watcher of many servers needs, without
        records."""
        rows = await self.db.transact(lambda tx: tx.rows(CHANGED_STATES, {"since": since}))
        return [InstanceState(str(r[0]), str(r[1]), r[2], bool(r[3]), r[4], r[5])
                for r in rows]

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
        params.update(state_params("vms", vm_states), **state_params("tss", task_states))
        params.update(since=changes_since, before=changes_before, limit=limit,
                      name_like=like_pattern(name) if name is not None else None)
        shape = (eq, state_shape(vm_states), state_shape(task_states), name is not None,
                 changes_since is not None, changes_before is not None, deleted, order)

        async def body(tx: Tx) -> list[Row]:
            nulls = await paging.read_marker(tx, marker_query(order), marker, params,
                                             NotFound(f"marker instance {marker} not found"))
            return await tx.rows(list_query(*shape, nulls, limit is not None), params)

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
        for key in _JSON_FIELDS.intersection(changes) - {"flavor"}:  # flavor_columns did it
            if values[key] is not None or key in ("metadata", "system_metadata"):
                values[key] = dumps(values[key] or {})
        names = tuple(sorted(values))
        stmt = update_stmt(names, expected_version is not None, state_shape(expected_task_states),
                            state_shape(expected_vm_states))
        params: dict[str, Any] = {f"v_{n}": values[n] for n in names}
        params.update(iuuid=uuid, now=now, ev=expected_version,
                      **state_params("ets", expected_task_states),
                      **state_params("evs", expected_vm_states))

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
        disks and migrations, and take it out of its server groups (as Nova's
        ``instance_destroy``); faults and actions stay. Returns the deleted record."""
        stmt = soft_delete_stmt(state_shape(expected_task_states))
        params = {"iuuid": uuid, "now": now, **state_params("ets", expected_task_states)}

        async def body(tx: Tx) -> InstanceRecord:
            if not await tx.run(stmt, params):
                await _explain_conflict(tx, uuid, None, expected_task_states, None)
            await tx.run(_DELETE_BDMS, {"iuuid": uuid, "now": now})
            await tx.run(_DELETE_MIGRATIONS, {"iuuid": uuid, "now": now})
            await tx.run(DELETE_INSTANCE_MEMBERSHIPS, {"instance_uuid": uuid})
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
        stmt = usage_query(by_user=user_id is not None)
        row = await self._one(stmt, {"project_id": project_id, "user_id": user_id})
        assert row is not None
        return InstanceUsage(int(row[0]), int(row[1]), int(row[2]))


async def _instance(tx: Tx, uuid: str) -> InstanceRecord:
    row = await found(tx, _BY_UUID, {"uuid": uuid}, f"instance {uuid} not found")
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


async def count_host_instances(tx: Tx, host: str,
                               busy_task_states: Sequence[str]) -> tuple[int, int]:
    """Inside a transaction: (live instances on ``host``, those building or in one of
    ``busy_task_states``)."""
    row = await tx.one(HOST_COUNTS, {"host": host, "busy": sorted(busy_task_states)})
    return (int(row[0]), int(row[1])) if row is not None else (0, 0)
