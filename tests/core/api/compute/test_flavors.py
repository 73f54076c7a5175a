"""``/flavors``: list, show, create, update, delete, extra specs and flavor access."""

from __future__ import annotations

from typing import Any

import pytest

from tests.core.api.compute.harness import ADMIN_TOKEN, OTHER, USER, Api, run

SMALL = {"name": "m1.tiny", "ram": 512, "vcpus": 1, "disk": 1, "id": "t1"}


async def make(api: Api, version: str = "2.61", **fields: Any) -> dict[str, Any]:
    """Create a flavor as admin; the created flavor."""
    got = await api.post("/flavors", {"flavor": {**SMALL, **fields}}, token=ADMIN_TOKEN,
                         version=version)
    assert got.status == 200, got.body
    return got.body["flavor"]  # type: ignore[no-any-return]


def test_create_as_the_cli_does_generates_an_id_and_shows_nova_fields() -> None:
    async def scenario(api: Api) -> None:
        body = {"flavor": {"name": "cli", "ram": 256, "vcpus": 1, "disk": 0, "swap": 0,
                           "OS-FLV-EXT-DATA:ephemeral": 0,
                           "os-flavor-access:is_public": True, "id": None}}
        got = await api.post("/flavors", body, token=ADMIN_TOKEN, version="2.61")
        assert got.status == 200, got.body
        flavor = got.body["flavor"]
        assert len(flavor["id"]) == 36 and flavor["id"].count("-") == 4
        assert flavor["swap"] == "" and flavor["extra_specs"] == {}
        assert flavor["description"] is None and flavor["rxtx_factor"] == 1.0
        assert flavor["OS-FLV-DISABLED:disabled"] is False
        assert flavor["links"][0] == {
            "rel": "self", "href": f"http://nimbus.test:8774/v2.1/admin/flavors/{flavor['id']}"}
        shown = await api.get(f"/flavors/{flavor['id']}", version="2.61")
        assert shown.status == 200 and shown.body["flavor"]["ram"] == 256
        listed = await api.get("/flavors/detail", query={"is_public": "None"}, version="2.61")
        assert [f["name"] for f in listed.body["flavors"]] == ["cli"]
        brief = await api.get("/flavors", version="2.61")
        assert set(brief.body["flavors"][0]) == {"id", "name", "links", "description"}

    run(scenario)


def test_show_missing_flavor_is_a_nova_404() -> None:
    async def scenario(api: Api) -> None:
        got = await api.get("/flavors/m1.small", version="2.61")
        assert got.status == 404
        assert got.body["itemNotFound"]["message"] == "Flavor m1.small could not be found."

    run(scenario)


def test_microversion_gates_of_the_flavor_view() -> None:
    async def scenario(api: Api) -> None:
        await make(api, description="tiny one")
        old = (await api.get("/flavors/t1")).body["flavor"]
        assert "description" not in old and "extra_specs" not in old and old["swap"] == ""
        at_60 = (await api.get("/flavors/t1", version="2.60")).body["flavor"]
        assert at_60["description"] == "tiny one" and "extra_specs" not in at_60
        at_75 = (await api.get("/flavors/t1", version="2.75")).body["flavor"]
        assert at_75["swap"] == 0 and at_75["extra_specs"] == {}
        # unknown query parameters: ignored before 2.75, refused from it
        assert (await api.get("/flavors", query={"foo": "1"}, version="2.74")).status == 200
        assert (await api.get("/flavors", query={"foo": "1"}, version="2.75")).status == 400

    run(scenario)


def test_update_description_is_admin_only_and_exists_from_2_55() -> None:
    async def scenario(api: Api) -> None:
        await make(api)
        body = {"flavor": {"description": "new words"}}
        assert (await api.put("/flavors/t1", body, token=ADMIN_TOKEN,
                              version="2.54")).status == 404
        assert (await api.put("/flavors/t1", body, version="2.55")).status == 403
        got = await api.put("/flavors/t1", body, token=ADMIN_TOKEN, version="2.55")
        assert got.status == 200 and got.body["flavor"]["description"] == "new words"
        bad = await api.put("/flavors/t1", {"flavor": {"name": "x"}}, token=ADMIN_TOKEN,
                            version="2.55")
        assert bad.status == 400

    run(scenario)


@pytest.mark.parametrize("fields", [
    {"ram": -1}, {"ram": 0}, {"vcpus": "two"}, {"disk": -5}, {"swap": ""}, {"swap": -1},
    {"name": "x" * 256}, {"name": " padded"}, {"name": ""}, {"rxtx_factor": 0},
    {"os-flavor-access:is_public": "maybe"}, {"id": " bad"}, {"extra": 1},
])
def test_bad_flavor_input_is_400(fields: dict[str, Any]) -> None:
    async def scenario(api: Api) -> None:
        got = await api.post("/flavors", {"flavor": {**SMALL, **fields}}, token=ADMIN_TOKEN)
        assert got.status == 400, got.body
        assert "badRequest" in got.body

    run(scenario)


def test_create_needs_disk_and_refuses_duplicates_and_non_admins() -> None:
    async def scenario(api: Api) -> None:
        no_disk = {k: v for k, v in SMALL.items() if k != "disk"}
        assert (await api.post("/flavors", {"flavor": no_disk},
                               token=ADMIN_TOKEN)).status == 400
        assert (await api.post("/flavors", {"flavor": SMALL})).status == 403
        await make(api, version="2.1", ram="1024", swap="512")
        same_id = await api.post("/flavors", {"flavor": {**SMALL, "name": "other"}},
                                 token=ADMIN_TOKEN)
        assert same_id.status == 409
        assert same_id.body["conflictingRequest"]["message"] == (
            "Flavor with ID t1 already exists.")
        same_name = await api.post("/flavors", {"flavor": {**SMALL, "id": 7}},
                                   token=ADMIN_TOKEN)
        assert same_name.body["conflictingRequest"]["message"] == (
            "Flavor with name m1.tiny already exists.")
        shown = (await api.get("/flavors/t1")).body["flavor"]
        assert shown["ram"] == 1024 and shown["swap"] == 512

    run(scenario)


def test_delete_is_admin_only_and_answers_202() -> None:
    async def scenario(api: Api) -> None:
        await make(api)
        assert (await api.delete("/flavors/t1")).status == 403
        assert (await api.delete("/flavors/t1", token=ADMIN_TOKEN)).status == 202
        assert (await api.get("/flavors/t1")).status == 404
        assert (await api.delete("/flavors/t1", token=ADMIN_TOKEN)).status == 404

    run(scenario)


def test_private_flavor_is_seen_only_by_projects_given_access() -> None:
    async def scenario(api: Api) -> None:
        await make(api, **{"os-flavor-access:is_public": False})
        for token in (USER, OTHER):
            assert (await api.get("/flavors/t1", token=token)).status == 404
            assert (await api.get("/flavors/detail", token=token)).body["flavors"] == []
        add = {"addTenantAccess": {"tenant": "p1"}}
        assert (await api.post("/flavors/t1/action", add)).status == 403
        got = await api.post("/flavors/t1/action", add, token=ADMIN_TOKEN, version="2.7")
        assert got.status == 200
        assert got.body == {"flavor_access": [{"flavor_id": "t1", "tenant_id": "p1"}]}
        again = await api.post("/flavors/t1/action", add, token=ADMIN_TOKEN)
        assert again.status == 409
        assert (await api.get("/flavors/t1", token=USER)).status == 200
        assert [f["id"] for f in (await api.get("/flavors", token=USER)).body["flavors"]] == [
            "t1"]
        # a member of p2 still cannot see p1's private flavor, nor its specs
        assert (await api.get("/flavors/t1", token=OTHER)).status == 404
        assert (await api.get("/flavors/t1/os-extra_specs", token=OTHER)).status == 404
        assert (await api.get("/flavors", token=OTHER)).body["flavors"] == []
        assert (await api.get("/flavors/t1/os-flavor-access", token=USER)).status == 403
        listed = await api.get("/flavors/t1/os-flavor-access", token=ADMIN_TOKEN)
        assert listed.body["flavor_access"] == [{"flavor_id": "t1", "tenant_id": "p1"}]
        remove = {"removeTenantAccess": {"tenant": "p1"}}
        assert (await api.post("/flavors/t1/action", remove, token=ADMIN_TOKEN)).status == 200
        assert (await api.get("/flavors/t1", token=USER)).status == 404
        gone = await api.post("/flavors/t1/action", remove, token=ADMIN_TOKEN)
        assert gone.status == 404
        # admins see private flavors only when they ask for them
        admin_default = await api.get("/flavors", token=ADMIN_TOKEN)
        assert admin_default.body["flavors"] == []
        private = await api.get("/flavors", token=ADMIN_TOKEN, query={"is_public": "false"})
        assert [f["id"] for f in private.body["flavors"]] == ["t1"]
        bad = await api.get("/flavors", token=ADMIN_TOKEN, query={"is_public": "perhaps"})
        assert bad.status == 400

    run(scenario)


def test_public_flavor_has_no_access_list() -> None:
    async def scenario(api: Api) -> None:
        await make(api)
        got = await api.get("/flavors/t1/os-flavor-access", token=ADMIN_TOKEN)
        assert got.status == 404
        add = await api.post("/flavors/t1/action", {"addTenantAccess": {"tenant": "p2"}},
                             token=ADMIN_TOKEN)
        assert add.status == 409
        unknown = await api.post("/flavors/t1/action", {"explode": {}}, token=ADMIN_TOKEN)
        assert unknown.status == 400

    run(scenario)


def test_extra_specs_crud() -> None:
    async def scenario(api: Api) -> None:
        await make(api)
        base = "/flavors/t1/os-extra_specs"
        specs = {"extra_specs": {"hw:cpu_policy": "dedicated", "quota:cpu_shares": 1024}}
        assert (await api.post(base, specs)).status == 403
        got = await api.post(base, specs, token=ADMIN_TOKEN)
        assert got.status == 200 and got.body == specs
        listed = await api.get(base)
        assert listed.body == {"extra_specs": {"hw:cpu_policy": "dedicated",
                                               "quota:cpu_shares": "1024"}}
        one = await api.get(base + "/hw:cpu_policy")
        assert one.body == {"hw:cpu_policy": "dedicated"}
        put = await api.put(base + "/hw:cpu_policy", {"hw:cpu_policy": "shared"},
                            token=ADMIN_TOKEN)
        assert put.status == 200 and put.body == {"hw:cpu_policy": "shared"}
        mismatch = await api.put(base + "/hw:cpu_policy", {"other": "x"}, token=ADMIN_TOKEN)
        assert mismatch.status == 400
        bad_key = await api.post(base, {"extra_specs": {"bad/key": "x"}}, token=ADMIN_TOKEN)
        assert bad_key.status == 400
        shown = await api.get("/flavors/t1", version="2.61")
        assert shown.body["flavor"]["extra_specs"]["hw:cpu_policy"] == "shared"
        assert (await api.delete(base + "/hw:cpu_policy")).status == 403
        assert (await api.delete(base + "/hw:cpu_policy", token=ADMIN_TOKEN)).status == 200
        missing = await api.get(base + "/hw:cpu_policy")
        assert missing.status == 404
        assert missing.body["itemNotFound"]["message"] == (
            "Flavor t1 has no extra specs with key hw:cpu_policy.")
        assert (await api.delete(base + "/hw:cpu_policy", token=ADMIN_TOKEN)).status == 404

    run(scenario)


def test_list_filters_sort_and_pages_with_marker() -> None:
    async def scenario(api: Api) -> None:
        for i, ram in enumerate((512, 1024, 2048)):
            await make(api, id=f"f{i}", name=f"n{i}", ram=ram, disk=i)
        first = await api.get("/flavors", query={"limit": "2"})
        assert [f["id"] for f in first.body["flavors"]] == ["f0", "f1"]
        (link,) = first.body["flavors_links"]
        assert link["rel"] == "next" and "marker=f1" in link["href"] and "limit=2" in link[
            "href"]
        rest = await api.get("/flavors", query={"limit": "2", "marker": "f1"})
        assert [f["id"] for f in rest.body["flavors"]] == ["f2"]
        assert "flavors_links" not in rest.body
        assert (await api.get("/flavors", query={"marker": "nope"})).status == 400
        assert (await api.get("/flavors", query={"limit": "-1"})).status == 400
        big = await api.get("/flavors/detail", query={"minRam": "1024", "minDisk": "2"})
        assert [f["id"] for f in big.body["flavors"]] == ["f2"]
        assert (await api.get("/flavors", query={"minRam": "lots"})).status == 400
        desc = await api.get("/flavors", query={"sort_key": "memory_mb", "sort_dir": "desc"})
        assert [f["id"] for f in desc.body["flavors"]] == ["f2", "f1", "f0"]
        assert (await api.get("/flavors", query={"sort_key": "colour"})).status == 400

    run(scenario)
