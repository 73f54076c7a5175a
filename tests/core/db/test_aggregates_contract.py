"""Host aggregates, their hosts, metadata and availability zones, on every engine."""

from __future__ import annotations

import pytest

from nimbus.core.db.store import Store
from nimbus.core.errors import ApiError, DuplicateError, NotFound

from .conftest import StoreRunner


def test_aggregates(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        a = await store.create_aggregate(uuid="a1", name="rack1", availability_zone="az1",
                                         metadata={"ssd": "true"}, now=1.0)
        assert (a.name, a.availability_zone, a.hosts, a.metadata) == (
            "rack1", "az1", (), {"availability_zone": "az1", "ssd": "true"})
        b = await store.create_aggregate(uuid="a2", name="gpu", now=2.0)
        assert b.availability_zone is None and b.metadata == {}
        with pytest.raises(DuplicateError, match="rack1"):
            await store.create_aggregate(uuid="a3", name="rack1", now=3.0)
        assert await store.get_aggregate(a.id) == a
        assert await store.aggregate_by_uuid("a2") == b
        assert [x.name for x in await store.list_aggregates()] == ["rack1", "gpu"]

        assert (await store.add_host(a.id, "h2", 4.0)).hosts == ("h2",)
        after = await store.add_host(a.id, "h1", 4.0)
        assert after.hosts == ("h1", "h2") and after.updated_at == 4.0
        with pytest.raises(DuplicateError, match="h1") as dup:
            await store.add_host(a.id, "h1", 5.0)
        assert dup.value.status == 409
        await store.add_host(b.id, "h1", 5.0)
        await store.add_host(b.id, "h3", 5.0)
        with pytest.raises(NotFound):
            await store.add_host(999999, "h1", 5.0)
        assert [x.name for x in await store.aggregates_for_host("h1")] == ["rack1", "gpu"]
        assert await store.availability_zone_of_host("h1") == "az1"
        assert await store.availability_zone_of_host("h3") is None
        assert await store.availability_zone_of_host("h9") is None

        # a host cannot be in two zones
        with pytest.raises(ApiError, match="az1") as bad:
            await store.update_aggregate(b.id, availability_zone="az2", now=6.0)
        assert bad.value.status == 400
        c = await store.create_aggregate(uuid="a3", name="east", availability_zone="az2",
                                         now=6.0)
        with pytest.raises(ApiError, match="az1"):
            await store.add_host(c.id, "h2", 6.0)
        await store.add_host(c.id, "h4", 6.0)
        # the same zone again is fine
        same = await store.set_aggregate_metadata(b.id, {"availability_zone": "az1"}, 7.0)
        assert same.availability_zone == "az1"

        meta = await store.set_aggregate_metadata(a.id, {"ssd": None, "gpu": "no"}, 8.0)
        assert meta.metadata == {"availability_zone": "az1", "gpu": "no"}
        meta = await store.set_aggregate_metadata(a.id, {"gpu": "yes", "absent": None}, 9.0)
        assert meta.metadata == {"availability_zone": "az1", "gpu": "yes"}
        renamed = await store.update_aggregate(a.id, name="rack-1", now=10.0)
        assert (renamed.name, renamed.availability_zone) == ("rack-1", "az1")
        with pytest.raises(DuplicateError):
            await store.update_aggregate(a.id, name="gpu", now=10.0)
        assert (await store.get_aggregate(a.id)).name == "rack-1"

        assert await store.hosts_aggregate_metadata() == {
            "h1": {"availability_zone": {"az1"}, "gpu": {"yes"}},
            "h2": {"availability_zone": {"az1"}, "gpu": {"yes"}},
            "h3": {"availability_zone": {"az1"}},
            "h4": {"availability_zone": {"az2"}},
        }

        with pytest.raises(ApiError, match="not empty") as busy:
            await store.delete_aggregate(c.id, 11.0)
        assert busy.value.status == 400
        assert (await store.remove_host(c.id, "h4", 11.0)).hosts == ()
        with pytest.raises(NotFound, match="h4"):
            await store.remove_host(c.id, "h4", 11.0)
        no_zone = await store.update_aggregate(c.id, availability_zone=None, now=11.5)
        assert no_zone.availability_zone is None
        await store.delete_aggregate(c.id, 12.0)
        with pytest.raises(NotFound, match="aggregate"):
            await store.get_aggregate(c.id)
        assert [x.name for x in await store.list_aggregates()] == ["rack-1", "gpu"]
        # a deleted aggregate's name may be taken again
        again = await store.create_aggregate(uuid="a4", name="east", now=13.0)
        assert again.id != c.id and again.hosts == ()
        # hosts of an aggregate without metadata still show for the scheduler
        await store.set_aggregate_metadata(b.id, {"availability_zone": None}, 14.0)
        await store.add_host(again.id, "h5", 14.0)
        assert (await store.hosts_aggregate_metadata())["h5"] == {}
        assert await store.availability_zone_of_host("h3") is None

    run_store(body)
