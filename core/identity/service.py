"""Identity logic: authenticate, validate and revoke tokens, turn a token into a context.

:class:`IdentityLogic` is what the identity routes call, and what any other API
calls to learn who sent a request (:meth:`IdentityLogic.context_for`). Tokens
carry only ids (:mod:`nimbus.core.identity.tokens`); everything else (names,
enabled flags, roles) is read from the Store on each validation, as Keystone's
fernet provider does, so disabling a user or removing a role takes effect at
once for tokens already issued.

Roles imply roles: ``admin`` implies ``member``, which implies ``reader``, the
rules Keystone's bootstrap creates. The Store has no table of implied roles, so
the rules are fixed here (:data:`IMPLIED_ROLES`); a token lists the roles
assigned and every role they imply.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from nimbus.core.context import ADMIN, MEMBER, READER, RequestContext
from nimbus.core.db.identity_schema import DomainRecord, ProjectRecord, UserRecord
from nimbus.core.db.roles import RoleRecord
from nimbus.core.db.store import Store
from nimbus.core.errors import NotFound
from nimbus.core.identity.authbody import AuthRequest, Ref
from nimbus.core.identity.catalog import Catalog
from nimbus.core.identity.config import IdentityConfig
from nimbus.core.identity.passwords import Passwords
from nimbus.core.identity.tokens import (
    FernetTokens,
    InvalidToken,
    TokenPayload,
    Unauthorized,
    generate_key,
    new_audit_id,
    token_hash,
)
from nimbus.core.policy import DEFAULT_POLICY, Policy
from nimbus.core.runtime import Runtime

log = logging.getLogger(__name__)

#: Which role implies which (Keystone's bootstrap: admin -> member -> reader).
IMPLIED_ROLES: Mapping[str, tuple[str, ...]] = {ADMIN: (MEMBER,), MEMBER: (READER,)}

#: The auth methods Nimbus accepts.
METHODS = ("password", "token")


def expand_roles(assigned_ids: Iterable[str],
                 every: Sequence[RoleRecord]) -> tuple[RoleRecord, ...]:
    """The roles assigned (by id) and every role they imply, each once, assigned first."""
    by_id = {r.id: r for r in every}
    by_name = {r.name: r for r in every}
    out: dict[str, RoleRecord] = {}
    todo = [by_id[i] for i in assigned_ids if i in by_id]
    while todo:
        role = todo.pop(0)
        if role.id in out:
            continue
        out[role.id] = role
        todo.extend(by_name[n] for n in IMPLIED_ROLES.get(role.name, ()) if n in by_name)
    return tuple(out.values())


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A valid token and, as of now, what it names: user, scope, roles."""

    token_id: str = field(repr=False)
    payload: TokenPayload
    user: UserRecord = field(repr=False)
    user_domain: DomainRecord
    project: ProjectRecord | None = None
    project_domain: DomainRecord | None = None
    domain: DomainRecord | None = None
    roles: tuple[RoleRecord, ...] = ()

    @property
    def role_names(self) -> tuple[str, ...]:
        """The names of the token's roles (assigned and implied)."""
        return tuple(r.name for r in self.roles)

    @property
    def is_admin(self) -> bool:
        """True if the token carries the ``admin`` role (on any scope, as Keystone's
        ``admin_required`` treats it)."""
        return ADMIN in self.role_names

    def request_context(self, request_id: str) -> RequestContext:
        """The context of a request made with this token (project-scoped tokens only)."""
        if self.project is None:
            raise InvalidToken("a project-scoped token is required")
        return RequestContext(self.user.id, self.project.id, request_id, self.role_names)


class IdentityLogic:
    """Authentication and tokens over the Store (the identity service's logic)."""

    def __init__(self, store: Store, runtime: Runtime, *, tokens: FernetTokens,
                 passwords: Passwords, catalog: Catalog, token_expiration: float = 3600,
                 policy: Policy = DEFAULT_POLICY) -> None:
        self.store = store
        #: the rules the identity API obeys (``identity:*``)
        self.policy = policy
        self.runtime = runtime
        self.tokens = tokens
        self.passwords = passwords
        self.catalog = catalog
        self.token_expiration = token_expiration

    @classmethod
    def from_config(cls, config: IdentityConfig, store: Store, runtime: Runtime,
                    catalog: Catalog, policy: Policy = DEFAULT_POLICY) -> IdentityLogic:
        """The logic as ``[identity]`` configures it (a key made in memory if none is set)."""
        keys = config.fernet_keys or (generate_key(),)
        passwords = Passwords(runtime, time_cost=config.password_time_cost,
                              memory_kib=config.password_memory_kib)
        return cls(store, runtime, tokens=FernetTokens(keys), passwords=passwords,
                   catalog=catalog, token_expiration=config.token_expiration, policy=policy)

    # -- tokens -------------------------------------------------------------------------

    async def authenticate(self, auth: AuthRequest) -> TokenInfo:
        """Issue a token for a parsed token request; ``Unauthorized`` if it fails."""
        unsupported = [m for m in auth.methods if m not in METHODS]
        if unsupported:
            raise Unauthorized(f"unsupported auth method {unsupported[0]!r}")
        now = self.runtime.wall_time()
        user: UserRecord | None = None
        methods = list(auth.methods)
        expires_at = now + self.token_expiration
        chain: tuple[str, ...] = ()
        if auth.user is not None:
            user = await self._check_password(auth.user, auth.password or "")
        if auth.token_id is not None:
            prior = await self.validate(auth.token_id)
            if user is not None and prior.user.id != user.id:
                raise Unauthorized("the password and the token name different users")
            user = prior.user
            methods += prior.payload.methods
            expires_at = prior.payload.expires_at  # re-scoping never extends a token's life
            chain = (prior.payload.audit_chain_id,)
        if user is None:
            raise Unauthorized("no credentials")
        project_id, domain_id = await self._scope(user, auth)
        if await self.store.is_token_revoked(user_id=user.id, project_id=project_id,
                                             issued_at=now):
            # A revocation of "every token so far" was made at this very instant, before
            # this login (in simulation time stands still between events): the new token
            # comes after it, so it is stamped just after.
            now = math.nextafter(now, math.inf)
        payload = TokenPayload(user.id, tuple(dict.fromkeys(methods)), project_id, domain_id,
                               now, expires_at, (new_audit_id(self.runtime), *chain))
        token_id = self.tokens.issue(payload)
        return await self._describe(token_id, payload)

    async def validate(self, token_id: str) -> TokenInfo:
        """What a token names, if it is genuine, unexpired, unrevoked, and its user, project
        and roles still hold; ``InvalidToken`` otherwise."""
        payload = self.tokens.read(token_id, self.runtime.wall_time())
        if await self.store.is_token_revoked(
                token_id=token_hash(token_id), audit_id=payload.audit_id,
                user_id=payload.user_id, project_id=payload.project_id,
                issued_at=payload.issued_at):
            raise InvalidToken("token revoked")
        return await self._describe(token_id, payload)

    async def context_for(self, token_id: str, request_id: str) -> RequestContext:
        """The request context of a project-scoped token (what the other APIs ask)."""
        return (await self.validate(token_id)).request_context(request_id)

    async def revoke(self, info: TokenInfo) -> None:
        """Revoke one token (``DELETE /v3/auth/tokens``) until it would expire anyway."""
        p = info.payload
        await self.store.revoke_token(
            expires_at=p.expires_at, now=self.runtime.wall_time(),
            token_id=token_hash(info.token_id), audit_id=p.audit_id, user_id=p.user_id,
            project_id=p.project_id)

    async def revoke_user_tokens(self, user_id: str) -> None:
        """Revoke every token of a user issued before now (password changed, disabled)."""
        now = self.runtime.wall_time()
        await self.store.revoke_tokens_issued_before(
            issued_before=now, expires_at=now + self.token_expiration, now=now,
            user_id=user_id)

    async def revoke_project_tokens(self, project_id: str) -> None:
        """Revoke every token scoped to a project issued before now (project disabled)."""
        now = self.runtime.wall_time()
        await self.store.revoke_tokens_issued_before(
            issued_before=now, expires_at=now + self.token_expiration, now=now,
            project_id=project_id)

    # -- passwords ----------------------------------------------------------------------

    async def set_password(self, user_id: str, password: str | None) -> UserRecord:
        """Give a user a new password (None: none at all) and revoke their tokens."""
        hashed = None if password is None else await self.passwords.hash(password)
        user = await self.store.update_user(user_id, now=self.runtime.wall_time(),
                                            password_hash=hashed)
        await self.revoke_user_tokens(user_id)
        return user

    async def password_matches(self, user: UserRecord, password: str) -> bool:
        """Whether ``password`` is the user's (CPU work, off the event loop)."""
        return await self.passwords.verify(user.password_hash, password)

    async def _check_password(self, ref: Ref, password: str) -> UserRecord:
        try:
            user = await self._find_user(ref)
        except NotFound:
            await self.passwords.burn(password)  # as slow as a wrong password
            raise Unauthorized("no such user") from None
        if not await self.password_matches(user, password):
            raise Unauthorized(f"wrong password for user {user.id}")
        if user.password_hash is not None and self.passwords.needs_rehash(user.password_hash):
            # the cost parameters changed since this hash was made: store a current one
            await self.store.update_user(user.id, now=self.runtime.wall_time(),
                                         password_hash=await self.passwords.hash(password))
        return user

    # -- lookups ------------------------------------------------------------------------

    async def find_domain(self, ref: Ref) -> DomainRecord:
        """A domain by id or name; ``NotFound`` otherwise."""
        if ref.id is not None:
            return await self.store.get_domain(ref.id)
        return await self.store.get_domain_by_name(ref.name or "")

    async def _find_user(self, ref: Ref) -> UserRecord:
        if ref.id is not None:
            return await self.store.get_user(ref.id)
        domain = await self.find_domain(ref.domain or Ref())
        return await self.store.get_user_by_name(domain.id, ref.name or "")

    async def _find_project(self, ref: Ref) -> ProjectRecord:
        if ref.id is not None:
            return await self.store.get_project(ref.id)
        domain = await self.find_domain(ref.domain or Ref())
        return await self.store.get_project_by_name(domain.id, ref.name or "")

    async def _scope(self, user: UserRecord, auth: AuthRequest) -> tuple[str | None, str | None]:
        """The (project id, domain id) a new token is scoped to; ``Unauthorized`` if the
        scope asked for does not exist (roles are checked by :meth:`_describe`)."""
        try:
            if auth.scope == "project" and auth.target is not None:
                return (await self._find_project(auth.target)).id, None
            if auth.scope == "domain" and auth.target is not None:
                return None, (await self.find_domain(auth.target)).id
        except NotFound as exc:
            raise Unauthorized(f"scope not found: {exc.message}") from None
        if auth.scope == "default" and user.default_project_id is not None:
            # Keystone falls back to an unscoped token if the default project is unusable
            try:
                project = await self.store.get_project(user.default_project_id)
            except NotFound:
                return None, None
            if project.enabled and await self.roles_of(user.id, project_id=project.id):
                return project.id, None
        return None, None

    async def roles_of(self, user_id: str, *, project_id: str | None = None,
                       domain_id: str | None = None) -> tuple[RoleRecord, ...]:
        """A user's roles on a project or a domain, with the roles they imply."""
        assigned = await self.store.list_role_assignments(
            user_id=user_id, project_id=project_id, domain_id=domain_id)
        if not assigned:
            return ()
        return expand_roles((a.role_id for a in assigned), await self.store.list_roles())

    async def _describe(self, token_id: str, payload: TokenPayload) -> TokenInfo:
        """Read what a token names; ``InvalidToken`` if any of it is gone or disabled."""
        try:
            user = await self.store.get_user(payload.user_id)
            user_domain = await self.store.get_domain(user.domain_id)
            project = project_domain = domain = None
            if payload.project_id is not None:
                project = await self.store.get_project(payload.project_id)
                project_domain = (user_domain if project.domain_id == user_domain.id
                                  else await self.store.get_domain(project.domain_id))
            elif payload.domain_id is not None:
                domain = await self.store.get_domain(payload.domain_id)
        except NotFound as exc:
            raise InvalidToken(f"token names what no longer exists: {exc.message}") from None
        if not (user.enabled and user_domain.enabled):
            raise InvalidToken(f"user {user.id} or their domain is disabled")
        if (project is not None and not project.enabled) or (
                project_domain is not None and not project_domain.enabled) or (
                domain is not None and not domain.enabled):
            raise InvalidToken("the token's project or domain is disabled")
        roles: tuple[RoleRecord, ...] = ()
        if not payload.unscoped:
            roles = await self.roles_of(user.id, project_id=payload.project_id,
                                        domain_id=payload.domain_id)
            if not roles:
                raise InvalidToken(f"user {user.id} has no role on the token's scope")
        return TokenInfo(token_id, payload, user, user_domain, project, project_domain,
                         domain, roles)
