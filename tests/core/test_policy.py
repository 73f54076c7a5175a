"""The policy engine: the check language, the shipped defaults, overrides."""

from __future__ import annotations

import pytest

from nimbus.core.context import RequestContext
from nimbus.core.policy import (
    DEFAULT_POLICY,
    DEFAULTS,
    Policy,
    PolicyError,
    PolicyNotAuthorized,
    sample,
)

ADMIN = RequestContext("admin", "p-admin", "r", ("admin", "member", "reader"))
MEMBER = RequestContext("u1", "p1", "r", ("member", "reader"))
READER = RequestContext("u2", "p1", "r", ("reader",))
OUTSIDER = RequestContext("u3", "p2", "r", ("member", "reader"))
NO_ROLE = RequestContext("u4", "p1", "r", ())
OWN = {"project_id": "p1", "user_id": "u1"}


@pytest.mark.parametrize(("rule", "ctx", "allowed"), [
    ("os_compute_api:servers:create", MEMBER, True),
    ("os_compute_api:servers:create", READER, False),
    ("os_compute_api:servers:create", OUTSIDER, False),
    ("os_compute_api:servers:create", ADMIN, True),
    ("os_compute_api:servers:show", READER, True),
    ("os_compute_api:servers:show", OUTSIDER, False),
    ("os_compute_api:servers:show", NO_ROLE, False),
    ("os_compute_api:os-hypervisors:list", MEMBER, False),
    ("os_compute_api:os-hypervisors:list", ADMIN, True),
    ("os_compute_api:limits", NO_ROLE, True),
    ("os_compute_api:os-keypairs:show", MEMBER, True),
    ("os_compute_api:os-keypairs:show", READER, False),
])
def test_defaults(rule: str, ctx: RequestContext, allowed: bool) -> None:
    assert DEFAULT_POLICY.allows(rule, ctx, OWN) is allowed


def test_target_defaults_to_own_project() -> None:
    assert DEFAULT_POLICY.allows("os_compute_api:servers:create", OUTSIDER)


def test_literal_against_target_field() -> None:
    assert DEFAULT_POLICY.allows("get_image", OUTSIDER, {"project_id": "p1",
                                                           "visibility": "public"})
    assert not DEFAULT_POLICY.allows("get_image", OUTSIDER, {"project_id": "p1",
                                                               "visibility": "private"})


def test_authorize_raises_forbidden_naming_the_rule() -> None:
    with pytest.raises(PolicyNotAuthorized) as err:
        DEFAULT_POLICY.authorize("os_compute_api:os-services:list", MEMBER)
    assert err.value.status == 403
    assert "os_compute_api:os-services:list" in err.value.message


def test_overrides_change_one_rule() -> None:
    policy = Policy({"os_compute_api:os-services:list": "role:reader",
                     "os_compute_api:servers:create": "!"})
    assert policy.allows("os_compute_api:os-services:list", READER)
    assert not policy.allows("os_compute_api:servers:create", ADMIN)
    assert policy.allows("os_compute_api:servers:show", READER, OWN)


@pytest.mark.parametrize("check", [
    "role:admin and", "(role:admin", "role:admin)", "admin", "rule:nope", "'x:%(y)s",
    "role:", "rule:loop",
])
def test_bad_checks_are_refused(check: str) -> None:
    with pytest.raises(PolicyError):
        Policy({"loop": "rule:loop", "x": check} if check == "rule:loop" else {"x": check})


def test_not_and_precedence() -> None:
    policy = Policy({"x": "not role:admin and role:member or @",
                     "y": "not (role:admin or role:member)",
                     "z": "is_admin:True", "e": ""})
    assert policy.allows("x", ADMIN)
    assert not policy.allows("y", MEMBER) and policy.allows("y", NO_ROLE)
    assert policy.allows("z", ADMIN) and not policy.allows("z", MEMBER)
    assert policy.allows("e", NO_ROLE)


def test_unknown_rule_is_an_error() -> None:
    with pytest.raises(PolicyError):
        DEFAULT_POLICY.allows("no:such:rule", ADMIN)


def test_sample_names_every_rule() -> None:
    text = sample()
    assert all(f'"{r.name}"' in text for r in DEFAULTS)
