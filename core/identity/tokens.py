"""Fernet tokens, as Keystone's fernet provider makes them.

A token is a Fernet message (AES-128-CBC, HMAC-SHA256, urlsafe base64) whose
plaintext is a small msgpack array: who (user id), how (the auth methods),
what for (a project, a domain, or neither: unscoped), when (issued at, expires
at) and its audit ids. Nothing about a token is stored: validating one means
checking its signature with any configured key, its expiry against the
runtime's wall clock, and then (in :mod:`nimbus.core.identity.service`) the
revocations and the user and project it names, in the Store.

The first key signs; every key is tried on validation, so keys rotate by putting
a new one first and dropping the oldest after one token lifetime (Keystone's
key repository does the same with numbered files). Fernet's own timestamp is
set from the runtime (``encrypt_at_time``), never from the ``time`` module.

A token id is the Fernet string itself: an opaque bearer secret. It is never
logged and never stored; revocations name it by :func:`token_hash`.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
from cryptography.fernet import Fernet, MultiFernet
from cryptography.fernet import InvalidToken as FernetInvalid

from nimbus.core.errors import ConfigError, NimbusError
from nimbus.core.runtime import Runtime

#: The version of the payload layout, first in every token.
PAYLOAD_VERSION = 1

#: Fernet's own age limit, checked before the payload's expiry: far beyond any real
#: token lifetime, so only the payload's ``expires_at`` decides, but a token stamped
#: more than a minute in the future (Fernet's clock-skew allowance) is still refused.
_FERNET_TTL = 10 * 365 * 86400

#: What every authentication failure says: Keystone's message, revealing nothing.
AUTH_REQUIRED = "The request you have made requires authentication."


class Unauthorized(NimbusError):
    """Authentication failed (401). ``why`` is for the log; clients get Keystone's fixed
    message, which tells an attacker nothing (not even whether the user exists)."""

    status = 401

    def __init__(self, why: str = "") -> None:
        super().__init__(AUTH_REQUIRED)
        self.why = why or "authentication failed"


class InvalidToken(Unauthorized):
    """A token is malformed, forged, expired, revoked, or names what no longer exists."""


@dataclass(frozen=True, slots=True)
class TokenPayload:
    """What a token says: who, how, for what scope, and when."""

    user_id: str
    methods: tuple[str, ...]
    project_id: str | None
    domain_id: str | None
    issued_at: float
    expires_at: float
    #: This token's audit id first, then the audit id of the chain it was re-scoped from.
    audit_ids: tuple[str, ...]

    @property
    def audit_id(self) -> str:
        """This token's own audit id (what revokes it alone)."""
        return self.audit_ids[0]

    @property
    def audit_chain_id(self) -> str:
        """The audit id of the first token of the chain this one was re-scoped from."""
        return self.audit_ids[-1]

    @property
    def unscoped(self) -> bool:
        """True if the token is scoped to neither a project nor a domain."""
        return self.project_id is None and self.domain_id is None


class _Wire(msgspec.Struct, array_like=True, frozen=True):
    """The plaintext of a token: a msgpack array, short so that tokens stay short."""

    version: int
    user_id: str
    methods: tuple[str, ...]
    project_id: str | None
    domain_id: str | None
    issued_at: float
    expires_at: float
    audit_ids: tuple[str, ...]


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(_Wire)


def generate_key() -> str:
    """A new Fernet key (32 random bytes, urlsafe base64), from the OS random source."""
    return Fernet.generate_key().decode("ascii")


def token_hash(token_id: str) -> str:
    """The name of a token in the revocation table: the SHA-256 of its id, in hex."""
    return hashlib.sha256(token_id.encode("utf-8", "replace")).hexdigest()


def new_audit_id(runtime: Runtime) -> str:
    """A new audit id: 16 bytes from the runtime as 22 urlsafe base64 characters,
    Keystone's form."""
    raw = bytes.fromhex(runtime.new_id().replace("-", ""))
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


class FernetTokens:
    """Issues and reads Fernet tokens with a list of keys (the first one signs)."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ConfigError("identity tokens need at least one Fernet key")
        fernets = []
        for number, key in enumerate(keys, 1):
            try:
                fernets.append(Fernet(key.strip()))
            except (ValueError, TypeError):
                # never echo the key itself: it is a secret
                raise ConfigError(f"fernet key #{number} is not a Fernet key (32 bytes, "
                                  "urlsafe base64)") from None
        self._fernet = MultiFernet(fernets)

    def issue(self, payload: TokenPayload) -> str:
        """The token id for ``payload``, signed with the first key."""
        wire = _Wire(PAYLOAD_VERSION, payload.user_id, payload.methods, payload.project_id,
                     payload.domain_id, payload.issued_at, payload.expires_at,
                     payload.audit_ids)
        sealed = self._fernet.encrypt_at_time(_ENCODER.encode(wire), int(payload.issued_at))
        return sealed.decode("ascii")

    def read(self, token_id: str, now: float) -> TokenPayload:
        """The payload of a token that is genuine and not yet expired at ``now``.

        ``InvalidToken`` if no key verifies it, it does not parse, or it has expired.
        """
        try:
            raw = self._fernet.decrypt_at_time(token_id.encode("ascii"), _FERNET_TTL, int(now))
        except (FernetInvalid, UnicodeEncodeError, ValueError, TypeError):
            raise InvalidToken("token signature or format not valid") from None
        try:
            wire = _DECODER.decode(raw)
        except msgspec.DecodeError:
            raise InvalidToken("token payload not readable") from None
        if wire.version != PAYLOAD_VERSION or not wire.audit_ids or not wire.methods:
            raise InvalidToken(f"token payload version {wire.version} not understood")
        if wire.expires_at <= now:
            raise InvalidToken("token expired")
        return TokenPayload(wire.user_id, wire.methods, wire.project_id, wire.domain_id,
                            wire.issued_at, wire.expires_at, wire.audit_ids)
