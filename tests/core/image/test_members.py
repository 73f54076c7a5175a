"""Image members through the API logic: add, answer, list, show, delete, and refusals."""

from __future__ import annotations

from .conftest import OTHER, THIRD, Glance


def test_members_flow(glance: Glance) -> None:
    iid = glance.create(name="s", visibility="shared")["id"]
    url = f"/v2/images/{iid}/members"
    added = glance.call("POST", url, {"member": OTHER})
    assert added.status == 200, added.body
    assert {k: added.body[k] for k in ("member_id", "image_id", "status", "schema")} == {
        "member_id": OTHER, "image_id": iid, "status": "pending",
        "schema": "/v2/schemas/member"}
    assert glance.call("POST", url, {"member": OTHER}).status == 409
    glance.share(iid, THIRD)
    # pending: shown, but not listed until accepted
    assert glance.call("GET", f"/v2/images/{iid}", token="other").status == 200
    assert glance.names("other") == []
    # the CLI's accept carries the member id too
    accepted = glance.call("PUT", f"{url}/{OTHER}", {"status": "accepted", "member": OTHER},
                           token="other")
    assert accepted.status == 200 and accepted.body["status"] == "accepted"
    assert glance.names("other") == ["s"]
    assert glance.names("other", visibility="shared") == ["s"]
    everyone = glance.call("GET", url)
    assert [m["member_id"] for m in everyone.body["members"]] == [OTHER, THIRD]
    assert everyone.body["schema"] == "/v2/schemas/members"
    mine = glance.call("GET", url, token="other")
    assert [m["member_id"] for m in mine.body["members"]] == [OTHER]
    assert glance.call("GET", f"{url}/{OTHER}", token="other").body["status"] == "accepted"
    assert glance.call("GET", f"{url}/{THIRD}", token="other").status == 404
    assert glance.call("GET", f"{url}/{OTHER}").status == 200
    rejected = glance.call("PUT", f"{url}/{OTHER}", {"status": "rejected"}, token="other")
    assert rejected.body["status"] == "rejected"
    assert glance.names("other") == []
    assert glance.names("other", member_status="rejected") == ["s"]
    assert glance.call("DELETE", f"{url}/{OTHER}").status == 204
    assert glance.call("GET", f"/v2/images/{iid}", token="other").status == 404
    assert glance.call("DELETE", f"{url}/{OTHER}").status == 404


def test_member_refusals(glance: Glance) -> None:
    private = glance.create(name="p", visibility="private")["id"]
    refused = glance.call("POST", f"/v2/images/{private}/members", {"member": OTHER})
    assert refused.status == 403 and "Not allowed to create members" in refused.message
    assert glance.call("GET", f"/v2/images/{private}/members").status == 403
    assert glance.call("GET", f"/v2/images/{private}/members/{OTHER}").status == 404
    iid = glance.create(name="s")["id"]
    url = f"/v2/images/{iid}/members"
    for body, words in (({}, "Member to be added not specified"),
                        ({"member": ""}, "Member can't be empty"),
                        ({"member": "m" * 65}, "Expected a member in the form"),
                        ([OTHER], "Expected a member in the form")):
        answer = glance.call("POST", url, body)
        assert answer.status == 400 and words in answer.message, answer.body
    glance.share(iid, OTHER)
    # a member cannot add others, nor remove itself; the owner cannot answer for it
    assert glance.call("POST", url, {"member": THIRD}, token="other").status == 403
    assert glance.call("DELETE", f"{url}/{OTHER}", token="other").status == 403
    assert glance.call("PUT", f"{url}/{OTHER}", {"status": "accepted"}).status == 403
    assert glance.call("PUT", f"{url}/{OTHER}", {"member": OTHER}, token="other"
                       ).status == 400
    bad = glance.call("PUT", f"{url}/{OTHER}", {"status": "maybe"}, token="other")
    assert bad.status == 400 and "Status must be" in bad.message
    # a stranger does not see the image at all
    assert glance.call("GET", url, token="third").status == 404
    assert glance.call("PUT", f"{url}/{THIRD}", {"status": "accepted"}, token="third"
                       ).status == 404
    # an admin may answer for a member
    assert glance.call("PUT", f"{url}/{OTHER}", {"status": "accepted"}, token="admin"
                       ).status == 200
