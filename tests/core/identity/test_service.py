"""IdentityLogic in simulation: authenticate, scope, re-scope, validate, expire, revoke."""

from __future__ import annotations

import pytest

from nimbus.core.context import RequestContext
from nimbus.core.db.identity import DEFAULT_DOMAIN_ID
from nimbus.core.errors import InvalidInput
from nimbus.core.identity.authbody import AuthRequest, parse_auth
from nimbus.core.identity.bootstrap import BootstrapResult
from nimbus.core.identity.service import IdentityLogic
from nimbus.core.identity.tokens import InvalidToken, Unauthorized

from .conftest import ADMIN_PASSWORD, DEMO_PASSWORD, run_identity


def password_auth(name: str, password: str, scope: object = None) -> AuthRequest:
    auth: dict[str, object] = {"identity": {"methods": ["password"], "password": {"user": {
        "name": name, "domain": {"name": "Default"}, "password": password}}}}
    if scope is not None:
        auth["scope"] = scope
    return parse_auth({"auth": auth})


def project_scope(name: str) -> dict[str, object]:
    return {"project": {"name": name, "domain": {"id": DEFAULT_DOMAIN_ID}}}


def token_auth(token_id: str, scope: object = None) -> AuthRequest:
    auth: dict[str, object] = {"identity": {"methods": ["token"], "token": {"id": token_id}}}
    if scope is not None:
        auth["scope"] = scope
    return parse_auth({"auth": auth})


def test_admin_project_token_carries_implied_roles_and_context() -> None:
    async def body(logic: IdentityLogic, boot: BootstrapResult) -> None:
        info = await logic.authenticate(password_auth("admin", ADMIN_PASSWORD,
                                                      project_scope("admin")))
        assert info.project is not None and info.project.id == boot.admin_project_id
        assert info.role_names == ("admin", "member", "reader")
        assert info.payload.methods == ("password",)
        assert info.payload.expires_at == info.payload.issued_at + 3600
        assert "token_id" not in repr(info) and info.token_id not in repr(info)
        again = await logic.validate(info.token_id)
        assert again.user.id == boot.admin_user_id and again.is_admin
        ctx = await logic.context_for(info.token_id, "req-1")
        assert ctx == RequestContext(boot.admin_user_id, boot.admin_project_id, "req-1",
                                     ("admin", "member", "reader"))
        demo = await logic.authenticate(password_auth("demo", DEMO_PASSWORD,
                                                      project_scope("demo")))
        assert demo.role_names == ("member", "reader") and not demo.is_admin

    run_identity(body)


def test_scopes_by_id_default_and_unscoped() -> None:
    async def body(logic: IdentityLogic, boot: BootstrapResult) -> None:
        by_ids = parse_auth({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "id": boot.admin_user_id, "password": ADMIN_PASSWORD}}},
            "scope": {"project": {"id": boot.admin_project_id}}}})
        assert (await logic.authenticate(by_ids)).project is not None
        # no scope: the user's default project (bootstrap sets it)
        default = await logic.authenticate(password_auth("admin", ADMIN_PASSWORD))
        assert default.project is not None and default.project.id == boot.admin_project_id
        unscoped = await logic.authenticate(password_auth("admin", ADMIN_PASSWORD, "unscoped"))
        assert unscoped.payload.unscoped and unscoped.roles == ()
        with pytest.raises(InvalidToken, match="requires authentication"):
            await logic.context_for(unscoped.token_id, "req-2")

    run_identity(body)


@pytest.mark.parametrize("name,password,scope", [
    ("admin", "wrong", None),
    ("nobody", ADMIN_PASSWORD, None),
    ("admin", ADMIN_PASSWORD, {"project": {"name": "missing", "domain": {"name": "Default"}}}),
    ("admin", ADMIN_PASSWORD, {"project": {"name": "demo", "domain": {"name": "Nope"}}}),
    ("demo", DEMO_PASSWORD, {"project": {"name": "admin", "domain": {"name": "Default"}}}),
    ("admin", ADMIN_PASSWORD, {"domain": {"id": "default"}}),  # no role on the domain
])
def test_failures_are_401(name: str, password: str, scope: object) -> None:
    async def body(logic: IdentityLogic, boot: BootstrapResult) -> None:
        with pytest.raises(Unauthorized) as err:
            await logic.authenticate(password_auth(name, password, scope))
        assert err.value.status == 401
        assert err.value.message == "The request you have made requires authentication."

    run_identity(body)


def test_disabled_user_cannot_log_in_and_their_tokens_die() -> None:
    async def body(logic: IdentityLogic, boot: BootstrapResult) -> None:
        info = await logic.authenticate(password_auth("demo", DEMO_PASSWORD))
        await logic.store.update_user(boot.demo_user_id or "", now=1.0, enabled=False)
        with pytest.raises(InvalidToken, match="authentication"):
            await logic.validate(info.token_id)
        with pytest.raises(Unauthorized):
            await logic.authenticate(password_auth("demo", DEMO_PASSWORD))

    run_identity(body)


def test_rescope_keeps_expiry_and_chains_audit_ids() -> None:
    async def body(logic: IdentityLogic, boot: BootstrapResult) -> None:
        first = await logic.authenticate(password_auth("admin", ADMIN_PASSWORD, "unscoped"))
        await logic.runtime.sleep(100)
        scoped = await logic.authenticate(token_auth(first.token_id, project_scope("admin")))
        p = scoped.payload
        assert p.expires_at == first.payload.expires_at
        assert p.methods == ("token", "password")
        assert p.audit_ids[1] == first.payload.audit_id and p.audit_id != first.payload.audit_id
        # a project-scoped token may be re-scoped too (Horizon does)
        await logic.store.assign_role(user_id=boot.admin_user_id,
                                      role_id=boot.roles["member"],
                                      project_id=boot.demo_project_id)
        demo = await logic.authenticate(token_auth(scoped.token_id, project_scope("demo")))
        assert demo.payload.audit_ids[1] == first.payload.audit_id
        assert demo.role_names == ("member", "reader")
        # revoking the re-scoped token leaves its parent valid
        await logic.revoke(demo)
        await logic.validate(first.token_id)
        with pytest.raises(InvalidToken):
            await logic.authenticate(token_auth(demo.token_id))

    run_identity(body)


def test_expiry_in_virtual_time() -> None:
    async def body(logic: IdentityLogic, boot: BootstrapResult) -> None:
        info = await logic.authenticate(password_auth("admin", ADMIN_PASSWORD))
        await logic.runtime.sleep(59)
        await logic.validate(info.token_id)
        await logic.runtime.sleep(1)
        with pytest.raises(InvalidToken) as err:
            await logic.validate(info.token_id)
        assert err.value.why == "token expired"

    run_identity(body, expiration=60)


def test_revocations() -> None:
    async def body(logic: IdentityLogic, boot: BootstrapResult) -> None:
        one = await logic.authenticate(password_auth("admin", ADMIN_PASSWORD))
        two = await logic.authenticate(password_auth("admin", ADMIN_PASSWORD))
        await logic.revoke(one)
        with pytest.raises(InvalidToken, match="authentication") as err:
            await logic.validate(one.token_id)
        assert err.value.why == "token revoked"
        await logic.validate(two.token_id)
        # a new password revokes every token issued so far; a login at the same
        # instant afterwards still works
        await logic.set_password(boot.admin_user_id, "new-secret")
        with pytest.raises(InvalidToken):
            await logic.validate(two.token_id)
        with pytest.raises(Unauthorized):
            await logic.authenticate(password_auth("admin", ADMIN_PASSWORD))
        three = await logic.authenticate(password_auth("admin", "new-secret"))
        await logic.validate(three.token_id)
        # disabling a project revokes its tokens, for good
        await logic.runtime.sleep(1)
        await logic.revoke_project_tokens(boot.admin_project_id)
        with pytest.raises(InvalidToken):
            await logic.validate(three.token_id)
        await logic.validate((await logic.authenticate(
            password_auth("admin", "new-secret"))).token_id)

    run_identity(body)


def test_losing_the_role_or_the_project_invalidates_the_token() -> None:
    async def body(logic: IdentityLogic, boot: BootstrapResult) -> None:
        demo = await logic.authenticate(password_auth("demo", DEMO_PASSWORD))
        await logic.store.unassign_role(user_id=boot.demo_user_id or "",
                                        role_id=boot.roles["member"],
                                        project_id=boot.demo_project_id)
        with pytest.raises(InvalidToken, match="authentication") as err:
            await logic.validate(demo.token_id)
        assert "no role" in err.value.why
        admin = await logic.authenticate(password_auth("admin", ADMIN_PASSWORD))
        await logic.store.update_project(boot.admin_project_id, now=2.0, enabled=False)
        with pytest.raises(InvalidToken):
            await logic.validate(admin.token_id)

    run_identity(body)


def test_domain_scope() -> None:
    async def body(logic: IdentityLogic, boot: BootstrapResult) -> None:
        await logic.store.assign_role(user_id=boot.admin_user_id, role_id=boot.roles["admin"],
                                      domain_id=DEFAULT_DOMAIN_ID)
        info = await logic.authenticate(password_auth("admin", ADMIN_PASSWORD,
                                                      {"domain": {"name": "Default"}}))
        assert info.domain is not None and info.domain.id == DEFAULT_DOMAIN_ID
        assert info.project is None and info.is_admin

    run_identity(body)


def test_unsupported_method_is_401_and_bad_bodies_name_the_field() -> None:
    async def body(logic: IdentityLogic, boot: BootstrapResult) -> None:
        with pytest.raises(Unauthorized):
            await logic.authenticate(parse_auth({"auth": {"identity": {"methods": ["totp"]}}}))

    run_identity(body)
    cases = [
        (None, "'auth'"),
        ({"auth": {}}, "'auth/identity'"),
        ({"auth": {"identity": {"methods": []}}}, "'auth/identity/methods'"),
        ({"auth": {"identity": {"methods": ["password"]}}}, "'auth/identity/password'"),
        ({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "password": "x"}}}}}, "'auth/identity/password/user/domain'"),
        ({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "id": "u"}}}}}, "'auth/identity/password/user/password'"),
        ({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "id": "u", "password": 5}}}}}, "'auth/identity/password/user/password'"),
        ({"auth": {"identity": {"methods": ["token"], "token": {}}}},
         "'auth/identity/token/id'"),
        ({"auth": {"identity": {"methods": ["token"], "token": {"id": "t"}},
                   "scope": {"project": {"name": "p"}}}}, "'auth/scope/project/domain'"),
        ({"auth": {"identity": {"methods": ["token"], "token": {"id": "t"}},
                   "scope": {"system": {"all": True}}}}, "'auth/scope/system'"),
        ({"auth": {"identity": {"methods": ["token"], "token": {"id": "t"}},
                   "scope": 7}}, "'auth/scope'"),
    ]
    for data, field in cases:
        with pytest.raises(InvalidInput, match=field) as err:
            parse_auth(data)
        assert err.value.status == 400
