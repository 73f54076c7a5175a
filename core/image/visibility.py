"""Who may see, change and share an image: Glance v2's rules as plain functions.

Seeing (show, download, boot): an admin sees every image; everyone sees
``public`` and ``community`` images and images without an owner; a project
sees its own images, and a ``shared`` image it is a member of, whatever its
member status (pending and rejected members may still show and boot it; they
only do not get it in listings). A ``private`` image is its owner's alone,
even if member rows remain from when it was shared. *Listing* is narrower, and
done by the Store (:mod:`nimbus.core.db.image_listing`).

Changing (update, upload, delete, tags, members) needs the ``member`` role in
the owning project, or ``admin`` (Glance's secure-RBAC defaults).
"""

from __future__ import annotations

from nimbus.core.context import MEMBER, RequestContext
from nimbus.core.db.image_members import ImageMemberRecord
from nimbus.core.db.images import ImageRecord
from nimbus.core.db.store import Store
from nimbus.core.errors import NotFound


def can_see(ctx: RequestContext, image: ImageRecord,
            membership: ImageMemberRecord | None) -> bool:
    """Whether ``ctx``'s project may see (show, download, boot) ``image``.

    ``membership`` is the project's member record of the image (any status), or
    None if it has none; :func:`membership_of` looks it up.
    """
    if ctx.is_admin or image.owner is None or image.visibility in ("public", "community"):
        return True
    if image.owner == ctx.project_id:
        return True
    return (image.visibility == "shared" and membership is not None
            and membership.member == ctx.project_id and membership.image_id == image.id)


async def membership_of(store: Store, ctx: RequestContext,
                        image: ImageRecord) -> ImageMemberRecord | None:
    """The member record of ``ctx``'s project for ``image``, None if it has none (looked
    up only where it can matter: a shared image of another project)."""
    if image.visibility != "shared" or image.owner == ctx.project_id or ctx.is_admin:
        return None
    try:
        return await store.get_image_member(image.id, ctx.project_id)
    except NotFound:
        return None


async def visible_image(store: Store, ctx: RequestContext, image_id: str) -> ImageRecord:
    """The image if ``ctx`` may see it; ``NotFound`` if it is missing or not visible
    (the two look the same, so that nobody learns an image exists)."""
    image = await store.get_image(image_id)
    if not can_see(ctx, image, await membership_of(store, ctx, image)):
        raise NotFound(f"image {image_id} not found")
    return image


def is_owner(ctx: RequestContext, image: ImageRecord) -> bool:
    """Whether ``ctx``'s project owns ``image``."""
    return image.owner is not None and image.owner == ctx.project_id


def may_modify(ctx: RequestContext, image: ImageRecord) -> bool:
    """Whether ``ctx`` may change ``image`` (Glance's ``modify_image``, ``upload_image``,
    ``delete_image``, ``add_member``: admin, or a member of the owning project)."""
    return ctx.is_admin or (is_owner(ctx, image) and MEMBER in ctx.roles)
