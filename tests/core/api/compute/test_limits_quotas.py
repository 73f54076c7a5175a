"""``/limits``, ``/os-quota-sets`` and ``/os-quota-class-sets``."""

from __future__ import annotations

from tests.core.api.compute.harness import ADMIN_TOKEN, OTHER, USER, Api, run

NETWORK = {"fixed_ips", "floating_ips", "security_groups", "security_group_rules"}
INJECTED = {"injected_files", "injected_file_content_bytes", "injected_file_path_bytes"}


def test_limits_as_the_cli_asks_for_them() -> None:
    async def scenario(api: Api) -> None:
        got = await api.get("/limits", query={"reserved": "False"})
        assert got.status == 200
        assert got.body["limits"]["rate"] == []
        absolute = got.body["limits"]["absolute"]
        assert absolute["maxTotalInstances"] == 10 and absolute["maxTotalCores"] == 20
        assert absolute["maxTotalRAMSize"] == 51200 and absolute["maxTotalKeypairs"] == 100
        assert absolute["maxServerMeta"] == absolute["maxImageMeta"] == 128
        assert absolute["maxPersonality"] == 5 and absolute["maxPersonalitySize"] == 10240
        assert absolute["maxTotalFloatingIps"] == -1 and absolute["maxSecurityGroups"] == -1
        assert absolute["maxServerGroups"] == 10 and absolute["maxServerGroupMembers"] == 10
        assert absolute["totalInstancesUsed"] == 0 and absolute["totalRAMUsed"] == 0
        assert absolute["totalFloatingIpsUsed"] == 0 and absolute["totalServerGroupsUsed"] == 0
        assert len(absolute) == 19

    run(scenario)


def test_limits_fields_leave_with_microversions() -> None:
    async def scenario(api: Api) -> None:
        at = {v: (await api.get("/limits", version=v)).body["limits"]["absolute"]
              for v in ("2.35", "2.36", "2.39", "2.57")}
        assert "maxTotalFloatingIps" in at["2.35"]
        assert "maxTotalFloatingIps" not in at["2.36"] and "maxSecurityGroups" not in at["2.36"]
        assert "totalSecurityGroupsUsed" not in at["2.36"] and "maxImageMeta" in at["2.36"]
        assert "maxImageMeta" not in at["2.39"] and "maxPersonality" in at["2.39"]
        assert "maxPersonality" not in at["2.57"] and "maxPersonalitySize" not in at["2.57"]
        assert set(at["2.57"]) == {
            "maxServerMeta", "maxServerGroups", "maxServerGroupMembers", "maxTotalCores",
            "maxTotalInstances", "maxTotalKeypairs", "maxTotalRAMSize", "totalCoresUsed",
            "totalInstancesUsed", "totalRAMUsed", "totalServerGroupsUsed"}
        strict = await api.get("/limits", query={"reserved": "False"}, version="2.75")
        assert strict.status == 400

    run(scenario)


def test_limits_count_usage_and_other_projects_are_for_admins() -> None:
    async def scenario(api: Api) -> None:
        await api.cloud.boot()
        mine = (await api.get("/limits")).body["limits"]["absolute"]
        assert (mine["totalInstancesUsed"], mine["totalCoresUsed"], mine["totalRAMUsed"]) == (
            1, 1, 512)
        theirs = (await api.get("/limits", token=OTHER)).body["limits"]["absolute"]
        assert theirs["totalInstancesUsed"] == 0
        assert (await api.get("/limits", token=OTHER, query={"tenant_id": "p1"})).status == 403
        await api.put("/os-quota-sets/p1", {"quota_set": {"instances": 3}}, token=ADMIN_TOKEN)
        admin = await api.get("/limits", token=ADMIN_TOKEN, query={"tenant_id": "p1"})
        assert admin.status == 200
        assert admin.body["limits"]["absolute"]["maxTotalInstances"] == 3
        assert admin.body["limits"]["absolute"]["totalInstancesUsed"] == 1

    run(scenario)


def test_quota_show_is_for_own_project_or_admin() -> None:
    async def scenario(api: Api) -> None:
        got = await api.get("/os-quota-sets/p1")
        assert got.status == 200
        quota = got.body["quota_set"]
        assert quota["id"] == "p1" and quota["instances"] == 10 and quota["key_pairs"] == 100
        assert set(quota) >= NETWORK and quota["floating_ips"] == -1
        assert (await api.get("/os-quota-sets/p1", token=OTHER)).status == 403
        assert (await api.get("/os-quota-sets/p1/detail", token=OTHER)).status == 403
        assert (await api.get("/os-quota-sets/p1", token=ADMIN_TOKEN)).status == 200
        at_36 = (await api.get("/os-quota-sets/p1", version="2.36")).body["quota_set"]
        assert not NETWORK & set(at_36) and set(at_36) >= INJECTED
        at_57 = (await api.get("/os-quota-sets/p1", version="2.57")).body["quota_set"]
        assert set(at_57) == {"id", "cores", "instances", "key_pairs", "metadata_items",
                              "ram", "server_groups", "server_group_members"}
        # anyone may read the defaults
        defaults = await api.get("/os-quota-sets/p2/defaults", token=USER, version="2.57")
        assert defaults.status == 200 and defaults.body["quota_set"]["cores"] == 20
        strict = await api.get("/os-quota-sets/p1", query={"x": "1"}, version="2.75")
        assert strict.status == 400

    run(scenario)


def test_quota_detail_reports_usage() -> None:
    async def scenario(api: Api) -> None:
        await api.cloud.boot()
        got = await api.get("/os-quota-sets/p1/detail", version="2.57")
        quota = got.body["quota_set"]
        assert quota["instances"] == {"in_use": 1, "limit": 10, "reserved": 0}
        assert quota["ram"] == {"in_use": 512, "limit": 51200, "reserved": 0}
        assert quota["key_pairs"]["in_use"] == 0
        user = await api.get("/os-quota-sets/p1/detail", query={"user_id": "u9"},
                             token=ADMIN_TOKEN, version="2.57")
        assert user.body["quota_set"]["instances"]["in_use"] == 0

    run(scenario)


def test_quota_update_is_admin_only_and_guards_usage() -> None:
    async def scenario(api: Api) -> None:
        await api.cloud.boot()
        body = {"quota_set": {"instances": 5, "cores": "-1"}}
        assert (await api.put("/os-quota-sets/p1", body)).status == 403
        got = await api.put("/os-quota-sets/p1", body, token=ADMIN_TOKEN, version="2.57")
        assert got.status == 200
        assert "id" not in got.body["quota_set"]
        assert got.body["quota_set"]["instances"] == 5 and got.body["quota_set"]["cores"] == -1
        assert (await api.get("/os-quota-sets/p1")).body["quota_set"]["instances"] == 5
        below = await api.put("/os-quota-sets/p1", {"quota_set": {"instances": 0}},
                              token=ADMIN_TOKEN)
        assert below.status == 400
        assert below.body["badRequest"]["message"] == (
            "Quota limit 0 for instances must be greater than or equal to already used and "
            "reserved 1.")
        forced = await api.put("/os-quota-sets/p1", {"quota_set": {"instances": 0,
                                                                   "force": True}},
                               token=ADMIN_TOKEN)
        assert forced.status == 200 and forced.body["quota_set"]["instances"] == 0
        for bad in ({"instances": -2}, {"instances": "many"}, {"colour": 1}):
            got = await api.put("/os-quota-sets/p1", {"quota_set": bad}, token=ADMIN_TOKEN)
            assert got.status == 400, bad
        # the network quotas are accepted before 2.36 (and stay unlimited), refused after
        old = await api.put("/os-quota-sets/p1", {"quota_set": {"floating_ips": 4}},
                            token=ADMIN_TOKEN, version="2.35")
        assert old.status == 200 and old.body["quota_set"]["floating_ips"] == -1
        new = await api.put("/os-quota-sets/p1", {"quota_set": {"floating_ips": 4}},
                            token=ADMIN_TOKEN, version="2.36")
        assert new.status == 400

    run(scenario)


def test_user_quotas_stay_within_the_project_and_delete_restores_defaults() -> None:
    async def scenario(api: Api) -> None:
        await api.put("/os-quota-sets/p1", {"quota_set": {"instances": 4}}, token=ADMIN_TOKEN)
        over = await api.put("/os-quota-sets/p1", {"quota_set": {"instances": 6}},
                             query={"user_id": "u1"}, token=ADMIN_TOKEN)
        assert over.status == 400
        ok = await api.put("/os-quota-sets/p1", {"quota_set": {"instances": 2}},
                           query={"user_id": "u1"}, token=ADMIN_TOKEN)
        assert ok.status == 200 and ok.body["quota_set"]["instances"] == 2
        user = await api.get("/os-quota-sets/p1", query={"user_id": "u1"})
        assert user.body["quota_set"]["instances"] == 2
        assert (await api.delete("/os-quota-sets/p1")).status == 403
        assert (await api.delete("/os-quota-sets/p1", token=ADMIN_TOKEN)).status == 202
        assert (await api.get("/os-quota-sets/p1")).body["quota_set"]["instances"] == 10
        user = await api.get("/os-quota-sets/p1", query={"user_id": "u1"})
        assert user.body["quota_set"]["instances"] == 10

    run(scenario)


def test_quota_classes_are_admin_only_and_set_the_defaults() -> None:
    async def scenario(api: Api) -> None:
        assert (await api.get("/os-quota-class-sets/default")).status == 403
        old = await api.get("/os-quota-class-sets/default", token=ADMIN_TOKEN)
        quota = old.body["quota_class_set"]
        assert quota["id"] == "default" and "server_groups" not in quota
        assert set(quota) >= NETWORK
        at_50 = (await api.get("/os-quota-class-sets/default", token=ADMIN_TOKEN,
                               version="2.50")).body["quota_class_set"]
        assert at_50["server_groups"] == 10 and not NETWORK & set(at_50)
        body = {"quota_class_set": {"instances": 20}}
        assert (await api.put("/os-quota-class-sets/default", body)).status == 403
        got = await api.put("/os-quota-class-sets/default", body, token=ADMIN_TOKEN,
                            version="2.57")
        assert got.status == 200 and got.body["quota_class_set"]["instances"] == 20
        assert "id" not in got.body["quota_class_set"]
        assert not INJECTED & set(got.body["quota_class_set"])
        shown = await api.get("/os-quota-sets/p2", token=OTHER)
        assert shown.body["quota_set"]["instances"] == 20
        server_groups = await api.put("/os-quota-class-sets/default", {
            "quota_class_set": {"server_groups": 3}}, token=ADMIN_TOKEN, version="2.49")
        assert server_groups.status == 400

    run(scenario)
