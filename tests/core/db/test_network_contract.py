"""Networks, fixed and floating IPs, interfaces and security groups, on every engine."""

from __future__ import annotations

import asyncio

import pytest

from nimbus.core.db.network import InUse, NoMoreAddresses
from nimbus.core.db.store import Store
from nimbus.core.errors import DuplicateError, NotFound

from .conftest import StoreRunner


def test_networks(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        net = await store.create_network(uuid="n1", label="private", cidr="10.0.0.0/24",
                                         bridge="br100", bridge_interface="eth0", vlan=100,
                                         dns1="8.8.8.8", multi_host=True, now=1.0)
        assert (net.netmask, net.broadcast, net.gateway, net.dhcp_start, net.dhcp_server,
                net.vlan, net.multi_host, net.enable_dhcp, net.project_id, net.host) == (
            "255.255.255.0", "10.0.0.255", "10.0.0.1", "10.0.0.2", "10.0.0.1", 100, True,
            True, None, None)
        with pytest.raises(DuplicateError):  # one network per VLAN
            await store.create_network(uuid="n2", label="x", cidr="10.1.0.0/24", vlan=100,
                                       now=1.0)
        other = await store.create_network(uuid="n2", label="public", cidr="10.1.0.0/24",
                                           gateway="10.1.0.254", cidr_v6="fd00::/64",
                                           project_id="p1", host="h1", now=2.0)
        assert (other.gateway, other.dhcp_server, other.cidr_v6) == (
            "10.1.0.254", "10.1.0.254", "fd00::/64")
        assert (await store.get_network(net.id)).uuid == "n1"
        assert (await store.get_network_by_uuid("n2")).id == other.id
        with pytest.raises(NotFound, match="network 999"):
            await store.get_network(999)
        with pytest.raises(NotFound):
            await store.get_network_by_uuid("nope")
        assert [n.uuid for n in await store.list_networks()] == ["n1", "n2"]
        assert [n.uuid for n in await store.list_networks(project_id="p1")] == ["n2"]
        assert [n.uuid for n in await store.list_networks(host="h1")] == ["n2"]
        assert await store.list_networks(project_id="p1", host="h2") == []
        # the first host to claim a network keeps it
        assert await store.claim_network_host(net.id, "h7", 3.0) == "h7"
        assert await store.claim_network_host(net.id, "h8", 3.0) == "h7"
        # VLAN mode: a project gets the first network nobody has
        assert (await store.associate_network_with_project("p2", 4.0)).uuid == "n1"
        with pytest.raises(NotFound):
            await store.associate_network_with_project("p3", 4.0)

        await store.create_fixed_ips(net.id, now=5.0)
        ip = await store.allocate_fixed_ip(net.id, "inst-1", now=6.0)
        with pytest.raises(InUse):
            await store.delete_network(net.id, 7.0)
        await store.release_fixed_ip(ip.address, 7.0)
        await store.delete_network(net.id, 8.0)
        with pytest.raises(NotFound):
            await store.get_network(net.id)
        with pytest.raises(NotFound):
            await store.get_fixed_ip_by_address("10.0.0.5")
        assert [n.uuid for n in await store.list_networks()] == ["n2"]
        # the VLAN and the addresses are free again
        again = await store.create_network(uuid="n3", label="again", cidr="10.0.0.0/24",
                                           vlan=100, now=9.0)
        assert await store.create_fixed_ips(again.id, now=9.0) == 256

    run_store(body)


def test_fixed_ips(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        net = await store.create_network(uuid="n1", label="l", cidr="10.0.0.0/29", now=1.0)
        made = await store.create_fixed_ips(net.id, now=1.0, reserved=["10.0.0.6"])
        assert made == 8
        with pytest.raises(DuplicateError):
            await store.create_fixed_ips(net.id, now=1.0)
        every = await store.fixed_ips_for_network(net.id)
        assert [(i.address, i.reserved) for i in every] == [
            ("10.0.0.0", True), ("10.0.0.1", True), ("10.0.0.2", False), ("10.0.0.3", False),
            ("10.0.0.4", False), ("10.0.0.5", False), ("10.0.0.6", True), ("10.0.0.7", True)]

        a = await store.allocate_fixed_ip(net.id, "inst-1", host="h1", now=2.0)
        assert (a.address, a.instance_uuid, a.allocated, a.host, a.leased) == (
            "10.0.0.2", "inst-1", True, "h1", False)
        b = await store.allocate_fixed_ip(net.id, "inst-1", virtual_interface_id=7, now=2.0)
        assert (b.address, b.virtual_interface_id) == ("10.0.0.3", 7)
        c = await store.allocate_fixed_ip(net.id, "inst-2", address="10.0.0.5", now=2.0)
        assert c.address == "10.0.0.5" and c.instance_uuid == "inst-2"
        with pytest.raises(InUse):
            await store.allocate_fixed_ip(net.id, "inst-3", address="10.0.0.5", now=2.0)
        with pytest.raises(InUse, match="reserved"):
            await store.allocate_fixed_ip(net.id, "inst-3", address="10.0.0.6", now=2.0)
        with pytest.raises(NotFound):
            await store.allocate_fixed_ip(net.id, "inst-3", address="10.9.9.9", now=2.0)
        d = await store.allocate_fixed_ip(net.id, "inst-3", now=2.0)
        assert d.address == "10.0.0.4"
        with pytest.raises(NoMoreAddresses):
            await store.allocate_fixed_ip(net.id, "inst-4", now=2.0)

        assert [i.address for i in await store.fixed_ips_for_instance("inst-1")] == [
            "10.0.0.2", "10.0.0.3"]
        assert [i.address for i in await store.fixed_ips_for_network(
            net.id, allocated_only=True)] == ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]
        await store.set_fixed_ip_leased("10.0.0.2", True, 3.0)
        got = await store.get_fixed_ip_by_address("10.0.0.2")
        assert got.leased and got.updated_at == 3.0
        with pytest.raises(NotFound):
            await store.set_fixed_ip_leased("10.9.9.9", True, 3.0)

        released = await store.release_fixed_ip("10.0.0.2", 4.0)
        assert released.instance_uuid == "inst-1"  # as it was
        now_free = await store.get_fixed_ip_by_address("10.0.0.2")
        assert (now_free.instance_uuid, now_free.allocated, now_free.leased, now_free.host) == (
            None, False, False, None)
        with pytest.raises(NotFound, match=r"fixed IP 10\.9\.9\.9"):
            await store.release_fixed_ip("10.9.9.9", 4.0)
        assert (await store.allocate_fixed_ip(net.id, "inst-4", now=5.0)).address == "10.0.0.2"

    run_store(body)


def test_allocate_fixed_ip_concurrently(run_store: StoreRunner) -> None:
    """16 tasks allocating at once from one network never get the same address."""
    if run_store.kind == "sim":
        pytest.skip("the sim database runs one transaction at a time by construction")

    async def body(store: Store) -> None:
        net = await store.create_network(uuid="n1", label="l", cidr="10.0.0.0/24", now=1.0)
        await store.create_fixed_ips(net.id, now=1.0)
        got = await asyncio.gather(*[
            store.allocate_fixed_ip(net.id, f"inst-{n}", now=2.0) for n in range(16)])
        addresses = [ip.address for ip in got]
        assert len(set(addresses)) == 16
        held = await store.fixed_ips_for_network(net.id, allocated_only=True)
        assert sorted((ip.address, ip.instance_uuid) for ip in held) == sorted(
            (ip.address, ip.instance_uuid) for ip in got)
        # floating IPs take the same care
        await store.create_floating_ips(pool="nova", ip_range="192.0.2.0/27", now=1.0)
        floats = await asyncio.gather(*[
            store.allocate_floating_ip(f"p{n}", pool="nova", now=2.0) for n in range(16)])
        assert len({f.address for f in floats}) == 16

    run_store(body)


def test_floating_ips(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        net = await store.create_network(uuid="n1", label="l", cidr="10.0.0.0/28", now=1.0)
        await store.create_fixed_ips(net.id, now=1.0)
        fixed = await store.allocate_fixed_ip(net.id, "inst-1", now=1.0)
        assert await store.create_floating_ips(pool="nova", ip_range="192.0.2.0/30",
                                               interface="eth1", now=1.0) == 2
        await store.create_floating_ips(pool="other", ip_range="198.51.100.7/32", now=1.0)
        with pytest.raises(DuplicateError):
            await store.create_floating_ips(pool="nova", ip_range="192.0.2.2/32", now=1.0)

        f1 = await store.allocate_floating_ip("p1", pool="nova", now=2.0)
        assert (f1.address, f1.project_id, f1.pool, f1.interface, f1.fixed_address,
                f1.auto_assigned) == ("192.0.2.1", "p1", "nova", "eth1", None, False)
        f2 = await store.allocate_floating_ip("p1", pool="nova", auto_assigned=True, now=2.0)
        assert f2.address == "192.0.2.2" and f2.auto_assigned
        with pytest.raises(NoMoreAddresses):
            await store.allocate_floating_ip("p2", pool="nova", now=2.0)
        with pytest.raises(NoMoreAddresses):
            await store.allocate_floating_ip("p2", pool="nope", now=2.0)
        assert [f.address for f in await store.floating_ips_for_project("p1")] == [
            "192.0.2.1", "192.0.2.2"]

        on = await store.associate_floating_ip("192.0.2.1", fixed_address=fixed.address,
                                               host="h1", now=3.0)
        assert (on.fixed_ip_id, on.fixed_address, on.instance_uuid, on.host) == (
            fixed.id, fixed.address, "inst-1", "h1")
        # again to the same address is fine; to another is not
        await store.associate_floating_ip("192.0.2.1", fixed_address=fixed.address,
                                          host="h1", now=3.0)
        other = await store.allocate_fixed_ip(net.id, "inst-2", now=3.0)
        with pytest.raises(InUse):
            await store.associate_floating_ip("192.0.2.1", fixed_address=other.address,
                                              host="h1", now=3.0)
        with pytest.raises(NotFound, match="not allocated"):
            await store.associate_floating_ip("198.51.100.7", fixed_address=fixed.address,
                                              host="h1", now=3.0)
        with pytest.raises(NotFound):
            await store.associate_floating_ip("192.0.2.1", fixed_address="10.9.9.9",
                                              host="h1", now=3.0)
        assert [f.address for f in await store.floating_ips_for_instance("inst-1")] == [
            "192.0.2.1"]
        assert (await store.get_floating_ip("192.0.2.1")).instance_uuid == "inst-1"
        with pytest.raises(InUse):
            await store.deallocate_floating_ip("192.0.2.1", 4.0)
        with pytest.raises(InUse):  # release the fixed IP only once nothing points at it
            await store.release_fixed_ip(fixed.address, 4.0)

        assert await store.disassociate_floating_ip("192.0.2.1", 5.0) == fixed.address
        assert await store.disassociate_floating_ip("192.0.2.1", 5.0) is None
        assert await store.floating_ips_for_instance("inst-1") == []
        await store.deallocate_floating_ip("192.0.2.1", 6.0)
        freed = await store.get_floating_ip("192.0.2.1")
        assert (freed.project_id, freed.fixed_ip_id, freed.host) == (None, None, None)
        assert [f.address for f in await store.floating_ips_for_project("p1")] == [
            "192.0.2.2"]
        for call in (store.get_floating_ip("10.10.10.10"),
                     store.deallocate_floating_ip("10.10.10.10", 7.0),
                     store.disassociate_floating_ip("10.10.10.10", 7.0)):
            with pytest.raises(NotFound, match=r"floating IP 10\.10\.10\.10"):
                await call
        assert (await store.allocate_floating_ip("p3", pool="nova", now=8.0)).address == \
            "192.0.2.1"

    run_store(body)


def test_virtual_interfaces(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        net = await store.create_network(uuid="n1", label="l", cidr="10.0.0.0/28", now=1.0)
        await store.create_fixed_ips(net.id, now=1.0)
        vif = await store.create_virtual_interface(
            uuid="v1", address="fa:16:3e:00:00:01", instance_uuid="inst-1",
            network_id=net.id, now=1.0)
        assert (vif.address, vif.network_id, vif.instance_uuid) == (
            "fa:16:3e:00:00:01", net.id, "inst-1")
        with pytest.raises(DuplicateError):
            await store.create_virtual_interface(
                uuid="v2", address="fa:16:3e:00:00:01", instance_uuid="inst-2",
                network_id=net.id, now=1.0)
        await store.create_virtual_interface(uuid="v3", address="fa:16:3e:00:00:03",
                                             instance_uuid="inst-1", network_id=None, now=1.0)
        ip = await store.allocate_fixed_ip(net.id, "inst-1", virtual_interface_id=vif.id,
                                           now=2.0)
        assert [v.uuid for v in await store.virtual_interfaces_for_instance("inst-1")] == [
            "v1", "v3"]
        assert await store.delete_virtual_interfaces_for_instance("inst-1") == 2
        assert await store.virtual_interfaces_for_instance("inst-1") == []
        assert (await store.get_fixed_ip_by_address(ip.address)).virtual_interface_id is None
        # the MAC may be used again
        await store.create_virtual_interface(uuid="v4", address="fa:16:3e:00:00:01",
                                             instance_uuid="inst-2", network_id=None, now=3.0)

    run_store(body)


def test_security_groups(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        default = await store.ensure_default_security_group("p1", user_id="u1", now=1.0)
        assert (default.name, default.project_id, default.user_id) == ("default", "p1", "u1")
        assert (await store.ensure_default_security_group("p1", now=2.0)).id == default.id
        web = await store.create_security_group(project_id="p1", name="web",
                                                description="http", user_id="u1", now=2.0)
        assert (web.name, web.description, web.created_at) == ("web", "http", 2.0)
        with pytest.raises(DuplicateError):
            await store.create_security_group(project_id="p1", name="web", now=2.0)
        other = await store.create_security_group(project_id="p2", name="web", now=2.0)
        assert (await store.get_security_group(web.id)).name == "web"
        assert (await store.security_group_by_name("p2", "web")).id == other.id
        with pytest.raises(NotFound, match="security group 'db'"):
            await store.security_group_by_name("p1", "db")
        with pytest.raises(NotFound, match="security group 999"):
            await store.get_security_group(999)
        assert [g.name for g in await store.list_security_groups(project_id="p1")] == [
            "default", "web"]
        assert [(g.project_id, g.name) for g in await store.list_security_groups()] == [
            ("p1", "default"), ("p1", "web"), ("p2", "web")]

        r1 = await store.add_security_group_rule(parent_group_id=web.id, protocol="tcp",
                                                 from_port=80, to_port=80,
                                                 cidr="0.0.0.0/0", now=3.0)
        assert (r1.protocol, r1.from_port, r1.to_port, r1.cidr, r1.group_id) == (
            "tcp", 80, 80, "0.0.0.0/0", None)
        with pytest.raises(DuplicateError):
            await store.add_security_group_rule(parent_group_id=web.id, protocol="tcp",
                                                from_port=80, to_port=80, cidr="0.0.0.0/0",
                                                now=3.0)
        r2 = await store.add_security_group_rule(parent_group_id=web.id, protocol="tcp",
                                                 from_port=80, to_port=80, group_id=default.id,
                                                 now=3.0)
        r3 = await store.add_security_group_rule(parent_group_id=default.id, protocol="icmp",
                                                 from_port=-1, to_port=-1, group_id=web.id,
                                                 now=3.0)
        with pytest.raises(NotFound):
            await store.add_security_group_rule(parent_group_id=999, protocol="tcp", now=3.0)
        with pytest.raises(NotFound):
            await store.add_security_group_rule(parent_group_id=web.id, group_id=999, now=3.0)
        assert [r.id for r in await store.rules_for_group(web.id)] == [r1.id, r2.id]
        assert (await store.get_security_group_rule(r2.id)).group_id == default.id
        await store.remove_security_group_rule(r1.id)
        with pytest.raises(NotFound):
            await store.remove_security_group_rule(r1.id)
        with pytest.raises(NotFound):
            await store.get_security_group_rule(r1.id)

        await store.add_instance_to_security_group("inst-1", web.id)
        await store.add_instance_to_security_group("inst-1", default.id)
        await store.add_instance_to_security_group("inst-2", web.id)
        with pytest.raises(DuplicateError):
            await store.add_instance_to_security_group("inst-1", web.id)
        with pytest.raises(NotFound):
            await store.add_instance_to_security_group("inst-1", 999)
        assert [g.name for g in await store.security_groups_for_instance("inst-1")] == [
            "default", "web"]
        assert await store.instances_in_security_group(web.id) == ["inst-1", "inst-2"]
        with pytest.raises(InUse, match="default"):
            await store.delete_security_group(default.id, 4.0)
        with pytest.raises(InUse, match="in use"):
            await store.delete_security_group(web.id, 4.0)
        await store.remove_instance_from_security_group("inst-2", web.id)
        with pytest.raises(NotFound):
            await store.remove_instance_from_security_group("inst-2", web.id)
        assert await store.remove_instance_from_all_security_groups("inst-1") == 2
        assert await store.security_groups_for_instance("inst-1") == []

        # deleting a group takes its rules and the rules naming it as source
        await store.delete_security_group(web.id, 5.0)
        with pytest.raises(NotFound):
            await store.get_security_group(web.id)
        with pytest.raises(NotFound):
            await store.delete_security_group(web.id, 5.0)
        assert await store.rules_for_group(default.id) == []
        with pytest.raises(NotFound):
            await store.get_security_group_rule(r3.id)
        # and its name may be used again
        await store.create_security_group(project_id="p1", name="web", now=6.0)

    run_store(body)


def test_a_page_of_instances_is_read_in_one_query_per_kind(run_store: StoreRunner) -> None:
    async def body(store: Store) -> None:
        net = await store.create_network(uuid="n1", label="l", cidr="10.0.0.0/28", now=1.0)
        await store.create_fixed_ips(net.id, now=1.0)
        vif = await store.create_virtual_interface(
            uuid="v1", address="fa:16:3e:00:00:01", instance_uuid="inst-1",
            network_id=net.id, now=1.0)
        a = await store.allocate_fixed_ip(net.id, "inst-1", virtual_interface_id=vif.id,
                                          now=2.0)
        b = await store.allocate_fixed_ip(net.id, "inst-2", now=2.0)
        await store.create_floating_ips(pool="nova", ip_range="192.0.2.0/30", now=1.0)
        f1 = await store.allocate_floating_ip("p1", pool="nova", now=2.0)
        await store.associate_floating_ip(f1.address, fixed_address=a.address, host="h1",
                                          now=3.0)
        web = await store.create_security_group(project_id="p1", name="web",
                                                description="http", user_id="u1", now=2.0)
        await store.add_instance_to_security_group("inst-2", web.id)
        page = ["inst-1", "inst-2", "inst-9"]
        fixed = await store.fixed_ips_for_instances(page)
        assert {k: [i.address for i in v] for k, v in fixed.items()} == {
            "inst-1": [a.address], "inst-2": [b.address]}
        for uuid in page:  # the same records as one instance at a time
            assert fixed.get(uuid, []) == await store.fixed_ips_for_instance(uuid)
            assert (await store.virtual_interfaces_for_instances(page)).get(uuid, []) == (
                await store.virtual_interfaces_for_instance(uuid))
            assert (await store.floating_ips_for_instances(page)).get(uuid, []) == (
                await store.floating_ips_for_instance(uuid))
            assert (await store.security_groups_for_instances(page)).get(uuid, []) == (
                await store.security_groups_for_instance(uuid))
        assert [f.address for f in (await store.floating_ips_for_instances(page))["inst-1"]] == [
            f1.address]
        assert await store.fixed_ips_for_instances([]) == {}

    run_store(body)
