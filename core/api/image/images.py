"""``/v2/images``: create, show, update, delete, deactivate and reactivate, tags.

The checks and their answers are Glance's (``glance/api/v2/images.py`` and its
policies with secure-RBAC defaults): an image the caller may not see is a 404
whatever the action; then the action's policy rule (``get_image``,
``modify_image``, ...; see :mod:`nimbus.core.policy`) decides, a refusal being
a 403 naming the rule. By default the owner (with the ``member`` role) or an
admin changes an image, and only an admin makes it public or (de)activates it.
Listing is :mod:`nimbus.core.api.image.listing`.
"""

from __future__ import annotations

from typing import Any

from nimbus.core.api.http import Response
from nimbus.core.api.image.views import image_href, image_view
from nimbus.core.api.image.wire import (
    ImageEnv,
    ImageRequest,
    image_target,
    json_response,
    no_content,
)
from nimbus.core.db.images import ImageRecord
from nimbus.core.errors import ConflictError, DuplicateError, NotFound
from nimbus.core.image import data
from nimbus.core.image.errors import (
    GlanceError,
    bad_request,
    conflict,
    denied,
    forbidden,
    forbidden_detail,
    image_not_found,
    not_found,
    too_large,
)
from nimbus.core.image.patch import (
    RESERVED,
    RESERVED_PREFIX,
    Allowed,
    apply_patch,
    check_owner,
    check_visibility_change,
    parse_patch,
    patch_media_type,
)
from nimbus.core.image.schema import validate_image
from nimbus.core.image.visibility import visible_image

#: Keys a create body may never carry (Glance's ``_disallowed_properties``).
_DISALLOWED = ("direct_url", "self", "file", "schema", "stores")
#: Base attributes that only the service writes (the image factory's read-only ones).
_READONLY = ("created_at", "updated_at", "status", "checksum", "os_hash_algo",
             "os_hash_value", "size", "virtual_size")
#: The base attributes of a create body; every other key is an extra property.
_BASE = ("id", "name", "visibility", "protected", "os_hidden", "container_format",
         "disk_format", "min_disk", "min_ram", "owner", "tags", *_READONLY)


async def find_image(env: ImageEnv, ireq: ImageRequest, message: str | None = None
                     ) -> ImageRecord:
    """The image of the URL if the caller may see it; Glance's 404 otherwise."""
    image_id = ireq.param("image_id")
    try:
        return await visible_image(env.store, ireq.ctx, image_id,
                                   admin=env.sees_all(ireq.ctx))
    except NotFound:
        raise (not_found(message) if message else image_not_found(image_id)) from None


def authorize(env: ImageEnv, ireq: ImageRequest, action: str, image: ImageRecord) -> None:
    """Glance's 403 unless the policy allows ``action`` on ``image`` (one it sees)."""
    env.authorize(action, ireq.ctx, image_target(image))


def allowed_on(env: ImageEnv, ireq: ImageRequest, target: dict[str, object]) -> Allowed:
    """The policy's answer for this caller and target, one action at a time."""
    return lambda action: env.allows(action, ireq.ctx, target)


def _quota_error(what: str, attempted: int, maximum: int) -> GlanceError:
    return too_large(f"The limit has been exceeded on the number of allowed image {what}. "
                     f"Attempted: {attempted}, Maximum: {maximum}")


async def create_image(env: ImageEnv, ireq: ImageRequest) -> Response:
    """``POST /v2/images``: a queued image with its extra string properties (201)."""
    body = ireq.object_body()
    for key in _DISALLOWED:
        if key in body:
            raise forbidden(f"Attribute '{key}' is read-only.")
    validate_image(body)
    base = {k: body.pop(k) for k in _BASE if k in body}
    extra: dict[str, str] = body
    for key in extra:
        if len(key) > 255:
            raise bad_request("Custom property should not be greater than 255 characters.")
        if key in RESERVED or key.startswith(RESERVED_PREFIX):
            raise forbidden_detail(f"Attribute '{key}' is reserved.")
    ctx = ireq.ctx
    for key in _READONLY:
        if key in base:
            raise forbidden(f"Attribute '{key}' is read-only.")
    owner = base.get("owner", ctx.project_id)
    check_owner(owner)
    visibility = base.get("visibility", "shared")
    target: dict[str, object] = {"project_id": owner, "visibility": visibility}
    if not env.allows("add_image", ctx, target):
        if owner != ctx.project_id:
            raise forbidden(f"You are not permitted to create images owned by '{owner}'.")
        raise denied("add_image")
    check_visibility_change(allowed_on(env, ireq, target), visibility)
    for key in ("min_disk", "min_ram"):
        if base.get(key, 0) < 0:
            raise bad_request(f"Invalid value '{base[key]}' for parameter '{key}': Cannot "
                              "be a negative value")
    cfg = env.config
    if len(extra) > cfg.image_property_quota:
        raise _quota_error("properties", len(extra), cfg.image_property_quota)
    tags = set(base.get("tags", ()))
    if len(tags) > cfg.image_tag_quota:
        raise _quota_error("tags", len(tags), cfg.image_tag_quota)
    image_id = base.get("id") or env.runtime.new_id()
    try:
        image = await env.store.create_image(
            id=image_id, owner=owner, now=env.runtime.wall_time(), name=base.get("name"),
            visibility=visibility,
            protected=base.get("protected", False), os_hidden=base.get("os_hidden", False),
            disk_format=base.get("disk_format"),
            container_format=base.get("container_format"),
            min_disk=base.get("min_disk", 0), min_ram=base.get("min_ram", 0),
            properties=extra, tags=tags)
    except DuplicateError:
        raise conflict(f"Image with identifier {image_id} already exists!") from None
    return json_response(image_view(image), 201, {"Location": image_href(image.id)})


async def show_image(env: ImageEnv, ireq: ImageRequest) -> Response:
    """``GET /v2/images/{image_id}``."""
    image = await find_image(env, ireq)
    authorize(env, ireq, "get_image", image)
    return json_response(image_view(image))


async def update_image(env: ImageEnv, ireq: ImageRequest) -> Response:
    """``PATCH /v2/images/{image_id}`` with a JSON-patch media type (200 with the image)."""
    draft = patch_media_type(ireq.request.header("content-type"))
    changes = parse_patch(ireq.body(), draft)
    image = await find_image(env, ireq)
    if not changes:
        authorize(env, ireq, "get_image", image)
        return json_response(image_view(image))
    authorize(env, ireq, "modify_image", image)
    cfg = env.config
    patch = apply_patch(allowed_on(env, ireq, image_target(image)), image, changes,
                        property_quota=cfg.image_property_quota,
                        tag_quota=cfg.image_tag_quota)
    now = env.runtime.wall_time()
    store = env.store
    try:
        if patch.fields or patch.set_properties or patch.remove_properties:
            fields: dict[str, Any] = patch.fields
            await store.update_image(
                image.id, now=now, expected_version=image.version, **fields,
                set_properties=patch.set_properties,
                remove_properties=patch.remove_properties)
        if patch.tags is not None:
            for tag in sorted(set(image.tags) - set(patch.tags)):
                await store.remove_image_tag(image.id, tag, now)
            for tag in sorted(set(patch.tags) - set(image.tags)):
                await store.add_image_tag(image.id, tag, now)
        image = await store.get_image(image.id)
    except ConflictError:
        raise conflict(f"Image {image.id} was changed by another request; read it again "
                       "and retry.") from None
    except NotFound:
        raise image_not_found(image.id) from None
    return json_response(image_view(image))


async def delete_image(env: ImageEnv, ireq: ImageRequest) -> Response:
    """``DELETE /v2/images/{image_id}`` (204); a protected image is a 403."""
    image_id = ireq.param("image_id")
    image = await find_image(env, ireq, f"Failed to find image {image_id} to delete")
    authorize(env, ireq, "delete_image", image)
    if image.protected:
        raise forbidden(f"Image {image_id} is protected and cannot be deleted.")
    try:
        gone = await env.store.delete_image(image_id, env.runtime.wall_time())
    except NotFound:
        raise not_found(f"Failed to find image {image_id} to delete") from None
    await data.delete_data(env.blobs, gone)
    return no_content()


async def _set_active(env: ImageEnv, ireq: ImageRequest, action: str, frm: str,
                      to: str) -> Response:
    image = await find_image(env, ireq)
    authorize(env, ireq, action, image)
    if image.status == to:
        return no_content()  # already there: Glance does nothing
    if image.status != frm:
        raise forbidden(f"Not allowed to {action} image in status '{image.status}'")
    try:
        await env.store.set_image_status(image.id, to, now=env.runtime.wall_time(),
                                         expected_status=frm)
    except ConflictError:
        raise conflict(f"Image status transition from {image.status} to {to} is not "
                       "allowed") from None
    return no_content()


async def deactivate_image(env: ImageEnv, ireq: ImageRequest) -> Response:
    """``POST /v2/images/{image_id}/actions/deactivate`` (204, admin)."""
    return await _set_active(env, ireq, "deactivate", "active", "deactivated")


async def reactivate_image(env: ImageEnv, ireq: ImageRequest) -> Response:
    """``POST /v2/images/{image_id}/actions/reactivate`` (204, admin)."""
    return await _set_active(env, ireq, "reactivate", "deactivated", "active")


async def add_tag(env: ImageEnv, ireq: ImageRequest) -> Response:
    """``PUT /v2/images/{image_id}/tags/{tag}`` (204; tagging twice changes nothing)."""
    tag = ireq.param("tag")
    validate_image({"tags": [tag]})
    image_id = ireq.param("image_id")
    image = await find_image(env, ireq, f"Image {image_id} not found.")
    authorize(env, ireq, "modify_image", image)
    quota = env.config.image_tag_quota
    if tag not in image.tags and len(image.tags) + 1 > quota:
        raise too_large(f"Image tag limit exceeded for image {image_id}: The limit has "
                        "been exceeded on the number of allowed image tags. Attempted: "
                        f"{len(image.tags) + 1}, Maximum: {quota}:")
    try:
        await env.store.add_image_tag(image_id, tag, env.runtime.wall_time())
    except NotFound:
        raise not_found(f"Image {image_id} not found.") from None
    return no_content()


async def remove_tag(env: ImageEnv, ireq: ImageRequest) -> Response:
    """``DELETE /v2/images/{image_id}/tags/{tag}`` (204; 404 if the image lacks it)."""
    tag = ireq.param("tag")
    image_id = ireq.param("image_id")
    image = await find_image(env, ireq, f"Image {image_id} not found.")
    authorize(env, ireq, "modify_image", image)
    try:
        await env.store.remove_image_tag(image_id, tag, env.runtime.wall_time())
    except NotFound:
        raise GlanceError(404) from None
    return no_content()
