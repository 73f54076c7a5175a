"""What ``ComputeAPI.create`` does beyond records (core/compute/api_create.py): the quota
room and the recheck that keeps the earliest of racing creates, the default network made
on first use, and undoing a create that failed half-way."""

from __future__ import annotations

import pytest

from nimbus.core.compute import api_create
from nimbus.core.db.instance_schema import NewInstance
from nimbus.core.errors import QuotaExceeded
from tests.core.compute.cloud import BIG, FLAVOR, SimCloud, run


def test_the_recheck_keeps_the_creates_made_first() -> None:
    """Creates that all passed the first check (as racing ones may): the recount after
    the records exist refuses only those made after the limit was reached."""
    async def scenario(cloud: SimCloud) -> None:
        now = cloud.rt.wall_time()
        assert cloud.api is not None
        await cloud.store.set_project_quotas("p1", {"instances": 2}, now)
        made = [await cloud.store.create_instance(NewInstance(
            uuid=cloud.rt.new_id(), project_id="p1", user_id="u1", flavor=FLAVOR),
            now=now, request_id=f"req-{i}") for i in range(3)]
        ctx = cloud.as_user()
        await api_create.recheck_quota(cloud.api, ctx, made[:1])
        await api_create.recheck_quota(cloud.api, ctx, made[1:2])
        with pytest.raises(QuotaExceeded) as refused:
            await api_create.recheck_quota(cloud.api, ctx, made[2:])
        assert refused.value.message == (
            "Quota exceeded for instances: Requested 1, but already used 2 of 2 instances")

    run(scenario)


def test_quota_room_lowers_max_count_to_what_fits() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        await cloud.store.set_user_quotas("p1", "u1", {"cores": 5}, cloud.rt.wall_time())
        ctx = cloud.as_user()
        assert await api_create.quota_room(cloud.api, ctx, BIG, 1, 9) == 2
        with pytest.raises(QuotaExceeded) as refused:
            await api_create.quota_room(cloud.api, ctx, BIG, 3, 9)
        assert refused.value.overs == ("cores",)

    run(scenario)


def test_auto_networking_makes_the_default_network_once_and_undo_gives_back() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        made = await cloud.api.create(cloud.as_user(), flavor=FLAVOR, image_ref="img-1",
                                      name="a", max_count=2, networks="auto",
                                      security_groups=["default"], enforce_quota=True)
        (net,) = await cloud.store.list_networks()
        assert (net.label, net.cidr, net.uuid) == ("private", "10.0.0.0/24",
                                                   api_create.DEFAULT_NETWORK_UUID)
        addrs = [ip.address for i in made
                 for ip in await cloud.store.fixed_ips_for_instance(i.uuid)]
        assert addrs == ["10.0.0.2", "10.0.0.3"]  # .0, .1 (the gateway) and .255 reserved
        await api_create.undo_create(cloud.api, made)
        assert await cloud.store.fixed_ips_for_network(net.id, allocated_only=True) == []
        assert await cloud.store.list_instances(project_id="p1") == []
        group = await cloud.store.security_group_by_name("p1", "default")
        assert await cloud.store.instances_in_security_group(group.id) == []

    run(scenario)
