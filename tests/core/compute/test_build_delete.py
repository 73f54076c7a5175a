"""Boot and delete end to end in simulation: API -> conductor -> scheduler -> compute ->
fake driver -> Store, with reschedules and NoValidHost."""

from __future__ import annotations

from nimbus.core.compute import states
from tests.core.compute.cloud import BIG, FLAVOR, SimCloud, run


def test_boot_reaches_active_with_allocations_and_events() -> None:
    async def scenario(cloud: SimCloud) -> None:
        inst = await cloud.boot()
        assert inst.host in cloud.computes and inst.power_state == states.RUNNING
        assert inst.launched_at is not None and inst.task_state is None
        guest = await cloud.drivers[inst.host].guest_info(inst.uuid)
        assert guest.power_state == states.RUNNING
        held = await cloud.store.get_allocations(inst.uuid)
        assert list(held.allocations.values()) == [{"VCPU": 1, "MEMORY_MB": 512, "DISK_GB": 1}]
        actions = await cloud.store.list_actions(inst.uuid)
        assert [a.action for a in actions] == ["create"]
        _, events = await cloud.store.get_action(inst.uuid, actions[0].request_id)
        assert [(e.event, e.result) for e in events] == [
            ("conductor_schedule_and_build_instances", "Success"),
            ("compute_build_and_run_instance", "Success")]

    run(scenario)


def test_delete_destroys_the_guest_and_frees_everything() -> None:
    async def scenario(cloud: SimCloud) -> None:
        inst = await cloud.boot()
        assert cloud.api is not None
        await cloud.api.delete(cloud.as_user(), inst.uuid)
        gone = await cloud.wait_for(inst.uuid, deleted=True)
        assert gone.terminated_at is not None
        assert inst.uuid not in await cloud.drivers[inst.host or ""].list_guests()
        assert (await cloud.store.get_allocations(inst.uuid)).allocations == {}

    run(scenario)


def test_a_request_no_host_can_take_ends_in_error_with_the_filters_named() -> None:
    async def scenario(cloud: SimCloud) -> None:
        huge = {**FLAVOR, "vcpus": 64}
        inst = await cloud.boot(flavor=huge, wait=False)
        failed = await cloud.wait_for(inst.uuid, vm_state=states.ERROR)
        assert failed.host is None
        fault = await cloud.store.latest_fault(inst.uuid)
        assert fault is not None and fault.message.startswith("No valid host was found")
        assert "removed 3 of 3 hosts" in fault.message

    run(scenario)


def test_a_driver_failure_on_boot_reschedules_to_an_alternate() -> None:
    async def scenario(cloud: SimCloud) -> None:
        # cmp0 and cmp1 always fail to spawn; the build lands on the alternate cmp2
        inst = await cloud.boot(flavor=BIG)
        assert inst.host == "cmp2"
        held = await cloud.store.get_allocations(inst.uuid)
        assert len(held.allocations) == 1  # only the host it runs on
        usages = {h: await cloud.store.usages_for_provider(cloud.computes[h].node_uuid)
                  for h in cloud.computes}
        assert usages["cmp2"]["VCPU"] == 2 and not usages["cmp0"].get("VCPU")
        assert not usages["cmp1"].get("VCPU")
        _, events = await cloud.store.get_action(inst.uuid, (await cloud.store.list_actions(
            inst.uuid))[0].request_id)
        builds = [e for e in events if e.event == "compute_build_and_run_instance"]
        assert [e.result for e in builds] == ["Error", "Error", "Success"]

    failing = {"failure_rates": {"spawn": 1.0}}
    run(scenario, host_driver_config={"cmp0": failing, "cmp1": failing})


def test_the_build_fails_when_every_host_tried_fails_it() -> None:
    async def scenario(cloud: SimCloud) -> None:
        inst = await cloud.boot(wait=False)
        failed = await cloud.wait_for(inst.uuid, vm_state=states.ERROR)
        fault = await cloud.store.latest_fault(inst.uuid)
        assert fault is not None and "Exceeded maximum number of retries" in fault.message
        assert (await cloud.store.get_allocations(inst.uuid)).allocations == {}
        assert failed.host is None

    failing = {"failure_rates": {"spawn": 1.0}}
    run(scenario, driver_config={"vcpus": 4, "memory_mb": 8192, "local_gb": 100, **failing})


def test_builds_and_their_events_are_counted_in_the_metrics() -> None:
    async def scenario(cloud: SimCloud) -> None:
        await cloud.boot()
        huge = {**FLAVOR, "vcpus": 64}
        failed = await cloud.boot(flavor=huge, wait=False)
        await cloud.wait_for(failed.uuid, vm_state=states.ERROR)
        compute = cloud.metrics.render().decode()
        assert 'nimbus_instance_builds_total{outcome="active"} 1.0' in compute
        assert 'nimbus_instance_builds_total{outcome="error"} 1.0' in compute
        assert "nimbus_instance_build_seconds_count 1.0" in compute
        assert ('nimbus_instance_action_events_total{event="compute_build_and_run_instance",'
                'result="Success"} 1.0') in compute

    run(scenario)
