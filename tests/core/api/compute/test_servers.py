"""``/servers`` over a simulated cloud: create to ACTIVE with an address, shapes per
microversion, lists with filters and paging, update, delete, isolation, bad input,
quotas (50 racing creates against a quota of 10)."""

from __future__ import annotations

from typing import Any

from nimbus.core.compute import states
from tests.core.api.compute.harness import ADMIN_TOKEN, OTHER, USER, Answer, Api, run

IMAGE = "1d0a1c8e-5a49-4f4c-9d57-6a3f0f8c2a11"
SECRET_IMAGE = "2e1b2d9f-6b5a-4a5d-8e68-7b4a1a9d3b22"  # private to OTHER's project
OLD = "2.1"
NEW = "2.100"


async def prepare(api: Api) -> None:
    """Flavors 1 (1 vCPU, 512 MiB) and 2 (2 vCPUs), a public image, and a private image
    of project p2."""
    store, now = api.cloud.store, api.cloud.rt.wall_time()
    await store.create_flavor(flavorid="1", name="m1.small", vcpus=1, memory_mb=512,
                              root_gb=1, now=now, extra_specs={"hw:cpu_policy": "shared"})
    await store.create_flavor(flavorid="2", name="m1.big", vcpus=2, memory_mb=1024,
                              root_gb=2, now=now)
    await store.create_image(id=IMAGE, owner=None, now=now, visibility="public",
                             status="active", properties={"os_distro": "cirros"})
    await store.create_image(id=SECRET_IMAGE, owner="p2", now=now, visibility="private",
                             status="active")


def body(name: str = "vm", *, version: str = NEW, **extra: Any) -> dict[str, Any]:
    """A create body as the CLI sends it at ``version``."""
    root = {"uuid": IMAGE, "boot_index": 0, "source_type": "image",
            "destination_type": "local", "delete_on_termination": True}
    server = {"name": name, "imageRef": IMAGE, "flavorRef": "1", "min_count": 1,
              "max_count": 1, "block_device_mapping_v2": [root],
              "networks": [] if version == OLD else "auto", **extra}
    return {"server": server}


async def create(api: Api, name: str = "vm", *, token: str = USER, version: str = NEW,
                 **extra: Any) -> Answer:
    hints = extra.pop("hints", None)
    made = body(name, version=version, **extra) | ({"os:scheduler_hints": hints} if hints else {})
    return await api.post("/servers", made, token=token, version=version)


async def boot(api: Api, name: str = "vm", *, token: str = USER, version: str = NEW,
               **extra: Any) -> dict[str, Any]:
    """Create a server and poll it until ACTIVE, as ``server create --wait`` does."""
    made = await create(api, name, token=token, version=version, **extra)
    assert made.status == 202, made.body
    uuid = made.body["server"]["id"]
    return await wait_status(api, uuid, "ACTIVE", token=token, version=version)


async def wait_status(api: Api, uuid: str, status: str, *, token: str = USER,
                      version: str = NEW) -> dict[str, Any]:
    """Poll a server (about every 0.5 s, as the CLI does every 2 s) until ``status``."""
    for _ in range(200):
        got = await api.get(f"/servers/{uuid}", token=token, version=version)
        assert got.status == 200 and got.body["server"]["status"] != "ERROR", got.body
        if got.body["server"]["status"] == status:
            return dict(got.body["server"])
        await api.cloud.rt.sleep(0.5)
    raise AssertionError(f"{uuid} never reached {status}")


def test_create_as_the_cli_reaches_active_with_a_fixed_ip() -> None:
    async def scenario(api: Api) -> None:
        await prepare(api)
        made = await create(api)
        assert made.status == 202
        server = made.body["server"]
        assert set(server) == {"id", "links", "adminPass", "OS-DCF:diskConfig",
                               "security_groups"}
        assert server["security_groups"] == [{"name": "default"}]
        assert len(server["adminPass"]) == 12
        assert made.headers["Location"].endswith(f"/servers/{server['id']}")
        shown = await wait_status(api, server["id"], "ACTIVE")
        (addr,) = shown["addresses"]["private"]
        assert addr["version"] == 4 and addr["addr"].startswith("10.0.0.")
        assert addr["OS-EXT-IPS:type"] == "fixed"
        assert addr["OS-EXT-IPS-MAC:mac_addr"].startswith("fa:16:3e:")
        assert shown["security_groups"] == [{"name": "default"}]
        store, inst = api.cloud.store, await api.cloud.store.get_instance(server["id"])
        assert inst.vm_state == states.ACTIVE and inst.power_state == states.RUNNING
        ips = await store.fixed_ips_for_instance(server["id"])
        assert [ip.address for ip in ips] == [addr["addr"]]
        (disk,) = await store.bdms_for_instance(server["id"])
        assert (disk.source_type, disk.destination_type, disk.boot_index,
                disk.image_id) == ("image", "local", 0, IMAGE)
        assert server["id"] in await api.cloud.drivers[inst.host or ""].list_guests()
        ips = (await api.get(f"/servers/{server['id']}/ips")).body
        assert ips == {"addresses": {"private": [{"version": 4, "addr": addr["addr"]}]}}
        one = await api.get(f"/servers/{server['id']}/ips/private")
        assert one.body == {"private": [{"version": 4, "addr": addr["addr"]}]}
        assert (await api.get(f"/servers/{server['id']}/ips/nope")).status == 404

    run(scenario)


def test_at_2_1_an_empty_network_list_also_gets_an_address() -> None:
    async def scenario(api: Api) -> None:
        await prepare(api)
        shown = await boot(api, version=OLD)
        assert shown["addresses"]["private"][0]["addr"].startswith("10.0.0.")
        assert shown["flavor"] == {"id": "1", "links": [
            {"rel": "bookmark", "href": "http://nimbus.test:8774/p1/flavors/1"}]}
        for key in ("locked", "description", "tags", "OS-EXT-SRV-ATTR:host"):
            assert key not in shown

    run(scenario)


def test_shapes_at_2_47_and_2_100_and_the_admin_extras() -> None:
    async def scenario(api: Api) -> None:
        await prepare(api)
        first = await boot(api, "first")
        shown = await boot(api, description="hello", tags=["a", "b"], availability_zone="nova",
                           hints={"different_host": [first["id"]]})
        uuid = shown["id"]
        assert shown["flavor"] == {"vcpus": 1, "ram": 512, "disk": 1, "ephemeral": 0,
                                   "swap": 0, "original_name": "m1.small",
                                   "extra_specs": {"hw:cpu_policy": "shared"}}
        assert shown["locked"] is False and shown["locked_reason"] is None
        assert shown["description"] == "hello" and shown["tags"] == ["a", "b"]
        assert shown["pinned_availability_zone"] == "nova"
        assert shown["scheduler_hints"] == {"different_host": [first["id"]]}
        assert shown["server_groups"] == [] and first["hostId"] != shown["hostId"]
        assert shown["image"]["properties"] == {"os_distro": "cirros"}
        assert shown["OS-EXT-SRV-ATTR:hostname"] == "vm" and "host_status" not in shown
        assert "OS-EXT-SRV-ATTR:host" not in shown and first["scheduler_hints"] == {}
        assert shown["OS-EXT-AZ:availability_zone"] == "nova"
        assert len(shown["hostId"]) == 56 and shown["progress"] == 0
        tagged = await api.get("/servers", query={"tags": "a,b"}, version=NEW)
        assert [x["id"] for x in tagged.body["servers"]] == [uuid]
        untagged = await api.get("/servers", query={"not-tags-any": "b"}, version=NEW)
        assert [x["id"] for x in untagged.body["servers"]] == [first["id"]]
        at47 = (await api.get(f"/servers/{uuid}", version="2.47")).body["server"]
        assert at47["flavor"]["original_name"] == "m1.small"
        assert "pinned_availability_zone" not in at47 and "locked_reason" not in at47
        assert at47["image"] == {"id": IMAGE, "links": [
            {"rel": "bookmark", "href": f"http://nimbus.test:8774/p1/images/{IMAGE}"}]}
        admin = (await api.get(f"/servers/{uuid}", token=ADMIN_TOKEN,
                               version=NEW)).body["server"]
        inst = await api.cloud.store.get_instance(uuid)
        assert (admin["OS-EXT-SRV-ATTR:host"], admin["OS-EXT-SRV-ATTR:instance_name"]) == (
            inst.host, inst.name)
        assert admin["host_status"] == "UP" and admin["tenant_id"] == "p1"

    run(scenario)


def test_list_filters_sorting_and_paging() -> None:
    async def scenario(api: Api) -> None:
        await prepare(api)
        for name in ("web-1", "web-2", "db-1"):
            await boot(api, name)
        big = await create(api, "big", flavorRef="2")
        await wait_status(api, big.body["server"]["id"], "ACTIVE")
        q: dict[str, Any] = {"deleted": "False"}
        every = await api.get("/servers/detail", query=q, version=NEW)
        assert every.status == 200
        assert [s["name"] for s in every.body["servers"]] == ["big", "db-1", "web-2", "web-1"]
        by_name = await api.get("/servers", query={"name": "web"})
        assert sorted(s["name"] for s in by_name.body["servers"]) == ["web-1", "web-2"]
        regex = await api.get("/servers", query={"name": "^db-[0-9]$"})
        assert [s["name"] for s in regex.body["servers"]] == ["db-1"]
        flavor = await api.get("/servers", query={"flavor": "2"})
        assert [s["name"] for s in flavor.body["servers"]] == ["big"]
        active = await api.get("/servers", query={"status": "ACTIVE", "image": IMAGE})
        assert len(active.body["servers"]) == 4
        assert (await api.get("/servers", query={"status": "SHUTOFF"})).body["servers"] == []
        assert (await api.get("/servers", query={"status": "NOPE"}, version="2.38")).status == 400
        asc = await api.get("/servers", query={"sort_key": "display_name", "sort_dir": "asc"})
        assert [s["name"] for s in asc.body["servers"]] == ["big", "db-1", "web-1", "web-2"]
        page = await api.get("/servers", query={"limit": "2", "sort_key": "display_name",
                                                "sort_dir": "asc"})
        assert [s["name"] for s in page.body["servers"]] == ["big", "db-1"]
        (link,) = page.body["servers_links"]
        assert link["rel"] == "next" and "marker=" in link["href"]
        marker = link["href"].split("marker=")[1]
        rest = await api.get("/servers", query={"limit": "2", "sort_key": "display_name",
                                                "sort_dir": "asc", "marker": marker})
        assert [s["name"] for s in rest.body["servers"]] == ["web-1", "web-2"]
        assert (await api.get("/servers", query={"marker": "nope"})).status == 400
        ip = every.body["servers"][0]["addresses"]["private"][0]["addr"]
        by_ip = await api.get("/servers", query={"ip": ip.replace(".", r"\.") + "$"})
        assert [s["name"] for s in by_ip.body["servers"]] == ["big"]
        since = await api.get("/servers", query={"changes-since": "2000-01-01T00:00:00Z"})
        assert len(since.body["servers"]) == 4
        none = await api.get("/servers", query={"changes-since": "2999-01-01T00:00:00Z"})
        assert none.body["servers"] == []
        ignored = await api.get("/servers", query={"bogus": "1"}, version="2.74")
        assert ignored.status == 200 and len(ignored.body["servers"]) == 4
        assert (await api.get("/servers", query={"bogus": "1"}, version="2.75")).status == 400
        assert (await api.get("/servers", query={"sort_key": "host"})).status == 403

    run(scenario)


def test_all_tenants_is_for_admins() -> None:
    async def scenario(api: Api) -> None:
        await prepare(api)
        await boot(api, "mine")
        await boot(api, "theirs", token=OTHER)
        assert (await api.get("/servers", query={"all_tenants": "True"})).status == 403
        everyone = await api.get("/servers/detail", query={"all_tenants": "1"},
                                 token=ADMIN_TOKEN)
        assert sorted(s["name"] for s in everyone.body["servers"]) == ["mine", "theirs"]
        p2 = await api.get("/servers", query={"all_tenants": "", "project_id": "p2"},
                           token=ADMIN_TOKEN)
        assert [s["name"] for s in p2.body["servers"]] == ["theirs"]
        own = await api.get("/servers", token=ADMIN_TOKEN)
        assert own.body["servers"] == []

    run(scenario)


def test_update_name_description_and_hostname() -> None:
    async def scenario(api: Api) -> None:
        await prepare(api)
        uuid = (await boot(api))["id"]
        small = await api.put(f"/servers/{uuid}", {"server": {
            "name": "renamed", "description": "about"}}, version="2.74")
        assert small.status == 200
        server = small.body["server"]
        assert (server["name"], server["description"]) == ("renamed", "about")
        assert "OS-EXT-STS:vm_state" not in server and "key_name" not in server
        assert "OS-EXT-IPS:type" not in server["addresses"]["private"][0]
        full = await api.put(f"/servers/{uuid}", {"server": {
            "name": "again", "hostname": "new-host"}}, version="2.90")
        server = full.body["server"]
        assert server["OS-EXT-STS:vm_state"] == "active" and server["key_name"] is None
        assert server["OS-EXT-SRV-ATTR:hostname"] == "new-host"
        assert server["addresses"]["private"][0]["OS-EXT-IPS:type"] == "fixed"
        early = await api.put(f"/servers/{uuid}", {"server": {"hostname": "h2"}},
                              version="2.89")
        assert early.status == 400
        old = await api.put(f"/servers/{uuid}", {"server": {"description": "x"}},
                            version="2.18")
        assert old.status == 400
        inst = await api.cloud.store.get_instance(uuid)
        assert (inst.display_name, inst.display_description, inst.hostname) == (
            "again", "about", "new-host")

    run(scenario)


def test_delete_answers_204_and_gives_the_address_back() -> None:
    async def scenario(api: Api) -> None:
        await prepare(api)
        uuid = (await boot(api))["id"]
        store, now = api.cloud.store, api.cloud.rt.wall_time()
        await store.create_floating_ips(pool="public", ip_range="192.0.2.0/30", now=now)
        floating = await store.allocate_floating_ip("p1", pool="public", now=now)
        (fixed,) = await store.fixed_ips_for_instance(uuid)
        await store.associate_floating_ip(floating.address, fixed_address=fixed.address,
                                          host=None, now=now)
        shown = (await api.get(f"/servers/{uuid}", version=NEW)).body["server"]
        assert [(a["addr"], a["OS-EXT-IPS:type"]) for a in shown["addresses"]["private"]] == [
            (fixed.address, "fixed"), (floating.address, "floating")]
        assert (await api.delete(f"/servers/{uuid}")).status == 204
        assert await store.fixed_ips_for_instance(uuid) == []
        assert (await store.get_floating_ip(floating.address)).fixed_address is None
        await api.cloud.wait_for(uuid, deleted=True)
        assert (await api.get(f"/servers/{uuid}")).status == 404
        assert (await api.get("/servers")).body["servers"] == []
        assert (await api.delete(f"/servers/{uuid}")).status == 404

    run(scenario)


def test_another_project_cannot_see_or_touch_a_server() -> None:
    async def scenario(api: Api) -> None:
        await prepare(api)
        uuid = (await boot(api))["id"]
        before = await api.cloud.store.get_instance(uuid)
        for method, path, payload in (
                ("GET", f"/servers/{uuid}", None),
                ("PUT", f"/servers/{uuid}", {"server": {"name": "mine-now"}}),
                ("DELETE", f"/servers/{uuid}", None),
                ("GET", f"/servers/{uuid}/ips", None),
                ("GET", f"/servers/{uuid}/metadata", None),
                ("PUT", f"/servers/{uuid}/metadata/k", {"meta": {"k": "v"}})):
            got = await api.request(method, path, payload, token=OTHER)
            assert got.status == 404, (method, path, got.body)
            assert got.body["itemNotFound"]["message"] == f"Instance {uuid} could not be found."
        assert (await api.get("/servers", token=OTHER)).body["servers"] == []
        assert await api.cloud.store.get_instance(uuid) == before

    run(scenario)


MISSING = "3f2c3e0a-7c6b-4b6e-9f79-8c5b2b0e4c33"
#: Create bodies to refuse (extra server fields) and the message, where Nova's is known.
REFUSED: list[tuple[dict[str, Any], str | None]] = [
    ({"colour": "blue"}, None), ({"name": "x" * 256}, None),
    ({"flavorRef": "42"}, "Flavor 42 could not be found."),
    ({"imageRef": MISSING, "block_device_mapping_v2": []},
     f"Image {MISSING} could not be found."),
    ({"imageRef": SECRET_IMAGE, "block_device_mapping_v2": []},
     f"Image {SECRET_IMAGE} could not be found."),
    ({"key_name": "nope"}, "Invalid key_name provided."),
    ({"availability_zone": "atlantis"}, "The requested availability zone is not available"),
    ({"user_data": "not base64!"}, None), ({"min_count": 3, "max_count": 2}, None),
]


def test_bad_input_is_refused_and_makes_nothing() -> None:
    async def scenario(api: Api) -> None:
        await prepare(api)
        assert (await api.request("POST", "/servers", b"{not json", version=NEW)).status == 400
        for extra, message in REFUSED:
            got = await create(api, **extra)
            assert got.status == 400, extra
            assert message is None or got.body["badRequest"]["message"] == message
        no_networks = await api.post("/servers", {"server": {
            "name": "vm", "imageRef": IMAGE, "flavorRef": "1"}}, version="2.37")
        assert no_networks.status == 400
        assert (await api.get("/servers", version="3.0")).status == 406
        assert (await api.get("/servers", version="2.x")).status == 400
        assert await api.cloud.store.list_instances(deleted=None) == []

    run(scenario)


def test_multiple_create_and_reservation_id() -> None:
    async def scenario(api: Api) -> None:
        await prepare(api)
        made = await create(api, "many", min_count=2, max_count=3,
                            return_reservation_id=True)
        assert made.status == 202
        rid = made.body["reservation_id"]
        listed = await api.get("/servers/detail", query={"reservation_id": rid})
        names = sorted(s["name"] for s in listed.body["servers"])
        assert names == ["many-1", "many-2", "many-3"]
        for server in listed.body["servers"]:
            await wait_status(api, server["id"], "ACTIVE")
        ips = [(await api.get(f"/servers/{s['id']}/ips")).body["addresses"]["private"][0]
               for s in listed.body["servers"]]
        assert len({ip["addr"] for ip in ips}) == 3

    run(scenario)


def test_a_create_over_quota_is_refused_and_leaves_nothing() -> None:
    async def scenario(api: Api) -> None:
        await prepare(api)
        store, now = api.cloud.store, api.cloud.rt.wall_time()
        await store.set_project_quotas("p1", {"instances": 2, "cores": 3}, now)
        refused = await create(api, flavorRef="2", min_count=2, max_count=2)
        assert refused.status == 403
        assert refused.body["forbidden"]["message"] == (
            "Quota exceeded for cores: Requested 4, but already used 0 of 3 cores")
        fits = await create(api, "some", min_count=1, max_count=5)
        assert fits.status == 202  # lowered to what the quota allows, as Nova does
        live = await store.list_instances(project_id="p1")
        assert sorted(i.display_name or "" for i in live) == ["some-1", "some-2"]
        over = await create(api, "one-more")
        assert over.body["forbidden"]["message"] == (
            "Quota exceeded for instances: Requested 1, but already used 2 of 2 instances")
        assert len(await store.list_instances(project_id="p1")) == 2

    run(scenario)


def test_fifty_racing_creates_against_a_quota_of_ten_make_exactly_ten() -> None:
    async def scenario(api: Api) -> None:
        await prepare(api)
        cloud = api.cloud
        await cloud.store.set_project_quotas("p1", {"instances": 10, "cores": 100,
                                                    "ram": 1_000_000}, cloud.rt.wall_time())
        tasks = [cloud.rt.spawn(create(api, f"vm{i}")) for i in range(50)]
        answers = [await t.join() for t in tasks]
        statuses = sorted(a.status for a in answers)
        assert statuses.count(202) == 10 and statuses.count(403) == 40
        live = await cloud.store.list_instances(project_id="p1")
        assert len(live) == 10
        assert (await cloud.store.count_usage("p1"))["instances"] == 10
        (net,) = await cloud.store.list_networks()
        assert len(await cloud.store.fixed_ips_for_network(net.id, allocated_only=True)) == 10

    run(scenario)

