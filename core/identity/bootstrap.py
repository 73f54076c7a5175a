"""The first start of a cloud's identity: the default domain, roles, admin and demo.

What ``keystone-manage bootstrap`` does, and what ``nimbus serve`` runs on every
start: it is idempotent. It makes the ``default`` domain (named ``Default``),
the roles ``admin``, ``member`` and ``reader`` (admin implies member implies
reader, see :data:`nimbus.core.identity.service.IMPLIED_ROLES`), an admin
project and user holding ``admin``, and optionally a demo project and user
holding ``member``. Run again, it creates what is missing and, like Keystone's,
resets a bootstrap user's password if it no longer matches and re-enables them.
Several processes may run it at once: whoever loses a race reads the winner's row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from nimbus.core.context import ADMIN, MEMBER, READER
from nimbus.core.db.identity import DEFAULT_DOMAIN_ID
from nimbus.core.db.identity_schema import ProjectRecord, UserRecord
from nimbus.core.db.roles import RoleRecord
from nimbus.core.db.store import Store
from nimbus.core.errors import DuplicateError, NotFound
from nimbus.core.identity.passwords import Passwords
from nimbus.core.runtime import Runtime

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BootstrapResult:
    """What the bootstrap made sure exists (ids, for banners and tests)."""

    roles: dict[str, str]
    admin_project_id: str
    admin_user_id: str
    demo_project_id: str | None = None
    demo_user_id: str | None = None
    #: Names of what this run created or repaired (empty on a re-run with nothing to do).
    changed: tuple[str, ...] = field(default=())


def keystone_id(runtime: Runtime) -> str:
    """A new Keystone-style id: 32 hex digits, from the runtime."""
    return runtime.new_id().replace("-", "")


async def _get_or_create(get: Callable[[], Awaitable[T]], create: Callable[[], Awaitable[T]],
                         changed: list[str], what: str) -> T:
    try:
        return await get()
    except NotFound:
        pass
    try:
        made = await create()
    except DuplicateError:
        return await get()  # another process made it first
    changed.append(what)
    return made


async def bootstrap(store: Store, runtime: Runtime, passwords: Passwords, *,
                    admin_password: str, admin_name: str = "admin",
                    admin_project: str = "admin", demo_password: str | None = None,
                    demo_name: str = "demo", demo_project: str = "demo") -> BootstrapResult:
    """Make sure the default domain, the three roles, the admin and (if ``demo_password``
    is given) the demo project and user exist; see the module docstring."""
    now = runtime.wall_time()
    changed: list[str] = []
    await store.ensure_default_domain(now)

    async def role(name: str) -> RoleRecord:
        return await _get_or_create(
            lambda: store.get_role_by_name(name),
            lambda: store.create_role(id=keystone_id(runtime), name=name, now=now),
            changed, f"role {name}")

    roles = {name: await role(name) for name in (ADMIN, MEMBER, READER)}

    async def project(name: str, description: str) -> ProjectRecord:
        return await _get_or_create(
            lambda: store.get_project_by_name(DEFAULT_DOMAIN_ID, name),
            lambda: store.create_project(id=keystone_id(runtime), name=name,
                                         domain_id=DEFAULT_DOMAIN_ID, now=now,
                                         description=description),
            changed, f"project {name}")

    async def user(name: str, password: str, project_id: str, role: RoleRecord) -> UserRecord:
        async def create() -> UserRecord:
            return await store.create_user(
                id=keystone_id(runtime), name=name, domain_id=DEFAULT_DOMAIN_ID, now=now,
                password_hash=await passwords.hash(password), default_project_id=project_id)

        record = await _get_or_create(
            lambda: store.get_user_by_name(DEFAULT_DOMAIN_ID, name), create, changed,
            f"user {name}")
        if not record.enabled or not await passwords.verify(record.password_hash, password):
            record = await store.update_user(record.id, now=now, enabled=True,
                                             password_hash=await passwords.hash(password))
            changed.append(f"password of user {name}")
        try:
            await store.assign_role(user_id=record.id, role_id=role.id, project_id=project_id,
                                    now=now)
            changed.append(f"role {role.name} of user {name}")
        except DuplicateError:
            pass  # already held
        return record

    admin_p = await project(admin_project, "Bootstrap project for the cloud administrator")
    admin_u = await user(admin_name, admin_password, admin_p.id, roles[ADMIN])
    demo_p = demo_u = None
    if demo_password is not None:
        demo_p = await project(demo_project, "Demo project")
        demo_u = await user(demo_name, demo_password, demo_p.id, roles[MEMBER])
    return BootstrapResult(
        {name: r.id for name, r in roles.items()}, admin_p.id, admin_u.id,
        demo_p.id if demo_p else None, demo_u.id if demo_u else None, tuple(changed))
