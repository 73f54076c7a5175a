"""Identity (a Keystone v3 subset): domains, projects and users.

Identity rows are deleted for good, as Keystone does; the ids are given by the
caller (Keystone-style 32-hex ids from ``Runtime.new_id``). Names are unique per
domain for projects and users, and globally for domains. The Store keeps a
user's password *hash* as given; hashing is the identity service's job.
Deleting a user or a project deletes the role assignments of it or on it.

The tables and records are in :mod:`nimbus.core.db.identity_schema`; roles and
their assignments in :mod:`nimbus.core.db.roles`, token revocations in
:mod:`nimbus.core.db.tokens`.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Select, bindparam, exists, select

from nimbus.core.db.area import StoreArea, found
from nimbus.core.db.database import Tx
from nimbus.core.db.identity_schema import (
    DOMAIN_COLUMNS,
    PROJECT_COLUMNS,
    USER_COLUMNS,
    DomainRecord,
    ProjectRecord,
    UserRecord,
    domains,
    projects,
    role_assignments,
    users,
)
from nimbus.core.db.identity_schema import RoleAssignmentRecord as RoleAssignmentRecord
from nimbus.core.db.meta import KEEP, Keep, dumps, pick
from nimbus.core.errors import DuplicateError, Forbidden, NotFound

#: The id and name of the domain that always exists.
DEFAULT_DOMAIN_ID = "default"
DEFAULT_DOMAIN_NAME = "Default"


class ProjectHasChildren(Forbidden):
    """A project with child projects cannot be deleted (Keystone answers 403)."""


_a = role_assignments.c

# -- statements, built once --------------------------------------------------------
_d = domains.c
_INSERT_DOMAIN = domains.insert()
_DOMAIN_BY_ID = select(*DOMAIN_COLUMNS).where(_d.id == bindparam("id"))
_DOMAIN_BY_NAME = select(*DOMAIN_COLUMNS).where(_d.name == bindparam("name"))
_ALL_DOMAINS = select(*DOMAIN_COLUMNS).order_by(_d.name)

_p = projects.c
_INSERT_PROJECT = projects.insert()
_PROJECT_BY_ID = select(*PROJECT_COLUMNS).where(_p.id == bindparam("id"))
_PROJECT_BY_NAME = select(*PROJECT_COLUMNS).where(
    _p.domain_id == bindparam("domain_id"), _p.name == bindparam("name"))
_UPDATE_PROJECT = (projects.update().where(_p.id == bindparam("pid"))
                   .values(name=bindparam("name"), description=bindparam("description"),
                           enabled=bindparam("enabled"), extra=bindparam("extra"),
                           updated_at=bindparam("now")))
_CHILD_PROJECT = select(_p.id).where(_p.parent_id == bindparam("id")).limit(1)
_DELETE_PROJECT = projects.delete().where(_p.id == bindparam("id"))

_u = users.c
_INSERT_USER = users.insert()
_USER_BY_ID = select(*USER_COLUMNS).where(_u.id == bindparam("id"))
_USER_BY_NAME = select(*USER_COLUMNS).where(
    _u.domain_id == bindparam("domain_id"), _u.name == bindparam("name"))
_UPDATE_USER = (users.update().where(_u.id == bindparam("uid"))
                .values(name=bindparam("name"), password_hash=bindparam("password_hash"),
                        password_created_at=bindparam("password_created_at"),
                        enabled=bindparam("enabled"),
                        default_project_id=bindparam("default_project_id"),
                        email=bindparam("email"), extra=bindparam("extra"),
                        updated_at=bindparam("now")))
_DELETE_USER = users.delete().where(_u.id == bindparam("id"))

_DELETE_ASSIGNMENTS_OF_USER = role_assignments.delete().where(_a.user_id == bindparam("id"))
_DELETE_ASSIGNMENTS_ON_TARGET = role_assignments.delete().where(
    _a.target_type == bindparam("target_type"), _a.target_id == bindparam("id"))


@functools.cache
def _projects_query(by_name: bool, by_domain: bool, by_enabled: bool, by_user: bool,
                    by_parent: bool) -> Select[Any]:
    stmt = select(*PROJECT_COLUMNS)
    if by_name:
        stmt = stmt.where(_p.name == bindparam("name"))
    if by_domain:
        stmt = stmt.where(_p.domain_id == bindparam("domain_id"))
    if by_enabled:
        stmt = stmt.where(_p.enabled == bindparam("enabled"))
    if by_parent:
        stmt = stmt.where(_p.parent_id == bindparam("parent_id"))
    if by_user:
        stmt = stmt.where(exists().where(
            _a.target_type == "project", _a.target_id == _p.id,
            _a.user_id == bindparam("user_id")))
    return stmt.order_by(_p.name, _p.id)


@functools.cache
def _users_query(by_name: bool, by_domain: bool, by_enabled: bool) -> Select[Any]:
    stmt = select(*USER_COLUMNS)
    if by_name:
        stmt = stmt.where(_u.name == bindparam("name"))
    if by_domain:
        stmt = stmt.where(_u.domain_id == bindparam("domain_id"))
    if by_enabled:
        stmt = stmt.where(_u.enabled == bindparam("enabled"))
    return stmt.order_by(_u.name, _u.id)


class IdentityStore(StoreArea):
    """Store methods for domains, projects and users."""

    # -- domains --------------------------------------------------------------------

    async def create_domain(
        self, *, id: str, name: str, now: float, description: str | None = None,
        enabled: bool = True,
    ) -> DomainRecord:
        """Create a domain; ``DuplicateError`` if the id or name is taken."""
        async def body(tx: Tx) -> DomainRecord:
            await tx.run(_INSERT_DOMAIN, {"id": id, "name": name, "description": description,
                                          "enabled": enabled, "created_at": now,
                                          "updated_at": now})
            return await fetch_domain(tx, id)

        return await self.db.transact(body)

    async def ensure_default_domain(self, now: float) -> DomainRecord:
        """The ``default`` domain, created if it does not exist yet."""
        row = await self._one(_DOMAIN_BY_ID, {"id": DEFAULT_DOMAIN_ID})
        if row is not None:
            return DomainRecord.from_row(row)
        try:
            return await self.create_domain(id=DEFAULT_DOMAIN_ID, name=DEFAULT_DOMAIN_NAME,
                                            now=now, description="The default domain")
        except DuplicateError:
            return await self.get_domain(DEFAULT_DOMAIN_ID)  # another process made it

    async def get_domain(self, domain_id: str) -> DomainRecord:
        """A domain by id; ``NotFound`` otherwise."""
        return await self.db.transact(lambda tx: fetch_domain(tx, domain_id))

    async def get_domain_by_name(self, name: str) -> DomainRecord:
        """A domain by name; ``NotFound`` otherwise."""
        row = await self._found(_DOMAIN_BY_NAME, {"name": name}, f"domain named {name!r} not found")
        return DomainRecord.from_row(row)

    async def list_domains(self) -> list[DomainRecord]:
        """Every domain, by name."""
        return [DomainRecord.from_row(r) for r in await self._rows(_ALL_DOMAINS)]

    # -- projects -------------------------------------------------------------------

    async def create_project(
        self, *, id: str, name: str, domain_id: str, now: float,
        description: str | None = None, enabled: bool = True, parent_id: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> ProjectRecord:
        """Create a project; ``NotFound`` if its domain or parent does not exist,
        ``DuplicateError`` if the id, or the name in the domain, is taken."""
        async def body(tx: Tx) -> ProjectRecord:
            await fetch_domain(tx, domain_id)
            if parent_id is not None:
                await fetch_project(tx, parent_id)
            await tx.run(_INSERT_PROJECT, {
                "id": id, "name": name, "domain_id": domain_id, "description": description,
                "enabled": enabled, "parent_id": parent_id, "extra": dumps(extra or {}),
                "created_at": now, "updated_at": now})
            return await fetch_project(tx, id)

        return await self.db.transact(body)

    async def get_project(self, project_id: str) -> ProjectRecord:
        """A project by id; ``NotFound`` otherwise."""
        return await self.db.transact(lambda tx: fetch_project(tx, project_id))

    async def get_project_by_name(self, domain_id: str, name: str) -> ProjectRecord:
        """The project named ``name`` in a domain; ``NotFound`` otherwise."""
        row = await self._found(_PROJECT_BY_NAME, {"domain_id": domain_id, "name": name},
                                f"project named {name!r} not found in domain {domain_id}")
        return ProjectRecord.from_row(row)

    async def list_projects(
        self, *, name: str | None = None, domain_id: str | None = None,
        enabled: bool | None = None, user_id: str | None = None, parent_id: str | None = None,
    ) -> list[ProjectRecord]:
        """Projects by name, optionally filtered; with ``user_id``, only the projects
        that user has a role on."""
        stmt = _projects_query(name is not None, domain_id is not None, enabled is not None,
                               user_id is not None, parent_id is not None)
        params = {"name": name, "domain_id": domain_id, "enabled": enabled,
                  "user_id": user_id, "parent_id": parent_id}
        return [ProjectRecord.from_row(r) for r in await self._rows(stmt, params)]

    async def update_project(
        self, project_id: str, *, now: float, name: str | Keep = KEEP,
        description: str | Keep | None = KEEP, enabled: bool | Keep = KEEP,
        extra: dict[str, Any] | Keep = KEEP,
    ) -> ProjectRecord:
        """Change the given fields of a project; ``DuplicateError`` on a name clash."""
        async def body(tx: Tx) -> ProjectRecord:
            old = await fetch_project(tx, project_id)
            await tx.run(_UPDATE_PROJECT, {
                "pid": project_id, "name": pick(name, old.name),
                "description": pick(description, old.description),
                "enabled": pick(enabled, old.enabled), "extra": dumps(pick(extra, old.extra)),
                "now": now})
            return await fetch_project(tx, project_id)

        return await self.db.transact(body)

    async def delete_project(self, project_id: str) -> None:
        """Delete a project and every role assignment on it; ``NotFound`` if missing,
        ``ProjectHasChildren`` if it is the parent of another project."""
        async def body(tx: Tx) -> None:
            await fetch_project(tx, project_id)
            if await tx.scalar(_CHILD_PROJECT, {"id": project_id}) is not None:
                raise ProjectHasChildren(f"project {project_id} has child projects")
            await tx.run(_DELETE_ASSIGNMENTS_ON_TARGET,
                         {"target_type": "project", "id": project_id})
            await tx.run(_DELETE_PROJECT, {"id": project_id})

        await self.db.transact(body)

    # -- users ----------------------------------------------------------------------

    async def create_user(
        self, *, id: str, name: str, domain_id: str, now: float,
        password_hash: str | None = None, enabled: bool = True,
        default_project_id: str | None = None, email: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> UserRecord:
        """Create a user; ``NotFound`` if the domain does not exist, ``DuplicateError``
        if the id, or the name in the domain, is taken."""
        async def body(tx: Tx) -> UserRecord:
            await fetch_domain(tx, domain_id)
            await tx.run(_INSERT_USER, {
                "id": id, "name": name, "domain_id": domain_id, "password_hash": password_hash,
                "password_created_at": now if password_hash is not None else None,
                "enabled": enabled, "default_project_id": default_project_id, "email": email,
                "extra": dumps(extra or {}), "created_at": now, "updated_at": now})
            return await fetch_user(tx, id)

        return await self.db.transact(body)

    async def get_user(self, user_id: str) -> UserRecord:
        """A user by id; ``NotFound`` otherwise."""
        return await self.db.transact(lambda tx: fetch_user(tx, user_id))

    async def get_user_by_name(self, domain_id: str, name: str) -> UserRecord:
        """The user named ``name`` in a domain (how a password login finds it)."""
        row = await self._found(_USER_BY_NAME, {"domain_id": domain_id, "name": name},
                                f"user named {name!r} not found in domain {domain_id}")
        return UserRecord.from_row(row)

    async def list_users(
        self, *, name: str | None = None, domain_id: str | None = None,
        enabled: bool | None = None,
    ) -> list[UserRecord]:
        """Users by name, optionally filtered."""
        stmt = _users_query(name is not None, domain_id is not None, enabled is not None)
        params = {"name": name, "domain_id": domain_id, "enabled": enabled}
        return [UserRecord.from_row(r) for r in await self._rows(stmt, params)]

    async def update_user(
        self, user_id: str, *, now: float, name: str | Keep = KEEP,
        password_hash: str | Keep | None = KEEP, enabled: bool | Keep = KEEP,
        default_project_id: str | Keep | None = KEEP, email: str | Keep | None = KEEP,
        extra: dict[str, Any] | Keep = KEEP,
    ) -> UserRecord:
        """Change the given fields of a user; a new password hash restarts
        ``password_created_at``. ``DuplicateError`` on a name clash."""
        async def body(tx: Tx) -> UserRecord:
            old = await fetch_user(tx, user_id)
            new_password = not isinstance(password_hash, Keep)
            await tx.run(_UPDATE_USER, {
                "uid": user_id, "name": pick(name, old.name),
                "password_hash": pick(password_hash, old.password_hash),
                "password_created_at": now if new_password else old.password_created_at,
                "enabled": pick(enabled, old.enabled),
                "default_project_id": pick(default_project_id, old.default_project_id),
                "email": pick(email, old.email), "extra": dumps(pick(extra, old.extra)),
                "now": now})
            return await fetch_user(tx, user_id)

        return await self.db.transact(body)

    async def delete_user(self, user_id: str) -> None:
        """Delete a user and all their role assignments; ``NotFound`` if missing."""
        async def body(tx: Tx) -> None:
            await tx.run(_DELETE_ASSIGNMENTS_OF_USER, {"id": user_id})
            if not await tx.run(_DELETE_USER, {"id": user_id}):
                raise NotFound(f"user {user_id} not found")

        await self.db.transact(body)


async def fetch_domain(tx: Tx, domain_id: str) -> DomainRecord:
    """Inside a transaction: a domain by id; ``NotFound`` otherwise."""
    row = await tx.one(_DOMAIN_BY_ID, {"id": domain_id})
    if row is None:
        raise NotFound(f"domain {domain_id} not found")
    return DomainRecord.from_row(row)


async def fetch_project(tx: Tx, project_id: str) -> ProjectRecord:
    """Inside a transaction: a project by id; ``NotFound`` otherwise."""
    row = await found(tx, _PROJECT_BY_ID, {"id": project_id}, f"project {project_id} not found")
    return ProjectRecord.from_row(row)


async def fetch_user(tx: Tx, user_id: str) -> UserRecord:
    """Inside a transaction: a user by id; ``NotFound`` otherwise."""
    row = await found(tx, _USER_BY_ID, {"id": user_id}, f"user {user_id} not found")
    return UserRecord.from_row(row)
