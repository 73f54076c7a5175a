"""``/v3/projects`` and ``/v3/domains``: list, create, show, update, delete.

By default (``identity:*`` rules) changing projects needs the ``admin`` role;
reading one needs admin or a token scoped to it. Clients try names as ids first
(``GET /v3/projects/<name>``), so a missing project is a clean JSON 404
(CLIENTS.md), then list with ``?name=``. A project's unknown attributes are kept
in its ``extra`` and shown back, as Keystone does.
"""

from __future__ import annotations

from typing import Any

from nimbus.core.api.http import Response
from nimbus.core.api.identity.views import domain_view, project_view
from nimbus.core.api.identity.wire import (
    IdentityRequest,
    collection,
    conflict,
    json_response,
    name_field,
    no_content,
    not_found,
)
from nimbus.core.db.identity import DEFAULT_DOMAIN_ID, ProjectHasChildren
from nimbus.core.db.identity_schema import ProjectRecord
from nimbus.core.db.meta import KEEP
from nimbus.core.errors import DuplicateError, Forbidden, NotFound
from nimbus.core.identity.authbody import invalid, member
from nimbus.core.identity.bootstrap import keystone_id
from nimbus.core.identity.service import TokenInfo

#: The attributes of a project the Store has columns for (or that cannot be set).
_KNOWN = frozenset({"id", "name", "domain_id", "description", "enabled", "parent_id",
                    "is_domain", "tags", "options", "links"})


def default_domain(caller: TokenInfo) -> str:
    """Where a new project or user goes when the body names no domain: the domain of
    the caller's project (Keystone's rule), else ``default``."""
    if caller.project is not None:
        return caller.project.domain_id
    return caller.domain.id if caller.domain is not None else DEFAULT_DOMAIN_ID


def _extra(data: dict[str, Any], where: str, old: dict[str, Any]) -> dict[str, Any]:
    """The ``extra`` blob after a body: unknown attributes, and ``tags``."""
    extra = {**old, **{k: v for k, v in data.items() if k not in _KNOWN}}
    tags = member(data, "tags", where, list, required=False)
    if tags is not None:
        if not all(isinstance(t, str) for t in tags):
            raise invalid(f"{where}/tags", "expected a list of strings")
        extra["tags"] = tags
    return extra


async def get_project(ireq: IdentityRequest, project_id: str) -> ProjectRecord:
    """A project, or Keystone's 404."""
    try:
        return await ireq.logic.store.get_project(project_id)
    except NotFound:
        raise not_found("project", project_id) from None


async def list_projects(ireq: IdentityRequest) -> Response:
    """``GET /v3/projects``: filtered by ``name``, ``domain_id``, ``enabled``, ``parent_id``."""
    await ireq.authorize("list_projects")
    found = await ireq.logic.store.list_projects(
        name=ireq.query("name"), domain_id=ireq.query("domain_id"),
        enabled=ireq.bool_filter("enabled"), parent_id=ireq.query("parent_id"))
    return json_response(collection([project_view(ireq.v3, p) for p in found], "projects",
                                    f"{ireq.v3}/projects"))


async def create_project(ireq: IdentityRequest) -> Response:
    """``POST /v3/projects``: 201 with the project; 409 if the name is taken in the domain."""
    caller = await ireq.authorize("create_project")
    data = ireq.body("project")
    name = name_field(data, "project", required=True) or ""
    domain_id = member(data, "domain_id", "project", str, required=False) \
        or default_domain(caller)
    parent_id = member(data, "parent_id", "project", str, required=False)
    if member(data, "is_domain", "project", bool, required=False):
        raise invalid("project/is_domain", "projects acting as domains are not supported")
    description = member(data, "description", "project", str, required=False)
    enabled = member(data, "enabled", "project", bool, required=False)
    store = ireq.logic.store
    try:
        await store.get_domain(domain_id)
    except NotFound:
        raise invalid("project/domain_id", f"domain {domain_id} does not exist") from None
    if parent_id == domain_id:
        parent_id = None  # Keystone shows a top-level project's parent as its domain
    if parent_id is not None and (await get_project(ireq, parent_id)).domain_id != domain_id:
        raise invalid("project/parent_id", "the parent project is in another domain")
    try:
        project = await store.create_project(
            id=keystone_id(ireq.ctx.runtime), name=name, domain_id=domain_id,
            now=ireq.ctx.runtime.wall_time(), description=description,
            enabled=True if enabled is None else enabled, parent_id=parent_id,
            extra=_extra(data, "project", {}))
    except DuplicateError:
        raise conflict("project", f"Duplicate entry found with name {name} at domain ID "
                                  f"{domain_id}") from None
    return json_response({"project": project_view(ireq.v3, project)}, 201)


async def show_project(ireq: IdentityRequest) -> Response:
    """``GET /v3/projects/{project_id}``: for an admin or a token scoped to it."""
    project_id = ireq.param("project_id")
    await ireq.authorize("get_project", {"project_id": project_id})
    return json_response({"project": project_view(ireq.v3, await get_project(ireq,
                                                                             project_id))})


async def update_project(ireq: IdentityRequest) -> Response:
    """``PATCH /v3/projects/{project_id}``: name, description, enabled, tags, extras.
    Disabling a project revokes the tokens scoped to it."""
    await ireq.authorize("update_project", {"project_id": ireq.param("project_id")})
    data = ireq.body("project")
    old = await get_project(ireq, ireq.param("project_id"))
    domain_id = member(data, "domain_id", "project", str, required=False)
    if domain_id is not None and domain_id != old.domain_id:
        raise invalid("project/domain_id", "a project cannot move to another domain")
    name = name_field(data, "project", required=False)
    enabled = member(data, "enabled", "project", bool, required=False)
    description = member(data, "description", "project", str, required=False)
    try:
        project = await ireq.logic.store.update_project(
            old.id, now=ireq.ctx.runtime.wall_time(), name=KEEP if name is None else name,
            description=description if "description" in data else KEEP,
            enabled=KEEP if enabled is None else enabled,
            extra=_extra(data, "project", old.extra))
    except DuplicateError:
        raise conflict("project", f"Duplicate entry found with name {name} at domain ID "
                                  f"{old.domain_id}") from None
    except NotFound:
        raise not_found("project", old.id) from None
    if old.enabled and not project.enabled:
        await ireq.logic.revoke_project_tokens(project.id)
    return json_response({"project": project_view(ireq.v3, project)})


async def delete_project(ireq: IdentityRequest) -> Response:
    """``DELETE /v3/projects/{project_id}``: 204; 403 while it has child projects."""
    project_id = ireq.param("project_id")
    await ireq.authorize("delete_project", {"project_id": project_id})
    try:
        await ireq.logic.store.delete_project(project_id)
    except NotFound:
        raise not_found("project", project_id) from None
    except ProjectHasChildren:
        raise Forbidden(f"Cannot delete project {project_id}: it has child projects.") \
            from None
    return no_content()


async def user_projects(ireq: IdentityRequest) -> Response:
    """``GET /v3/users/{user_id}/projects``: the projects a user has a role on (the user
    themself or an admin; Horizon asks this with an unscoped token)."""
    user_id = ireq.param("user_id")
    await ireq.authorize("list_user_projects", {"user_id": user_id})
    found = await ireq.logic.store.list_projects(user_id=user_id,
                                                 enabled=ireq.bool_filter("enabled"))
    return json_response(collection([project_view(ireq.v3, p) for p in found], "projects",
                                    f"{ireq.v3}/users/{user_id}/projects"))


# -- domains --------------------------------------------------------------------------

async def list_domains(ireq: IdentityRequest) -> Response:
    """``GET /v3/domains``: filtered by ``name`` and ``enabled``."""
    await ireq.authorize("list_domains")
    name, enabled = ireq.query("name"), ireq.bool_filter("enabled")
    found = [d for d in await ireq.logic.store.list_domains()
             if (name is None or d.name == name) and (enabled is None or d.enabled == enabled)]
    return json_response(collection([domain_view(ireq.v3, d) for d in found], "domains",
                                    f"{ireq.v3}/domains"))


async def show_domain(ireq: IdentityRequest) -> Response:
    """``GET /v3/domains/{domain_id}``: for a token scoped in that domain, or whom
    ``identity:get_domain`` allows (an admin)."""
    caller = await ireq.caller()
    domain_id = ireq.param("domain_id")
    own = {d.id for d in (caller.project_domain, caller.domain) if d is not None}
    if domain_id not in own:
        ireq.check(caller, "get_domain", {"domain_id": domain_id})
    try:
        domain = await ireq.logic.store.get_domain(domain_id)
    except NotFound:
        raise not_found("domain", domain_id) from None
    return json_response({"domain": domain_view(ireq.v3, domain)})
