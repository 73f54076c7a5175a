"""Flavors (with extra specs and per-project access) and keypairs.

A flavor is known to clients by its ``flavorid`` (a string, unique among live
flavors, as is its name); ``id`` is the row's own key. Extra specs are string
pairs merged by :meth:`FlavorStore.set_flavor_extra_specs`. A private flavor is
visible to the projects it is shared with; sharing a public flavor is refused
as Nova refuses it (409). Keypairs belong to a user, unique by name per user.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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
    UniqueConstraint,
    bindparam,
    func,
    or_,
    select,
)

from nimbus.core.db import paging
from nimbus.core.db.area import StoreArea, found
from nimbus.core.db.database import Row, Tx
from nimbus.core.db.meta import (
    NAME_LEN,
    flag,
    id_column,
    metadata,
    soft_delete_columns,
    time_columns,
)
from nimbus.core.errors import ConflictError, DuplicateError, InvalidInput, NotFound

flavors = Table(
    "flavors", metadata,
    id_column(),
    Column("flavorid", String(NAME_LEN), nullable=False),
    Column("name", String(NAME_LEN), nullable=False),
    Column("vcpus", Integer, nullable=False),
    Column("memory_mb", Integer, nullable=False),
    Column("root_gb", Integer, nullable=False, default=0),
    Column("ephemeral_gb", Integer, nullable=False, default=0),
    Column("swap", Integer, nullable=False, default=0),
    Column("rxtx_factor", Double, nullable=False, default=1.0),
    Column("vcpu_weight", Integer, nullable=True),
    flag("disabled"),
    flag("is_public", True),
    Column("description", Text, nullable=True),
    *time_columns(),
    *soft_delete_columns(),
    UniqueConstraint("flavorid", "deleted"),
    UniqueConstraint("name", "deleted"),
)

flavor_extra_specs = Table(
    "flavor_extra_specs", metadata,
    id_column(),
    Column("flavor_id", Integer, ForeignKey("flavors.id"), nullable=False),
    Column("key", String(NAME_LEN), nullable=False),
    Column("value", String(NAME_LEN), nullable=True),
    *time_columns(),
    UniqueConstraint("flavor_id", "key"),
)

flavor_projects = Table(
    "flavor_projects", metadata,
    id_column(),
    Column("flavor_id", Integer, ForeignKey("flavors.id"), nullable=False),
    Column("project_id", String(NAME_LEN), nullable=False),
    Column("created_at", Double, nullable=True),
    UniqueConstraint("flavor_id", "project_id"),
    # what a project may see: the access subquery of list_flavors
    Index(None, "project_id"),
)

key_pairs = Table(
    "key_pairs", metadata,
    id_column(),
    Column("name", String(NAME_LEN), nullable=False),
    Column("user_id", String(NAME_LEN), nullable=False),
    Column("fingerprint", String(NAME_LEN), nullable=True),
    Column("public_key", Text, nullable=True),
    Column("type", String(16), nullable=False, default="ssh", server_default="ssh"),
    *time_columns(),
    *soft_delete_columns(),
    # also the index of list_keypairs and count_keypairs (user_id leads)
    UniqueConstraint("user_id", "name", "deleted"),
)

#: Keys a flavor list may be sorted by (Nova's whitelist).
FLAVOR_SORT_KEYS = frozenset({
    "created_at", "description", "disabled", "ephemeral_gb", "flavorid", "id", "is_public",
    "memory_mb", "name", "root_gb", "rxtx_factor", "swap", "updated_at", "vcpu_weight",
    "vcpus"})
KEYPAIR_TYPES = ("ssh", "x509")


@dataclass(frozen=True, slots=True)
class FlavorRecord:
    """One live flavor with its extra specs."""

    id: int
    flavorid: str
    name: str
    vcpus: int
    memory_mb: int
    root_gb: int
    ephemeral_gb: int
    swap: int
    rxtx_factor: float
    vcpu_weight: int | None
    disabled: bool
    is_public: bool
    description: str | None
    created_at: float | None
    updated_at: float | None
    extra_specs: dict[str, str]

    @classmethod
    def from_row(cls, r: Row, extra_specs: dict[str, str]) -> FlavorRecord:
        """Build from a row of ``FLAVOR_COLUMNS`` and the flavor's specs."""
        return cls(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], float(r[8]), r[9],
                   bool(r[10]), bool(r[11]), r[12], r[13], r[14], extra_specs)


FLAVOR_COLUMNS = [flavors.c[n] for n in (
    "id", "flavorid", "name", "vcpus", "memory_mb", "root_gb", "ephemeral_gb", "swap",
    "rxtx_factor", "vcpu_weight", "disabled", "is_public", "description", "created_at",
    "updated_at")]


@dataclass(frozen=True, slots=True)
class KeypairRecord:
    """One live keypair of a user."""

    id: int
    name: str
    user_id: str
    fingerprint: str | None
    public_key: str | None
    type: str
    created_at: float | None

    @classmethod
    def from_row(cls, r: Row) -> KeypairRecord:
        """Build from a row of ``KEYPAIR_COLUMNS``."""
        return cls(r[0], r[1], r[2], r[3], r[4], r[5], r[6])


KEYPAIR_COLUMNS = [key_pairs.c[n] for n in (
    "id", "name", "user_id", "fingerprint", "public_key", "type", "created_at")]

# -- statements, built once --------------------------------------------------------
_f = flavors.c
_INSERT_FLAVOR = flavors.insert().returning(_f.id)
_FLAVOR_BY_FLAVORID = select(*FLAVOR_COLUMNS).where(
    _f.flavorid == bindparam("flavorid"), _f.deleted == 0)
_SET_DESCRIPTION = (flavors.update()
                    .where(_f.id == bindparam("fid"))
                    .values(description=bindparam("description"), updated_at=bindparam("now")))
_DELETE_FLAVOR = (flavors.update()
                  .where(_f.id == bindparam("fid"), _f.deleted == 0)
                  .values(deleted=_f.id, deleted_at=bindparam("now")))

_s = flavor_extra_specs.c
_SPECS_OF = select(_s.flavor_id, _s.key, _s.value).where(
    _s.flavor_id.in_(bindparam("fids", expanding=True)))
_INSERT_SPEC = flavor_extra_specs.insert()
_UPDATE_SPEC = (flavor_extra_specs.update()
                .where(_s.flavor_id == bindparam("fid"), _s.key == bindparam("k"))
                .values(value=bindparam("v"), updated_at=bindparam("now")))
_DELETE_SPEC = flavor_extra_specs.delete().where(
    _s.flavor_id == bindparam("fid"), _s.key == bindparam("k"))
_DELETE_SPECS_OF = flavor_extra_specs.delete().where(_s.flavor_id == bindparam("fid"))

_p = flavor_projects.c
_ACCESS_OF = select(_p.project_id).where(_p.flavor_id == bindparam("fid")).order_by(
    _p.project_id)
_INSERT_ACCESS = flavor_projects.insert()
_DELETE_ACCESS = flavor_projects.delete().where(
    _p.flavor_id == bindparam("fid"), _p.project_id == bindparam("project_id"))
_DELETE_ACCESS_OF = flavor_projects.delete().where(_p.flavor_id == bindparam("fid"))

_k = key_pairs.c
_INSERT_KEYPAIR = key_pairs.insert()
_KEYPAIR_BY_NAME = select(*KEYPAIR_COLUMNS).where(
    _k.user_id == bindparam("user_id"), _k.name == bindparam("name"), _k.deleted == 0)
_DELETE_KEYPAIR = (key_pairs.update()
                   .where(_k.user_id == bindparam("uid"), _k.name == bindparam("kname"),
                          _k.deleted == 0)
                   .values(deleted=_k.id, deleted_at=bindparam("now")))
_COUNT_KEYPAIRS = select(func.count()).select_from(key_pairs).where(
    _k.user_id == bindparam("user_id"), _k.deleted == 0)


@functools.cache
def _marker_query(sort: paging.Sort) -> Select[Any]:
    return select(*(_f[n] for n, _ in sort)).where(
        _f.flavorid == bindparam("marker"), _f.deleted == 0)


@functools.cache
def _flavors_query(
    by_public: bool, with_project: bool, by_disabled: bool, by_min_ram: bool,
    by_min_disk: bool, sort: paging.Sort, marker_nulls: tuple[bool, ...] | None, limited: bool,
) -> Select[Any]:
    stmt = select(*FLAVOR_COLUMNS).where(_f.deleted == 0)
    if by_public:
        public = _f.is_public == bindparam("is_public")
        if with_project:
            shared = select(_p.flavor_id).where(_p.project_id == bindparam("project_id"))
            stmt = stmt.where(or_(public, _f.id.in_(shared)))
        else:
            stmt = stmt.where(public)
    if by_disabled:
        stmt = stmt.where(_f.disabled == bindparam("disabled"))
    if by_min_ram:
        stmt = stmt.where(_f.memory_mb >= bindparam("min_ram"))
    if by_min_disk:
        stmt = stmt.where(_f.root_gb >= bindparam("min_disk"))
    if marker_nulls is not None:
        stmt = stmt.where(paging.after_marker(flavors, sort, marker_nulls))
    stmt = stmt.order_by(*paging.order_by(flavors, sort))
    if limited:
        stmt = stmt.limit(bindparam("limit", type_=Integer))
    return stmt


@functools.cache
def _keypairs_query(after_marker: bool, limited: bool) -> Select[Any]:
    stmt = select(*KEYPAIR_COLUMNS).where(_k.user_id == bindparam("user_id"), _k.deleted == 0)
    if after_marker:
        stmt = stmt.where(_k.name > bindparam("marker"))
    stmt = stmt.order_by(_k.name, _k.id)
    if limited:
        stmt = stmt.limit(bindparam("limit", type_=Integer))
    return stmt


class FlavorStore(StoreArea):
    """Store methods for flavors, their extra specs and access, and keypairs."""

    async def create_flavor(
        self, *, flavorid: str, name: str, vcpus: int, memory_mb: int, now: float,
        root_gb: int = 0, ephemeral_gb: int = 0, swap: int = 0, rxtx_factor: float = 1.0,
        vcpu_weight: int | None = None, disabled: bool = False, is_public: bool = True,
        description: str | None = None, extra_specs: Mapping[str, str] | None = None,
    ) -> FlavorRecord:
        """Create a flavor with its extra specs; ``DuplicateError`` if its id or name is taken."""
        async def body(tx: Tx) -> FlavorRecord:
            fid = await tx.scalar(_INSERT_FLAVOR, {
                "flavorid": flavorid, "name": name, "vcpus": vcpus, "memory_mb": memory_mb,
                "root_gb": root_gb, "ephemeral_gb": ephemeral_gb, "swap": swap,
                "rxtx_factor": rxtx_factor, "vcpu_weight": vcpu_weight, "disabled": disabled,
                "is_public": is_public, "description": description, "created_at": now,
                "updated_at": now, "deleted": 0,
            })
            await tx.run(_INSERT_SPEC, [
                {"flavor_id": fid, "key": k, "value": v, "created_at": now, "updated_at": now}
                for k, v in (extra_specs or {}).items()])
            return await _flavor(tx, flavorid)

        try:
            return await self.db.transact(body)
        except DuplicateError:
            raise DuplicateError(
                f"flavor with id {flavorid!r} or name {name!r} already exists") from None

    async def get_flavor(self, flavorid: str) -> FlavorRecord:
        """A live flavor by its flavorid, with its extra specs; ``NotFound`` otherwise."""
        return await self.db.transact(lambda tx: _flavor(tx, flavorid))

    async def list_flavors(
        self, *, is_public: bool | None = None, project_id: str | None = None,
        disabled: bool | None = None, min_ram: int | None = None, min_disk: int | None = None,
        sort_key: str = "flavorid", sort_dir: str = "asc", marker: str | None = None,
        limit: int | None = None,
    ) -> list[FlavorRecord]:
        """Live flavors, as the flavor list of the API sees them.

        ``is_public`` True: the public flavors and, given ``project_id``, those shared
        with that project (what a non-admin sees); False: the private ones; None: all.
        ``min_ram``/``min_disk`` bound memory_mb/root_gb from below. Sorted by
        ``sort_key`` (one of ``FLAVOR_SORT_KEYS``) then id; ``marker`` is the flavorid
        of the last flavor of the previous page (``InvalidInput`` (400) if there is none).
        """
        try:
            sort = paging.normalize_sort([(sort_key, sort_dir)], FLAVOR_SORT_KEYS)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        shape = (is_public is not None, is_public is True and project_id is not None,
                 disabled is not None, min_ram is not None, min_disk is not None, sort)
        params: dict[str, Any] = {"is_public": is_public, "project_id": project_id,
                                  "disabled": disabled, "min_ram": min_ram,
                                  "min_disk": min_disk, "limit": limit}

        async def body(tx: Tx) -> list[FlavorRecord]:
            nulls = await paging.read_marker(tx, _marker_query(sort), marker, params,
                                             InvalidInput(f"marker [{marker}] not found"))
            rows = await tx.rows(_flavors_query(*shape, nulls, limit is not None), params)
            specs = await _specs(tx, [r[0] for r in rows])
            return [FlavorRecord.from_row(r, specs.get(r[0], {})) for r in rows]

        return await self.db.transact(body)

    async def update_flavor_description(
        self, flavorid: str, description: str | None, now: float
    ) -> FlavorRecord:
        """Set a flavor's description (the one field Nova lets change after creation)."""
        async def body(tx: Tx) -> FlavorRecord:
            old = await _flavor(tx, flavorid)
            await tx.run(_SET_DESCRIPTION, {"fid": old.id, "description": description,
                                            "now": now})
            return await _flavor(tx, flavorid)

        return await self.db.transact(body)

    async def delete_flavor(self, flavorid: str, now: float) -> None:
        """Soft-delete a flavor; its extra specs and access list go with it."""
        async def body(tx: Tx) -> None:
            fid = await _flavor_id(tx, flavorid)
            await tx.run(_DELETE_FLAVOR, {"fid": fid, "now": now})
            await tx.run(_DELETE_SPECS_OF, {"fid": fid})
            await tx.run(_DELETE_ACCESS_OF, {"fid": fid})

        await self.db.transact(body)

    async def get_flavor_extra_specs(self, flavorid: str) -> dict[str, str]:
        """A flavor's extra specs."""
        return (await self.get_flavor(flavorid)).extra_specs

    async def set_flavor_extra_specs(
        self, flavorid: str, specs: Mapping[str, str], now: float
    ) -> dict[str, str]:
        """Merge ``specs`` into a flavor's extra specs; all of them after the merge."""
        async def body(tx: Tx) -> dict[str, str]:
            fid = await _flavor_id(tx, flavorid)
            have = (await _specs(tx, [fid])).get(fid, {})
            await tx.run(_UPDATE_SPEC, [{"fid": fid, "k": k, "v": v, "now": now}
                                        for k, v in specs.items() if k in have])
            await tx.run(_INSERT_SPEC, [
                {"flavor_id": fid, "key": k, "value": v, "created_at": now, "updated_at": now}
                for k, v in specs.items() if k not in have])
            return {**have, **specs}

        return await self.db.transact(body)

    async def delete_flavor_extra_spec(self, flavorid: str, key: str) -> None:
        """Remove one extra spec; ``NotFound`` naming it if the flavor has no such key."""
        async def body(tx: Tx) -> int:
            return await tx.run(_DELETE_SPEC, {"fid": await _flavor_id(tx, flavorid), "k": key})

        if not await self.db.transact(body):
            raise NotFound(f"flavor {flavorid} has no extra spec {key!r}")

    async def add_flavor_access(self, flavorid: str, project_id: str, now: float) -> list[str]:
        """Share a private flavor with a project; the projects it is shared with after.

        ``ConflictError`` for a public flavor (Nova: 409), ``DuplicateError`` if the
        project already has access.
        """
        async def body(tx: Tx) -> list[str]:
            row = await tx.one(_FLAVOR_BY_FLAVORID, {"flavorid": flavorid})
            if row is None:
                raise NotFound(f"flavor {flavorid} not found")
            if row[11]:
                raise ConflictError(f"cannot add access to public flavor {flavorid}")
            await tx.run(_INSERT_ACCESS, {"flavor_id": row[0], "project_id": project_id,
                                          "created_at": now})
            return [r[0] for r in await tx.rows(_ACCESS_OF, {"fid": row[0]})]

        try:
            return await self.db.transact(body)
        except DuplicateError:
            raise DuplicateError(
                f"flavor {flavorid} is already shared with project {project_id}") from None

    async def remove_flavor_access(self, flavorid: str, project_id: str) -> list[str]:
        """Stop sharing a flavor with a project; ``NotFound`` if it was not shared."""
        async def body(tx: Tx) -> list[str]:
            fid = await _flavor_id(tx, flavorid)
            if not await tx.run(_DELETE_ACCESS, {"fid": fid, "project_id": project_id}):
                raise NotFound(f"flavor {flavorid} is not shared with project {project_id}")
            return [r[0] for r in await tx.rows(_ACCESS_OF, {"fid": fid})]

        return await self.db.transact(body)

    async def list_flavor_access(self, flavorid: str) -> list[str]:
        """The projects a flavor is shared with, sorted."""
        async def body(tx: Tx) -> list[str]:
            fid = await _flavor_id(tx, flavorid)
            return [r[0] for r in await tx.rows(_ACCESS_OF, {"fid": fid})]

        return await self.db.transact(body)

    async def create_keypair(
        self, *, name: str, user_id: str, public_key: str, fingerprint: str | None,
        now: float, type: str = "ssh",
    ) -> KeypairRecord:
        """Store a user's keypair; ``DuplicateError`` if the user has one of that name."""
        if type not in KEYPAIR_TYPES:
            raise InvalidInput(f"invalid keypair type {type!r}; valid: ssh, x509")

        async def body(tx: Tx) -> KeypairRecord:
            await tx.run(_INSERT_KEYPAIR, {
                "name": name, "user_id": user_id, "fingerprint": fingerprint,
                "public_key": public_key, "type": type, "created_at": now, "updated_at": now,
                "deleted": 0})
            return await _keypair(tx, user_id, name)

        try:
            return await self.db.transact(body)
        except DuplicateError:
            raise DuplicateError(f"key pair {name!r} already exists") from None

    async def get_keypair(self, user_id: str, name: str) -> KeypairRecord:
        """A user's live keypair by name; ``NotFound`` otherwise."""
        return await self.db.transact(lambda tx: _keypair(tx, user_id, name))

    async def list_keypairs(
        self, user_id: str, *, marker: str | None = None, limit: int | None = None
    ) -> list[KeypairRecord]:
        """A user's live keypairs by name; ``marker`` is the last name of the previous page."""
        stmt = _keypairs_query(marker is not None, limit is not None)
        params = {"user_id": user_id, "marker": marker, "limit": limit}

        async def body(tx: Tx) -> list[Row]:
            if marker is not None and await tx.one(
                    _KEYPAIR_BY_NAME, {"user_id": user_id, "name": marker}) is None:
                raise InvalidInput(f"marker [{marker}] not found")
            return await tx.rows(stmt, params)

        return [KeypairRecord.from_row(r) for r in await self.db.transact(body)]

    async def delete_keypair(self, user_id: str, name: str, now: float) -> None:
        """Soft-delete a user's keypair; ``NotFound`` if there is none of that name."""
        if not await self._run(_DELETE_KEYPAIR, {"uid": user_id, "kname": name, "now": now}):
            raise NotFound(f"keypair {name} not found for user {user_id}")

    async def count_keypairs(self, user_id: str) -> int:
        """How many live keypairs a user has (the key_pairs quota usage)."""
        async def body(tx: Tx) -> int:
            return int(await tx.scalar(_COUNT_KEYPAIRS, {"user_id": user_id}))

        return await self.db.transact(body)


async def _flavor_id(tx: Tx, flavorid: str) -> int:
    row = await found(tx, _FLAVOR_BY_FLAVORID, {"flavorid": flavorid},
                      f"flavor {flavorid} not found")
    return int(row[0])


async def _flavor(tx: Tx, flavorid: str) -> FlavorRecord:
    row = await found(tx, _FLAVOR_BY_FLAVORID, {"flavorid": flavorid},
                      f"flavor {flavorid} not found")
    return FlavorRecord.from_row(row, (await _specs(tx, [row[0]])).get(row[0], {}))


async def _specs(tx: Tx, flavor_ids: Iterable[int]) -> dict[int, dict[str, str]]:
    ids = list(flavor_ids)
    out: dict[int, dict[str, str]] = {}
    if not ids:
        return out
    for fid, key, value in await tx.rows(_SPECS_OF, {"fids": ids}):
        out.setdefault(fid, {})[key] = value
    return out


async def _keypair(tx: Tx, user_id: str, name: str) -> KeypairRecord:
    row = await found(tx, _KEYPAIR_BY_NAME, {"user_id": user_id, "name": name},
                      f"keypair {name} not found for user {user_id}")
    return KeypairRecord.from_row(row)
