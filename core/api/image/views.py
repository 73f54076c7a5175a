"""How images and members look on the wire (Glance's response serializers).

An image is a flat object: its extra properties first, then the base
attributes (nulls included), times in ISO 8601 with a ``Z``, and the relative
``self``, ``file`` and ``schema`` links Glance gives.
"""

from __future__ import annotations

import datetime
from typing import Any

from nimbus.core.db.image_members import ImageMemberRecord
from nimbus.core.db.images import ImageRecord

IMAGE_SCHEMA_HREF = "/v2/schemas/image"
IMAGES_SCHEMA_HREF = "/v2/schemas/images"
MEMBER_SCHEMA_HREF = "/v2/schemas/member"
MEMBERS_SCHEMA_HREF = "/v2/schemas/members"

#: The base attributes every image shows, in Glance's order.
_ATTRIBUTES = ("name", "disk_format", "container_format", "visibility", "size",
               "virtual_size", "status", "checksum", "protected", "min_ram", "min_disk",
               "owner", "os_hidden", "os_hash_algo", "os_hash_value")


def isotime(when: float | None) -> str | None:
    """Epoch seconds as Glance prints times (``2026-11-27T06:44:29Z``)."""
    if when is None:
        return None
    moment = datetime.datetime.fromtimestamp(when, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def image_href(image_id: str, sub: str = "") -> str:
    """``/v2/images/<id>`` (or a sub-resource of it), relative as Glance gives it."""
    return f"/v2/images/{image_id}/{sub}" if sub else f"/v2/images/{image_id}"


def image_view(image: ImageRecord) -> dict[str, Any]:
    """One image as Glance shows it."""
    view: dict[str, Any] = {k: v for k, v in image.properties.items() if v is not None}
    for key in _ATTRIBUTES:
        view[key] = getattr(image, key)
    view["id"] = image.id
    view["created_at"] = isotime(image.created_at)
    view["updated_at"] = isotime(image.updated_at)
    view["tags"] = list(image.tags)
    view["self"] = image_href(image.id)
    view["file"] = image_href(image.id, "file")
    view["schema"] = IMAGE_SCHEMA_HREF
    return view


def member_view(member: ImageMemberRecord) -> dict[str, Any]:
    """One image member as Glance shows it."""
    return {
        "member_id": member.member,
        "image_id": member.image_id,
        "status": member.status,
        "created_at": isotime(member.created_at),
        "updated_at": isotime(member.updated_at),
        "schema": MEMBER_SCHEMA_HREF,
    }


def members_view(members: list[ImageMemberRecord]) -> dict[str, Any]:
    """A member list as Glance shows it."""
    return {"members": [member_view(m) for m in members], "schema": MEMBERS_SCHEMA_HREF}
