"""Identity (a Keystone v3 subset): domains, projects, users, roles, assignments, revocations.

Identity rows are deleted for good, as Keystone does; the ids are given by the
caller (Keystone-style 32-hex ids from ``Runtime.new_id``). Names are unique per
domain for projects and users, and globally for roles and domains. The Store
keeps a user's password *hash* as given; hashing is the identity service's job.

Tokens themselves are not stored (they are signed and carry their own expiry);
what is stored is what revokes them: one token (by its id or hash, or by its
audit id) or every token of a user or project issued before a time. A revocation
row lives until the tokens it revokes would have expired anyway, then
:meth:`IdentityStore.purge_expired_revocations` removes it.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from sqlalchemy import (
    Column,
    Double,
    ForeignKey,
    Index,
    Select,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    exists,
    or_,
    select,
)

from nimbus.core.db.database import Database, Row, Tx
from nimbus.core.db.meta import NAME_LEN, dumps, flag, id_column, loads, metadata, time_columns
from nimbus.core.errors import DuplicateError, NimbusError, NotFound

T = TypeVar("T")

#: Keystone ids are 32 hex characters; room for longer ones from other sources.
ID_LEN = 64
#: The id and name of the domain that always exists.
DEFAULT_DOMAIN_ID = "default"
DEFAULT_DOMAIN_NAME = "Default"


class Keep(enum.Enum):
    """The type of :data:`KEEP`."""

    KEEP = "keep"


#: "Leave this field as it is" in update methods (``None`` means set it to NULL).
KEEP: Final = Keep.KEEP


def pick(new: T | Keep, old: T) -> T:
    """``new`` unless it is :data:`KEEP`, then ``old``."""
    return old if isinstance(new, Keep) else new


class ProjectHasChildren(NimbusError):
    """A project with child projects cannot be deleted (Keystone answers 403)."""

    status = 403


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

roles = Table(
    "roles", metadata,
    Column("id", String(ID_LEN), primary_key=True),
    Column("name", String(NAME_LEN), nullable=False, unique=True),
    Column("description", Text, nullable=True),
    *time_columns(),
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

#: What revokes tokens: one token (``token_id`` or ``audit_id``), or every token of
#: a user or project issued at or before ``issued_before``.
token_revocations = Table(
    "token_revocations", metadata,
    id_column(),
    Column("token_id", String(NAME_LEN), nullable=True, unique=True),
    Column("audit_id", String(ID_LEN), nullable=True),
    Column("user_id", String(ID_LEN), nullable=True),
    Column("project_id", String(ID_LEN), nullable=True),
    Column("issued_before", Double, nullable=True),
    Column("expires_at", Double, nullable=False),
    Column("revoked_at", Double, nullable=False),
    Index(None, "audit_id"),
    Index(None, "user_id"),
    Index(None, "project_id"),
    Index(None, "expires_at"),
    Index(None, "revoked_at"),
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


@dataclass(frozen=True, slots=True)
class RevocationRecord:
    """One row of ``token_revocations``."""

    id: int
    token_id: str | None
    audit_id: str | None
    user_id: str | None
    project_id: str | None
    issued_before: float | None
    expires_at: float
    revoked_at: float

    @classmethod
    def from_row(cls, r: Row) -> RevocationRecord:
        """Build from a row of ``REVOCATION_COLUMNS``."""
        return cls(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7])


_r = token_revocations.c
REVOCATION_COLUMNS = [_r.id, _r.token_id, _r.audit_id, _r.user_id, _r.project_id,
                      _r.issued_before, _r.expires_at, _r.revoked_at]

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

_ro = roles.c
_INSERT_ROLE = roles.insert()
_ROLE_BY_ID = select(*ROLE_COLUMNS).where(_ro.id == bindparam("id"))
_ROLE_BY_NAME = select(*ROLE_COLUMNS).where(_ro.name == bindparam("name"))
_ALL_ROLES = select(*ROLE_COLUMNS).order_by(_ro.name)
_DELETE_ROLE = roles.delete().where(_ro.id == bindparam("id"))

_INSERT_ASSIGNMENT = role_assignments.insert()
_DELETE_ASSIGNMENT = role_assignments.delete().where(
    _a.user_id == bindparam("user_id"), _a.target_type == bindparam("target_type"),
    _a.target_id == bindparam("target_id"), _a.role_id == bindparam("role_id"))
_DELETE_ASSIGNMENTS_OF_USER = role_assignments.delete().where(_a.user_id == bindparam("id"))
_DELETE_ASSIGNMENTS_OF_ROLE = role_assignments.delete().where(_a.role_id == bindparam("id"))
_DELETE_ASSIGNMENTS_ON_TARGET = role_assignments.delete().where(
    _a.target_type == bindparam("target_type"), _a.target_id == bindparam("id"))
_ROLES_ON_PROJECT = (
    select(*ROLE_COLUMNS)
    .join(role_assignments, _a.role_id == _ro.id)
    .where(_a.user_id == bindparam("user_id"), _a.target_type == "project",
           _a.target_id == bindparam("project_id"))
    .order_by(_ro.name))

_INSERT_REVOCATION = token_revocations.insert().returning(_r.id)
_REVOCATION_BY_TOKEN = select(*REVOCATION_COLUMNS).where(_r.token_id == bindparam("token_id"))
_REVOCATIONS_SINCE = (select(*REVOCATION_COLUMNS)
                      .where(_r.revoked_at >= bindparam("since")).order_by(_r.id))
_PURGE_REVOCATIONS = token_revocations.delete().where(_r.expires_at <= bindparam("now"))



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


@functools.cache
def _revoked_query(by_token: bool, by_audit: bool, by_user: bool, by_project: bool) -> Select[Any]:
    """Is there a revocation that covers a token with these attributes?"""
    # The "every token of a user / project" rows carry neither token_id nor audit_id.
    wide = and_(_r.token_id.is_(None), _r.audit_id.is_(None),
                _r.issued_before >= bindparam("issued_at", type_=Double))
    matches = []
    if by_token:
        matches.append(_r.token_id == bindparam("token_id"))
    if by_audit:
        matches.append(_r.audit_id == bindparam("audit_id"))
    if by_user:
        matches.append(and_(wide, _r.user_id == bindparam("user_id")))
    if by_project:
        matches.append(and_(wide, _r.project_id == bindparam("project_id")))
    return select(_r.id).where(or_(*matches)).limit(1)


def _target(project_id: str | None, domain_id: str | None) -> tuple[str, str]:
    if (project_id is None) == (domain_id is None):
        raise ValueError("a role assignment is on exactly one of a project or a domain")
    return ("project", project_id) if project_id is not None else ("domain", str(domain_id))


class IdentityStore:
    """Store methods for domains, projects, users, roles, assignments and revocations."""

    db: Database

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
            return await _domain(tx, id)

        return await self.db.transact(body)

    async def ensure_default_domain(self, now: float) -> DomainRecord:
        """The ``default`` domain, created if it does not exist yet."""
        async def body(tx: Tx) -> Row | None:
            return await tx.one(_DOMAIN_BY_ID, {"id": DEFAULT_DOMAIN_ID})

        row = await self.db.transact(body)
        if row is not None:
            return DomainRecord.from_row(row)
        try:
            return await self.create_domain(id=DEFAULT_DOMAIN_ID, name=DEFAULT_DOMAIN_NAME,
                                            now=now, description="The default domain")
        except DuplicateError:
            return await self.get_domain(DEFAULT_DOMAIN_ID)  # another process made it

    async def get_domain(self, domain_id: str) -> DomainRecord:
        """A domain by id; ``NotFound`` otherwise."""
        async def body(tx: Tx) -> DomainRecord:
            return await _domain(tx, domain_id)

        return await self.db.transact(body)

    async def get_domain_by_name(self, name: str) -> DomainRecord:
        """A domain by name; ``NotFound`` otherwise."""
        async def body(tx: Tx) -> Row | None:
            return await tx.one(_DOMAIN_BY_NAME, {"name": name})

        row = await self.db.transact(body)
        if row is None:
            raise NotFound(f"domain named {name!r} not found")
        return DomainRecord.from_row(row)

    async def list_domains(self) -> list[DomainRecord]:
        """Every domain, by name."""
        async def body(tx: Tx) -> list[Row]:
            return await tx.rows(_ALL_DOMAINS)

        return [DomainRecord.from_row(r) for r in await self.db.transact(body)]

    # -- projects -------------------------------------------------------------------

    async def create_project(
        self, *, id: str, name: str, domain_id: str, now: float,
        description: str | None = None, enabled: bool = True, parent_id: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> ProjectRecord:
        """Create a project; ``NotFound`` if its domain or parent does not exist,
        ``DuplicateError`` if the id, or the name in the domain, is taken."""
        async def body(tx: Tx) -> ProjectRecord:
            await _domain(tx, domain_id)
            if parent_id is not None:
                await _project(tx, parent_id)
            await tx.run(_INSERT_PROJECT, {
                "id": id, "name": name, "domain_id": domain_id, "description": description,
                "enabled": enabled, "parent_id": parent_id, "extra": dumps(extra or {}),
                "created_at": now, "updated_at": now})
            return await _project(tx, id)

        return await self.db.transact(body)

    async def get_project(self, project_id: str) -> ProjectRecord:
        """A project by id; ``NotFound`` otherwise."""
        async def body(tx: Tx) -> ProjectRecord:
            return await _project(tx, project_id)

        return await self.db.transact(body)

    async def get_project_by_name(self, domain_id: str, name: str) -> ProjectRecord:
        """The project named ``name`` in a domain; ``NotFound`` otherwise."""
        async def body(tx: Tx) -> Row | None:
            return await tx.one(_PROJECT_BY_NAME, {"domain_id": domain_id, "name": name})

        row = await self.db.transact(body)
        if row is None:
            raise NotFound(f"project named {name!r} not found in domain {domain_id}")
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

        async def body(tx: Tx) -> list[Row]:
            return await tx.rows(stmt, params)

        return [ProjectRecord.from_row(r) for r in await self.db.transact(body)]

    async def update_project(
        self, project_id: str, *, now: float, name: str | Keep = KEEP,
        description: str | Keep | None = KEEP, enabled: bool | Keep = KEEP,
        extra: dict[str, Any] | Keep = KEEP,
    ) -> ProjectRecord:
        """Change the given fields of a project; ``DuplicateError`` on a name clash."""
        async def body(tx: Tx) -> ProjectRecord:
            old = await _project(tx, project_id)
            await tx.run(_UPDATE_PROJECT, {
                "pid": project_id, "name": pick(name, old.name),
                "description": pick(description, old.description),
                "enabled": pick(enabled, old.enabled), "extra": dumps(pick(extra, old.extra)),
                "now": now})
            return await _project(tx, project_id)

        return await self.db.transact(body)

    async def delete_project(self, project_id: str) -> None:
        """Delete a project and every role assignment on it; ``NotFound`` if missing,
        ``ProjectHasChildren`` if it is the parent of another project."""
        async def body(tx: Tx) -> None:
            await _project(tx, project_id)
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
            await _domain(tx, domain_id)
            await tx.run(_INSERT_USER, {
                "id": id, "name": name, "domain_id": domain_id, "password_hash": password_hash,
                "password_created_at": now if password_hash is not None else None,
                "enabled": enabled, "default_project_id": default_project_id, "email": email,
                "extra": dumps(extra or {}), "created_at": now, "updated_at": now})
            return await _user(tx, id)

        return await self.db.transact(body)

    async def get_user(self, user_id: str) -> UserRecord:
        """A user by id; ``NotFound`` otherwise."""
        async def body(tx: Tx) -> UserRecord:
            return await _user(tx, user_id)

        return await self.db.transact(body)

    async def get_user_by_name(self, domain_id: str, name: str) -> UserRecord:
        """The user named ``name`` in a domain (how a password login finds it)."""
        async def body(tx: Tx) -> Row | None:
            return await tx.one(_USER_BY_NAME, {"domain_id": domain_id, "name": name})

        row = await self.db.transact(body)
        if row is None:
            raise NotFound(f"user named {name!r} not found in domain {domain_id}")
        return UserRecord.from_row(row)

    async def list_users(
        self, *, name: str | None = None, domain_id: str | None = None,
        enabled: bool | None = None,
    ) -> list[UserRecord]:
        """Users by name, optionally filtered."""
        stmt = _users_query(name is not None, domain_id is not None, enabled is not None)
        params = {"name": name, "domain_id": domain_id, "enabled": enabled}

        async def body(tx: Tx) -> list[Row]:
            return await tx.rows(stmt, params)

        return [UserRecord.from_row(r) for r in await self.db.transact(body)]

    async def update_user(
        self, user_id: str, *, now: float, name: str | Keep = KEEP,
        password_hash: str | Keep | None = KEEP, enabled: bool | Keep = KEEP,
        default_project_id: str | Keep | None = KEEP, email: str | Keep | None = KEEP,
        extra: dict[str, Any] | Keep = KEEP,
    ) -> UserRecord:
        """Change the given fields of a user; a new password hash restarts
        ``password_created_at``. ``DuplicateError`` on a name clash."""
        async def body(tx: Tx) -> UserRecord:
            old = await _user(tx, user_id)
            new_password = not isinstance(password_hash, Keep)
            await tx.run(_UPDATE_USER, {
                "uid": user_id, "name": pick(name, old.name),
                "password_hash": pick(password_hash, old.password_hash),
                "password_created_at": now if new_password else old.password_created_at,
                "enabled": pick(enabled, old.enabled),
                "default_project_id": pick(default_project_id, old.default_project_id),
                "email": pick(email, old.email), "extra": dumps(pick(extra, old.extra)),
                "now": now})
            return await _user(tx, user_id)

        return await self.db.transact(body)

    async def delete_user(self, user_id: str) -> None:
        """Delete a user and all their role assignments; ``NotFound`` if missing."""
        async def body(tx: Tx) -> None:
            await tx.run(_DELETE_ASSIGNMENTS_OF_USER, {"id": user_id})
            if not await tx.run(_DELETE_USER, {"id": user_id}):
                raise NotFound(f"user {user_id} not found")

        await self.db.transact(body)

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
        async def body(tx: Tx) -> RoleRecord:
            return await _role(tx, role_id)

        return await self.db.transact(body)

    async def get_role_by_name(self, name: str) -> RoleRecord:
        """A role by name (``admin``, ``member``, ``reader``...); ``NotFound`` otherwise."""
        async def body(tx: Tx) -> Row | None:
            return await tx.one(_ROLE_BY_NAME, {"name": name})

        row = await self.db.transact(body)
        if row is None:
            raise NotFound(f"role named {name!r} not found")
        return RoleRecord.from_row(row)

    async def list_roles(self) -> list[RoleRecord]:
        """Every role, by name."""
        async def body(tx: Tx) -> list[Row]:
            return await tx.rows(_ALL_ROLES)

        return [RoleRecord.from_row(r) for r in await self.db.transact(body)]

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
            await _user(tx, user_id)
            await _role(tx, role_id)
            if target_type == "project":
                await _project(tx, target_id)
            else:
                await _domain(tx, target_id)
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

        async def body(tx: Tx) -> int:
            return await tx.run(_DELETE_ASSIGNMENT, {
                "user_id": user_id, "target_type": target_type, "target_id": target_id,
                "role_id": role_id})

        if not await self.db.transact(body):
            raise NotFound(f"role {role_id} of user {user_id} on {target_type} {target_id} "
                           "not found")

    async def roles_for_user_on_project(self, user_id: str, project_id: str) -> list[RoleRecord]:
        """The roles a user holds on a project (what a project-scoped token carries)."""
        async def body(tx: Tx) -> list[Row]:
            return await tx.rows(_ROLES_ON_PROJECT, {"user_id": user_id,
                                                     "project_id": project_id})

        return [RoleRecord.from_row(r) for r in await self.db.transact(body)]

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

        async def body(tx: Tx) -> list[Row]:
            return await tx.rows(stmt, params)

        return [RoleAssignmentRecord.from_row(r) for r in await self.db.transact(body)]

    # -- token revocations ------------------------------------------------------------

    async def revoke_token(
        self, *, expires_at: float, now: float, token_id: str | None = None,
        audit_id: str | None = None, user_id: str | None = None,
        project_id: str | None = None,
    ) -> RevocationRecord:
        """Revoke one token, named by its id (or hash) and/or its audit id, until it
        expires. Revoking the same token id again returns the first revocation."""
        if token_id is None and audit_id is None:
            raise ValueError("revoke_token needs a token id or an audit id")

        async def body(tx: Tx) -> RevocationRecord:
            if token_id is not None:
                row = await tx.one(_REVOCATION_BY_TOKEN, {"token_id": token_id})
                if row is not None:
                    return RevocationRecord.from_row(row)
            return await _insert_revocation(tx, {
                "token_id": token_id, "audit_id": audit_id, "user_id": user_id,
                "project_id": project_id, "issued_before": None, "expires_at": expires_at,
                "revoked_at": now})

        try:
            return await self.db.transact(body)
        except DuplicateError:  # revoked concurrently: the same outcome
            return await self.db.transact(body)

    async def revoke_tokens_issued_before(
        self, *, issued_before: float, expires_at: float, now: float,
        user_id: str | None = None, project_id: str | None = None,
    ) -> RevocationRecord:
        """Revoke every token of a user (password change, user disabled) or of a project
        issued at or before ``issued_before``; ``expires_at`` is when the last of them
        expires, ``issued_before`` + the longest token lifetime."""
        if (user_id is None) == (project_id is None):
            raise ValueError("revoke the tokens of a user or of a project")

        async def body(tx: Tx) -> RevocationRecord:
            return await _insert_revocation(tx, {
                "token_id": None, "audit_id": None, "user_id": user_id,
                "project_id": project_id, "issued_before": issued_before,
                "expires_at": expires_at, "revoked_at": now})

        return await self.db.transact(body)

    async def is_token_revoked(
        self, *, token_id: str | None = None, audit_id: str | None = None,
        user_id: str | None = None, project_id: str | None = None,
        issued_at: float | None = None,
    ) -> bool:
        """Whether a token with these attributes is revoked: by its id, by its audit id,
        or (given ``issued_at``) with all tokens of its user or project."""
        wide = issued_at is not None
        flags = (token_id is not None, audit_id is not None,
                 wide and user_id is not None, wide and project_id is not None)
        if not any(flags):
            return False
        stmt = _revoked_query(*flags)
        params = {"token_id": token_id, "audit_id": audit_id, "user_id": user_id,
                  "project_id": project_id, "issued_at": issued_at}

        async def body(tx: Tx) -> Any:
            return await tx.scalar(stmt, params)

        return await self.db.transact(body) is not None

    async def revocations_since(self, since: float) -> list[RevocationRecord]:
        """Revocations made at or after ``since``, oldest first (for caches to catch up)."""
        async def body(tx: Tx) -> list[Row]:
            return await tx.rows(_REVOCATIONS_SINCE, {"since": since})

        return [RevocationRecord.from_row(r) for r in await self.db.transact(body)]

    async def purge_expired_revocations(self, now: float) -> int:
        """Remove revocations whose tokens have all expired by ``now``; how many."""
        async def body(tx: Tx) -> int:
            return await tx.run(_PURGE_REVOCATIONS, {"now": now})

        return await self.db.transact(body)


async def _domain(tx: Tx, domain_id: str) -> DomainRecord:
    row = await tx.one(_DOMAIN_BY_ID, {"id": domain_id})
    if row is None:
        raise NotFound(f"domain {domain_id} not found")
    return DomainRecord.from_row(row)


async def _project(tx: Tx, project_id: str) -> ProjectRecord:
    row = await tx.one(_PROJECT_BY_ID, {"id": project_id})
    if row is None:
        raise NotFound(f"project {project_id} not found")
    return ProjectRecord.from_row(row)


async def _user(tx: Tx, user_id: str) -> UserRecord:
    row = await tx.one(_USER_BY_ID, {"id": user_id})
    if row is None:
        raise NotFound(f"user {user_id} not found")
    return UserRecord.from_row(row)


async def _role(tx: Tx, role_id: str) -> RoleRecord:
    row = await tx.one(_ROLE_BY_ID, {"id": role_id})
    if row is None:
        raise NotFound(f"role {role_id} not found")
    return RoleRecord.from_row(row)


async def _insert_revocation(tx: Tx, values: dict[str, Any]) -> RevocationRecord:
    rid = await tx.scalar(_INSERT_REVOCATION, values)
    return RevocationRecord(rid, values["token_id"], values["audit_id"], values["user_id"],
                            values["project_id"], values["issued_before"],
                            values["expires_at"], values["revoked_at"])
