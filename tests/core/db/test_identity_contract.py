"""Identity: domains, projects, users, roles, assignments, token revocations, on every engine."""

from __future__ import annotations

import pytest

from nimbus.core.db.identity import DEFAULT_DOMAIN_ID, ProjectHasChildren, RoleAssignmentRecord
from nimbus.core.db.store import Store
from nimbus.core.errors import DuplicateError, NotFound

from .conftest import StoreRunner


def test_domains(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        d = await store.ensure_default_domain(1.0)
        assert (d.id, d.name, d.enabled) == (DEFAULT_DOMAIN_ID, "Default", True)
        assert (await store.ensure_default_domain(2.0)).created_at == 1.0
        other = await store.create_domain(id="d2", name="Engineering", now=3.0,
                                          description="eng", enabled=False)
        assert (other.description, other.enabled) == ("eng", False)
        with pytest.raises(DuplicateError):
            await store.create_domain(id="d3", name="Engineering", now=3.0)
        assert (await store.get_domain("d2")).name == "Engineering"
        assert (await store.get_domain_by_name("Default")).id == DEFAULT_DOMAIN_ID
        assert [x.id for x in await store.list_domains()] == ["default", "d2"]
        with pytest.raises(NotFound, match="domain nope"):
            await store.get_domain("nope")
        with pytest.raises(NotFound):
            await store.get_domain_by_name("Nope")

    run_store(body)


def test_projects(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        await store.ensure_default_domain(1.0)
        await store.create_domain(id="d2", name="Other", now=1.0)
        p = await store.create_project(id="p1", name="alpha", domain_id="default", now=2.0,
                                       description="first", extra={"tier": "gold"})
        assert (p.name, p.domain_id, p.description, p.enabled, p.parent_id, p.extra) == (
            "alpha", "default", "first", True, None, {"tier": "gold"})
        await store.create_project(id="p2", name="beta", domain_id="default", now=2.0,
                                   parent_id="p1", enabled=False)
        await store.create_project(id="p3", name="alpha", domain_id="d2", now=2.0)
        with pytest.raises(DuplicateError):
            await store.create_project(id="p4", name="alpha", domain_id="default", now=2.0)
        with pytest.raises(DuplicateError):
            await store.create_project(id="p1", name="gamma", domain_id="default", now=2.0)
        with pytest.raises(NotFound, match="domain"):
            await store.create_project(id="p5", name="x", domain_id="missing", now=2.0)
        with pytest.raises(NotFound, match="project missing"):
            await store.create_project(id="p5", name="x", domain_id="default", now=2.0,
                                       parent_id="missing")
        assert (await store.get_project("p2")).parent_id == "p1"
        assert (await store.get_project_by_name("d2", "alpha")).id == "p3"
        with pytest.raises(NotFound):
            await store.get_project_by_name("d2", "beta")
        with pytest.raises(NotFound, match="project nope"):
            await store.get_project("nope")
        assert [x.id for x in await store.list_projects()] == ["p1", "p3", "p2"]
        assert [x.id for x in await store.list_projects(name="alpha")] == ["p1", "p3"]
        assert [x.id for x in await store.list_projects(domain_id="default")] == ["p1", "p2"]
        assert [x.id for x in await store.list_projects(enabled=False)] == ["p2"]
        assert [x.id for x in await store.list_projects(parent_id="p1")] == ["p2"]
        assert [x.id for x in await store.list_projects(domain_id="default",
                                                        enabled=True)] == ["p1"]
        up = await store.update_project("p1", now=5.0, description=None, enabled=False)
        assert (up.name, up.description, up.enabled, up.extra, up.updated_at) == (
            "alpha", None, False, {"tier": "gold"}, 5.0)
        up = await store.update_project("p1", now=6.0, name="alpha2", extra={})
        assert (up.name, up.extra, up.enabled) == ("alpha2", {}, False)
        with pytest.raises(DuplicateError):
            await store.update_project("p1", now=7.0, name="beta")
        with pytest.raises(NotFound):
            await store.update_project("nope", now=7.0, name="x")
        with pytest.raises(ProjectHasChildren):
            await store.delete_project("p1")
        await store.delete_project("p2")
        await store.delete_project("p1")
        with pytest.raises(NotFound):
            await store.delete_project("p1")
        assert [x.id for x in await store.list_projects()] == ["p3"]

    run_store(body)


def test_users(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        await store.ensure_default_domain(1.0)
        await store.create_domain(id="d2", name="Other", now=1.0)
        u = await store.create_user(id="u1", name="alice", domain_id="default", now=2.0,
                                    password_hash="$scrypt$abc", email="a@example.org",
                                    default_project_id="p1", extra={"k": 1})
        assert (u.name, u.password_hash, u.password_created_at, u.enabled, u.email,
                u.default_project_id, u.extra) == (
            "alice", "$scrypt$abc", 2.0, True, "a@example.org", "p1", {"k": 1})
        nopass = await store.create_user(id="u2", name="bob", domain_id="default", now=2.0)
        assert nopass.password_hash is None and nopass.password_created_at is None
        await store.create_user(id="u3", name="alice", domain_id="d2", now=2.0, enabled=False)
        with pytest.raises(DuplicateError):
            await store.create_user(id="u4", name="alice", domain_id="default", now=2.0)
        with pytest.raises(NotFound, match="domain"):
            await store.create_user(id="u4", name="z", domain_id="missing", now=2.0)
        assert (await store.get_user_by_name("default", "alice")).id == "u1"
        assert (await store.get_user_by_name("d2", "alice")).id == "u3"
        with pytest.raises(NotFound, match="user named 'carol'"):
            await store.get_user_by_name("default", "carol")
        assert [x.id for x in await store.list_users()] == ["u1", "u3", "u2"]
        assert [x.id for x in await store.list_users(name="alice")] == ["u1", "u3"]
        assert [x.id for x in await store.list_users(domain_id="default")] == ["u1", "u2"]
        assert [x.id for x in await store.list_users(enabled=False)] == ["u3"]
        # a new password hash restarts password_created_at; other fields stay
        up = await store.update_user("u1", now=9.0, password_hash="$scrypt$new")
        assert (up.password_hash, up.password_created_at, up.email, up.updated_at) == (
            "$scrypt$new", 9.0, "a@example.org", 9.0)
        up = await store.update_user("u1", now=10.0, email=None, enabled=False,
                                     default_project_id=None, name="alice2")
        assert (up.email, up.enabled, up.default_project_id, up.name,
                up.password_created_at) == (None, False, None, "alice2", 9.0)
        with pytest.raises(DuplicateError):
            await store.update_user("u1", now=11.0, name="bob")
        with pytest.raises(NotFound, match="user nope"):
            await store.get_user("nope")
        await store.delete_user("u2")
        with pytest.raises(NotFound):
            await store.delete_user("u2")
        assert [x.id for x in await store.list_users()] == ["u3", "u1"]

    run_store(body)


async def _people(store: Store) -> None:
    await store.ensure_default_domain(1.0)
    for pid, name in (("p1", "alpha"), ("p2", "beta"), ("p3", "gamma")):
        await store.create_project(id=pid, name=name, domain_id="default", now=1.0)
    for uid, name in (("u1", "alice"), ("u2", "bob")):
        await store.create_user(id=uid, name=name, domain_id="default", now=1.0)
    for rid, name in (("r1", "admin"), ("r2", "member"), ("r3", "reader")):
        await store.create_role(id=rid, name=name, now=1.0)


def test_roles_and_assignments(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        await _people(store)
        with pytest.raises(DuplicateError):
            await store.create_role(id="r9", name="member", now=1.0)
        assert (await store.get_role_by_name("reader")).id == "r3"
        assert (await store.get_role("r1")).name == "admin"
        with pytest.raises(NotFound, match="role named 'owner'"):
            await store.get_role_by_name("owner")
        assert [r.name for r in await store.list_roles()] == ["admin", "member", "reader"]

        a = await store.assign_role(user_id="u1", role_id="r2", project_id="p1", now=2.0)
        assert a == RoleAssignmentRecord("u1", "r2", "p1", None)
        await store.assign_role(user_id="u1", role_id="r1", project_id="p1")
        await store.assign_role(user_id="u1", role_id="r3", project_id="p2")
        await store.assign_role(user_id="u2", role_id="r2", project_id="p2")
        await store.assign_role(user_id="u2", role_id="r1", domain_id="default")
        with pytest.raises(DuplicateError):
            await store.assign_role(user_id="u1", role_id="r2", project_id="p1")
        for kwargs, what in (({"user_id": "ux", "role_id": "r2", "project_id": "p1"}, "user"),
                             ({"user_id": "u1", "role_id": "rx", "project_id": "p1"}, "role"),
                             ({"user_id": "u1", "role_id": "r2", "project_id": "px"},
                              "project"),
                             ({"user_id": "u1", "role_id": "r2", "domain_id": "dx"},
                              "domain")):
            with pytest.raises(NotFound, match=what):
                await store.assign_role(**kwargs)
        with pytest.raises(ValueError):
            await store.assign_role(user_id="u1", role_id="r2")

        assert [r.name for r in await store.roles_for_user_on_project("u1", "p1")] == [
            "admin", "member"]
        assert await store.roles_for_user_on_project("u1", "p3") == []
        # a domain role is not a role on the domain's projects
        assert await store.roles_for_user_on_project("u2", "p1") == []
        assert [p.id for p in await store.list_projects(user_id="u1")] == ["p1", "p2"]
        assert [p.id for p in await store.list_projects(user_id="u1", name="beta")] == ["p2"]
        assert [p.id for p in await store.list_projects(user_id="u2")] == ["p2"]

        everything = await store.list_role_assignments()
        assert len(everything) == 5
        assert {(x.role_id, x.project_id) for x in
                await store.list_role_assignments(user_id="u1")} == {
            ("r2", "p1"), ("r1", "p1"), ("r3", "p2")}
        assert {x.user_id for x in await store.list_role_assignments(project_id="p2")} == {
            "u1", "u2"}
        assert await store.list_role_assignments(domain_id="default") == [
            RoleAssignmentRecord("u2", "r1", None, "default")]
        assert [(x.user_id, x.project_id) for x in
                await store.list_role_assignments(role_id="r2", user_id="u2")] == [
            ("u2", "p2")]

        await store.unassign_role(user_id="u1", role_id="r1", project_id="p1")
        with pytest.raises(NotFound):
            await store.unassign_role(user_id="u1", role_id="r1", project_id="p1")
        assert [r.name for r in await store.roles_for_user_on_project("u1", "p1")] == [
            "member"]
        # deletes take their assignments with them, in the same transaction
        await store.delete_project("p2")
        assert {x.project_id for x in await store.list_role_assignments()} == {"p1", None}
        await store.delete_role("r1")
        assert await store.list_role_assignments(domain_id="default") == []
        with pytest.raises(NotFound):
            await store.delete_role("r1")
        await store.delete_user("u1")
        assert await store.list_role_assignments() == []

    run_store(body)


def test_token_revocations(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        assert not await store.is_token_revoked(token_id="t1")
        rev = await store.revoke_token(token_id="t1", audit_id="a1", user_id="u1",
                                       project_id="p1", expires_at=100.0, now=10.0)
        assert (rev.token_id, rev.audit_id, rev.expires_at, rev.revoked_at) == (
            "t1", "a1", 100.0, 10.0)
        # revoking again is the same revocation
        assert (await store.revoke_token(token_id="t1", expires_at=100.0, now=11.0)).id == rev.id
        await store.revoke_token(audit_id="a2", expires_at=50.0, now=12.0)
        assert await store.is_token_revoked(token_id="t1")
        assert await store.is_token_revoked(token_id="other", audit_id="a1")
        assert await store.is_token_revoked(audit_id="a2")
        assert not await store.is_token_revoked(token_id="t2", audit_id="a3")
        assert not await store.is_token_revoked()
        # a token-specific revocation says nothing about the user's other tokens
        assert not await store.is_token_revoked(token_id="t2", user_id="u1", issued_at=5.0)
        with pytest.raises(ValueError):
            await store.revoke_token(expires_at=1.0, now=1.0)

        await store.revoke_tokens_issued_before(user_id="u2", issued_before=20.0,
                                                expires_at=200.0, now=20.0)
        await store.revoke_tokens_issued_before(project_id="p9", issued_before=30.0,
                                                expires_at=300.0, now=30.0)
        assert await store.is_token_revoked(token_id="t3", user_id="u2", issued_at=19.0)
        assert await store.is_token_revoked(token_id="t3", user_id="u2", issued_at=20.0)
        assert not await store.is_token_revoked(token_id="t4", user_id="u2", issued_at=21.0)
        assert not await store.is_token_revoked(token_id="t4", user_id="u3", issued_at=1.0)
        assert await store.is_token_revoked(token_id="t5", user_id="u3", project_id="p9",
                                            issued_at=25.0)
        assert not await store.is_token_revoked(token_id="t5", user_id="u3", project_id="p9",
                                                issued_at=35.0)
        with pytest.raises(ValueError):
            await store.revoke_tokens_issued_before(issued_before=1.0, expires_at=1.0, now=1.0)

        assert [r.revoked_at for r in await store.revocations_since(0.0)] == [
            10.0, 12.0, 20.0, 30.0]
        assert [r.user_id for r in await store.revocations_since(20.0)] == ["u2", None]
        assert await store.purge_expired_revocations(100.0) == 2
        assert not await store.is_token_revoked(token_id="t1")
        assert await store.is_token_revoked(token_id="x", user_id="u2", issued_at=1.0)
        assert await store.purge_expired_revocations(100.0) == 0
        assert await store.purge_expired_revocations(1000.0) == 2
        assert await store.revocations_since(0.0) == []

    run_store(body)
