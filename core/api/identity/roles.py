"""``/v3/roles``, project grants ``/v3/projects/{p}/users/{u}/roles/{r}``, and
``GET /v3/role_assignments``.

Roles are global, as Keystone's default roles are. A grant is idempotent
(``PUT`` answers 204 whether or not the user had the role); ``HEAD``/``GET``
check one (204 or 404). ``?effective`` lists implied roles too, ``?include_names``
adds the names of the role, user and project of each assignment.
"""

from __future__ import annotations

from typing import Any

from nimbus.core.api.http import Response
from nimbus.core.api.identity.projects import get_project
from nimbus.core.api.identity.users import get_user
from nimbus.core.api.identity.views import role_view
from nimbus.core.api.identity.wire import (
    IdentityRequest,
    collection,
    conflict,
    json_response,
    name_field,
    no_content,
    not_found,
)
from nimbus.core.db.identity_schema import RoleAssignmentRecord
from nimbus.core.db.roles import RoleRecord
from nimbus.core.errors import DuplicateError, NotFound
from nimbus.core.identity.authbody import invalid, member
from nimbus.core.identity.bootstrap import keystone_id
from nimbus.core.identity.service import expand_roles

_ROLE_NAME_LENGTH = 255


async def get_role(ireq: IdentityRequest, role_id: str) -> RoleRecord:
    """A role, or Keystone's 404."""
    try:
        return await ireq.logic.store.get_role(role_id)
    except NotFound:
        raise not_found("role", role_id) from None


async def list_roles(ireq: IdentityRequest) -> Response:
    """``GET /v3/roles``: every role, or the one named ``?name=``."""
    await ireq.authorize("list_roles")
    name = ireq.query("name")
    found = [r for r in await ireq.logic.store.list_roles() if name is None or r.name == name]
    return json_response(collection([role_view(ireq.v3, r) for r in found], "roles",
                                    f"{ireq.v3}/roles"))


async def create_role(ireq: IdentityRequest) -> Response:
    """``POST /v3/roles``: 201 with the role; 409 if the name is taken."""
    await ireq.authorize("create_role")
    data = ireq.body("role")
    name = name_field(data, "role", required=True, max_length=_ROLE_NAME_LENGTH) or ""
    description = member(data, "description", "role", str, required=False)
    try:
        role = await ireq.logic.store.create_role(
            id=keystone_id(ireq.ctx.runtime), name=name, now=ireq.ctx.runtime.wall_time(),
            description=description)
    except DuplicateError:
        raise conflict("role", f"Duplicate entry found with name {name}") from None
    return json_response({"role": role_view(ireq.v3, role)}, 201)


async def show_role(ireq: IdentityRequest) -> Response:
    """``GET /v3/roles/{role_id}``."""
    role_id = ireq.param("role_id")
    await ireq.authorize("get_role", {"role_id": role_id})
    return json_response({"role": role_view(ireq.v3, await get_role(ireq, role_id))})


async def delete_role(ireq: IdentityRequest) -> Response:
    """``DELETE /v3/roles/{role_id}``: 204, with every assignment of it."""
    role_id = ireq.param("role_id")
    await ireq.authorize("delete_role", {"role_id": role_id})
    try:
        await ireq.logic.store.delete_role(role_id)
    except NotFound:
        raise not_found("role", role_id) from None
    return no_content()


# -- grants on projects ----------------------------------------------------------------

async def _grant_parts(ireq: IdentityRequest, action: str) -> tuple[str, str, str]:
    """The project, user and role of a grant URL, each checked to exist (404 naming it)."""
    await ireq.authorize(action, {"project_id": ireq.param("project_id"),
                                  "user_id": ireq.param("user_id")})
    project = await get_project(ireq, ireq.param("project_id"))
    user = await get_user(ireq, ireq.param("user_id"))
    role = await get_role(ireq, ireq.param("role_id"))
    return project.id, user.id, role.id


async def grant_role(ireq: IdentityRequest) -> Response:
    """``PUT /v3/projects/{p}/users/{u}/roles/{r}``: 204 (also if already granted)."""
    project_id, user_id, role_id = await _grant_parts(ireq, "create_grant")
    try:
        await ireq.logic.store.assign_role(user_id=user_id, role_id=role_id,
                                           project_id=project_id,
                                           now=ireq.ctx.runtime.wall_time())
    except DuplicateError:
        pass  # granting twice is granting once
    return no_content()


async def check_grant(ireq: IdentityRequest) -> Response:
    """``HEAD``/``GET /v3/projects/{p}/users/{u}/roles/{r}``: 204 if granted, else 404."""
    project_id, user_id, role_id = await _grant_parts(ireq, "check_grant")
    if not await ireq.logic.store.list_role_assignments(user_id=user_id, project_id=project_id,
                                                        role_id=role_id):
        raise not_found("role assignment", f"role {role_id} of user {user_id} on project "
                                           f"{project_id}")
    return no_content()


async def revoke_grant(ireq: IdentityRequest) -> Response:
    """``DELETE /v3/projects/{p}/users/{u}/roles/{r}``: 204, or 404 if not granted."""
    project_id, user_id, role_id = await _grant_parts(ireq, "revoke_grant")
    try:
        await ireq.logic.store.unassign_role(user_id=user_id, role_id=role_id,
                                             project_id=project_id)
    except NotFound:
        raise not_found("role assignment", f"role {role_id} of user {user_id} on project "
                                           f"{project_id}") from None
    return no_content()


# -- listing assignments ---------------------------------------------------------------

async def list_assignments(ireq: IdentityRequest) -> Response:
    """``GET /v3/role_assignments``: filters ``user.id``, ``scope.project.id``,
    ``scope.domain.id``, ``role.id``; flags ``effective`` and ``include_names``. An admin
    may list anyone's; a user their own (``?user.id=<self>``)."""
    user_id = ireq.query("user.id")
    await ireq.authorize("list_role_assignments", {"user_id": user_id})
    project_id, domain_id = ireq.query("scope.project.id"), ireq.query("scope.domain.id")
    if project_id is not None and domain_id is not None:
        raise invalid("scope", "filter on a project or on a domain, not both")
    role_id = ireq.query("role.id")
    store = ireq.logic.store
    every_role = await store.list_roles()
    found = await store.list_role_assignments(user_id=user_id, project_id=project_id,
                                              domain_id=domain_id,
                                              role_id=None if ireq.flag("effective") else role_id)
    if ireq.flag("effective"):
        found = _effective(found, every_role)
        if role_id is not None:
            found = [a for a in found if a.role_id == role_id]
    names = _Names(ireq, every_role) if ireq.flag("include_names") else None
    items = [await _assignment_view(ireq, a, names) for a in found]
    return json_response(collection(items, "role_assignments", f"{ireq.v3}/role_assignments"))


def _effective(found: list[RoleAssignmentRecord],
               every: list[RoleRecord]) -> list[RoleAssignmentRecord]:
    """Each assignment, followed by one per role it implies (each once per target)."""
    out: dict[tuple[str, str, str | None, str | None], RoleAssignmentRecord] = {}
    for a in found:
        for role in expand_roles([a.role_id], every):
            key = (a.user_id, role.id, a.project_id, a.domain_id)
            out.setdefault(key, RoleAssignmentRecord(a.user_id, role.id, a.project_id,
                                                     a.domain_id))
    return list(out.values())


class _Names:
    """Names looked up once per request, for ``?include_names``."""

    def __init__(self, ireq: IdentityRequest, every_role: list[RoleRecord]) -> None:
        self.store = ireq.logic.store
        self.roles = {r.id: r.name for r in every_role}
        self.seen: dict[tuple[str, str], dict[str, Any]] = {}

    async def entity(self, kind: str, entity_id: str) -> dict[str, Any]:
        """``{"id", "name", "domain": {...}}`` of a user or project, ``{"id", "name"}`` of a
        domain; only the id if it has gone meanwhile."""
        key = (kind, entity_id)
        if key not in self.seen:
            try:
                if kind == "domain":
                    d = await self.store.get_domain(entity_id)
                    self.seen[key] = {"id": d.id, "name": d.name}
                else:
                    record = (await self.store.get_user(entity_id) if kind == "user"
                              else await self.store.get_project(entity_id))
                    domain = await self.entity("domain", record.domain_id)
                    self.seen[key] = {"id": record.id, "name": record.name, "domain": domain}
            except NotFound:
                self.seen[key] = {"id": entity_id}
        return self.seen[key]


async def _assignment_view(ireq: IdentityRequest, a: RoleAssignmentRecord,
                           names: _Names | None) -> dict[str, Any]:
    if a.project_id is not None:
        target_kind, target_id = "project", a.project_id
        link = f"{ireq.v3}/projects/{a.project_id}/users/{a.user_id}/roles/{a.role_id}"
    else:
        target_kind, target_id = "domain", str(a.domain_id)
        link = f"{ireq.v3}/domains/{a.domain_id}/users/{a.user_id}/roles/{a.role_id}"
    role: dict[str, Any] = {"id": a.role_id}
    user: dict[str, Any] = {"id": a.user_id}
    target: dict[str, Any] = {"id": target_id}
    if names is not None:
        role["name"] = names.roles.get(a.role_id)
        user = await names.entity("user", a.user_id)
        target = await names.entity(target_kind, target_id)
    return {"role": role, "user": user, "scope": {target_kind: target},
            "links": {"assignment": link}}
