"""The body of ``POST /v3/auth/tokens``, read into plain records.

Keystone's request names the user by id, or by name within a domain (itself
named by id or by name), and a scope: a project (by id, or by name within a
domain), a domain, the literal string ``"unscoped"`` (Horizon), or nothing
(the user's default project, if any). A malformed body is a 400 naming the
field, as ``auth/identity/password/user/domain``; a well-formed one with the
wrong secret is the service's 401, never decided here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from nimbus.core.errors import InvalidInput

#: Longer passwords are refused outright (hashing megabytes is a denial of service).
MAX_PASSWORD_LENGTH = 4096


@dataclass(frozen=True, slots=True)
class Ref:
    """Something named by ``id``, or by ``name`` (within ``domain`` for users and
    projects)."""

    id: str | None = None
    name: str | None = None
    domain: Ref | None = None


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """A parsed token request: the methods, their credentials, and the scope asked for."""

    methods: tuple[str, ...]
    #: The ``password`` method's user and secret, if that method is used.
    user: Ref | None = None
    password: str | None = field(default=None, repr=False)
    #: The ``token`` method's token id, if that method is used.
    token_id: str | None = field(default=None, repr=False)
    #: ``default`` (no scope given), ``unscoped``, ``project`` or ``domain``.
    scope: Literal["default", "unscoped", "project", "domain"] = "default"
    #: The project or domain asked for.
    target: Ref | None = None


def invalid(path: str, problem: str) -> InvalidInput:
    """A 400 naming the field (``auth/identity/methods``) and what is wrong with it."""
    return InvalidInput(f"Invalid input for field '{path}': {problem}")


def member(data: Any, key: str, path: str, kind: type = dict, *, required: bool = True) -> Any:
    """``data[key]`` checked to be a ``kind``; a 400 naming ``path/key`` otherwise."""
    where = f"{path}/{key}" if path else key
    if not isinstance(data, dict) or key not in data or data[key] is None:
        if required:
            raise invalid(where, "it is required")
        return None
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise invalid(where, f"expected {_KIND_NAMES.get(kind, kind.__name__)}")
    return value


_KIND_NAMES = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}


def parse_auth(body: Any) -> AuthRequest:
    """Read a token request body; a 400 ``InvalidInput`` naming the first bad field."""
    auth = member(body, "auth", "")
    identity = member(auth, "identity", "auth")
    methods = member(identity, "methods", "auth/identity", list)
    if not methods or not all(isinstance(m, str) for m in methods):
        raise invalid("auth/identity/methods", "expected a non-empty list of strings")
    user = password = token_id = None
    if "password" in methods:
        where = "auth/identity/password"
        user_data = member(member(identity, "password", "auth/identity"), "user", where)
        user = _ref(user_data, f"{where}/user", needs_domain=True)
        password = member(user_data, "password", f"{where}/user", str)
        if len(password) > MAX_PASSWORD_LENGTH:
            raise invalid(f"{where}/user/password", "too long")
    if "token" in methods:
        token = member(identity, "token", "auth/identity")
        token_id = member(token, "id", "auth/identity/token", str)
    scope, target = _scope(auth)
    return AuthRequest(tuple(methods), user, password, token_id, scope, target)


def _scope(auth: dict[str, Any]) -> tuple[Literal["default", "unscoped", "project", "domain"],
                                           Ref | None]:
    scope = auth.get("scope")
    if scope is None:
        return "default", None
    if scope == "unscoped":
        return "unscoped", None
    if not isinstance(scope, dict):
        raise invalid("auth/scope", "expected an object or \"unscoped\"")
    if "project" in scope:
        return "project", _ref(member(scope, "project", "auth/scope"), "auth/scope/project",
                               needs_domain=True)
    if "domain" in scope:
        return "domain", _ref(member(scope, "domain", "auth/scope"), "auth/scope/domain")
    if "system" in scope:
        raise invalid("auth/scope/system", "system scope is not supported by Nimbus")
    raise invalid("auth/scope", "expected a project or a domain")


def _ref(data: dict[str, Any], path: str, *, needs_domain: bool = False) -> Ref:
    """An entity by id, or by name (within a domain if ``needs_domain``)."""
    entity_id = member(data, "id", path, str, required=False)
    if entity_id is not None:
        return Ref(id=entity_id)
    name = member(data, "name", path, str, required=False)
    if name is None:
        raise invalid(f"{path}/id", "an id or a name is required")
    if not needs_domain:
        return Ref(name=name)
    domain = _ref(member(data, "domain", path), f"{path}/domain")
    return Ref(name=name, domain=domain)
