"""Images (a Glance v2 subset): images and their properties, tags and members.

An image's ``id`` is its UUID (the primary key, given by the caller). Deleting
soft-deletes: ``status`` becomes ``deleted`` and ``deleted`` 1. Every update
bumps ``version``, and updates compare-and-swap on it.

This module declares the tables and writes images; who may see and list them
is in :mod:`nimbus.core.db.image_listing`, members and tags are in
:mod:`nimbus.core.db.image_members`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
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
    KEEP,
    NAME_LEN,
    UUID_LEN,
    Keep,
    flag,
    id_column,
    metadata,
    pick,
    soft_delete_columns,
    time_columns,
)
from nimbus.core.errors import ConflictError, Forbidden, InvalidInput

STATUSES = ("queued", "saving", "uploading", "importing", "active", "deactivated", "killed",
            "deleted")
VISIBILITIES = ("private", "shared", "public", "community")
MEMBER_STATUSES = ("pending", "accepted", "rejected")
#: The keys Glance lets a client sort by.
SORT_KEYS = ("name", "status", "container_format", "disk_format", "size", "id", "created_at",
             "updated_at")
PROJECT_LEN = 64


class ImageForbidden(Forbidden):
    """Glance refuses this on this image (deleting a protected image, members of an
    image that is not shared)."""


class InvalidImageQuery(InvalidInput):
    """A listing asked for an unknown sort key or direction, status or visibility."""


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
_m = image_members.c
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

_DELETE_MEMBERS_OF = image_members.delete().where(_m.image_id == bindparam("id"))


class ImageStore(StoreArea):
    """Store methods that create, change and delete images."""

    async def create_image(
        self, *, id: str, owner: str | None, now: float, name: str | None = None,
        visibility: str = "shared", protected: bool = False, os_hidden: bool = False,
        disk_format: str | None = None, container_format: str | None = None,
        min_disk: int = 0, min_ram: int = 0, status: str = "queued",
        properties: Mapping[str, str | None] | None = None, tags: Iterable[str] = (),
    ) -> ImageRecord:
        """Register an image (``queued``: no data yet) with its properties and tags;
        ``DuplicateError`` if the id is taken."""
        check_choice(visibility, VISIBILITIES, "visibility")
        check_choice(status, STATUSES, "status")
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
            return await fetch_image(tx, id)

        return await self.db.transact(body)

    async def get_image(self, image_id: str) -> ImageRecord:
        """A live image by id, whoever owns it; ``NotFound`` otherwise."""
        return await self.db.transact(lambda tx: fetch_image(tx, image_id))

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
            check_choice(visibility, VISIBILITIES, "visibility")
        props = dict(set_properties or {})
        removed = sorted(set(remove_properties) | set(props))

        async def body(tx: Tx) -> ImageRecord:
            old = await fetch_image(tx, image_id)
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
            return await fetch_image(tx, image_id)

        return await self.db.transact(
            body, conflict_retries=0 if expected_version is not None else 3)

    async def set_image_status(
        self, image_id: str, status: str, *, now: float, expected_status: str | None = None
    ) -> ImageRecord:
        """Move an image to ``status`` (e.g. ``saving`` when an upload starts,
        ``deactivated``); with ``expected_status``, ``ConflictError`` unless it was in it."""
        check_choice(status, STATUSES, "status")
        stmt = _SET_STATUS if expected_status is None else _SET_STATUS_FROM

        async def body(tx: Tx) -> ImageRecord:
            n = await tx.run(stmt, {"iid": image_id, "status": status, "now": now,
                                    "expected_status": expected_status})
            if not n:
                old = await fetch_image(tx, image_id)
                raise ConflictError(f"image {image_id} is {old.status}, not {expected_status}")
            return await fetch_image(tx, image_id)

        return await self.db.transact(body)

    async def set_image_data(
        self, image_id: str, *, size: int, checksum: str, os_hash_algo: str,
        os_hash_value: str, location: str, now: float, virtual_size: int | None = None,
        status: str = "active", expected_status: str = "saving",
    ) -> ImageRecord:
        """Record an upload that finished: size, hashes, where the data is, and the new
        status; ``ConflictError`` unless the image was ``expected_status``."""
        check_choice(status, STATUSES, "status")

        async def body(tx: Tx) -> ImageRecord:
            n = await tx.run(_SET_DATA, {
                "iid": image_id, "expected_status": expected_status, "status": status,
                "size": size, "virtual_size": virtual_size, "checksum": checksum,
                "os_hash_algo": os_hash_algo, "os_hash_value": os_hash_value,
                "location": location, "now": now})
            if not n:
                old = await fetch_image(tx, image_id)
                raise ConflictError(f"image {image_id} is {old.status}, not {expected_status}")
            return await fetch_image(tx, image_id)

        return await self.db.transact(body)

    async def delete_image(self, image_id: str, now: float) -> ImageRecord:
        """Soft-delete an image and drop its members; ``ImageForbidden`` if protected.
        Returns the image as it was (its ``location`` is what to remove)."""
        async def body(tx: Tx) -> ImageRecord:
            image = await fetch_image(tx, image_id)
            if image.protected:
                raise ImageForbidden(f"image {image_id} is protected and cannot be deleted")
            await tx.run(_DELETE_MEMBERS_OF, {"id": image_id})
            await tx.run(_DELETE_IMAGE, {"iid": image_id, "now": now})
            return image

        return await self.db.transact(body)


def check_choice(value: str, valid: Sequence[str], what: str) -> None:
    """``InvalidImageQuery`` unless ``value`` is one of ``valid`` (naming ``what``)."""
    if value not in valid:
        raise InvalidImageQuery(f"invalid {what} {value!r}; valid: {', '.join(valid)}")


async def with_details(tx: Tx, rows: list[Row]) -> list[ImageRecord]:
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


async def fetch_image(tx: Tx, image_id: str) -> ImageRecord:
    """Inside a transaction: a live image with its properties and tags; ``NotFound``
    otherwise."""
    row = await found(tx, _IMAGE_BY_ID, {"id": image_id}, f"image {image_id} not found")
    return (await with_details(tx, [row]))[0]
