"""Images (a Glance v2 subset): images, their properties, tags and members.

Who sees an image is exactly Glance's rule (:func:`visible_without_members` and
:meth:`ImageStore.image_visible_to`): admins see every image; ``public`` and
``community`` images are visible to everyone; a ``shared`` image to its owner
and to the projects it is shared with, whatever their member status; a
``private`` image only to its owner; an image without owner to everyone.
*Listing* is narrower, as in Glance: community images are listed only to their
owner or when ``visibility=community`` is asked, and shared images only to
members whose status is ``member_status`` (``accepted`` unless asked).

An image's ``id`` is its UUID (the primary key, given by the caller). Deleting
soft-deletes: ``status`` becomes ``deleted`` and ``deleted`` 1. Every update
bumps ``version``, and updates compare-and-swap on it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    asc,
    bindparam,
    desc,
    exists,
    func,
    literal_column,
    or_,
    select,
)

from nimbus.core.db.database import Database, Row, Tx
from nimbus.core.db.identity import KEEP, Keep, pick
from nimbus.core.db.meta import (
    NAME_LEN,
    UUID_LEN,
    flag,
    id_column,
    metadata,
    soft_delete_columns,
    time_columns,
)
from nimbus.core.errors import ConflictError, DuplicateError, NimbusError, NotFound

STATUSES = ("queued", "saving", "uploading", "importing", "active", "deactivated", "killed",
            "deleted")
VISIBILITIES = ("private", "shared", "public", "community")
MEMBER_STATUSES = ("pending", "accepted", "rejected")
#: The keys Glance lets a client sort by.
SORT_KEYS = ("name", "status", "container_format", "disk_format", "size", "id", "created_at",
             "updated_at")
PROJECT_LEN = 64


class ImageForbidden(NimbusError):
    """Glance refuses this on this image (deleting a protected image, members of an
    image that is not shared)."""

    status = 403


class InvalidImageQuery(NimbusError):
    """A listing asked for an unknown sort key or direction, status or visibility."""

    status = 400


images = Table(
    "images", metadata,
    Column("id", String(UUID_LEN), primary_key=True),
    Column("name", String(NAME_LEN), nullable=True),
    Column("owner", String(PROJECT_LEN), nullable=True),
    Column("status", String(30), nullable=False),
    Column("visibility", String(16), nullable=False),
    flag("protected"),
    flag("os_hidden"),
    Column("disk_format", String(30), nullable=True),
    Column("container_format", String(30), nullable=True),
    Column("size", BigInteger, nullable=True),
    Column("virtual_size", BigInteger, nullable=True),
    Column("checksum", String(32), nullable=True),
    Column("os_hash_algo", String(64), nullable=True),
    Column("os_hash_value", String(128), nullable=True),
    Column("min_disk", Integer, nullable=False, default=0),
    Column("min_ram", Integer, nullable=False, default=0),
    Column("location", Text, nullable=True),
    Column("version", Integer, nullable=False, default=0),
    *time_columns(),
    *soft_delete_columns(),
    Index(None, "owner"),
    Index(None, "visibility", "deleted"),
    Index(None, "created_at", "id"),
)

image_properties = Table(
    "image_properties", metadata,
    id_column(),
    Column("image_id", String(UUID_LEN), ForeignKey("images.id"), nullable=False),
    Column("name", String(NAME_LEN), nullable=False),
    Column("value", Text, nullable=True),
    UniqueConstraint("image_id", "name"),
)

image_tags = Table(
    "image_tags", metadata,
    id_column(),
    Column("image_id", String(UUID_LEN), ForeignKey("images.id"), nullable=False),
    Column("value", String(NAME_LEN), nullable=False),
    UniqueConstraint("image_id", "value"),
)

image_members = Table(
    "image_members", metadata,
    id_column(),
    Column("image_id", String(UUID_LEN), ForeignKey("images.id"), nullable=False),
    Column("member", String(PROJECT_LEN), nullable=False),
    Column("status", String(20), nullable=False),
    *time_columns(),
    UniqueConstraint("image_id", "member"),
    Index(None, "member", "status"),
)


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """One live image, with its properties and tags."""

    id: str
    name: str | None
    owner: str | None
    status: str
    visibility: str
    protected: bool
    os_hidden: bool
    disk_format: str | None
    container_format: str | None
    size: int | None
    virtual_size: int | None
    checksum: str | None
    os_hash_algo: str | None
    os_hash_value: str | None
    min_disk: int
    min_ram: int
    location: str | None
    version: int
    created_at: float | None
    updated_at: float | None
    properties: dict[str, str | None]
    tags: tuple[str, ...]

    @classmethod
    def from_row(cls, r: Row, properties: dict[str, str | None],
                 tags: Iterable[str]) -> ImageRecord:
        """Build from a row of ``IMAGE_COLUMNS`` and the image's properties and tags."""
        return cls(r[0], r[1], r[2], r[3], r[4], bool(r[5]), bool(r[6]), r[7], r[8], r[9],
                   r[10], r[11], r[12], r[13], r[14], r[15], r[16], r[17], r[18], r[19],
                   properties, tuple(sorted(tags)))


_i = images.c
IMAGE_COLUMNS = [_i[n] for n in (
    "id", "name", "owner", "status", "visibility", "protected", "os_hidden", "disk_format",
    "container_format", "size", "virtual_size", "checksum", "os_hash_algo", "os_hash_value",
    "min_disk", "min_ram", "location", "version", "created_at", "updated_at")]


@dataclass(frozen=True, slots=True)
class ImageMemberRecord:
    """One project an image is shared with."""

    image_id: str
    member: str
    status: str
    created_at: float | None
    updated_at: float | None

    @classmethod
    def from_row(cls, r: Row) -> ImageMemberRecord:
        """Build from a row of ``MEMBER_COLUMNS``."""
        return cls(r[0], r[1], r[2], r[3], r[4])


_m = image_members.c
MEMBER_COLUMNS = [_m.image_id, _m.member, _m.status, _m.created_at, _m.updated_at]
_pr = image_properties.c
_t = image_tags.c

# -- statements, built once --------------------------------------------------------
_INSERT_IMAGE = images.insert()
_INSERT_PROPERTY = image_properties.insert()
_INSERT_TAG = image_tags.insert()
_IMAGE_BY_ID = select(*IMAGE_COLUMNS).where(_i.id == bindparam("id"), _i.deleted == 0)
_PROPERTIES_OF = select(_pr.image_id, _pr.name, _pr.value).where(
    _pr.image_id.in_(bindparam("ids", expanding=True)))
_TAGS_OF = select(_t.image_id, _t.value).where(_t.image_id.in_(bindparam("ids", expanding=True)))
_DELETE_PROPERTIES = image_properties.delete().where(
    _pr.image_id == bindparam("id"), _pr.name.in_(bindparam("names", expanding=True)))
_UPDATE_IMAGE = (images.update()
                 .where(_i.id == bindparam("iid"), _i.deleted == 0,
                        _i.version == bindparam("expected_version"))
                 .values(name=bindparam("name"), owner=bindparam("owner"),
                         visibility=bindparam("visibility"), protected=bindparam("protected"),
                         os_hidden=bindparam("os_hidden"), disk_format=bindparam("disk_format"),
                         container_format=bindparam("container_format"),
                         min_disk=bindparam("min_disk"), min_ram=bindparam("min_ram"),
                         version=_i.version + 1, updated_at=bindparam("now")))
_TOUCH_IMAGE = (images.update().where(_i.id == bindparam("iid"), _i.deleted == 0)
                .values(version=_i.version + 1, updated_at=bindparam("now")))
_SET_STATUS = (images.update().where(_i.id == bindparam("iid"), _i.deleted == 0)
               .values(status=bindparam("status"), version=_i.version + 1,
                       updated_at=bindparam("now")))
_SET_STATUS_FROM = _SET_STATUS.where(_i.status == bindparam("expected_status"))
_SET_DATA = (images.update()
             .where(_i.id == bindparam("iid"), _i.deleted == 0,
                    _i.status == bindparam("expected_status"))
             .values(status=bindparam("status"), size=bindparam("size"),
                     virtual_size=bindparam("virtual_size"), checksum=bindparam("checksum"),
                     os_hash_algo=bindparam("os_hash_algo"),
                     os_hash_value=bindparam("os_hash_value"), location=bindparam("location"),
                     version=_i.version + 1, updated_at=bindparam("now")))
_DELETE_IMAGE = (images.update().where(_i.id == bindparam("iid"), _i.deleted == 0)
                 .values(status="deleted", deleted=1, deleted_at=bindparam("now"),
                         updated_at=bindparam("now"), version=_i.version + 1))

_INSERT_MEMBER = image_members.insert()
_MEMBER = select(*MEMBER_COLUMNS).where(_m.image_id == bindparam("id"),
                                        _m.member == bindparam("member"))
_MEMBERS_OF = select(*MEMBER_COLUMNS).where(_m.image_id == bindparam("id")).order_by(_m.id)
_IS_MEMBER = select(_m.id).where(_m.image_id == bindparam("id"),
                                 _m.member == bindparam("member"))
_SET_MEMBER_STATUS = (image_members.update()
                      .where(_m.image_id == bindparam("iid"), _m.member == bindparam("mem"))
                      .values(status=bindparam("status"), updated_at=bindparam("now")))
_DELETE_MEMBER = image_members.delete().where(_m.image_id == bindparam("id"),
                                              _m.member == bindparam("member"))
_DELETE_MEMBERS_OF = image_members.delete().where(_m.image_id == bindparam("id"))

_HAS_TAG = select(_t.id).where(_t.image_id == bindparam("id"), _t.value == bindparam("tag"))
_DELETE_TAG = image_tags.delete().where(_t.image_id == bindparam("id"),
                                        _t.value == bindparam("tag"))


# -- listing ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Shape:
    """Which parts a listing has: the key of its cached statement."""

    admin: bool
    has_project: bool
    member_status_all: bool
    visibility: str | None  # None, "all", or "one" (a bound parameter)
    filters: tuple[str, ...]
    n_tags: int
    n_props: int
    sort: tuple[tuple[str, str], ...]
    has_marker: bool
    has_limit: bool


def _sort_expr(key: str) -> ColumnElement[Any]:
    """The column to sort on, NULLs made comparable the same way on every database."""
    col = _i[key]
    if not col.nullable or key == "created_at":  # create_image always sets created_at
        return col
    default = "''" if isinstance(col.type, String) else "0"
    return func.coalesce(col, literal_column(default))


def _marker_value(image: ImageRecord, key: str) -> Any:
    value = getattr(image, key)
    if value is None:
        return "" if isinstance(_i[key].type, String) else 0
    return value


def _visibility_clause(shape: _Shape) -> ColumnElement[bool] | None:
    """Glance's rule for which images a (non-admin) project may list."""
    if shape.admin:
        return None
    ors: list[ColumnElement[bool]] = [_i.visibility.in_(["public", "community"])]
    if shape.has_project:
        member = exists().where(_m.image_id == _i.id, _m.member == bindparam("project"))
        if not shape.member_status_all:
            member = member.where(_m.status == bindparam("member_status"))
        ors += [_i.owner == bindparam("project"), and_(_i.visibility == "shared", member)]
    return or_(*ors)


@functools.lru_cache(maxsize=512)  # many sort combinations are possible
def _images_query(shape: _Shape) -> Select[Any]:
    stmt = select(*IMAGE_COLUMNS).where(_i.deleted == 0)
    seen = _visibility_clause(shape)
    if seen is not None:
        stmt = stmt.where(seen)
    if shape.visibility == "one":
        stmt = stmt.where(_i.visibility == bindparam("visibility"))
    elif shape.visibility is None:
        # Community images are listed only when asked for, or to their owner.
        if shape.has_project:
            stmt = stmt.where(or_(_i.owner == bindparam("project"),
                                  _i.visibility != "community"))
        else:
            stmt = stmt.where(_i.visibility != "community")
    for f in shape.filters:
        if f == "size_min":
            stmt = stmt.where(_i.size >= bindparam("size_min", type_=BigInteger))
        elif f == "size_max":
            stmt = stmt.where(_i.size <= bindparam("size_max", type_=BigInteger))
        else:
            stmt = stmt.where(_i[f] == bindparam(f))
    for n in range(shape.n_tags):
        stmt = stmt.where(exists().where(_t.image_id == _i.id,
                                         _t.value == bindparam(f"tag{n}", type_=String)))
    for n in range(shape.n_props):
        stmt = stmt.where(exists().where(
            _pr.image_id == _i.id, _pr.name == bindparam(f"pname{n}", type_=String),
            _pr.value == bindparam(f"pvalue{n}", type_=Text)))
    if shape.has_marker:
        # Rows strictly after the marker in the sort order (Glance's pagination).
        ors = []
        for n, (key, direction) in enumerate(shape.sort):
            ands = [_sort_expr(k) == bindparam(f"mark{j}", type_=_i[k].type)
                    for j, (k, _) in enumerate(shape.sort[:n])]
            mark = bindparam(f"mark{n}", type_=_i[key].type)
            expr = _sort_expr(key)
            ands.append(expr > mark if direction == "asc" else expr < mark)
            ors.append(and_(*ands))
        stmt = stmt.where(or_(*ors))
    stmt = stmt.order_by(*[asc(_sort_expr(k)) if d == "asc" else desc(_sort_expr(k))
                           for k, d in shape.sort])
    if shape.has_limit:
        stmt = stmt.limit(bindparam("limit", type_=Integer))
    return stmt


def _sort_spec(keys: Sequence[str], dirs: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """Keys and directions, with Glance's tie-breakers ``created_at`` and ``id``."""
    if not keys:
        keys = ["created_at"]
    if not dirs:
        dirs = ["desc"] * len(keys)
    elif len(dirs) == 1:
        dirs = list(dirs) * len(keys)
    if len(dirs) != len(keys):
        raise InvalidImageQuery("give one sort direction, or one per sort key")
    for k in keys:
        if k not in SORT_KEYS:
            raise InvalidImageQuery(f"invalid sort key {k!r}; valid: {', '.join(SORT_KEYS)}")
    for d in dirs:
        if d not in ("asc", "desc"):
            raise InvalidImageQuery(f"invalid sort direction {d!r}; valid: asc, desc")
    spec = list(zip(keys, dirs, strict=True))
    tie = dirs[0] if len(set(dirs)) == 1 else "desc"
    for k in ("created_at", "id"):
        if k not in keys:
            spec.append((k, tie))
    return tuple(spec)


def visible_without_members(image: ImageRecord, project_id: str | None,
                            is_admin: bool) -> bool | None:
    """Glance's visibility rule where it needs no member lookup; ``None`` if it does
    (a shared image and a project that does not own it)."""
    if is_admin or image.owner is None or image.visibility in ("public", "community"):
        return True
    if project_id is None:
        return False
    if image.owner == project_id:
        return True
    return None if image.visibility == "shared" else False


class ImageStore:
    """Store methods for images, their properties, tags and members."""

    db: Database

    async def create_image(
        self, *, id: str, owner: str | None, now: float, name: str | None = None,
        visibility: str = "shared", protected: bool = False, os_hidden: bool = False,
        disk_format: str | None = None, container_format: str | None = None,
        min_disk: int = 0, min_ram: int = 0, status: str = "queued",
        properties: Mapping[str, str | None] | None = None, tags: Iterable[str] = (),
    ) -> ImageRecord:
        """Register an image (``queued``: no data yet) with its properties and tags;
        ``DuplicateError`` if the id is taken."""
        _check(visibility, VISIBILITIES, "visibility")
        _check(status, STATUSES, "status")
        props = dict(properties or {})
        tag_set = sorted(set(tags))

        async def body(tx: Tx) -> ImageRecord:
            await tx.run(_INSERT_IMAGE, {
                "id": id, "name": name, "owner": owner, "status": status,
                "visibility": visibility, "protected": protected, "os_hidden": os_hidden,
                "disk_format": disk_format, "container_format": container_format,
                "size": None, "virtual_size": None, "checksum": None, "os_hash_algo": None,
                "os_hash_value": None, "min_disk": min_disk, "min_ram": min_ram,
                "location": None, "version": 0, "created_at": now, "updated_at": now,
                "deleted": 0})
            await tx.run(_INSERT_PROPERTY, [{"image_id": id, "name": k, "value": v}
                                            for k, v in props.items()])
            await tx.run(_INSERT_TAG, [{"image_id": id, "value": v} for v in tag_set])
            return await _image(tx, id)

        return await self.db.transact(body)

    async def get_image(self, image_id: str) -> ImageRecord:
        """A live image by id, whoever owns it; ``NotFound`` otherwise."""
        async def body(tx: Tx) -> ImageRecord:
            return await _image(tx, image_id)

        return await self.db.transact(body)

    async def get_visible_image(
        self, image_id: str, project_id: str | None, is_admin: bool
    ) -> ImageRecord:
        """A live image the project may see; ``NotFound`` if missing or not visible
        (Glance answers 404 for both, so as not to reveal an image exists)."""
        async def body(tx: Tx) -> ImageRecord:
            image = await _image(tx, image_id)
            if not await _visible(tx, image, project_id, is_admin):
                raise NotFound(f"image {image_id} not found")
            return image

        return await self.db.transact(body)

    async def image_visible_to(
        self, image: ImageRecord, project_id: str | None, is_admin: bool
    ) -> bool:
        """Whether a project may see (and boot from) an image, by Glance's rule."""
        answer = visible_without_members(image, project_id, is_admin)
        if answer is not None:
            return answer

        async def body(tx: Tx) -> bool:
            return await tx.scalar(_IS_MEMBER, {"id": image.id, "member": project_id}) \
                is not None

        return await self.db.transact(body)

    async def update_image(
        self, image_id: str, *, now: float, expected_version: int | None = None,
        name: str | Keep | None = KEEP, owner: str | Keep | None = KEEP,
        visibility: str | Keep = KEEP, protected: bool | Keep = KEEP,
        os_hidden: bool | Keep = KEEP, disk_format: str | Keep | None = KEEP,
        container_format: str | Keep | None = KEEP, min_disk: int | Keep = KEEP,
        min_ram: int | Keep = KEEP, set_properties: Mapping[str, str | None] | None = None,
        remove_properties: Iterable[str] = (),
    ) -> ImageRecord:
        """Change the given fields and properties of an image.

        With ``expected_version``, ``ConflictError`` unless the image is still at that
        version (the client's view is stale). Without it, a concurrent update is
        retried on a fresh read.
        """
        if not isinstance(visibility, Keep):
            _check(visibility, VISIBILITIES, "visibility")
        props = dict(set_properties or {})
        removed = sorted(set(remove_properties) | set(props))

        async def body(tx: Tx) -> ImageRecord:
            old = await _image(tx, image_id)
            version = old.version if expected_version is None else expected_version
            n = await tx.run(_UPDATE_IMAGE, {
                "iid": image_id, "expected_version": version, "now": now,
                "name": pick(name, old.name), "owner": pick(owner, old.owner),
                "visibility": pick(visibility, old.visibility),
                "protected": pick(protected, old.protected),
                "os_hidden": pick(os_hidden, old.os_hidden),
                "disk_format": pick(disk_format, old.disk_format),
                "container_format": pick(container_format, old.container_format),
                "min_disk": pick(min_disk, old.min_disk), "min_ram": pick(min_ram, old.min_ram)})
            if not n:
                raise ConflictError(f"image {image_id} changed (expected version {version})")
            if removed:
                await tx.run(_DELETE_PROPERTIES, {"id": image_id, "names": removed})
            await tx.run(_INSERT_PROPERTY, [{"image_id": image_id, "name": k, "value": v}
                                            for k, v in props.items()])
            return await _image(tx, image_id)

        return await self.db.transact(
            body, conflict_retries=0 if expected_version is not None else 3)

    async def set_image_status(
        self, image_id: str, status: str, *, now: float, expected_status: str | None = None
    ) -> ImageRecord:
        """Move an image to ``status`` (e.g. ``saving`` when an upload starts,
        ``deactivated``); with ``expected_status``, ``ConflictError`` unless it was in it."""
        _check(status, STATUSES, "status")
        stmt = _SET_STATUS if expected_status is None else _SET_STATUS_FROM

        async def body(tx: Tx) -> ImageRecord:
            n = await tx.run(stmt, {"iid": image_id, "status": status, "now": now,
                                    "expected_status": expected_status})
            if not n:
                old = await _image(tx, image_id)
                raise ConflictError(f"image {image_id} is {old.status}, not {expected_status}")
            return await _image(tx, image_id)

        return await self.db.transact(body)

    async def set_image_data(
        self, image_id: str, *, size: int, checksum: str, os_hash_algo: str,
        os_hash_value: str, location: str, now: float, virtual_size: int | None = None,
        status: str = "active", expected_status: str = "saving",
    ) -> ImageRecord:
        """Record an upload that finished: size, hashes, where the data is, and the new
        status; ``ConflictError`` unless the image was ``expected_status``."""
        _check(status, STATUSES, "status")

        async def body(tx: Tx) -> ImageRecord:
            n = await tx.run(_SET_DATA, {
                "iid": image_id, "expected_status": expected_status, "status": status,
                "size": size, "virtual_size": virtual_size, "checksum": checksum,
                "os_hash_algo": os_hash_algo, "os_hash_value": os_hash_value,
                "location": location, "now": now})
            if not n:
                old = await _image(tx, image_id)
                raise ConflictError(f"image {image_id} is {old.status}, not {expected_status}")
            return await _image(tx, image_id)

        return await self.db.transact(body)

    async def delete_image(self, image_id: str, now: float) -> ImageRecord:
        """Soft-delete an image and drop its members; ``ImageForbidden`` if protected.
        Returns the image as it was (its ``location`` is what to remove)."""
        async def body(tx: Tx) -> ImageRecord:
            image = await _image(tx, image_id)
            if image.protected:
                raise ImageForbidden(f"image {image_id} is protected and cannot be deleted")
            await tx.run(_DELETE_MEMBERS_OF, {"id": image_id})
            await tx.run(_DELETE_IMAGE, {"iid": image_id, "now": now})
            return image

        return await self.db.transact(body)

    async def list_images_visible_to(
        self, project_id: str | None, is_admin: bool, *, name: str | None = None,
        status: str | None = None, visibility: str | None = None, owner: str | None = None,
        member_status: str = "accepted", tags: Iterable[str] = (),
        properties: Mapping[str, str] | None = None, disk_format: str | None = None,
        container_format: str | None = None, size_min: int | None = None,
        size_max: int | None = None, os_hidden: bool | None = None,
        sort_keys: Sequence[str] = (), sort_dirs: Sequence[str] = (),
        marker: str | None = None, limit: int | None = None,
    ) -> list[ImageRecord]:
        """The images a project may list, as Glance lists them (see the module docstring).

        Filters are ANDed; ``tags`` and ``properties`` must all match. ``visibility``
        may also be ``all``; ``member_status`` also ``all``. Sorted by ``sort_keys``
        (``SORT_KEYS``; default newest first) with ``created_at`` and ``id`` as
        tie-breakers; ``marker`` is the last image of the previous page (``NotFound``
        if it is not visible).
        """
        if visibility is not None and visibility != "all":
            _check(visibility, VISIBILITIES, "visibility")
        if member_status != "all":
            _check(member_status, (*MEMBER_STATUSES,), "member status")
        given = {"name": name, "status": status, "owner": owner, "disk_format": disk_format,
                 "container_format": container_format, "size_min": size_min,
                 "size_max": size_max, "os_hidden": os_hidden}
        tag_list = sorted(set(tags))
        props = sorted((properties or {}).items())
        sort = _sort_spec(sort_keys, sort_dirs)
        shape = _Shape(is_admin, project_id is not None, member_status == "all",
                       visibility if visibility in (None, "all") else "one",
                       tuple(k for k, v in given.items() if v is not None), len(tag_list),
                       len(props), sort, marker is not None, limit is not None)
        stmt = _images_query(shape)
        params: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        params.update(project=project_id, member_status=member_status,
                      visibility=visibility, limit=limit)
        params.update({f"tag{n}": t for n, t in enumerate(tag_list)})
        for n, (k, v) in enumerate(props):
            params[f"pname{n}"], params[f"pvalue{n}"] = k, v

        async def body(tx: Tx) -> list[ImageRecord]:
            if marker is not None:
                mark = await _image(tx, marker)
                if not await _visible(tx, mark, project_id, is_admin):
                    raise NotFound(f"marker image {marker} not found")
                params.update({f"mark{n}": _marker_value(mark, k)
                               for n, (k, _) in enumerate(sort)})
            return await _with_details(tx, await tx.rows(stmt, params))

        return await self.db.transact(body)

    # -- members ----------------------------------------------------------------------

    async def add_image_member(self, image_id: str, member: str, now: float) -> ImageMemberRecord:
        """Share an image with a project (status ``pending``). ``ImageForbidden`` unless
        the image is ``shared``; ``DuplicateError`` if it already is a member."""
        async def body(tx: Tx) -> ImageMemberRecord:
            image = await _image(tx, image_id)
            if image.visibility != "shared":
                raise ImageForbidden(f"image {image_id} is {image.visibility}: only shared "
                                     "images have members")
            await tx.run(_INSERT_MEMBER, {"image_id": image_id, "member": member,
                                          "status": "pending", "created_at": now,
                                          "updated_at": now})
            return await _member(tx, image_id, member)

        return await self.db.transact(body)

    async def update_image_member_status(
        self, image_id: str, member: str, status: str, now: float
    ) -> ImageMemberRecord:
        """A member accepts or rejects (or resets to pending) a shared image."""
        _check(status, MEMBER_STATUSES, "member status")

        async def body(tx: Tx) -> ImageMemberRecord:
            n = await tx.run(_SET_MEMBER_STATUS, {"iid": image_id, "mem": member,
                                                  "status": status, "now": now})
            if not n:
                raise NotFound(f"member {member} of image {image_id} not found")
            return await _member(tx, image_id, member)

        return await self.db.transact(body)

    async def get_image_member(self, image_id: str, member: str) -> ImageMemberRecord:
        """One member of an image; ``NotFound`` otherwise."""
        async def body(tx: Tx) -> ImageMemberRecord:
            return await _member(tx, image_id, member)

        return await self.db.transact(body)

    async def list_image_members(self, image_id: str) -> list[ImageMemberRecord]:
        """The projects a live image is shared with, in the order they were added."""
        async def body(tx: Tx) -> list[Row]:
            await _image(tx, image_id)
            return await tx.rows(_MEMBERS_OF, {"id": image_id})

        return [ImageMemberRecord.from_row(r) for r in await self.db.transact(body)]

    async def delete_image_member(self, image_id: str, member: str) -> None:
        """Stop sharing an image with a project; ``NotFound`` if it was not a member."""
        async def body(tx: Tx) -> int:
            return await tx.run(_DELETE_MEMBER, {"id": image_id, "member": member})

        if not await self.db.transact(body):
            raise NotFound(f"member {member} of image {image_id} not found")

    # -- tags -------------------------------------------------------------------------

    async def add_image_tag(self, image_id: str, tag: str, now: float) -> None:
        """Tag an image; tagging it again with the same tag changes nothing."""
        async def body(tx: Tx) -> None:
            await _image(tx, image_id)
            if await tx.scalar(_HAS_TAG, {"id": image_id, "tag": tag}) is None:
                await tx.run(_INSERT_TAG, {"image_id": image_id, "value": tag})
                await tx.run(_TOUCH_IMAGE, {"iid": image_id, "now": now})

        try:
            await self.db.transact(body)
        except DuplicateError:
            pass  # tagged concurrently with the same tag: the same outcome

    async def remove_image_tag(self, image_id: str, tag: str, now: float) -> None:
        """Remove a tag; ``NotFound`` if the image does not have it."""
        async def body(tx: Tx) -> None:
            await _image(tx, image_id)
            if not await tx.run(_DELETE_TAG, {"id": image_id, "tag": tag}):
                raise NotFound(f"tag {tag!r} of image {image_id} not found")
            await tx.run(_TOUCH_IMAGE, {"iid": image_id, "now": now})

        await self.db.transact(body)


def _check(value: str, valid: Sequence[str], what: str) -> None:
    if value not in valid:
        raise InvalidImageQuery(f"invalid {what} {value!r}; valid: {', '.join(valid)}")


async def _with_details(tx: Tx, rows: list[Row]) -> list[ImageRecord]:
    """Image records for rows of ``IMAGE_COLUMNS``, with properties and tags (2 queries)."""
    if not rows:
        return []
    ids = [r[0] for r in rows]
    props: dict[str, dict[str, str | None]] = {i: {} for i in ids}
    tags: dict[str, list[str]] = {i: [] for i in ids}
    for image_id, pname, value in await tx.rows(_PROPERTIES_OF, {"ids": ids}):
        props[image_id][pname] = value
    for image_id, value in await tx.rows(_TAGS_OF, {"ids": ids}):
        tags[image_id].append(value)
    return [ImageRecord.from_row(r, props[r[0]], tags[r[0]]) for r in rows]


async def _image(tx: Tx, image_id: str) -> ImageRecord:
    row = await tx.one(_IMAGE_BY_ID, {"id": image_id})
    if row is None:
        raise NotFound(f"image {image_id} not found")
    return (await _with_details(tx, [row]))[0]


async def _visible(tx: Tx, image: ImageRecord, project_id: str | None, is_admin: bool) -> bool:
    answer = visible_without_members(image, project_id, is_admin)
    if answer is not None:
        return answer
    return await tx.scalar(_IS_MEMBER, {"id": image.id, "member": project_id}) is not None


async def _member(tx: Tx, image_id: str, member: str) -> ImageMemberRecord:
    row = await tx.one(_MEMBER, {"id": image_id, "member": member})
    if row is None:
        raise NotFound(f"member {member} of image {image_id} not found")
    return ImageMemberRecord.from_row(row)
