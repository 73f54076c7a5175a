"""Create image (snapshot) end to end in simulation: API registers the image -> compute
host -> fake driver's snapshot -> image data in the Store; failures kill the image."""

from __future__ import annotations

import pytest

from nimbus.core.compute import states as s
from nimbus.core.compute.driver import ALL_CAPABILITIES, SNAPSHOT
from nimbus.core.errors import InstanceInvalidState, InvalidInput, NotFound
from tests.core.compute.cloud import SimCloud, footprint, power, run, settled, stranger

HOST = {"vcpus": 4, "memory_mb": 8192, "local_gb": 100}


def test_create_image_gives_an_active_image_with_the_snapshot_data() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot(image_properties={"os_distro": "cirros", "min_ram": "256"})
        image_id = await cloud.api.create_image(cloud.as_user(), inst.uuid, "snap-1",
                                                {"purpose": "backup"})
        queued = await cloud.store.get_image(image_id)
        assert (queued.status, queued.name, queued.owner, queued.size) == (
            "queued", "snap-1", "p1", None)
        assert (await cloud.store.get_instance(inst.uuid)).task_state == s.IMAGE_SNAPSHOT

        done = await cloud.wait_for(inst.uuid, vm_state=s.ACTIVE)
        assert (done.power_state, done.host) == (s.RUNNING, inst.host)
        image = await cloud.store.get_image(image_id)
        driver = cloud.drivers[inst.host or ""]
        blob = await driver.snapshot(inst.uuid, image_id)  # the fake's blob is repeatable
        assert (image.status, image.size, image.checksum) == ("active", blob.size, blob.checksum)
        assert (image.os_hash_algo, image.os_hash_value) == ("sha512", blob.os_hash_value)
        assert (image.disk_format, image.container_format) == ("qcow2", "bare")
        assert image.min_ram == 256 and image.min_disk == 1
        assert image.properties == {
            "os_distro": "cirros", "base_image_ref": "img-1", "instance_uuid": inst.uuid,
            "user_id": "u1", "image_type": "snapshot", "purpose": "backup"}
        assert image.location is not None and image_id in image.location
        assert (await driver.guest_info(inst.uuid)).power_state == s.RUNNING
        assert await settled(cloud, inst.uuid) == (
            "createImage", [("compute_snapshot_instance", "Success")])
        assert await cloud.store.latest_fault(inst.uuid) is None
        assert [i.id for i in await cloud.store.list_images_visible_to(None, True)] == [image_id]

    run(scenario)


def test_the_task_walks_the_upload_steps_while_the_snapshot_takes_time() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        await power(cloud, "stop", inst.uuid)  # a stopped instance may be snapshotted too
        await cloud.wait_for(inst.uuid, vm_state=s.STOPPED)
        image_id = await cloud.api.create_image(cloud.as_user(), inst.uuid, "slow")
        await cloud.rt.sleep(5.0)
        during = await cloud.store.get_instance(inst.uuid)
        assert during.task_state == s.IMAGE_PENDING_UPLOAD
        assert (await cloud.store.get_image(image_id)).status == "saving"
        done = await cloud.wait_for(inst.uuid, vm_state=s.STOPPED)
        assert done.power_state == s.SHUTDOWN
        assert (await cloud.store.get_image(image_id)).status == "active"

    run(scenario, driver_config={**HOST, "timings": {"snapshot": 20.0}})


def test_a_failed_snapshot_kills_the_image_and_keeps_the_instance_active() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        image_id = await cloud.api.create_image(cloud.as_user(), inst.uuid, "snap")
        assert await settled(cloud, inst.uuid) == (
            "createImage", [("compute_snapshot_instance", "Error")])
        after = await cloud.store.get_instance(inst.uuid)
        assert (after.vm_state, after.task_state, after.power_state) == (
            s.ACTIVE, None, s.RUNNING)
        image = await cloud.store.get_image(image_id)
        assert (image.status, image.size, image.checksum) == ("killed", None, None)
        fault = await cloud.store.latest_fault(inst.uuid)
        assert fault is not None and "fake failure injected: snapshot" in fault.message
        guest = await cloud.drivers[inst.host or ""].guest_info(inst.uuid)
        assert guest.power_state == s.RUNNING

    run(scenario, driver_config={**HOST, "failure_rates": {"snapshot": 1.0}})


def test_a_driver_without_snapshots_kills_the_image() -> None:
    async def scenario(cloud: SimCloud) -> None:
        assert cloud.api is not None
        inst = await cloud.boot()
        image_id = await cloud.api.create_image(cloud.as_user(), inst.uuid, "snap")
        assert (await settled(cloud, inst.uuid))[1] == [("compute_snapshot_instance", "Error")]
        after = await cloud.store.get_instance(inst.uuid)
        assert (after.vm_state, after.task_state) == (s.ACTIVE, None)
        assert (await cloud.store.get_image(image_id)).status == "killed"
        fault = await cloud.store.latest_fault(inst.uuid)
        assert fault is not None and fault.code == 409 and "snapshots" in fault.message

    run(scenario, driver_config={**HOST, "capabilities": sorted(ALL_CAPABILITIES - {SNAPSHOT})})


@pytest.mark.parametrize("case", ["stranger", "bad name", "bad metadata", "paused busy"])
def test_refused_create_image_changes_nothing_and_registers_no_image(case: str) -> None:
    async def scenario(cloud: SimCloud) -> None:
        api = cloud.api
        assert api is not None
        inst = await cloud.boot()
        if case == "paused busy":  # an action under way: no snapshot now
            await cloud.store.update_instance(inst.uuid, now=cloud.rt.wall_time(),
                                              task_state=s.PAUSING)
        before = await footprint(cloud, inst.uuid)
        if case == "stranger":
            with pytest.raises(NotFound):
                await api.create_image(stranger(cloud), inst.uuid, "snap")
        elif case == "bad name":
            with pytest.raises(InvalidInput):
                await api.create_image(cloud.as_user(), inst.uuid, "  ")
        elif case == "bad metadata":
            with pytest.raises(InvalidInput):
                await api.create_image(cloud.as_user(), inst.uuid, "snap", {"k": 1})  # type: ignore[dict-item]
        else:
            with pytest.raises(InstanceInvalidState):
                await api.create_image(cloud.as_user(), inst.uuid, "snap")
        await cloud.rt.sleep(5.0)
        assert await footprint(cloud, inst.uuid) == before
        assert await cloud.store.list_images_visible_to(None, True) == []

    run(scenario)
