"""``/v2/images/{image_id}/members``: share an image with projects, and answer a share.

Only ``shared`` images have members. Policy rules decide who does what
(``add_member``, ``delete_member``, ``get_member(s)``, ``modify_member``): by
default the owner (or an admin) adds and removes members, and each member
answers for itself, setting its status to ``accepted``, ``rejected`` or back to
``pending`` (the body may carry more keys: the CLI also sends ``member``). The
owner sees every member; a member sees only itself (Glance's database filter),
so another project's membership is a 404.
"""

from __future__ import annotations

from nimbus.core.api.http import Response
from nimbus.core.api.image.images import authorize, find_image
from nimbus.core.api.image.views import member_view, members_view
from nimbus.core.api.image.wire import (
    ImageEnv,
    ImageRequest,
    image_target,
    json_response,
    no_content,
)
from nimbus.core.db.image_members import ImageMemberRecord
from nimbus.core.db.images import MEMBER_STATUSES, PROJECT_LEN, ImageRecord
from nimbus.core.errors import DuplicateError, NotFound
from nimbus.core.image.errors import (
    GlanceError,
    bad_request,
    conflict,
    forbidden,
    not_found,
    too_large,
)
from nimbus.core.image.visibility import is_owner


def _sees_all_members(env: ImageEnv, ireq: ImageRequest, image: ImageRecord) -> bool:
    return is_owner(ireq.ctx, image) or env.sees_all(ireq.ctx)


def _member_not_found(member_id: str, image_id: str) -> GlanceError:
    return not_found(f"{member_id} not found in the member list of the image {image_id}.")


async def _member(env: ImageEnv, ireq: ImageRequest, image: ImageRecord) -> ImageMemberRecord:
    """The member of the URL, if the caller may see it; Glance's 404 otherwise."""
    member_id = ireq.param("member_id")
    if not (member_id == ireq.ctx.project_id or _sees_all_members(env, ireq, image)):
        raise _member_not_found(member_id, image.id)
    try:
        return await env.store.get_image_member(image.id, member_id)
    except NotFound:
        raise _member_not_found(member_id, image.id) from None


async def _shared_image(env: ImageEnv, ireq: ImageRequest, action: str,
                        refusal: str) -> ImageRecord:
    """The image of the URL if the caller sees it (404), may do ``action`` on it (403)
    and it is shared (403 ``refusal``)."""
    image_id = ireq.param("image_id")
    image = await find_image(env, ireq, f"Image {image_id} not found.")
    authorize(env, ireq, action, image)
    if image.visibility != "shared":
        raise forbidden(refusal)
    return image


async def add_member(env: ImageEnv, ireq: ImageRequest) -> Response:
    """``POST /v2/images/{image_id}/members`` ``{"member": "<project id>"}`` (200)."""
    data = ireq.body()
    if not isinstance(data, dict):
        raise bad_request('Expected a member in the form: {"member": "image_id"}')
    if "member" not in data:
        raise bad_request("Member to be added not specified")
    member_id = data["member"]
    if not member_id:
        raise bad_request("Member can't be empty")
    if not isinstance(member_id, str) or len(member_id) > PROJECT_LEN:
        raise bad_request('Expected a member in the form: {"member": "image_id"}')
    image_id = ireq.param("image_id")
    await _shared_image(env, ireq, "add_member",
                        f"Not allowed to create members for image {image_id}.")
    quota = env.config.image_member_quota
    count = len(await env.store.list_image_members(image_id))
    if count + 1 > quota:
        raise too_large(f"Image member limit exceeded for image {image_id}: The limit has "
                        "been exceeded on the number of allowed image members for this "
                        f"image. Attempted: {count + 1}, Maximum: {quota}:")
    try:
        member = await env.store.add_image_member(image_id, member_id,
                                                  env.runtime.wall_time())
    except DuplicateError:
        raise conflict(f"Member {member_id} is duplicated for image {image_id}") from None
    return json_response(member_view(member))


async def list_members(env: ImageEnv, ireq: ImageRequest) -> Response:
    """``GET /v2/images/{image_id}/members``: every member to the owner, itself to a member."""
    image_id = ireq.param("image_id")
    image = await _shared_image(env, ireq, "get_members", f"Not allowed to list members "
                                f"for image {image_id}: Only shared images have members.")
    members = await env.store.list_image_members(image_id)
    if not _sees_all_members(env, ireq, image):
        members = [m for m in members if m.member == ireq.ctx.project_id]
    return json_response(members_view(members))


async def show_member(env: ImageEnv, ireq: ImageRequest) -> Response:
    """``GET /v2/images/{image_id}/members/{member_id}``."""
    image_id = ireq.param("image_id")
    image = await find_image(env, ireq, f"Image {image_id} not found.")
    authorize(env, ireq, "get_member", image)
    if image.visibility != "shared":
        raise not_found("Only shared images have members.")
    return json_response(member_view(await _member(env, ireq, image)))


async def update_member(env: ImageEnv, ireq: ImageRequest) -> Response:
    """``PUT /v2/images/{image_id}/members/{member_id}`` ``{"status": ...}``: a member
    answers for itself (200)."""
    data = ireq.body()
    if not isinstance(data, dict):
        raise bad_request('Expected a status in the form: {"status": "status"}')
    if "status" not in data:
        raise bad_request("Status not specified")
    status = data["status"]
    image_id = ireq.param("image_id")
    image = await find_image(env, ireq, f"Image {image_id} not found.")
    if image.visibility != "shared":
        raise forbidden(f"Not allowed to update members for image {image_id}.")
    member = await _member(env, ireq, image)
    env.authorize("modify_member", ireq.ctx, image_target(image, member.member))
    if status not in MEMBER_STATUSES:
        raise bad_request('Incorrect request: Status must be "pending", "accepted" or '
                          '"rejected".')
    try:
        member = await env.store.update_image_member_status(
            image_id, member.member, status, env.runtime.wall_time())
    except NotFound:
        raise _member_not_found(member.member, image_id) from None
    return json_response(member_view(member))


async def delete_member(env: ImageEnv, ireq: ImageRequest) -> Response:
    """``DELETE /v2/images/{image_id}/members/{member_id}`` (204, owner or admin)."""
    image_id = ireq.param("image_id")
    image = await _shared_image(env, ireq, "delete_member",
                                f"Not allowed to delete members for image {image_id}.")
    member = await _member(env, ireq, image)
    try:
        await env.store.delete_image_member(image_id, member.member)
    except NotFound:
        raise _member_not_found(member.member, image_id) from None
    return no_content()
