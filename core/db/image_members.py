"""Image members and tags (Glance v2): the projects a shared image is shared with,
and the tags of an image.

A member starts ``pending`` and accepts or rejects the image; only ``shared``
images have members. Tagging an image again with a tag it has changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, select

from nimbus.core.db.area import StoreArea, found
from nimbus.core.db.database import Row, Tx
from nimbus.core.db.images import (
    MEMBER_STATUSES,
    ImageForbidden,
    check_choice,
    fetch_image,
    image_members,
    image_tags,
    images,
)
from nimbus.core.errors import DuplicateError, NotFound


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
_t = image_tags.c
_i = images.c

# -- statements, built once --------------------------------------------------------
_INSERT_TAG = image_tags.insert()
_INSERT_MEMBER = image_members.insert()
_MEMBER = select(*MEMBER_COLUMNS).where(_m.image_id == bindparam("id"),
                                        _m.member == bindparam("member"))
_MEMBERS_OF = select(*MEMBER_COLUMNS).where(_m.image_id == bindparam("id")).order_by(_m.id)
_SET_MEMBER_STATUS = (image_members.update()
                      .where(_m.image_id == bindparam("iid"), _m.member == bindparam("mem"))
                      .values(status=bindparam("status"), updated_at=bindparam("now")))
_DELETE_MEMBER = image_members.delete().where(_m.image_id == bindparam("id"),
                                              _m.member == bindparam("member"))

_HAS_TAG = select(_t.id).where(_t.image_id == bindparam("id"), _t.value == bindparam("tag"))
_DELETE_TAG = image_tags.delete().where(_t.image_id == bindparam("id"),
                                        _t.value == bindparam("tag"))
_TOUCH_IMAGE = (images.update().where(_i.id == bindparam("iid"), _i.deleted == 0)
                .values(version=_i.version + 1, updated_at=bindparam("now")))


class ImageMemberStore(StoreArea):
    """Store methods for the members and the tags of images."""

    # -- members ----------------------------------------------------------------------

    async def add_image_member(self, image_id: str, member: str, now: float) -> ImageMemberRecord:
        """Share an image with a project (status ``pending``). ``ImageForbidden`` unless
        the image is ``shared``; ``DuplicateError`` if it already is a member."""
        async def body(tx: Tx) -> ImageMemberRecord:
            image = await fetch_image(tx, image_id)
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
        check_choice(status, MEMBER_STATUSES, "member status")

        async def body(tx: Tx) -> ImageMemberRecord:
            n = await tx.run(_SET_MEMBER_STATUS, {"iid": image_id, "mem": member,
                                                  "status": status, "now": now})
            if not n:
                raise NotFound(f"member {member} of image {image_id} not found")
            return await _member(tx, image_id, member)

        return await self.db.transact(body)

    async def get_image_member(self, image_id: str, member: str) -> ImageMemberRecord:
        """One member of an image; ``NotFound`` otherwise."""
        return await self.db.transact(lambda tx: _member(tx, image_id, member))

    async def list_image_members(self, image_id: str) -> list[ImageMemberRecord]:
        """The projects a live image is shared with, in the order they were added."""
        async def body(tx: Tx) -> list[Row]:
            await fetch_image(tx, image_id)
            return await tx.rows(_MEMBERS_OF, {"id": image_id})

        return [ImageMemberRecord.from_row(r) for r in await self.db.transact(body)]

    async def delete_image_member(self, image_id: str, member: str) -> None:
        """Stop sharing an image with a project; ``NotFound`` if it was not a member."""
        if not await self._run(_DELETE_MEMBER, {"id": image_id, "member": member}):
            raise NotFound(f"member {member} of image {image_id} not found")

    # -- tags -------------------------------------------------------------------------

    async def add_image_tag(self, image_id: str, tag: str, now: float) -> None:
        """Tag an image; tagging it again with the same tag changes nothing."""
        async def body(tx: Tx) -> None:
            await fetch_image(tx, image_id)
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
            await fetch_image(tx, image_id)
            if not await tx.run(_DELETE_TAG, {"id": image_id, "tag": tag}):
                raise NotFound(f"tag {tag!r} of image {image_id} not found")
            await tx.run(_TOUCH_IMAGE, {"iid": image_id, "now": now})

        await self.db.transact(body)


async def _member(tx: Tx, image_id: str, member: str) -> ImageMemberRecord:
    row = await found(tx, _MEMBER, {"id": image_id, "member": member},
                      f"member {member} of image {image_id} not found")
    return ImageMemberRecord.from_row(row)
