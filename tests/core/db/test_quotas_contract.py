"""Quota limits, usage counted from the rows, and quota checks, on every engine."""

from __future__ import annotations

from typing import Any

import pytest

from nimbus.core.db.instances import NewInstance
from nimbus.core.db.quotas import QUOTA_DEFAULTS
from nimbus.core.db.store import Store
from nimbus.core.errors import ApiError, QuotaExceeded

from .conftest import StoreRunner


async def _instance(store: Store, uuid: str, project: str, user: str, vcpus: int,
                    ram: int, **kw: Any) -> None:
    flavor = {"flavorid": "f", "vcpus": vcpus, "memory_mb": ram, "root_gb": 1}
    await store.create_instance(NewInstance(uuid=uuid, project_id=project, user_id=user,
                                            flavor=flavor, **kw),
                                now=1.0, request_id=f"req-{uuid}")


def test_quota_limits(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        assert await store.get_quota_limits("p1") == QUOTA_DEFAULTS
        assert QUOTA_DEFAULTS["cores"] == 20 and QUOTA_DEFAULTS["ram"] == 51200
        assert await store.get_quota_class() == QUOTA_DEFAULTS
        cls = await store.set_quota_class("default", {"cores": 40, "instances": 20}, 1.0)
        assert (cls["cores"], cls["instances"], cls["ram"]) == (40, 20, 51200)
        await store.set_quota_class("default", {"cores": 50}, 2.0)
        assert (await store.get_quota_class())["cores"] == 50
        assert (await store.get_quota_class("gold")) == QUOTA_DEFAULTS
        assert (await store.get_quota_limits("p1"))["cores"] == 50

        project = await store.set_project_quotas("p1", {"cores": 8, "ram": -1}, 3.0)
        assert (project["cores"], project["ram"], project["instances"]) == (8, -1, 20)
        project = await store.set_project_quotas("p1", {"cores": 6, "key_pairs": 2}, 4.0)
        assert (project["cores"], project["ram"], project["key_pairs"]) == (6, -1, 2)
        user = await store.set_user_quotas("p1", "u1", {"cores": 4}, 5.0)
        assert (user["cores"], user["ram"]) == (4, -1)
        await store.set_user_quotas("p1", "u1", {"cores": 3, "instances": 1}, 6.0)
        assert (await store.get_quota_limits("p1", "u1"))["cores"] == 3
        assert (await store.get_quota_limits("p1", "u2"))["cores"] == 6
        assert (await store.get_quota_limits("p1"))["cores"] == 6
        assert (await store.get_quota_limits("p2"))["cores"] == 50

        await store.delete_user_quotas("p1", "u1")
        assert (await store.get_quota_limits("p1", "u1"))["cores"] == 6
        await store.set_user_quotas("p1", "u1", {"cores": 3}, 7.0)
        await store.delete_project_quotas("p1")
        assert (await store.get_quota_limits("p1", "u1"))["cores"] == 50
        assert (await store.get_quota_limits("p1"))["ram"] == 51200

        with pytest.raises(ApiError, match="floating_ips") as err:
            await store.set_project_quotas("p1", {"floating_ips": 1}, 8.0)
        assert err.value.status == 400
        with pytest.raises(ApiError, match="cores"):
            await store.set_user_quotas("p1", "u1", {"cores": -2}, 8.0)
        with pytest.raises(ApiError):
            await store.set_quota_class("default", {"bogus": 1}, 8.0)

    run_store(body)


def test_count_usage(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        assert await store.count_usage("p1") == {
            "instances": 0, "cores": 0, "ram": 0, "server_groups": 0, "key_pairs": 0}
        await _instance(store, "i1", "p1", "u1", 2, 2048)
        await _instance(store, "i2", "p1", "u1", 4, 4096)
        await _instance(store, "i3", "p1", "u2", 1, 512)
        await _instance(store, "i4", "p2", "u1", 8, 8192)
        # neither a soft-deleted (restorable), a hidden nor a deleted instance counts
        await _instance(store, "i5", "p1", "u1", 16, 16384, vm_state="soft-delete")
        await _instance(store, "i6", "p1", "u1", 16, 16384, hidden=True)
        await _instance(store, "i7", "p1", "u1", 16, 16384)
        await store.soft_delete_instance("i7", now=2.0)
        for name in ("k1", "k2"):
            await store.create_keypair(name=name, user_id="u1", public_key="x",
                                       fingerprint=None, now=1.0)
        await store.create_server_group(uuid="g1", name="a", project_id="p1", user_id="u1",
                                        policy="affinity", now=1.0)
        await store.create_server_group(uuid="g2", name="b", project_id="p1", user_id="u2",
                                        policy="affinity", now=1.0)
        await store.create_server_group(uuid="g3", name="c", project_id="p1", user_id="u2",
                                        policy="affinity", now=1.0)
        await store.delete_server_group("g3", 2.0)
        assert await store.count_usage("p1") == {
            "instances": 3, "cores": 7, "ram": 6656, "server_groups": 2, "key_pairs": 0}
        assert await store.count_usage("p1", "u1") == {
            "instances": 2, "cores": 6, "ram": 6144, "server_groups": 1, "key_pairs": 2}
        assert await store.count_usage("p2", "u1") == {
            "instances": 1, "cores": 8, "ram": 8192, "server_groups": 0, "key_pairs": 2}

    run_store(body)


def test_check_quota(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        for i in range(9):
            await _instance(store, f"i{i}", "p", "u1" if i < 6 else "u2", 2, 1024)
        # 9 instances, 18 cores, 9216 MiB in use: Nova's own example
        await store.check_quota("p", "u1", {"instances": 1, "cores": 2, "ram": 1024})
        with pytest.raises(QuotaExceeded) as err:
            await store.check_quota("p", "u1", {"instances": 1, "cores": 4, "ram": 1024})
        assert err.value.status == 403
        assert str(err.value) == ("Quota exceeded for cores: Requested 4, but already used "
                                  "18 of 20 cores")
        assert (err.value.resource, err.value.requested, err.value.used,
                err.value.limit) == ("cores", 4, 18, 20)
        with pytest.raises(QuotaExceeded) as both:
            await store.check_quota("p", None, {"instances": 2, "cores": 4})
        assert both.value.overs == ("cores", "instances")
        assert str(both.value).startswith("Quota exceeded for cores,instances: Requested 4")
        # zero and negative deltas never fail; -1 is unlimited
        await store.check_quota("p", "u1", {"cores": 0, "instances": -3})
        await store.set_project_quotas("p", {"cores": -1}, 2.0)
        await store.check_quota("p", "u1", {"cores": 1000})
        # a user's own limit is checked against the user's own usage
        await store.set_user_quotas("p", "u2", {"instances": 3}, 3.0)
        await store.check_quota("p", "u1", {"instances": 1})
        with pytest.raises(QuotaExceeded, match="already used 3 of 3 instances"):
            await store.check_quota("p", "u2", {"instances": 1})
        # per-request limits: the delta is the request's own value
        await store.check_quota("p", "u1", {"metadata_items": 128})
        with pytest.raises(QuotaExceeded, match="Requested 129, but already used 0 of 128"):
            await store.check_quota("p", "u1", {"metadata_items": 129})
        # key pairs are the user's
        await store.set_project_quotas("p", {"key_pairs": 1}, 4.0)
        await store.check_quota("p", "u1", {"key_pairs": 1})
        await store.create_keypair(name="k", user_id="u1", public_key="x", fingerprint=None,
                                   now=5.0)
        with pytest.raises(QuotaExceeded, match="key_pairs"):
            await store.check_quota("p", "u1", {"key_pairs": 1})
        await store.check_quota("p", "u2", {"key_pairs": 1})
        # server groups per project and members per group
        await store.set_project_quotas("p", {"server_groups": 1, "server_group_members": 2},
                                       6.0)
        await store.create_server_group(uuid="g", name="g", project_id="p", user_id="u1",
                                        policy="affinity", now=6.0)
        with pytest.raises(QuotaExceeded, match="server_groups"):
            await store.check_quota("p", "u2", {"server_groups": 1})
        await store.add_members("g", ["i1"], 7.0)
        await store.check_quota("p", "u1", {"server_group_members": 1}, group_uuid="g")
        with pytest.raises(QuotaExceeded, match="already used 1 of 2"):
            await store.check_quota("p", "u1", {"server_group_members": 2}, group_uuid="g")
        with pytest.raises(ApiError, match="bogus"):
            await store.check_quota("p", "u1", {"bogus": 1})
        with pytest.raises(ValueError):
            await store.check_quota("p", None, {"key_pairs": 1})

    run_store(body)
