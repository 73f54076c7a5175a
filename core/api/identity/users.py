"""``/v3/users``: list, create, show, update, delete, and a user's own password change.

An admin sets passwords with ``PATCH``; a user changes their own with
``POST /v3/users/{id}/password``, which needs the old password rather than a
token (Keystone's way, so an expired password can still be changed). Either
revokes the user's tokens. Passwords are hashed off the event loop
(:mod:`nimbus.core.identity.passwords`) and never shown.
"""

from __future__ import annotations

from typing import Any

from nimbus.core.api.http import Response
from nimbus.core.api.identity.projects import default_domain
from nimbus.core.api.identity.views import user_view
from nimbus.core.api.identity.wire import (
    IdentityRequest,
    collection,
    conflict,
    json_response,
    name_field,
    no_content,
    not_found,
)
from nimbus.core.db.identity_schema import UserRecord
from nimbus.core.db.meta import KEEP
from nimbus.core.errors import DuplicateError, NotFound
from nimbus.core.identity.authbody import MAX_PASSWORD_LENGTH, invalid, member
from nimbus.core.identity.bootstrap import keystone_id
from nimbus.core.identity.tokens import Unauthorized

#: The attributes of a user the Store has columns for (or that cannot be set).
_KNOWN = frozenset({"id", "name", "domain_id", "password", "enabled", "default_project_id",
                    "email", "options", "links", "password_expires_at"})

#: User names may be longer than project names in Keystone.
_USER_NAME_LENGTH = 255


def _password(data: dict[str, Any], key: str = "password") -> str | None:
    password: str | None = member(data, key, "user", str, required=False)
    if password is not None and len(password) > MAX_PASSWORD_LENGTH:
        raise invalid(f"user/{key}", "too long")
    return password


def _extra(data: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    return {**old, **{k: v for k, v in data.items() if k not in _KNOWN}}


async def get_user(ireq: IdentityRequest, user_id: str) -> UserRecord:
    """A user, or Keystone's 404."""
    try:
        return await ireq.logic.store.get_user(user_id)
    except NotFound:
        raise not_found("user", user_id) from None


async def list_users(ireq: IdentityRequest) -> Response:
    """``GET /v3/users``: filtered by ``name``, ``domain_id``, ``enabled``."""
    await ireq.authorize("list_users")
    found = await ireq.logic.store.list_users(
        name=ireq.query("name"), domain_id=ireq.query("domain_id"),
        enabled=ireq.bool_filter("enabled"))
    return json_response(collection([user_view(ireq.v3, u) for u in found], "users",
                                    f"{ireq.v3}/users"))


async def create_user(ireq: IdentityRequest) -> Response:
    """``POST /v3/users``: 201 with the user; 409 if the name is taken in the domain."""
    caller = await ireq.authorize("create_user")
    data = ireq.body("user")
    name = name_field(data, "user", required=True, max_length=_USER_NAME_LENGTH) or ""
    domain_id = member(data, "domain_id", "user", str, required=False) \
        or default_domain(caller)
    password = _password(data)
    enabled = member(data, "enabled", "user", bool, required=False)
    default_project_id = member(data, "default_project_id", "user", str, required=False)
    email = member(data, "email", "user", str, required=False)
    store = ireq.logic.store
    try:
        await store.get_domain(domain_id)
    except NotFound:
        raise invalid("user/domain_id", f"domain {domain_id} does not exist") from None
    hashed = None if password is None else await ireq.logic.passwords.hash(password)
    try:
        user = await store.create_user(
            id=keystone_id(ireq.ctx.runtime), name=name, domain_id=domain_id,
            now=ireq.ctx.runtime.wall_time(), password_hash=hashed,
            enabled=True if enabled is None else enabled,
            default_project_id=default_project_id, email=email, extra=_extra(data, {}))
    except DuplicateError:
        raise conflict("user", f"Duplicate entry found with name {name} at domain ID "
                               f"{domain_id}") from None
    return json_response({"user": user_view(ireq.v3, user)}, 201)


async def show_user(ireq: IdentityRequest) -> Response:
    """``GET /v3/users/{user_id}``: for an admin or the user themself."""
    user_id = ireq.param("user_id")
    await ireq.authorize("get_user", {"user_id": user_id})
    return json_response({"user": user_view(ireq.v3, await get_user(ireq, user_id))})


async def update_user(ireq: IdentityRequest) -> Response:
    """``PATCH /v3/users/{user_id}``: name, password, enabled, default project, email,
    extras. A new password or disabling the user revokes their tokens."""
    await ireq.authorize("update_user", {"user_id": ireq.param("user_id")})
    data = ireq.body("user")
    old = await get_user(ireq, ireq.param("user_id"))
    domain_id = member(data, "domain_id", "user", str, required=False)
    if domain_id is not None and domain_id != old.domain_id:
        raise invalid("user/domain_id", "a user cannot move to another domain")
    name = name_field(data, "user", required=False, max_length=_USER_NAME_LENGTH)
    enabled = member(data, "enabled", "user", bool, required=False)
    password = _password(data)
    member(data, "default_project_id", "user", str, required=False)
    member(data, "email", "user", str, required=False)
    try:
        user = await ireq.logic.store.update_user(
            old.id, now=ireq.ctx.runtime.wall_time(), name=KEEP if name is None else name,
            enabled=KEEP if enabled is None else enabled,
            default_project_id=data.get("default_project_id", KEEP),
            email=data.get("email", KEEP), extra=_extra(data, old.extra))
        if "password" in data:
            user = await ireq.logic.set_password(old.id, password)  # revokes their tokens
        elif old.enabled and not user.enabled:
            await ireq.logic.revoke_user_tokens(old.id)
    except DuplicateError:
        raise conflict("user", f"Duplicate entry found with name {name} at domain ID "
                               f"{old.domain_id}") from None
    except NotFound:
        raise not_found("user", old.id) from None
    return json_response({"user": user_view(ireq.v3, user)})


async def delete_user(ireq: IdentityRequest) -> Response:
    """``DELETE /v3/users/{user_id}``: 204, with their role assignments."""
    user_id = ireq.param("user_id")
    await ireq.authorize("delete_user", {"user_id": user_id})
    try:
        await ireq.logic.store.delete_user(user_id)
    except NotFound:
        raise not_found("user", user_id) from None
    return no_content()


async def change_password(ireq: IdentityRequest) -> Response:
    """``POST /v3/users/{user_id}/password``: ``{"user": {"password", "original_password"}}``;
    204, or 401 if the original password is wrong."""
    data = ireq.body("user")
    original = _password(data, "original_password")
    new = _password(data)
    if original is None:
        raise invalid("user/original_password", "it is required")
    if new is None:
        raise invalid("user/password", "it is required")
    try:
        user = await ireq.logic.store.get_user(ireq.param("user_id"))
    except NotFound:
        await ireq.logic.passwords.burn(original)  # as slow as a wrong password
        raise Unauthorized("password change for an unknown user") from None
    if not user.enabled or not await ireq.logic.password_matches(user, original):
        raise Unauthorized(f"wrong original password for user {user.id}")
    await ireq.logic.set_password(user.id, new)
    return no_content()
