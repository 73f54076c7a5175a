"""``/os-hypervisors``: list, detail, show, paging, search, statistics, uptime per microversion."""

from __future__ import annotations

from typing import Any

from tests.core.api.compute.harness import ADMIN_TOKEN, USER, Api, run

LIST_KEYS = {"id", "hypervisor_hostname", "state", "status"}
DETAIL_BASE = LIST_KEYS | {"hypervisor_type", "hypervisor_version", "host_ip", "service"}
CAPACITY = {"vcpus", "memory_mb", "local_gb", "vcpus_used", "memory_mb_used", "local_gb_used",
            "free_ram_mb", "free_disk_gb", "current_workload", "running_vms",
            "disk_available_least", "cpu_info"}


async def admin_get(api: Api, path: str, version: str | None = None, **kw: Any) -> Any:
    return await api.get(path, token=ADMIN_TOKEN, version=version, **kw)


def test_list_shapes_by_microversion_and_admin_only() -> None:
    async def scenario(api: Api) -> None:
        old = await admin_get(api, "/os-hypervisors", "2.1")
        assert old.status == 200
        assert [h["hypervisor_hostname"] for h in old.body["hypervisors"]] == [
            "cmp0", "cmp1", "cmp2"]
        assert all(set(h) == LIST_KEYS and isinstance(h["id"], int)
                   for h in old.body["hypervisors"])
        assert {(h["state"], h["status"]) for h in old.body["hypervisors"]} == {("up", "enabled")}
        new = await admin_get(api, "/os-hypervisors", "2.88")
        nodes = {n.hypervisor_hostname: n.uuid for n in await api.cloud.store.list_compute_nodes()}
        assert [h["id"] for h in new.body["hypervisors"]] == [nodes["cmp0"], nodes["cmp1"],
                                                              nodes["cmp2"]]
        for path in ("/os-hypervisors", "/os-hypervisors/detail", "/os-hypervisors/statistics",
                     f"/os-hypervisors/{nodes['cmp0']}"):
            denied = await api.get(path, token=USER, version="2.53")
            assert denied.status == 403 and "forbidden" in denied.body

    run(scenario)


def test_detail_fields_per_microversion() -> None:
    async def scenario(api: Api) -> None:
        await api.cloud.boot()
        v227 = (await admin_get(api, "/os-hypervisors/detail", "2.27")).body["hypervisors"]
        assert set(v227[0]) == DETAIL_BASE | CAPACITY
        assert isinstance(v227[0]["cpu_info"], str)
        assert sum(h["running_vms"] for h in v227) == 1
        assert sum(h["vcpus_used"] for h in v227) == 1
        busy = next(h for h in v227 if h["running_vms"])
        assert busy["free_ram_mb"] == busy["memory_mb"] - 512
        v228 = (await admin_get(api, "/os-hypervisors/detail", "2.28")).body["hypervisors"]
        assert isinstance(v228[0]["cpu_info"], dict)
        v287 = (await admin_get(api, "/os-hypervisors/detail", "2.87")).body["hypervisors"]
        assert set(v287[0]) == DETAIL_BASE | CAPACITY
        assert isinstance(v287[0]["service"]["id"], str)
        v288 = (await admin_get(api, "/os-hypervisors/detail", "2.88")).body["hypervisors"]
        assert set(v288[0]) == DETAIL_BASE | {"uptime"}
        assert " up " in v288[0]["uptime"]
        assert set(v288[0]["service"]) == {"host", "id", "disabled_reason"}

    run(scenario)


def test_paging_from_2_33_with_next_links() -> None:
    async def scenario(api: Api) -> None:
        first = await admin_get(api, "/os-hypervisors", "2.33", query={"limit": "2"})
        assert [h["id"] for h in first.body["hypervisors"]] == [1, 2]
        link = first.body["hypervisors_links"][0]
        assert link["rel"] == "next" and "marker=2" in link["href"]
        rest = await admin_get(api, "/os-hypervisors/detail", "2.33",
                               query={"limit": "2", "marker": "2"})
        assert [h["id"] for h in rest.body["hypervisors"]] == [3]
        assert "hypervisors_links" not in rest.body
        bad = await admin_get(api, "/os-hypervisors", "2.33", query={"marker": "99"})
        assert bad.status == 400
        assert (await admin_get(api, "/os-hypervisors", "2.33",
                                query={"limit": "-1"})).status == 400
        ignored = await admin_get(api, "/os-hypervisors", "2.32", query={"limit": "1"})
        assert len(ignored.body["hypervisors"]) == 3
        uuids = await admin_get(api, "/os-hypervisors", "2.53", query={"limit": "1"})
        marker = uuids.body["hypervisors"][0]["id"]
        after = await admin_get(api, "/os-hypervisors", "2.53", query={"marker": marker})
        assert len(after.body["hypervisors"]) == 2
        assert marker not in {h["id"] for h in after.body["hypervisors"]}

    run(scenario)


def test_pattern_and_with_servers_from_2_53() -> None:
    async def scenario(api: Api) -> None:
        inst = await api.cloud.boot()
        found = await admin_get(api, "/os-hypervisors", "2.53",
                                query={"hypervisor_hostname_pattern": inst.node or ""})
        assert [h["hypervisor_hostname"] for h in found.body["hypervisors"]] == [inst.node]
        none = await admin_get(api, "/os-hypervisors", "2.53",
                               query={"hypervisor_hostname_pattern": "nothing"})
        assert none.status == 404
        paged = await admin_get(api, "/os-hypervisors", "2.53",
                                query={"hypervisor_hostname_pattern": "cmp", "limit": "1"})
        assert paged.status == 400
        listed = await admin_get(api, "/os-hypervisors/detail", "2.53",
                                 query={"with_servers": "true"})
        servers = {h["hypervisor_hostname"]: h.get("servers")
                   for h in listed.body["hypervisors"]}
        assert servers[inst.node or ""] == [{"name": inst.name, "uuid": inst.uuid}]
        assert sum(v is None for v in servers.values()) == 2  # no key before 2.75
        v275 = await admin_get(api, "/os-hypervisors", "2.75", query={"with_servers": "1"})
        assert all("servers" in h for h in v275.body["hypervisors"])
        for query in ({"with_servers": "maybe"}, {"unknown": "1"}):
            assert (await admin_get(api, "/os-hypervisors", "2.53", query=query)).status == 400
        tolerant = await admin_get(api, "/os-hypervisors", "2.52", query={"unknown": "1"})
        assert tolerant.status == 200

    run(scenario)


def test_show_by_id_and_by_uuid() -> None:
    async def scenario(api: Api) -> None:
        node = (await api.cloud.store.list_compute_nodes())[0]
        old = await admin_get(api, f"/os-hypervisors/{node.id}", "2.1")
        assert old.status == 200 and old.body["hypervisor"]["id"] == node.id
        assert "vcpus" in old.body["hypervisor"]
        new = await admin_get(api, f"/os-hypervisors/{node.uuid}", "2.88",
                              query={"with_servers": "true"})
        assert new.body["hypervisor"]["id"] == node.uuid
        assert new.body["hypervisor"]["servers"] == []
        assert "uptime" in new.body["hypervisor"]
        assert (await admin_get(api, "/os-hypervisors/abc", "2.1")).status == 404
        assert (await admin_get(api, "/os-hypervisors/99", "2.1")).status == 404
        assert (await admin_get(api, "/os-hypervisors/1", "2.53")).status == 400
        missing = "0b7e8f4e-9c1a-4c3e-8f7c-3c1e2f1a0d9b"
        gone = await admin_get(api, f"/os-hypervisors/{missing}", "2.53")
        assert gone.status == 404 and "itemNotFound" in gone.body

    run(scenario)


def test_statistics_until_2_87_counts_enabled_hosts() -> None:
    async def scenario(api: Api) -> None:
        stats = await admin_get(api, "/os-hypervisors/statistics", "2.1")
        body = stats.body["hypervisor_statistics"]
        assert body["count"] == 3 and body["vcpus"] == 12 and body["memory_mb"] == 3 * 8192
        svc = (await api.cloud.store.list_services(host="cmp0"))[0]
        put = await api.put(f"/os-services/{svc.uuid}", {"status": "disabled"},
                            token=ADMIN_TOKEN, version="2.53")
        assert put.status == 200
        fewer = await admin_get(api, "/os-hypervisors/statistics", "2.87")
        assert fewer.body["hypervisor_statistics"]["count"] == 2
        assert (await admin_get(api, "/os-hypervisors/statistics", "2.88")).status == 404

    run(scenario)


def test_uptime_search_and_servers_routes_of_old_microversions() -> None:
    async def scenario(api: Api) -> None:
        inst = await api.cloud.boot()
        up = await admin_get(api, "/os-hypervisors/1/uptime", "2.1")
        assert up.status == 200
        assert set(up.body["hypervisor"]) == LIST_KEYS | {"uptime"}
        assert (await admin_get(api, "/os-hypervisors/1/uptime", "2.88")).status == 404
        search = await admin_get(api, "/os-hypervisors/cmp/search", "2.52")
        assert len(search.body["hypervisors"]) == 3
        assert (await admin_get(api, "/os-hypervisors/zzz/search", "2.1")).status == 404
        assert (await admin_get(api, "/os-hypervisors/cmp/search", "2.53")).status == 404
        on = await admin_get(api, f"/os-hypervisors/{inst.node}/servers", "2.1")
        assert on.body["hypervisors"][0]["servers"] == [{"name": inst.name, "uuid": inst.uuid}]
        empty = await admin_get(api, "/os-hypervisors/cmp/servers", "2.1")
        assert sum("servers" in h for h in empty.body["hypervisors"]) == 1

    run(scenario)


def test_a_stopped_compute_goes_down_after_the_down_time() -> None:
    async def scenario(api: Api) -> None:
        await api.cloud.stop_compute("cmp1")
        states = {h["hypervisor_hostname"]: h["state"] for h in
                  (await admin_get(api, "/os-hypervisors", "2.88")).body["hypervisors"]}
        assert states["cmp1"] == "up"
        assert api.cloud.api is not None
        await api.cloud.rt.sleep(api.cloud.api.service_down_time + 5)
        listed = (await admin_get(api, "/os-hypervisors/detail", "2.88")).body["hypervisors"]
        states = {h["hypervisor_hostname"]: h["state"] for h in listed}
        assert states == {"cmp0": "up", "cmp1": "down", "cmp2": "up"}
        assert next(h for h in listed if h["hypervisor_hostname"] == "cmp1")["uptime"] is None
        down = await admin_get(api, "/os-hypervisors/2/uptime", "2.1")
        assert down.status == 400

    run(scenario)
