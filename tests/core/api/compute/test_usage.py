"""``/os-simple-tenant-usage``: hours in a window, deleted instances, policy, paging."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from tests.core.api.compute.harness import ADMIN_TOKEN, OTHER, USER, Api, run
from tests.core.compute.cloud import BIG


def stamp(epoch: float) -> str:
    """A query time as Horizon sends it."""
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")


async def usage(api: Api, path: str = "", *, token: str = ADMIN_TOKEN, version: str = "2.40",
                **query: str) -> Any:
    return await api.get(f"/os-simple-tenant-usage{path}", token=token, version=version,
                         query=query)


def test_hours_in_the_window_with_deleted_instances() -> None:
    async def scenario(api: Api) -> None:
        cloud = api.cloud
        start = cloud.rt.wall_time()
        small = await cloud.boot()
        big = await cloud.boot(flavor=BIG)
        await cloud.rt.sleep(3600)
        assert cloud.api is not None
        await cloud.api.delete(cloud.as_user(), big.uuid)
        await cloud.wait_for(big.uuid, deleted=True)
        await cloud.rt.sleep(3600)
        got = await usage(api, start=stamp(start), detailed="1")
        assert got.status == 200
        [summary] = got.body["tenant_usages"]
        assert summary["tenant_id"] == "p1"
        by_id = {s["instance_id"]: s for s in summary["server_usages"]}
        assert by_id[small.uuid]["hours"] == pytest.approx(2.0, abs=0.01)
        assert by_id[small.uuid]["state"] == "active"
        assert by_id[small.uuid]["ended_at"] is None
        assert by_id[big.uuid]["hours"] == pytest.approx(1.0, abs=0.01)
        assert by_id[big.uuid]["state"] == "terminated" and by_id[big.uuid]["ended_at"]
        assert by_id[big.uuid]["vcpus"] == 2 and by_id[big.uuid]["flavor"] == "m1.big"
        assert by_id[big.uuid]["uptime"] == pytest.approx(3600, abs=30)
        assert summary["total_hours"] == pytest.approx(3.0, abs=0.02)
        assert summary["total_vcpus_usage"] == pytest.approx(2.0 + 2 * 1.0, abs=0.05)
        assert summary["total_memory_mb_usage"] == pytest.approx(512 * 2 + 1024, abs=20)
        assert summary["total_local_gb_usage"] == pytest.approx(1 * 2 + 2 * 1, abs=0.1)
        plain = await usage(api, start=stamp(start))
        assert "server_usages" not in plain.body["tenant_usages"][0]
        later = await usage(api, start=stamp(cloud.rt.wall_time() - 1800))
        [recent] = later.body["tenant_usages"]
        assert recent["total_hours"] == pytest.approx(0.5, abs=0.01)  # big ended before

    run(scenario)


def test_listing_is_for_admins_and_a_project_sees_its_own() -> None:
    async def scenario(api: Api) -> None:
        cloud = api.cloud
        start = stamp(cloud.rt.wall_time())
        await cloud.boot()
        await cloud.rt.sleep(600)
        assert (await usage(api, token=USER)).status == 403
        own = await usage(api, "/p1", token=USER, start=start)
        assert own.status == 200
        assert own.body["tenant_usage"]["tenant_id"] == "p1"
        assert len(own.body["tenant_usage"]["server_usages"]) == 1
        assert (await usage(api, "/p1", token=OTHER, start=start)).status == 403
        assert (await usage(api, "/p2", token=OTHER, start=start)).body == {"tenant_usage": {}}
        assert (await usage(api, "/p1", start=start)).body["tenant_usage"]["tenant_id"] == "p1"

    run(scenario)


def test_paging_from_2_40() -> None:
    async def scenario(api: Api) -> None:
        cloud = api.cloud
        start = stamp(cloud.rt.wall_time())
        booted = sorted([(await cloud.boot()).uuid for _ in range(3)])
        await cloud.rt.sleep(60)
        first = await usage(api, start=start, limit="2", detailed="1")
        page = [s["instance_id"] for s in first.body["tenant_usages"][0]["server_usages"]]
        assert page == booted[:2]
        link = first.body["tenant_usages_links"][0]
        assert link["rel"] == "next" and f"marker={booted[1]}" in link["href"]
        rest = await usage(api, start=start, marker=booted[1], detailed="1")
        assert [s["instance_id"] for s in rest.body["tenant_usages"][0]["server_usages"]] == [
            booted[2]]
        assert "tenant_usages_links" not in rest.body
        done = await usage(api, start=start, marker=booted[2])
        assert done.body == {"tenant_usages": []}
        one = await usage(api, "/p1", token=USER, start=start, limit="1")
        assert "tenant_usage_links" in one.body
        assert (await usage(api, start=start, marker="no-such")).status == 400
        unpaged = await usage(api, version="2.39", start=start, limit="1", detailed="1")
        assert len(unpaged.body["tenant_usages"][0]["server_usages"]) == 3

    run(scenario)


def test_bad_queries_are_400() -> None:
    async def scenario(api: Api) -> None:
        now = api.cloud.rt.wall_time()
        assert (await usage(api, start="yesterday")).status == 400
        assert (await usage(api, start=stamp(now), end=stamp(now - 60))).status == 400
        assert (await usage(api, start=stamp(now - 60), limit="x")).status == 400
        assert (await usage(api, start=stamp(now - 60), bogus="1")).status == 200
        strict = await usage(api, version="2.75", start=stamp(now - 60), bogus="1")
        assert strict.status == 400
        dotted = await usage(api, start="2025-12-31 00:00:00.000000")
        assert dotted.status == 200

    run(scenario)
