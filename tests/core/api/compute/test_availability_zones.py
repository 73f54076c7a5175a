"""``/os-availability-zone``: zones from aggregates, availability, the admin detail."""

from __future__ import annotations

from typing import Any

from tests.core.api.compute.harness import ADMIN_TOKEN, USER, Api, run


async def zones(api: Api, token: str = USER) -> dict[str, Any]:
    got = await api.get("/os-availability-zone", token=token)
    assert got.status == 200
    return {z["zoneName"]: z for z in got.body["availabilityZoneInfo"]}


async def detail(api: Api) -> dict[str, Any]:
    got = await api.get("/os-availability-zone/detail", token=ADMIN_TOKEN)
    assert got.status == 200
    return {z["zoneName"]: z for z in got.body["availabilityZoneInfo"]}


async def zone_aggregate(api: Api, name: str, zone: str, *hosts: str) -> dict[str, Any]:
    made = await api.post("/os-aggregates", {"aggregate": {"name": name,
                                                           "availability_zone": zone}},
                          token=ADMIN_TOKEN, version="2.81")
    assert made.status == 200, made.body
    agg: dict[str, Any] = made.body["aggregate"]
    for host in hosts:
        added = await api.post(f"/os-aggregates/{agg['id']}/action",
                               {"add_host": {"host": host}}, token=ADMIN_TOKEN)
        assert added.status == 200, added.body
    return agg


def test_every_host_is_in_the_default_zone_at_first() -> None:
    async def scenario(api: Api) -> None:
        assert await zones(api) == {"nova": {"zoneName": "nova",
                                             "zoneState": {"available": True},
                                             "hosts": None}}
        hosts = (await detail(api))["nova"]["hosts"]
        assert sorted(hosts) == ["cmp0", "cmp1", "cmp2"]
        service = hosts["cmp0"]["nimbus-compute"]
        assert service["available"] is True and service["active"] is True
        assert service["updated_at"]
        denied = await api.get("/os-availability-zone/detail", token=USER)
        assert denied.status == 403
        other = await api.get("/os-availability-zone", token=USER, version="2.80")
        assert other.status == 200

    run(scenario)


def test_an_aggregate_with_a_zone_makes_the_zone_appear() -> None:
    async def scenario(api: Api) -> None:
        empty = await zone_aggregate(api, "racks", "az1")
        assert "az1" not in await zones(api)  # a zone shows through its hosts
        await api.post(f"/os-aggregates/{empty['id']}/action",
                       {"add_host": {"host": "cmp0"}}, token=ADMIN_TOKEN)
        assert set(await zones(api)) == {"nova", "az1"}
        full = await detail(api)
        assert list(full["az1"]["hosts"]) == ["cmp0"]
        assert sorted(full["nova"]["hosts"]) == ["cmp1", "cmp2"]
        renamed = await api.post(f"/os-aggregates/{empty['id']}/action",
                                 {"set_metadata": {"metadata": {"availability_zone": "az9"}}},
                                 token=ADMIN_TOKEN)
        assert renamed.status == 200
        assert set(await zones(api)) == {"nova", "az9"}
        assert (await api.cloud.store.availability_zone_of_host("cmp0")) == "az9"

    run(scenario)


def test_a_zone_of_disabled_services_only_is_not_available() -> None:
    async def scenario(api: Api) -> None:
        await zone_aggregate(api, "edge", "edge", "cmp2")
        svc = (await api.cloud.store.list_services(host="cmp2"))[0]
        put = await api.put(f"/os-services/{svc.uuid}", {"status": "disabled"},
                            token=ADMIN_TOKEN, version="2.53")
        assert put.status == 200
        listed = await zones(api)
        assert listed["edge"]["zoneState"] == {"available": False}
        assert listed["nova"]["zoneState"] == {"available": True}
        full = await detail(api)
        assert full["edge"]["hosts"] is None
        assert "cmp2" not in full["nova"]["hosts"]

    run(scenario)


def test_the_detail_reports_a_down_service_as_unavailable() -> None:
    async def scenario(api: Api) -> None:
        await api.cloud.stop_compute("cmp1")
        await api.cloud.rt.sleep(65)
        hosts = (await detail(api))["nova"]["hosts"]
        assert hosts["cmp1"]["nimbus-compute"]["available"] is False
        assert hosts["cmp0"]["nimbus-compute"]["available"] is True
        assert (await zones(api))["nova"]["zoneState"]["available"] is True

    run(scenario)
