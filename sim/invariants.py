"""The invariants a cloud must hold, checked over its Store after (or during) a run.

:func:`check` reads placement, instances, migrations, quotas and server groups in
a few bulk queries and reports, as :class:`~nimbus.sim.outcome.Violation` values:

* ``over_allocated``: a provider holds more of a class than
  ``(total - reserved) * allocation_ratio`` (or any of a class it has no inventory of);
* ``allocations_match``: an allocation whose consumer is neither a live instance
  nor a move still holding resources, or an idle instance whose allocations are
  not its flavor on its host's provider (nothing, when it has no host);
* ``stuck``: an instance in a task (or building) for ``settle`` seconds or more;
* ``quota``: a project (or a user with limits of their own) using more
  instances, cores or RAM than its limit;
* ``server_group``: members of an anti-affinity group sharing a host beyond
  ``max_server_per_host``, or members of an affinity group on several hosts.

Times are the Store's: ``now`` is the Runtime's ``wall_time()``, the clock the
services stamp rows with. Between ``settle`` seconds and now, things in motion
are given the benefit of the doubt (an instance just updated, a migration just
finished, an instance just deleted or created), so a check during a run only
reports what stayed wrong; at the end of a drained run ``settle=0`` reports all.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select

from nimbus.core.compute import states
from nimbus.core.db.database import Row, Tx
from nimbus.core.db.groups import ServerGroupRecord
from nimbus.core.db.instance_migrations import DONE_STATUSES, migrations
from nimbus.core.db.instance_schema import instances
from nimbus.core.db.placement import STANDARD_CLASS_IDS, allocations, resource_classes
from nimbus.core.db.placement_snapshot import ProviderCapacity
from nimbus.core.db.placement_sql import class_name
from nimbus.core.db.quotas import (
    DEFAULT_CLASS,
    QUOTA_DEFAULTS,
    project_user_quotas,
    quota_classes,
    quotas,
)
from nimbus.core.db.store import Store
from nimbus.core.scheduler.request import RequestSpec
from nimbus.sim.outcome import Violation

OVER_ALLOCATED = "over_allocated"
ALLOCATIONS_MATCH = "allocations_match"
STUCK = "stuck"
QUOTA = "quota"
SERVER_GROUP = "server_group"

#: Quota resources counted from instance rows, and what a detail calls their units.
_COUNTED = ("instances", "cores", "ram")
_LABELS = {"instances": "instances", "cores": "cores", "ram": "MB of RAM"}

# -- bulk reads, built once --------------------------------------------------------
_a, _i, _m = allocations.c, instances.c, migrations.c
_ALLOCATIONS = select(_a.consumer_id, _a.resource_provider_id, _a.resource_class_id, _a.used)
_USAGE = (select(_a.resource_provider_id, _a.resource_class_id, func.sum(_a.used))
          .group_by(_a.resource_provider_id, _a.resource_class_id))
_CLASSES = select(resource_classes.c.id, resource_classes.c.name)
_LIVE = select(_i.uuid, _i.project_id, _i.user_id, _i.vm_state, _i.task_state, _i.host,
               _i.node, _i.vcpus, _i.memory_mb, _i.root_gb, _i.flavor, _i.hidden,
               _i.created_at, _i.updated_at).where(_i.deleted == 0)
_MIGRATIONS = select(_m.uuid, _m.instance_uuid, _m.migration_type, _m.status,
                     _m.updated_at).where(_m.deleted == 0)
_DELETED_INSTANCES = select(_i.uuid, _i.deleted_at).where(
    _i.uuid.in_(bindparam("uuids", expanding=True)), _i.deleted != 0)
_DELETED_MIGRATIONS = select(_m.uuid, _m.instance_uuid, _m.status).where(
    _m.uuid.in_(bindparam("uuids", expanding=True)), _m.deleted != 0)
_CLASS_LIMITS = select(quota_classes.c.resource, quota_classes.c.hard_limit).where(
    quota_classes.c.class_name == DEFAULT_CLASS)
_PROJECT_LIMITS = select(quotas.c.project_id, quotas.c.resource, quotas.c.hard_limit)
_USER_LIMITS = select(project_user_quotas.c.project_id, project_user_quotas.c.user_id,
                      project_user_quotas.c.resource, project_user_quotas.c.hard_limit)
#: Uuids per IN list (well under any engine's limit on bound parameters).
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class _Instance:
    """What the checks need of one live instance."""

    uuid: str
    project_id: str
    user_id: str
    vm_state: str
    task_state: str | None
    host: str | None
    node: str | None
    vcpus: int
    memory_mb: int
    #: what its flavor claims of placement: (class id, amount), by class id
    wants: tuple[tuple[int, int], ...]
    #: in a task, or building
    busy: bool
    #: counted for quota (not soft-deleted, not hidden)
    counted: bool
    created_at: float
    updated_at: float

    def state(self) -> str:
        return (f"vm_state {self.vm_state}, task_state {self.task_state}, "
                f"host {self.host or '-'}")


@dataclass(frozen=True, slots=True)
class _Migration:
    uuid: str
    instance_uuid: str
    migration_type: str
    status: str
    updated_at: float

    @property
    def holding(self) -> bool:
        """Whether the move may still hold allocations (an evacuation's source keeps
        its allocation, as ``done``, until that host comes back and frees it)."""
        return self.status not in DONE_STATUSES or (
            self.migration_type == "evacuation" and self.status == "done")


@dataclass
class _Reads:
    """One consistent read of allocations, instances, migrations and quota limits."""

    #: consumer -> (provider id, class id, amount), in no particular order
    held: dict[str, list[tuple[int, int, int]]]
    #: (provider id, class id) -> amount held in all
    usage: dict[tuple[int, int], int]
    #: class id -> name, as ``resource_classes`` holds it (see ``_class``)
    classes: dict[int, str]
    live: dict[str, _Instance]
    moves: dict[str, _Migration]
    #: consumers that are neither: uuid -> deleted instance's deleted_at
    deleted_instances: dict[str, float]
    #: and uuid -> (instance uuid, status) of a deleted migration
    deleted_moves: dict[str, tuple[str, str]]
    class_limits: dict[str, int]
    project_limits: dict[str, dict[str, int]]
    user_limits: dict[tuple[str, str], dict[str, int]]


async def check(store: Store, *, now: float, settle: float = 0.0,
                t: float | None = None) -> list[Violation]:
    """Every invariant that does not hold in ``store`` at ``now`` (the Store's clock).

    ``settle``: seconds a change is given to complete before what it leaves half
    done counts (0: none). Violations are stamped ``t`` (default ``now``), ordered by
    invariant then subject.
    """
    snapshot = await store.provider_snapshot()
    providers = await store.list_resource_providers()
    reads = await store.db.transact(_read)
    groups = await store.list_server_groups()
    names = {p.id: p.name for p in providers}
    uuids = {p.id: p.uuid for p in providers}
    ids_by_name = {p.name: p.id for p in providers}
    found: list[tuple[str, str, str]] = []
    found += _over_allocated(snapshot, names, uuids, reads)
    found += _allocations_match(reads, names, ids_by_name, now, settle)
    found += _stuck(reads.live.values(), now, settle)
    found += _quota(reads, now, settle)
    found += _server_groups(groups, reads.live, now, settle)
    order = {n: i for i, n in enumerate(
        (OVER_ALLOCATED, ALLOCATIONS_MATCH, STUCK, QUOTA, SERVER_GROUP))}
    found.sort(key=lambda v: (order[v[0]], v[1], v[2]))
    stamp = now if t is None else t
    return [Violation(invariant=i, subject=s, detail=d, t=stamp) for i, s, d in found]


def describe(violations: Sequence[Violation]) -> str:
    """The violations as text, one line each (empty when there are none)."""
    return "\n".join(f"[{v.t:.1f}] {v.invariant} {v.subject}: {v.detail}" for v in violations)


# -- reading -----------------------------------------------------------------------------
async def _read(tx: Tx) -> _Reads:
    """Allocations first, then instances and migrations: a consumer made after the
    allocations were read is not seen at all, one removed since is seen deleted."""
    classes = {r[0]: r[1] for r in await tx.rows(_CLASSES)}
    held: dict[str, list[tuple[int, int, int]]] = {}
    for consumer, rp_id, rc_id, used in await tx.rows(_ALLOCATIONS):
        held.setdefault(consumer, []).append((rp_id, rc_id, used))
    usage = {(r[0], r[1]): int(r[2]) for r in await tx.rows(_USAGE)}
    live = _instances(await tx.rows(_LIVE))
    moves = {r[0]: _Migration(r[0], r[1], r[2], r[3], r[4] or 0.0)
             for r in await tx.rows(_MIGRATIONS)}
    unknown = sorted(c for c in held if c not in live and c not in moves)
    deleted_instances: dict[str, float] = {}
    deleted_moves: dict[str, tuple[str, str]] = {}
    for i in range(0, len(unknown), _CHUNK):
        chunk = {"uuids": unknown[i:i + _CHUNK]}
        deleted_instances.update((r[0], r[1] or 0.0)
                                 for r in await tx.rows(_DELETED_INSTANCES, chunk))
        deleted_moves.update((r[0], (r[1], r[2]))
                             for r in await tx.rows(_DELETED_MIGRATIONS, chunk))
    class_limits = {r[0]: int(r[1]) for r in await tx.rows(_CLASS_LIMITS)}
    project_limits: dict[str, dict[str, int]] = defaultdict(dict)
    for project, resource, limit in await tx.rows(_PROJECT_LIMITS):
        project_limits[project][resource] = int(limit)
    user_limits: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for project, user, resource, limit in await tx.rows(_USER_LIMITS):
        user_limits[project, user][resource] = int(limit)
    return _Reads(held, usage, classes, live, moves, deleted_instances, deleted_moves,
                  class_limits, dict(project_limits), dict(user_limits))


def _instances(rows: list[Row]) -> dict[str, _Instance]:
    """Live instances by uuid; flavors are parsed once per distinct snapshot."""
    wanted: dict[tuple[Any, ...], tuple[tuple[int, int], ...]] = {}
    out: dict[str, _Instance] = {}
    for (uuid, project, user, vm, task, host, node, vcpus, memory_mb, root_gb, flavor,
         hidden, created, updated) in rows:
        key = (flavor, vcpus, memory_mb, root_gb)
        wants = wanted.get(key)
        if wants is None:
            res = _flavor_resources(json.loads(flavor or "{}"), vcpus, memory_mb, root_gb)
            wants = wanted[key] = tuple(sorted((STANDARD_CLASS_IDS[rc], n)
                                               for rc, n in res.items()))
        out[uuid] = _Instance(uuid, project, user, vm, task, host, node, vcpus, memory_mb, wants,
                              task is not None or vm == states.BUILDING,
                              vm != states.SOFT_DELETED and not hidden, created or 0.0,
                              updated or 0.0)
    return out


def _flavor_resources(fl: dict[str, Any], vcpus: int, memory_mb: int,
                      root_gb: int) -> dict[str, int]:
    """What a flavor claims of placement, as the conductor asks the scheduler for it."""
    return RequestSpec.build(
        int(fl.get("vcpus", vcpus)), int(fl.get("memory_mb", memory_mb)),
        int(fl.get("root_gb", root_gb) or 0), ephemeral_gb=int(fl.get("ephemeral_gb") or 0),
        swap_mb=int(fl.get("swap") or 0)).resources()


# -- the invariants ----------------------------------------------------------------------
def _over_allocated(snapshot: dict[str, ProviderCapacity], names: dict[int, str],
                    uuids: dict[int, str], reads: _Reads) -> list[tuple[str, str, str]]:
    out = []
    for rp_id, rp_uuid in uuids.items():
        cap = snapshot.get(rp_uuid)
        if cap is None:
            continue
        name = names[rp_id]
        for rc, inv in cap.inventories.items():
            used = cap.used.get(rc, 0)
            usable = (inv.total - inv.reserved) * inv.allocation_ratio
            if used > usable:
                out.append((OVER_ALLOCATED, name,
                            f"{rc} allocated {used} > capacity {usable:g} ((total "
                            f"{inv.total} - reserved {inv.reserved}) x allocation_ratio "
                            f"{inv.allocation_ratio:g}) on provider {name} ({rp_uuid})"))
    # classes held where the provider has no inventory of them at all
    for (rp_id, rc_id), used in sorted(reads.usage.items()):
        cap = snapshot.get(uuids.get(rp_id, ""))
        rc = _class(reads, rc_id)
        if cap is None or rc not in cap.inventories:
            name = names.get(rp_id, f"#{rp_id}")
            out.append((OVER_ALLOCATED, name, f"{rc} allocated {used} on provider {name}, "
                        f"which has no {rc} inventory"))
    return out


def _allocations_match(reads: _Reads, names: dict[int, str], ids_by_name: dict[str, int],
                       now: float, settle: float) -> list[tuple[str, str, str]]:
    out = []
    for consumer, rows in reads.held.items():
        if consumer in reads.live:
            continue
        what = _holdings(rows, names, reads)
        move = reads.moves.get(consumer)
        if move is not None:
            if not move.holding and now - move.updated_at >= settle:
                out.append((ALLOCATIONS_MATCH, consumer,
                            f"{move.migration_type} {consumer} of instance "
                            f"{move.instance_uuid} is {move.status} but still holds {what}"))
            continue
        deleted_at = reads.deleted_instances.get(consumer)
        if deleted_at is not None:
            if now - deleted_at >= settle:
                out.append((ALLOCATIONS_MATCH, consumer,
                            f"deleted instance {consumer} still holds {what}"))
            continue
        gone = reads.deleted_moves.get(consumer)
        if gone is not None:
            out.append((ALLOCATIONS_MATCH, consumer,
                        f"deleted migration {consumer} of instance {gone[0]} ({gone[1]}) "
                        f"still holds {what}"))
            continue
        out.append((ALLOCATIONS_MATCH, consumer,
                    f"consumer {consumer} is no instance or migration but holds {what}"))
    for inst in reads.live.values():
        if inst.busy or now - inst.updated_at < settle:
            continue  # a task owns its allocations until it ends
        actual = reads.held.get(inst.uuid, [])
        node = inst.node or inst.host
        expected: list[tuple[int, int, int]] = []
        if inst.host is not None and inst.vm_state != states.SHELVED_OFFLOADED:
            rp_id = ids_by_name.get(node or "")
            if rp_id is None:
                out.append((ALLOCATIONS_MATCH, inst.uuid,
                            f"instance {inst.uuid} ({inst.state()}) is on node {node}, "
                            "which has no resource provider"))
                continue
            expected = [(rp_id, rc, n) for rc, n in inst.wants]
        if actual != expected and sorted(actual) != expected:
            should = (f"its flavor on its host, {_holdings(expected, names, reads)}"
                      if expected else "nothing, having no host")
            out.append((ALLOCATIONS_MATCH, inst.uuid,
                        f"instance {inst.uuid} ({inst.state()}) holds "
                        f"{_holdings(actual, names, reads)}; it should hold {should}"))
    return out


def _stuck(live: Iterable[_Instance], now: float,
           settle: float) -> list[tuple[str, str, str]]:
    return [(STUCK, inst.uuid,
             f"instance {inst.uuid} of project {inst.project_id} is busy ({inst.state()}), "
             f"unchanged for {now - inst.updated_at:g} s")
            for inst in live if inst.busy and now - inst.updated_at >= settle]


def _quota(reads: _Reads, now: float, settle: float) -> list[tuple[str, str, str]]:
    """Instances created within ``settle`` are left out: a create over the limit
    removes its records itself when the quota re-check after writing them fails."""
    by_project: dict[str, list[int]] = {}
    by_user: dict[tuple[str, str], list[int]] = {}
    for inst in reads.live.values():
        if not inst.counted or now - inst.created_at < settle:
            continue
        for used in _tally(by_project, inst.project_id), _tally(
                by_user, (inst.project_id, inst.user_id)):
            used[0] += 1
            used[1] += inst.vcpus
            used[2] += inst.memory_mb
    out = []
    for project, used in by_project.items():
        out += _over_limits(f"project {project}", project, used,
                            _project_limits(reads, project), _COUNTED)
    for (project, user), used in by_user.items():
        own = reads.user_limits.get((project, user))
        if own:  # the user's other limits are the project's, checked above
            out += _over_limits(f"user {user} of project {project}", f"{project}/{user}", used,
                                {**_project_limits(reads, project), **own},
                                tuple(r for r in _COUNTED if r in own))
    return out


def _tally(counts: dict[Any, list[int]], key: Any) -> list[int]:
    found = counts.get(key)
    if found is None:
        found = counts[key] = [0, 0, 0]
    return found


def _project_limits(reads: _Reads, project: str) -> dict[str, int]:
    """As the quota Store resolves them: built-in defaults, the default class, the project."""
    return {**QUOTA_DEFAULTS, **reads.class_limits, **reads.project_limits.get(project, {})}


def _over_limits(who: str, subject: str, used: list[int], limits: dict[str, int],
                 resources: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """``used`` holds instances, cores and ram, in the order of ``_COUNTED``."""
    return [(QUOTA, subject, f"{who} uses {n} {_LABELS[r]}, over its limit of {limits[r]}")
            for r, n in zip(_COUNTED, used, strict=True)
            if r in resources and 0 <= limits[r] < n]


def _server_groups(groups: list[ServerGroupRecord], live: dict[str, _Instance], now: float,
                   settle: float) -> list[tuple[str, str, str]]:
    """Hard policies only; members deleted, without a host or just moved are left out."""
    out = []
    for group in groups:
        if group.policy not in ("affinity", "anti-affinity"):
            continue
        hosts: dict[str, list[str]] = defaultdict(list)
        for uuid in group.members:
            inst = live.get(uuid)
            if inst is not None and inst.host is not None and not (
                    inst.busy and now - inst.updated_at < settle):
                hosts[inst.host].append(uuid)
        label = f"{group.policy} group {group.uuid} ({group.name})"
        if group.policy == "affinity" and len(hosts) > 1:
            where = "; ".join(f"{h}: {', '.join(m)}" for h, m in sorted(hosts.items()))
            out.append((SERVER_GROUP, group.uuid,
                        f"{label} has members on {len(hosts)} hosts: {where}"))
        elif group.policy == "anti-affinity":
            most = int(group.rules.get("max_server_per_host", 1))
            for host, members in sorted(hosts.items()):
                if len(members) > most:
                    out.append((SERVER_GROUP, group.uuid,
                                f"{label} has {len(members)} members on {host} (at most "
                                f"{most}): {', '.join(members)}"))
    return out


def _class(reads: _Reads, rc_id: int) -> str:
    return class_name(rc_id, reads.classes.get(rc_id))


def _holdings(rows: list[tuple[int, int, int]], names: dict[int, str], reads: _Reads) -> str:
    """``cmp1 {VCPU: 1, MEMORY_MB: 512}; ...`` from (provider id, class id, amount) rows,
    or ``nothing``."""
    if not rows:
        return "nothing"
    per_rp: dict[str, list[str]] = defaultdict(list)
    for rp_id, rc_id, used in rows:
        per_rp[names.get(rp_id, f"#{rp_id}")].append(f"{_class(reads, rc_id)}: {used}")
    return "; ".join(f"{rp} {{{', '.join(res)}}}" for rp, res in sorted(per_rp.items()))
