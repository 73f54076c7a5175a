"""The bootstrap: default domain, implied roles, admin and demo; idempotent."""

from __future__ import annotations

from nimbus.core.db.identity import DEFAULT_DOMAIN_ID
from nimbus.core.identity.bootstrap import BootstrapResult, bootstrap
from nimbus.core.identity.catalog import standard_catalog
from nimbus.core.identity.service import IdentityLogic

from .conftest import ADMIN_PASSWORD, DEMO_PASSWORD, run_identity


def test_first_run_makes_everything() -> None:
    async def body(logic: IdentityLogic, boot: BootstrapResult) -> None:
        store = logic.store
        domain = await store.get_domain(DEFAULT_DOMAIN_ID)
        assert (domain.id, domain.name) == ("default", "Default")
        assert sorted(r.name for r in await store.list_roles()) == ["admin", "member", "reader"]
        assert all(len(i) == 32 for i in (*boot.roles.values(), boot.admin_user_id))
        admin = await store.get_user(boot.admin_user_id)
        assert admin.password_hash is not None and admin.password_hash.startswith("$argon2id$")
        assert admin.default_project_id == boot.admin_project_id
        assert [r.name for r in await store.roles_for_user_on_project(
            boot.admin_user_id, boot.admin_project_id)] == ["admin"]
        assert [r.name for r in await store.roles_for_user_on_project(
            boot.demo_user_id or "", boot.demo_project_id or "")] == ["member"]
        assert "user admin" in boot.changed and "project demo" in boot.changed

    run_identity(body)


def test_rerun_is_idempotent_and_resets_a_changed_password() -> None:
    async def body(logic: IdentityLogic, boot: BootstrapResult) -> BootstrapResult:
        rt, store = logic.runtime, logic.store
        again = await bootstrap(store, rt, logic.passwords, admin_password=ADMIN_PASSWORD,
                                demo_password=DEMO_PASSWORD)
        assert again.changed == ()
        assert (again.admin_user_id, again.roles) == (boot.admin_user_id, boot.roles)
        await logic.set_password(boot.admin_user_id, "changed")
        await store.update_user(boot.admin_user_id, now=1.0, enabled=False)
        third = await bootstrap(store, rt, logic.passwords, admin_password=ADMIN_PASSWORD)
        assert third.changed == ("password of user admin",)
        admin = await store.get_user(boot.admin_user_id)
        assert admin.enabled and await logic.password_matches(admin, ADMIN_PASSWORD)
        return boot

    first = run_identity(body, seed=4)
    assert run_identity(body, seed=4) == first  # same seed, same ids


def test_catalog_is_built_from_given_urls() -> None:
    catalog = standard_catalog(identity="http://h:5000/v3/", compute="http://h:8774/v2.1",
                               region="RegionTwo")
    rendered = catalog.render()
    assert [s["type"] for s in rendered] == ["identity", "compute"]
    assert [s["name"] for s in rendered] == ["keystone", "nova"]
    endpoints = rendered[0]["endpoints"]
    assert [e["interface"] for e in endpoints] == ["public", "internal", "admin"]
    assert {e["url"] for e in endpoints} == {"http://h:5000/v3"}
    assert {e["region"] for e in endpoints} == {"RegionTwo"}
    assert catalog.url_of("compute") == "http://h:8774/v2.1"
    assert catalog.url_of("image") is None
    assert standard_catalog(compute="http://x").render()[0]["id"] == rendered[1]["id"]
