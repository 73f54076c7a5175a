"""Token revocations (a Keystone v3 subset).

Tokens themselves are not stored (they are signed and carry their own expiry);
what is stored is what revokes them: one token (by its id or hash, or by its
audit id) or every token of a user or project issued before a time. A revocation
row lives until the tokens it revokes would have expired anyway, then
:meth:`TokenStore.purge_expired_revocations` removes it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Double, Index, Select, String, Table, and_, bindparam, or_, select

from nimbus.core.db.area import StoreArea
from nimbus.core.db.database import Row, Tx
from nimbus.core.db.identity_schema import ID_LEN
from nimbus.core.db.meta import NAME_LEN, id_column, metadata
from nimbus.core.errors import DuplicateError

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
_INSERT_REVOCATION = token_revocations.insert().returning(_r.id)
_REVOCATION_BY_TOKEN = select(*REVOCATION_COLUMNS).where(_r.token_id == bindparam("token_id"))
_REVOCATIONS_SINCE = (select(*REVOCATION_COLUMNS)
                      .where(_r.revoked_at >= bindparam("since")).order_by(_r.id))
_PURGE_REVOCATIONS = token_revocations.delete().where(_r.expires_at <= bindparam("now"))


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


class TokenStore(StoreArea):
    """Store methods for token revocations."""

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
        rows = await self._rows(_REVOCATIONS_SINCE, {"since": since})
        return [RevocationRecord.from_row(r) for r in rows]

    async def purge_expired_revocations(self, now: float) -> int:
        """Remove revocations whose tokens have all expired by ``now``; how many."""
        return await self._run(_PURGE_REVOCATIONS, {"now": now})


async def _insert_revocation(tx: Tx, values: dict[str, Any]) -> RevocationRecord:
    rid = await tx.scalar(_INSERT_REVOCATION, values)
    return RevocationRecord(rid, values["token_id"], values["audit_id"], values["user_id"],
                            values["project_id"], values["issued_before"],
                            values["expires_at"], values["revoked_at"])
