"""Images through the API logic: create, show, patch, delete, (de)activate, tags, errors."""

from __future__ import annotations

import re

from .conftest import OWNER, PATCH_TYPE, Glance

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def test_discovery_needs_no_token(glance: Glance) -> None:
    for path in ("/", "/v2", "/v2/"):
        answer = glance.call("GET", path, token=None)
        assert answer.status == 300
        current = answer.body["versions"][0]
        assert current["status"] == "CURRENT" and current["id"].startswith("v2.")
        assert current["links"] == [{"rel": "self", "href": "http://glance:9292/v2/"}]
    assert glance.call("GET", "/versions", token=None).status == 200


def test_create_keeps_extra_properties_and_shows_glance_json(glance: Glance) -> None:
    body = {"name": "acc-img", "container_format": "bare", "disk_format": "raw",
            "owner_specified.openstack.md5": "", "owner_specified.openstack.sha256": "",
            "owner_specified.openstack.object": "images/acc-img"}
    answer = glance.call("POST", "/v2/images", body)
    assert answer.status == 201, answer.body
    image = answer.body
    assert UUID.match(image["id"])
    assert answer.headers["Location"] == f"/v2/images/{image['id']}"
    assert answer.headers["x-openstack-request-id"].startswith("req-")
    assert image["owner_specified.openstack.object"] == "images/acc-img"
    assert image["owner_specified.openstack.md5"] == ""
    expected = {"name": "acc-img", "status": "queued", "visibility": "shared",
                "protected": False, "os_hidden": False, "owner": OWNER, "size": None,
                "virtual_size": None, "checksum": None, "os_hash_algo": None,
                "os_hash_value": None, "disk_format": "raw", "container_format": "bare",
                "min_disk": 0, "min_ram": 0, "tags": [], "schema": "/v2/schemas/image",
                "self": f"/v2/images/{image['id']}",
                "file": f"/v2/images/{image['id']}/file"}
    assert {k: image[k] for k in expected} == expected
    assert TIME.match(image["created_at"]) and TIME.match(image["updated_at"])
    shown = glance.call("GET", f"/v2/images/{image['id']}")
    assert shown.status == 200 and shown.body == image


def test_create_with_id_tags_and_refusals(glance: Glance) -> None:
    iid = "0b5a3b0e-52f3-4a0b-9f35-2f5b7a9c1d20"
    image = glance.create(id=iid, name="x", tags=["b", "a", "b"], min_ram=512)
    assert image["id"] == iid and image["tags"] == ["a", "b"] and image["min_ram"] == 512
    dup = glance.call("POST", "/v2/images", {"id": iid})
    assert dup.status == 409 and "already exists" in dup.message
    cases = [
        ({"status": "active"}, 403, "Attribute 'status' is read-only."),
        ({"self": "/x"}, 403, "Attribute 'self' is read-only."),
        ({"location": "file:///x"}, 403, "Attribute 'location' is reserved."),
        ({"os_glance_x": "1"}, 403, "is reserved"),
        ({"visibility": "public"}, 403, "publicize_image"),
        ({"owner": "p-other"}, 403, "not permitted to create images owned by"),
        ({"disk_format": "floppy"}, 400, "does not match schema 'image'"),
        ({"visibility": "everyone"}, 400, "does not match schema 'image'"),
        ({"min_disk": -1}, 400, "Cannot be a negative value"),
        ({"min_ram": "1"}, 400, "does not match schema"),
        ({"hw_cpu_cores": 4}, 400, "is not of type 'string'"),
        ({"id": "not-a-uuid"}, 400, "does not match"),
        ({"x" * 256: "v"}, 400, "greater than 255"),
        ({"owner": "o" * 65}, 400, "longer than 64 characters"),
    ]
    for body, status, words in cases:
        answer = glance.call("POST", "/v2/images", body)
        assert answer.status == status, (body, answer.body)
        assert words in answer.message, (body, answer.body)
    assert glance.call("POST", "/v2/images", {"name": "r"}, token="reader").status == 403
    public = glance.call("POST", "/v2/images", {"visibility": "public"}, token="admin")
    assert public.status == 201
    other = glance.call("POST", "/v2/images", {"owner": "p-other"}, token="admin")
    assert other.status == 201 and other.body["owner"] == "p-other"


def test_bad_bodies_and_tokens(glance: Glance) -> None:
    bad_json = glance.call("POST", "/v2/images", raw=b"{nope")
    assert bad_json.status == 400
    assert bad_json.body == {
        "message": "Malformed JSON in request body.<br /><br />\n\n\n",
        "code": "400 Bad Request", "title": "Bad Request"}
    assert glance.call("POST", "/v2/images", raw=b"").status == 400
    assert glance.call("POST", "/v2/images", [1, 2]).status == 400
    for token in (None, "", "forged"):
        answer = glance.call("GET", "/v2/images", token=token)
        assert answer.status == 401
        assert answer.body == {"error": {
            "code": 401, "title": "Unauthorized",
            "message": "The request you have made requires authentication."}}


def test_error_body_follows_accept(glance: Glance) -> None:
    missing = "/v2/images/9f1d3c52-0b1e-4f7a-9d0e-3c2b1a4f5e6d"
    as_json = glance.call("GET", missing)
    assert as_json.status == 404
    assert as_json.body["code"] == "404 Not Found"
    assert as_json.message.startswith("No image found with ID 9f1d3c52")
    as_html = glance.call("GET", missing, accept=None)
    assert as_html.headers == {"x-openstack-request-id": as_html.headers[
        "x-openstack-request-id"]}
    assert "<h1>404 Not Found</h1>" in as_html.body
    plain = glance.call("GET", missing, accept="text/plain")
    assert plain.body.startswith("404 Not Found\n\nNo image found")


def test_patch_properties_and_base_fields(glance: Glance) -> None:
    image = glance.create(name="old", os_distro="cirros", gone="soon")
    iid = image["id"]
    answer = glance.patch(iid, [
        {"op": "replace", "path": "/name", "value": "new"},
        {"op": "add", "path": "/hw_disk_bus", "value": "virtio"},
        {"op": "replace", "path": "/os_distro", "value": "ubuntu"},
        {"op": "remove", "path": "/gone"},
        {"op": "add", "path": "/min_disk", "value": 2},
        {"op": "replace", "path": "/tags", "value": ["x", "y"]},
        {"op": "add", "path": "/protected", "value": True},
    ])
    assert answer.status == 200, answer.body
    got = answer.body
    assert got["name"] == "new" and got["hw_disk_bus"] == "virtio"
    assert got["os_distro"] == "ubuntu" and "gone" not in got
    assert got["min_disk"] == 2 and got["tags"] == ["x", "y"] and got["protected"] is True
    assert glance.call("GET", f"/v2/images/{iid}").body == got
    v20 = glance.call("PATCH", f"/v2/images/{iid}", [{"replace": "/name", "value": "v20"}],
                      content_type="application/openstack-images-v2.0-json-patch")
    assert v20.status == 200 and v20.body["name"] == "v20"
    assert glance.patch(iid, [{"op": "replace", "path": "/tags", "value": ["y"]}]
                        ).body["tags"] == ["y"]


def test_patch_refusals(glance: Glance) -> None:
    iid = glance.create(name="p", prop="v")["id"]
    cases = [
        ([{"op": "replace", "path": "/status", "value": "active"}], 403, "read-only"),
        ([{"op": "replace", "path": "/id", "value": "x"}], 403, "read-only"),
        ([{"op": "add", "path": "/locations", "value": []}], 403, "reserved"),
        ([{"op": "remove", "path": "/name"}], 403, "Property name may not be removed."),
        ([{"op": "replace", "path": "/nope", "value": "x"}], 409,
         "Property nope does not exist."),
        ([{"op": "remove", "path": "/nope"}], 409, "Property nope does not exist."),
        ([{"op": "replace", "path": "/visibility", "value": "public"}], 403,
         "publicize_image"),
        ([{"op": "replace", "path": "/owner", "value": "p-other"}], 403,
         "Owner can't be updated by non admin."),
        ([{"op": "move", "path": "/name"}], 400, "Invalid operation: `move`"),
        ([{"op": "replace", "path": "name", "value": "x"}], 400, "does not start with"),
        ([{"op": "replace", "path": "/a/b", "value": "x"}], 400, "Invalid JSON pointer"),
        ([{"op": "replace", "path": "/name"}], 400, 'requires a member named "value"'),
        ([{"op": "add", "path": "/prop", "value": 5}], 400, "is not of type 'string'"),
        ([{"op": "add", "path": "/min_ram", "value": -5}], 400, "negative"),
        ({"op": "add"}, 400, "must be a JSON array"),
        (["x"], 400, "Operations must be JSON objects."),
    ]
    for ops, status, words in cases:
        answer = glance.patch(iid, ops)  # type: ignore[arg-type]
        assert answer.status == status, (ops, answer.body)
        assert words in answer.message, (ops, answer.body)
    wrong_type = glance.call("PATCH", f"/v2/images/{iid}", [], content_type="application/json")
    assert wrong_type.status == 415
    assert "openstack-images-v2.1-json-patch" in wrong_type.headers["Accept-Patch"]
    assert glance.patch(iid, [{"op": "add", "path": "/x", "value": "1"}],
                        token="reader").status == 403
    assert glance.call("GET", f"/v2/images/{iid}").body["prop"] == "v"
    assert glance.patch(iid, [{"op": "replace", "path": "/owner", "value": "p-other"}],
                        token="admin").status == 200


def test_formats_only_change_while_queued(glance: Glance) -> None:
    iid = glance.create()["id"]
    assert glance.patch(iid, [{"op": "replace", "path": "/disk_format",
                               "value": "qcow2"}]).status == 200
    assert glance.upload(iid, b"data").status == 204
    answer = glance.patch(iid, [{"op": "replace", "path": "/disk_format", "value": "raw"}])
    assert answer.status == 403 and "only replaced for a queued image" in answer.message


def test_delete_and_protected(glance: Glance) -> None:
    iid = glance.create(protected=True)["id"]
    assert glance.upload(iid, b"bytes").status == 204
    refused = glance.call("DELETE", f"/v2/images/{iid}")
    assert refused.status == 403 and "is protected and cannot be deleted" in refused.message
    assert glance.call("DELETE", f"/v2/images/{iid}", token="other").status == 404
    assert glance.patch(iid, [{"op": "replace", "path": "/protected", "value": False}]
                        ).status == 200
    assert len(glance.blobs.blobs) == 1
    assert glance.call("DELETE", f"/v2/images/{iid}").status == 204
    assert glance.blobs.blobs == {}
    assert glance.call("GET", f"/v2/images/{iid}").status == 404
    assert glance.call("DELETE", f"/v2/images/{iid}").status == 404


def test_deactivate_and_reactivate(glance: Glance) -> None:
    iid = glance.create(visibility="community")["id"]
    url = f"/v2/images/{iid}/actions"
    queued = glance.call("POST", f"{url}/deactivate", token="admin")
    assert queued.status == 403 and "status 'queued'" in queued.message
    glance.upload(iid, b"abc")
    assert glance.call("POST", f"{url}/deactivate").status == 403  # admin only
    assert glance.call("POST", f"{url}/deactivate", token="admin").status == 204
    assert glance.call("POST", f"{url}/deactivate", token="admin").status == 204
    assert glance.call("GET", f"/v2/images/{iid}").body["status"] == "deactivated"
    blocked = glance.call("GET", f"/v2/images/{iid}/file", token="other")
    assert blocked.status == 403 and "deactivated" in blocked.message
    assert glance.call("GET", f"/v2/images/{iid}/file", token="admin").body == b"abc"
    assert glance.call("POST", f"{url}/reactivate", token="admin").status == 204
    assert glance.call("GET", f"/v2/images/{iid}/file", token="other").body == b"abc"


def test_tags(glance: Glance) -> None:
    iid = glance.create()["id"]
    assert glance.call("PUT", f"/v2/images/{iid}/tags/red").status == 204
    assert glance.call("PUT", f"/v2/images/{iid}/tags/red").status == 204
    assert glance.call("PUT", f"/v2/images/{iid}/tags/blue").status == 204
    assert glance.call("GET", f"/v2/images/{iid}").body["tags"] == ["blue", "red"]
    assert glance.call("DELETE", f"/v2/images/{iid}/tags/red").status == 204
    assert glance.call("DELETE", f"/v2/images/{iid}/tags/red").status == 404
    assert glance.call("PUT", f"/v2/images/{iid}/tags/x", token="other").status == 404
    assert glance.call("PUT", f"/v2/images/{iid}/tags/{'t' * 256}").status == 400


def test_quotas_are_413() -> None:
    from nimbus.core.image.config import ImageConfig

    api = Glance(ImageConfig(image_tag_quota=2, image_property_quota=1,
                             image_member_quota=1, image_size_cap=10))
    iid = api.create(tags=["a", "b"], one="1")["id"]
    assert api.call("PUT", f"/v2/images/{iid}/tags/c").status == 413
    assert api.patch(iid, [{"op": "add", "path": "/two", "value": "2"}]).status == 413
    assert api.call("POST", "/v2/images", {"a": "1", "b": "2"}).status == 413
    assert api.patch(iid, [{"op": "add", "path": "/visibility", "value": "shared"}]
                     ).status == 200
    api.share(iid, "p-other")
    assert api.call("POST", f"/v2/images/{iid}/members", {"member": "p-third"}
                    ).status == 413
    assert api.upload(iid, b"0123456789A").status == 413
    assert api.call("GET", f"/v2/images/{iid}").body["status"] == "queued"
    assert api.upload(iid, b"0123456789").status == 204


def test_patch_content_type_constant() -> None:
    assert PATCH_TYPE == "application/openstack-images-v2.1-json-patch"
