"""Who may see, change and share an image: Glance v2's rules as plain functions.

Seeing (show, download, boot): an admin sees every image; everyone sees
``public`` and ``community`` images and images without an owner; a project
sees its own images, and a ``shared`` image it is a member of, whatever its
member status (pending and rejected members may still show and boot it; they
only do not get it in listings). A ``private`` image is its owner's alone,
even if member rows remain from when it was shared. *Listing* is narrower, and
done by the Store (:mod:`nimbus.core.db.image_listing`).

Who may *change* an image is the policy's business (``modify_image``,
``add_member``, ... in :mod:`nimbus.core.policy`). ``admin`` below is whether the
caller sees everything: the image API asks its policy (``context_is_admin``);
None falls back to the caller's ``admin`` role.
"""

from __future__ import annotations

from nimbus.core.context import RequestContext
from nimbus.core.db.image_members import ImageMemberRecord
from nimbus.core.db.images import ImageRecord
from nimbus.core.db.store import Store
from nimbus.core.errors import NotFound


def can_see(ctx: RequestContext, image: ImageRecord,
            membership: ImageMemberRecord | None, *, admin: bool | None = None) -> bool:
    """Whether ``ctx``'s project may see (show, download, boot) ``image``.

    ``membership`` is the project's member record of the image (any status), or
    None if it has none; :func:`membership_of` looks it up.
    """
    if admin is None:
        admin = ctx.is_admin
    if admin or image.owner is None or image.visibility in ("public", "community"):
        return True
    if image.owner == ctx.project_id:
        return True
    return (image.visibility == "shared" and membership is not None
            and membership.member == ctx.project_id and membership.image_id == image.id)


async def membership_of(store: Store, ctx: RequestContext, image: ImageRecord, *,
                        admin: bool | None = None) -> ImageMemberRecord | None:
    """The member record of ``ctx``'s project for ``image``, None if it has none (looked
    up only where it can matter: a shared image of another project)."""
    if admin is None:
        admin = ctx.is_admin
    if image.visibility != "shared" or image.owner == ctx.project_id or admin:
        return None
    try:
        return await store.get_image_member(image.id, ctx.project_id)
    except NotFound:
        return None


async def visible_image(store: Store, ctx: RequestContext, image_id: str, *,
                        admin: bool | None = None) -> ImageRecord:
    """The image if ``ctx`` may see it; ``NotFound`` if it is missing or not visible
    (the two look the same, so that nobody learns an image exists)."""
    image = await store.get_image(image_id)
    membership = await membership_of(store, ctx, image, admin=admin)
    if not can_see(ctx, image, membership, admin=admin):
        raise NotFound(f"image {image_id} not found")
    return image


def is_owner(ctx: RequestContext, image: ImageRecord) -> bool:
    """Whether ``ctx``'s project owns ``image``."""
    return image.owner is not None and image.owner == ctx.project_id

