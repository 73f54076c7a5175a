"""The identity tables and records (a Keystone v3 subset): domains, projects, users,
and which roles users hold on projects and domains.

Identity rows are deleted for good, as Keystone does; the ids are given by the
caller (Keystone-style 32-hex ids from ``Runtime.new_id``). Names are unique per
domain for projects and users, and globally for domains. The Store methods are
in :mod:`nimbus.core.db.identity` and :mod:`nimbus.core.db.roles` (which
declares ``roles`` itself; ``role_assignments`` is here because deleting a user
or a project deletes its assignments, and projects are listed by who has a role
on them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Double, ForeignKey, Index, String, Table, Text, UniqueConstraint

from nimbus.core.db.database import Row
from nimbus.core.db.meta import NAME_LEN, flag, id_column, loads, metadata, time_columns

#: Keystone ids are 32 hex characters; room for longer ones from other sources.
ID_LEN = 64

domains = Table(
    "domains", metadata,
    Column("id", String(ID_LEN), primary_key=True),
    Column("name", String(NAME_LEN), nullable=False, unique=True),
    Column("description", Text, nullable=True),
    flag("enabled", True),
    *time_columns(),
)

projects = Table(
    "projects", metadata,
    Column("id", String(ID_LEN), primary_key=True),
    Column("name", String(NAME_LEN), nullable=False),
    Column("domain_id", String(ID_LEN), ForeignKey("domains.id"), nullable=False),
    Column("description", Text, nullable=True),
    flag("enabled", True),
    Column("parent_id", String(ID_LEN), ForeignKey("projects.id"), nullable=True),
    Column("extra", Text, nullable=True),
    *time_columns(),
    UniqueConstraint("domain_id", "name"),
    Index(None, "parent_id"),
)

users = Table(
    "users", metadata,
    Column("id", String(ID_LEN), primary_key=True),
    Column("name", String(NAME_LEN), nullable=False),
    Column("domain_id", String(ID_LEN), ForeignKey("domains.id"), nullable=False),
    Column("password_hash", Text, nullable=True),
    Column("password_created_at", Double, nullable=True),
    flag("enabled", True),
    Column("default_project_id", String(ID_LEN), nullable=True),
    Column("email", String(NAME_LEN), nullable=True),
    Column("extra", Text, nullable=True),
    *time_columns(),
    UniqueConstraint("domain_id", "name"),
)

#: A user's role on a project or on a domain (``target_type`` says which).
role_assignments = Table(
    "role_assignments", metadata,
    id_column(),
    Column("user_id", String(ID_LEN), ForeignKey("users.id"), nullable=False),
    Column("target_type", String(16), nullable=False),
    Column("target_id", String(ID_LEN), nullable=False),
    Column("role_id", String(ID_LEN), ForeignKey("roles.id"), nullable=False),
    Column("created_at", Double, nullable=True),
    UniqueConstraint("user_id", "target_type", "target_id", "role_id"),
    Index(None, "target_id", "target_type"),
    Index(None, "role_id"),
)


# -- records ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DomainRecord:
    """One row of ``domains``."""

    id: str
    name: str
    description: str | None
    enabled: bool
    created_at: float | None

    @classmethod
    def from_row(cls, r: Row) -> DomainRecord:
        """Build from a row of ``DOMAIN_COLUMNS``."""
        return cls(r[0], r[1], r[2], bool(r[3]), r[4])


DOMAIN_COLUMNS = [domains.c[n] for n in ("id", "name", "description", "enabled", "created_at")]


@dataclass(frozen=True, slots=True)
class ProjectRecord:
    """One row of ``projects``."""

    id: str
    name: str
    domain_id: str
    description: str | None
    enabled: bool
    parent_id: str | None
    extra: dict[str, Any]
    created_at: float | None
    updated_at: float | None

    @classmethod
    def from_row(cls, r: Row) -> ProjectRecord:
        """Build from a row of ``PROJECT_COLUMNS``."""
        return cls(r[0], r[1], r[2], r[3], bool(r[4]), r[5], loads(r[6], {}), r[7], r[8])


PROJECT_COLUMNS = [projects.c[n] for n in (
    "id", "name", "domain_id", "description", "enabled", "parent_id", "extra", "created_at",
    "updated_at")]


@dataclass(frozen=True, slots=True)
class UserRecord:
    """One row of ``users`` (with the password hash: never show it to clients)."""

    id: str
    name: str
    domain_id: str
    password_hash: str | None
    password_created_at: float | None
    enabled: bool
    default_project_id: str | None
    email: str | None
    extra: dict[str, Any]
    created_at: float | None
    updated_at: float | None

    @classmethod
    def from_row(cls, r: Row) -> UserRecord:
        """Build from a row of ``USER_COLUMNS``."""
        return cls(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], r[7], loads(r[8], {}),
                   r[9], r[10])


USER_COLUMNS = [users.c[n] for n in (
    "id", "name", "domain_id", "password_hash", "password_created_at", "enabled",
    "default_project_id", "email", "extra", "created_at", "updated_at")]


@dataclass(frozen=True, slots=True)
class RoleAssignmentRecord:
    """A user's role on a project (``project_id`` set) or on a domain (``domain_id`` set)."""

    user_id: str
    role_id: str
    project_id: str | None
    domain_id: str | None

    @classmethod
    def from_row(cls, r: Row) -> RoleAssignmentRecord:
        """Build from a row of ``ASSIGNMENT_COLUMNS``."""
        on_project = r[1] == "project"
        return cls(r[0], r[3], r[2] if on_project else None, None if on_project else r[2])


_a = role_assignments.c
ASSIGNMENT_COLUMNS = [_a.user_id, _a.target_type, _a.target_id, _a.role_id]
