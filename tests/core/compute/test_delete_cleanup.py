"""Deleting an instance in the middle of a move or shelved: nothing is left behind."""

from __future__ import annotations

from nimbus.core.compute import states
from nimbus.core.compute.config import ComputeConfig
from nimbus.core.errors import NotFound
from tests.core.compute.cloud import BIG, SimCloud, run


def test_deleting_a_resized_instance_drops_the_copy_its_source_kept() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        source = inst.host or ""
        await cloud.api.resize(cloud.as_user(), inst.uuid, BIG)
        resized = await cloud.wait_for(inst.uuid, vm_state=states.RESIZED)
        assert resized.host != source
        assert inst.uuid in cloud.drivers[source]._kept  # kept for a revert
        await cloud.api.delete(cloud.as_user(), inst.uuid)
        await cloud.wait_for(inst.uuid, deleted=True)
        await cloud.rt.sleep(1.0)
        assert inst.uuid not in cloud.drivers[source]._kept
        for host, driver in cloud.drivers.items():
            assert inst.uuid not in await driver.list_guests(), host
        for host, svc in cloud.computes.items():
            assert not await cloud.store.usages_for_provider(svc.node_uuid) or all(
                v == 0 for v in (await cloud.store.usages_for_provider(svc.node_uuid)).values()
            ), host

    run(scenario)


def test_deleting_an_offloaded_instance_deletes_its_shelved_image() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        await cloud.api.shelve(cloud.as_user(), inst.uuid)
        shelved = await cloud.wait_for(inst.uuid, vm_state=states.SHELVED_OFFLOADED)
        image_id = shelved.system_metadata["shelved_image_id"]
        assert (await cloud.store.get_image(image_id)).status == "active"
        await cloud.api.delete(cloud.as_user(), inst.uuid)
        await cloud.wait_for(inst.uuid, deleted=True)
        try:
            image = await cloud.store.get_image(image_id)
        except NotFound:
            return
        assert image.status == "deleted"

    run(scenario, compute_config=ComputeConfig(reserved_host_memory_mb=0,
                                               shelved_offload_time=0))


def test_deleting_a_shelved_instance_on_its_host_deletes_its_image() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        await cloud.api.shelve(cloud.as_user(), inst.uuid)
        shelved = await cloud.wait_for(inst.uuid, vm_state=states.SHELVED)
        image_id = shelved.system_metadata["shelved_image_id"]
        await cloud.api.delete(cloud.as_user(), inst.uuid)
        await cloud.wait_for(inst.uuid, deleted=True)
        try:
            image = await cloud.store.get_image(image_id)
        except NotFound:
            return
        assert image.status == "deleted"

    run(scenario)
