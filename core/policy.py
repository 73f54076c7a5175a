"""Who may do what: policy as data, in the check language of OpenStack's policy files.

Every API decision that depends on the caller's roles names a rule
(``os_compute_api:servers:create``); :data:`DEFAULTS` gives each rule a check
string as Nova, Glance and Keystone ship them (admin, member and reader roles,
project isolation), and an operator's policy file (YAML or JSON, the format of
Nova's ``policy.yaml``) overrides any of them. :class:`Policy` compiles the
check strings once into plain functions, so a check costs a few dictionary
lookups (the simulator makes millions).

The check language (oslo.policy's): ``role:<name>``, ``rule:<name>``,
``<credential>:<value>`` where the value is a literal or ``%(<target field>)s``
(``project_id:%(project_id)s``), ``'<literal>':%(<target field>)s``, ``@``
(always) and ``!`` (never), joined with ``and``, ``or``, ``not`` and
parentheses. An empty string always passes.

oslo.policy itself is not used: through its public API each check re-reads its
configuration and policy files (about 240 us a check on this machine against
about 2 us here), and it would bring oslo.config's global options into core.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from nimbus.core.context import ADMIN, RequestContext
from nimbus.core.errors import Forbidden, InvalidInput

#: A compiled check: (target, credentials) -> allowed.
Check = Callable[[Mapping[str, object], Mapping[str, object]], bool]

ADMIN_API = "rule:admin_api"
PROJECT_MEMBER = "rule:project_member_api"
PROJECT_READER = "rule:project_reader_api"
PROJECT_MEMBER_OR_ADMIN = "rule:project_member_or_admin"
PROJECT_READER_OR_ADMIN = "rule:project_reader_or_admin"
OWNER_OR_ADMIN = "rule:admin_api or user_id:%(user_id)s"
ANYONE = "@"


@dataclass(frozen=True, slots=True)
class Rule:
    """A named rule, its default check and what it guards."""

    name: str
    check: str
    description: str = ""


def _rules(check: str, *names: str, prefix: str = "") -> tuple[Rule, ...]:
    return tuple(Rule(prefix + name, check) for name in names)


_BASE = (
    Rule("context_is_admin", f"role:{ADMIN}", "The caller is a cloud administrator."),
    Rule("admin_api", f"role:{ADMIN}", "Administrator APIs."),
    Rule("project_member_api", "role:member and project_id:%(project_id)s",
         "A member of the project that owns the object."),
    Rule("project_reader_api", "role:reader and project_id:%(project_id)s",
         "A reader of the project that owns the object."),
    Rule("project_member_or_admin", "rule:project_member_api or rule:context_is_admin",
         "A member of the owning project, or an administrator."),
    Rule("project_reader_or_admin", "rule:project_reader_api or rule:context_is_admin",
         "A reader of the owning project, or an administrator."),
)

_C = "os_compute_api:"
_COMPUTE = (
    *_rules(PROJECT_READER_OR_ADMIN, "servers:index", "servers:detail", "servers:show",
            "servers:show:flavor-extra-specs", "server-metadata:index",
            "server-metadata:show", "os-instance-actions:list", "os-instance-actions:show",
            "ips:index", "ips:show", "os-server-groups:index", "os-server-groups:show",
            "os-quota-sets:show", "os-quota-sets:detail", "os-simple-tenant-usage:show",
            "os-flavor-extra-specs:index", "os-flavor-extra-specs:show",
            "os-server-tags:index", "os-server-tags:show", prefix=_C),
    *_rules(PROJECT_MEMBER_OR_ADMIN, "servers:create", "servers:create:attach_network",
            "servers:create:attach_volume", "servers:create:trusted_certs",
            "servers:delete", "servers:update", "servers:confirm_resize",
            "servers:revert_resize", "servers:reboot", "servers:resize", "servers:rebuild",
            "servers:rebuild:trusted_certs", "servers:create_image",
            "servers:create_image:allow_volume_backed", "servers:start", "servers:stop",
            "servers:trigger_crash_dump", "server-metadata:create",
            "server-metadata:update", "server-metadata:update_all",
            "server-metadata:delete", "os-shelve:shelve", "os-shelve:unshelve",
            "os-pause-server:pause", "os-pause-server:unpause",
            "os-suspend-server:suspend", "os-suspend-server:resume",
            "os-lock-server:lock", "os-lock-server:unlock", "os-rescue", "os-unrescue",
            "os-deferred-delete:restore", "os-deferred-delete:force",
            "os-create-backup", "os-console-output", "os-remote-consoles",
            "os-server-password:show", "os-server-password:clear",
            "os-server-groups:delete", "os-admin-password", "os-server-tags:update",
            "os-server-tags:update_all",
            "os-server-tags:delete", "os-server-tags:delete_all", prefix=_C),
    *_rules(PROJECT_MEMBER, "os-server-groups:create", prefix=_C),
    *_rules(ADMIN_API, "servers:index:get_all_tenants", "servers:detail:get_all_tenants",
            "servers:allow_all_filters", "servers:show:host_status",
            "servers:show:host_status:unknown-only", "servers:create:forced_host",
            "servers:create:requested_destination", "servers:create:zero_disk_flavor",
            "servers:migrations:index", "servers:migrations:show",
            "servers:migrations:force_complete", "servers:migrations:delete",
            "os-admin-actions:reset_state", "os-admin-actions:inject_network_info",
            "os-migrate-server:migrate", "os-migrate-server:migrate:host",
            "os-migrate-server:migrate_live", "os-migrate-server:migrate_live:host",
            "os-evacuate", "os-shelve:shelve_offload",
            "os-shelve:unshelve_to_host", "os-lock-server:unlock:unlock_override",
            "os-extended-server-attributes", "os-server-diagnostics",
            "os-instance-actions:events", "os-instance-actions:events:details",
            "os-flavor-manage:create", "os-flavor-manage:update", "os-flavor-manage:delete",
            "os-flavor-extra-specs:create", "os-flavor-extra-specs:update",
            "os-flavor-extra-specs:delete", "os-flavor-access",
            "os-flavor-access:add_tenant_access", "os-flavor-access:remove_tenant_access",
            "os-quota-sets:update", "os-quota-sets:delete", "os-quota-class-sets:show",
            "os-quota-class-sets:update", "limits:other_project",
            "os-hypervisors:list", "os-hypervisors:list-detail", "os-hypervisors:show",
            "os-hypervisors:statistics", "os-hypervisors:uptime", "os-hypervisors:search",
            "os-hypervisors:servers", "os-services:list", "os-services:update",
            "os-services:delete", "os-availability-zone:detail", "os-aggregates:index",
            "os-aggregates:create", "os-aggregates:show", "os-aggregates:update",
            "os-aggregates:delete", "os-aggregates:add_host", "os-aggregates:remove_host",
            "os-aggregates:set_metadata", "os-aggregates:images", "os-migrations:index",
            "os-server-groups:index:all_projects", "os-simple-tenant-usage:list", prefix=_C),
    *_rules(ANYONE, "limits", "os-quota-sets:defaults", "os-availability-zone:list",
            "flavors:index", "flavors:show", prefix=_C),
    *_rules(OWNER_OR_ADMIN, "os-keypairs:index", "os-keypairs:show", "os-keypairs:create",
            "os-keypairs:delete", prefix=_C),
)

_IMAGE_READER = ("role:admin or (role:reader and (project_id:%(project_id)s or "
                 "'public':%(visibility)s or 'community':%(visibility)s or "
                 "'shared':%(visibility)s))")
_IMAGE_OWNER = "role:admin or (role:member and project_id:%(project_id)s)"
_IMAGE = (
    *_rules(_IMAGE_READER, "get_image", "download_image", "get_member", "get_members"),
    *_rules("role:admin or role:reader", "get_images"),
    *_rules(_IMAGE_OWNER, "add_image", "modify_image", "delete_image", "upload_image",
            "add_member", "delete_member", "communitize_image"),
    *_rules("role:admin or (role:member and project_id:%(member_id)s)", "modify_member"),
    *_rules("role:admin", "publicize_image", "deactivate", "reactivate"),
)

_I = "identity:"
_IDENTITY = (
    *_rules(ADMIN_API, "create_project", "update_project", "delete_project",
            "list_projects", "create_user", "delete_user", "list_users",
            "create_role", "update_role", "delete_role", "create_grant", "revoke_grant",
            "check_grant", "create_domain", "update_domain", "delete_domain", "get_domain",
            "list_domains", "update_user", "list_roles", "get_role", prefix=_I),
    *_rules("rule:admin_api or user_id:%(user_id)s", "get_user", "list_user_projects",
            "list_role_assignments", prefix=_I),
    *_rules("rule:admin_api or project_id:%(project_id)s", "get_project", prefix=_I),
    *_rules("rule:admin_api or user_id:%(user_id)s", "validate_token", "revoke_token",
            prefix=_I),
)

#: Every rule and its default, as shipped.
DEFAULTS: tuple[Rule, ...] = (*_BASE, *_COMPUTE, *_IMAGE, *_IDENTITY)



def _tokens(text: str) -> list[str]:
    """Words split on white space, with the parentheses that open or close them apart
    (``%(project_id)s`` stays one word)."""
    out: list[str] = []
    for word in text.split():
        core = word.lstrip("(")
        out.extend("(" * (len(word) - len(core)))
        body = core.rstrip(")")
        closing = len(core) - len(body)
        if body:
            out.append(body)
        out.extend(")" * closing)
    return out


class PolicyError(InvalidInput):
    """A check string that does not parse, or a rule that names an unknown rule."""


class PolicyNotAuthorized(Forbidden):
    """The policy does not allow the caller this action (403, in Nova's words)."""

    def __init__(self, rule: str) -> None:
        super().__init__(f"Policy doesn't allow {rule} to be performed.")
        self.rule = rule


def _always(target: Mapping[str, object], creds: Mapping[str, object]) -> bool:
    return True


def _never(target: Mapping[str, object], creds: Mapping[str, object]) -> bool:
    return False


class _Parser:
    """Recursive descent over the check language: or > and > not > atom."""

    def __init__(self, text: str, resolve: Callable[[str], Check]) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.at = 0
        self.resolve = resolve

    def parse(self) -> Check:
        if not self.tokens:
            return _always
        check = self._or()
        if self.at != len(self.tokens):
            raise self._error(f"unexpected {self.tokens[self.at]!r}")
        return check

    def _error(self, what: str) -> PolicyError:
        return PolicyError(f"Invalid policy check {self.text!r}: {what}")

    def _peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def _or(self) -> Check:
        parts = [self._and()]
        while self._peek() == "or":
            self.at += 1
            parts.append(self._and())
        if len(parts) == 1:
            return parts[0]
        return lambda t, c: any(p(t, c) for p in parts)

    def _and(self) -> Check:
        parts = [self._not()]
        while self._peek() == "and":
            self.at += 1
            parts.append(self._not())
        if len(parts) == 1:
            return parts[0]
        return lambda t, c: all(p(t, c) for p in parts)

    def _not(self) -> Check:
        if self._peek() == "not":
            self.at += 1
            inner = self._not()
            return lambda t, c: not inner(t, c)
        return self._atom()

    def _atom(self) -> Check:
        token = self._peek()
        if token is None:
            raise self._error("it ends too early")
        self.at += 1
        if token == "(":
            inner = self._or()
            if self._peek() != ")":
                raise self._error("a '(' is not closed")
            self.at += 1
            return inner
        if token == "@":
            return _always
        if token == "!":
            return _never
        kind, sep, match = token.partition(":")
        if not sep or not kind or not match:
            raise self._error(f"{token!r} is not a check (kind:match, @ or !)")
        if kind == "rule":
            return self.resolve(match)
        if kind == "role":
            role = match.lower()
            return lambda t, c: role in c["roles"]  # type: ignore[operator]
        return _generic(kind, match, self._error)


def _lookup(data: Mapping[str, object], dotted: str) -> object:
    """``a.b.c`` in nested mappings (None where a step is missing)."""
    value: object = data
    for step in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(step)
    return value


def _generic(kind: str, match: str, error: Callable[[str], PolicyError]) -> Check:
    """``<credential or 'literal'>:<literal or %(target field)s>``."""
    field = re.fullmatch(r"%\((.+)\)s", match)
    if kind[0] in "'\"":
        if len(kind) < 2 or kind[-1] != kind[0]:
            raise error(f"{kind!r} is an unclosed literal")
        literal = kind[1:-1]
        if field is None:
            return _always if literal == match else _never
        name = field.group(1)
        return lambda t, c: str(_lookup(t, name)) == literal
    if field is None:
        if match in ("True", "False"):
            flag = match == "True"
            return lambda t, c: _lookup(c, kind) is flag
        return lambda t, c: str(_lookup(c, kind)) == match
    name = field.group(1)

    def compare(t: Mapping[str, object], c: Mapping[str, object]) -> bool:
        wanted = _lookup(t, name)
        return wanted is not None and _lookup(c, kind) == wanted
    return compare


class Policy:
    """The rules in force: the defaults, overridden by an operator's ``overrides``."""

    def __init__(self, overrides: Mapping[str, str] | None = None,
                 defaults: Iterable[Rule] = DEFAULTS) -> None:
        self.checks: dict[str, str] = {r.name: r.check for r in defaults}
        for name, check in (overrides or {}).items():
            if not isinstance(check, str):
                raise PolicyError(f"Policy rule {name!r} must be a check string, "
                                  f"not {type(check).__name__}")
            self.checks[name] = check
        self._compiled: dict[str, Check] = {}
        self._compiling: set[str] = set()
        for name in self.checks:
            self._compile(name)

    def _compile(self, name: str) -> Check:
        found = self._compiled.get(name)
        if found is not None:
            return found
        if name not in self.checks:
            raise PolicyError(f"Policy rule {name!r} is not defined")
        if name in self._compiling:
            raise PolicyError(f"Policy rule {name!r} refers to itself")
        self._compiling.add(name)
        try:
            check = _Parser(self.checks[name], self._compile).parse()
        finally:
            self._compiling.discard(name)
        self._compiled[name] = check
        return check

    def allows(self, rule: str, ctx: RequestContext,
               target: Mapping[str, object] | None = None) -> bool:
        """Whether ``ctx`` may do ``rule`` to ``target`` (by default its own project)."""
        check = self._compiled.get(rule)
        if check is None:
            raise PolicyError(f"Policy rule {rule!r} is not defined")
        creds = {"roles": ctx.roles, "project_id": ctx.project_id,
                 "user_id": ctx.user_id, "is_admin": ctx.is_admin}
        if target is None:
            target = {"project_id": ctx.project_id, "user_id": ctx.user_id}
        return check(target, creds)

    def authorize(self, rule: str, ctx: RequestContext,
                  target: Mapping[str, object] | None = None) -> None:
        """:class:`PolicyNotAuthorized` (403) unless :meth:`allows`."""
        if not self.allows(rule, ctx, target):
            raise PolicyNotAuthorized(rule)


#: The shipped defaults, compiled once.
DEFAULT_POLICY = Policy()


def sample() -> str:
    """Every rule and its default, as a YAML policy file with the rules commented out."""
    lines = ["# Nimbus policy: uncomment a rule to change it.", ""]
    for rule in DEFAULTS:
        if rule.description:
            lines.append(f"# {rule.description}")
        lines.append(f'#"{rule.name}": "{rule.check}"')
    return "\n".join(lines) + "\n"
