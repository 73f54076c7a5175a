"""Roles (a Keystone v3 subset), and the Store methods that give them to users on
projects and domains.

Role names are unique. An assignment is a row of ``role_assignments`` (declared
in :mod:`nimbus.core.db.identity_schema`, beside the users and projects it links).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Select, String, Table, Text, bindparam, select

from nimbus.core.db.area import StoreArea, found
from nimbus.core.db.database import Row, Tx
from nimbus.core.db.identity import fetch_domain, fetch_project, fetch_user
from nimbus.core.db.identity_schema import (
    ASSIGNMENT_COLUMNS,
    ID_LEN,
    RoleAssignmentRecord,
    role_assignments,
)
from nimbus.core.db.meta import NAME_LEN, metadata, time_columns
from nimbus.core.errors import NotFound

roles = Table(
    "roles", metadata,
    Column("id", String(ID_LEN), primary_key=True),
    Column("name", String(NAME_LEN), nullable=False, unique=True),
    Column("description", Text, nullable=True),
    *time_columns(),
)


@dataclass(frozen=True, slots=True)
class RoleRecord:
    """One row of ``roles``."""

    id: str
    name: str
    description: str | None

    @classmethod
    def from_row(cls, r: Row) -> RoleRecord:
        """Build from a row of ``ROLE_COLUMNS``."""
        return cls(r[0], r[1], r[2])


ROLE_COLUMNS = [roles.c.id, roles.c.name, roles.c.description]

# -- statements, built once --------------------------------------------------------
_ro = roles.c
_a = role_assignments.c
_INSERT_ROLE = roles.insert()
_ROLE_BY_ID = select(*ROLE_COLUMNS).where(_ro.id == bindparam("id"))
_ROLE_BY_NAME = select(*ROLE_COLUMNS).where(_ro.name == bindparam("name"))
_ALL_ROLES = select(*ROLE_COLUMNS).order_by(_ro.name)
_DELETE_ROLE = roles.delete().where(_ro.id == bindparam("id"))

_INSERT_ASSIGNMENT = role_assignments.insert()
_DELETE_ASSIGNMENT = role_assignments.delete().where(
    _a.user_id == bindparam("user_id"), _a.target_type == bindparam("target_type"),
    _a.target_id == bindparam("target_id"), _a.role_id == bindparam("role_id"))
_DELETE_ASSIGNMENTS_OF_ROLE = role_assignments.delete().where(_a.role_id == bindparam("id"))
_ROLES_ON_PROJECT = (
    select(*ROLE_COLUMNS)
    .join(role_assignments, _a.role_id == _ro.id)
    .where(_a.user_id == bindparam("user_id"), _a.target_type == "project",
           _a.target_id == bindparam("project_id"))
    .order_by(_ro.name))


@functools.cache
def _assignments_query(by_user: bool, by_role: bool, by_target: bool) -> Select[Any]:
    stmt = select(*ASSIGNMENT_COLUMNS)
    if by_user:
        stmt = stmt.where(_a.user_id == bindparam("user_id"))
    if by_role:
        stmt = stmt.where(_a.role_id == bindparam("role_id"))
    if by_target:
        stmt = stmt.where(_a.target_type == bindparam("target_type"),
                          _a.target_id == bindparam("target_id"))
    return stmt.order_by(_a.id)


def _target(project_id: str | None, domain_id: str | None) -> tuple[str, str]:
    if (project_id is None) == (domain_id is None):
        raise ValueError("a role assignment is on exactly one of a project or a domain")
    return ("project", project_id) if project_id is not None else ("domain", str(domain_id))


class RoleStore(StoreArea):
    """Store methods for roles and role assignments."""

    # -- roles ----------------------------------------------------------------------

    async def create_role(
        self, *, id: str, name: str, now: float, description: str | None = None
    ) -> RoleRecord:
        """Create a role; ``DuplicateError`` if the id or name is taken."""
        async def body(tx: Tx) -> RoleRecord:
            await tx.run(_INSERT_ROLE, {"id": id, "name": name, "description": description,
                                        "created_at": now, "updated_at": now})
            return await _role(tx, id)

        return await self.db.transact(body)

    async def get_role(self, role_id: str) -> RoleRecord:
        """A role by id; ``NotFound`` otherwise."""
        return await self.db.transact(lambda tx: _role(tx, role_id))

    async def get_role_by_name(self, name: str) -> RoleRecord:
        """A role by name (``admin``, ``member``, ``reader``...); ``NotFound`` otherwise."""
        row = await self._found(_ROLE_BY_NAME, {"name": name}, f"role named {name!r} not found")
        return RoleRecord.from_row(row)

    async def list_roles(self) -> list[RoleRecord]:
        """Every role, by name."""
        return [RoleRecord.from_row(r) for r in await self._rows(_ALL_ROLES)]

    async def delete_role(self, role_id: str) -> None:
        """Delete a role and every assignment of it; ``NotFound`` if missing."""
        async def body(tx: Tx) -> None:
            await tx.run(_DELETE_ASSIGNMENTS_OF_ROLE, {"id": role_id})
            if not await tx.run(_DELETE_ROLE, {"id": role_id}):
                raise NotFound(f"role {role_id} not found")

        await self.db.transact(body)

    # -- role assignments -------------------------------------------------------------

    async def assign_role(
        self, *, user_id: str, role_id: str, project_id: str | None = None,
        domain_id: str | None = None, now: float | None = None,
    ) -> RoleAssignmentRecord:
        """Give a user a role on a project or a domain (exactly one of them).

        ``NotFound`` if the user, role or target does not exist; ``DuplicateError``
        if the user already has that role there.
        """
        target_type, target_id = _target(project_id, domain_id)

        async def body(tx: Tx) -> None:
            await fetch_user(tx, user_id)
            await _role(tx, role_id)
            if target_type == "project":
                await fetch_project(tx, target_id)
            else:
                await fetch_domain(tx, target_id)
            await tx.run(_INSERT_ASSIGNMENT, {
                "user_id": user_id, "target_type": target_type, "target_id": target_id,
                "role_id": role_id, "created_at": now})

        await self.db.transact(body)
        return RoleAssignmentRecord(user_id, role_id, project_id, domain_id)

    async def unassign_role(
        self, *, user_id: str, role_id: str, project_id: str | None = None,
        domain_id: str | None = None,
    ) -> None:
        """Take a role away; ``NotFound`` if the user did not have it there."""
        target_type, target_id = _target(project_id, domain_id)
        assignment = {"user_id": user_id, "target_type": target_type, "target_id": target_id,
                      "role_id": role_id}
        if not await self._run(_DELETE_ASSIGNMENT, assignment):
            raise NotFound(f"role {role_id} of user {user_id} on {target_type} {target_id} "
                           "not found")

    async def roles_for_user_on_project(self, user_id: str, project_id: str) -> list[RoleRecord]:
        """The roles a user holds on a project (what a project-scoped token carries)."""
        rows = await self._rows(_ROLES_ON_PROJECT, {"user_id": user_id, "project_id": project_id})
        return [RoleRecord.from_row(r) for r in rows]

    async def list_role_assignments(
        self, *, user_id: str | None = None, project_id: str | None = None,
        domain_id: str | None = None, role_id: str | None = None,
    ) -> list[RoleAssignmentRecord]:
        """Role assignments, optionally of one user, on one project or domain, of one role."""
        if project_id is not None and domain_id is not None:
            raise ValueError("filter on a project or on a domain, not both")
        target_type = "project" if project_id is not None else "domain"
        target_id = project_id if project_id is not None else domain_id
        stmt = _assignments_query(user_id is not None, role_id is not None,
                                  target_id is not None)
        params = {"user_id": user_id, "role_id": role_id, "target_type": target_type,
                  "target_id": target_id}
        return [RoleAssignmentRecord.from_row(r) for r in await self._rows(stmt, params)]


async def _role(tx: Tx, role_id: str) -> RoleRecord:
    row = await found(tx, _ROLE_BY_ID, {"id": role_id}, f"role {role_id} not found")
    return RoleRecord.from_row(row)
