"""Which images a project may see and list (Glance v2's rules).

Who sees an image is exactly Glance's rule (:func:`visible_without_members` and
:meth:`ImageListingStore.image_visible_to`): admins see every image; ``public``
and ``community`` images are visible to everyone; a ``shared`` image to its
owner and to the projects it is shared with, whatever their member status; a
``private`` image only to its owner; an image without owner to everyone.
*Listing* is narrower, as in Glance: community images are listed only to their
owner or when ``visibility=community`` is asked, and shared images only to
members whose status is ``member_status`` (``accepted`` unless asked).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    String,
    Text,
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

from nimbus.core.db.area import StoreArea
from nimbus.core.db.database import Tx
from nimbus.core.db.images import (
    IMAGE_COLUMNS,
    MEMBER_STATUSES,
    SORT_KEYS,
    VISIBILITIES,
    ImageRecord,
    InvalidImageQuery,
    check_choice,
    fetch_image,
    image_members,
    image_properties,
    image_tags,
    images,
    with_details,
)
from nimbus.core.errors import NotFound

_i = images.c
_m = image_members.c
_pr = image_properties.c
_t = image_tags.c
_IS_MEMBER = select(_m.id).where(_m.image_id == bindparam("id"),
                                 _m.member == bindparam("member"))


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


class ImageListingStore(StoreArea):
    """Store methods that find the images a project may see."""

    async def get_visible_image(
        self, image_id: str, project_id: str | None, is_admin: bool
    ) -> ImageRecord:
        """A live image the project may see; ``NotFound`` if missing or not visible
        (Glance answers 404 for both, so as not to reveal an image exists)."""
        async def body(tx: Tx) -> ImageRecord:
            image = await fetch_image(tx, image_id)
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
            check_choice(visibility, VISIBILITIES, "visibility")
        if member_status != "all":
            check_choice(member_status, (*MEMBER_STATUSES,), "member status")
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
                mark = await fetch_image(tx, marker)
                if not await _visible(tx, mark, project_id, is_admin):
                    raise NotFound(f"marker image {marker} not found")
                params.update({f"mark{n}": _marker_value(mark, k)
                               for n, (k, _) in enumerate(sort)})
            return await with_details(tx, await tx.rows(stmt, params))

        return await self.db.transact(body)


async def _visible(tx: Tx, image: ImageRecord, project_id: str | None, is_admin: bool) -> bool:
    answer = visible_without_members(image, project_id, is_admin)
    if answer is not None:
        return answer
    return await tx.scalar(_IS_MEMBER, {"id": image.id, "member": project_id}) is not None
