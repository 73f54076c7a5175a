"""The image API under the policy: project isolation, readers, admin-only actions, and
an operator's rule changing a decision."""

from __future__ import annotations

import dataclasses

from nimbus.core.api.image.routes import image_routes, stream_routes
from nimbus.core.policy import Policy

from .conftest import OTHER, OWNER, THIRD, Glance, _pattern


def _with_policy(glance: Glance, policy: Policy) -> None:
    """Serve ``glance``'s routes under ``policy``."""
    glance.env = dataclasses.replace(glance.env, policy=policy)
    glance.plain = [(r, _pattern(r.path)) for r in image_routes(glance.env)]
    glance.streams = [(r, _pattern(r.path)) for r in stream_routes(glance.env)]


def test_another_projects_private_image_is_a_404(glance: Glance) -> None:
    iid = glance.create(name="mine", visibility="private")["id"]
    assert glance.upload(iid, b"secret").status == 204
    url = f"/v2/images/{iid}"
    patch = [{"op": "replace", "path": "/name", "value": "x"}]
    for method, path, body in (("GET", url, None), ("GET", f"{url}/file", None),
                               ("DELETE", url, None), ("GET", f"{url}/members", None),
                               ("POST", f"{url}/members", {"member": OTHER})):
        assert glance.call(method, path, body, token="other").status == 404, (method, path)
    assert glance.patch(iid, patch, token="other").status == 404
    assert glance.names("other") == []
    assert glance.names("owner") == ["mine"]


def test_shared_image_is_seen_only_through_membership(glance: Glance) -> None:
    iid = glance.create(name="s", visibility="shared")["id"]
    url = f"/v2/images/{iid}"
    assert glance.call("GET", url, token="other").status == 404
    # a project cannot accept a membership it was not given, nor add itself
    assert glance.call("PUT", f"{url}/members/{OTHER}", {"status": "accepted"},
                       token="other").status == 404
    assert glance.call("POST", f"{url}/members", {"member": OTHER},
                       token="other").status == 404
    glance.share(iid, OTHER, "accepted")
    assert glance.call("GET", url, token="other").status == 200
    assert glance.names("other") == ["s"]
    # seeing is not owning: the member may neither change nor share it
    patch = [{"op": "replace", "path": "/name", "value": "x"}]
    refused = glance.patch(iid, patch, token="other")
    assert refused.status == 403 and "modify_image" in refused.message
    refused = glance.call("POST", f"{url}/members", {"member": THIRD}, token="other")
    assert refused.status == 403 and "add_member" in refused.message
    assert glance.call("DELETE", url, token="other").status == 403
    # nor answer for another project
    glance.share(iid, THIRD)
    assert glance.call("PUT", f"{url}/members/{THIRD}", {"status": "accepted"},
                       token="other").status == 404
    assert glance.call("GET", url, token="third").status == 200


def test_reader_reads_but_never_writes(glance: Glance) -> None:
    iid = glance.create(name="r", visibility="shared")["id"]
    assert glance.upload(iid, b"data").status == 204
    url = f"/v2/images/{iid}"
    assert glance.call("GET", url, token="reader").status == 200
    assert glance.call("GET", f"{url}/file", token="reader").body == b"data"
    assert glance.names("reader") == ["r"]
    assert glance.call("GET", f"{url}/members", token="reader").status == 200
    for action, answer in (
            ("add_image", glance.call("POST", "/v2/images", {"name": "n"}, token="reader")),
            ("modify_image", glance.patch(iid, [{"op": "replace", "path": "/name",
                                                 "value": "x"}], token="reader")),
            ("modify_image", glance.call("PUT", f"{url}/tags/t", token="reader")),
            ("delete_image", glance.call("DELETE", url, token="reader")),
            ("upload_image", glance.upload(iid, b"x", token="reader")),
            ("add_member", glance.call("POST", f"{url}/members", {"member": OTHER},
                                       token="reader"))):
        assert answer.status == 403, (action, answer.body)
        assert answer.message.startswith(
            f"You are not authorized to complete {action} action."), answer.body
    glance.share(iid, OTHER)
    refused = glance.call("DELETE", f"{url}/members/{OTHER}", token="reader")
    assert refused.status == 403 and "delete_member" in refused.message


def test_admin_only_actions(glance: Glance) -> None:
    iid = glance.create(name="a")["id"]
    assert glance.upload(iid, b"data").status == 204
    url = f"/v2/images/{iid}"
    for action, answer in (
            ("publicize_image", glance.patch(iid, [{"op": "replace", "path": "/visibility",
                                                    "value": "public"}])),
            ("publicize_image", glance.call("POST", "/v2/images",
                                            {"name": "p", "visibility": "public"})),
            ("deactivate", glance.call("POST", f"{url}/actions/deactivate"))):
        assert answer.status == 403 and action in answer.message, (action, answer.body)
    assert glance.call("POST", f"{url}/actions/deactivate", token="admin").status == 204
    refused = glance.call("POST", f"{url}/actions/reactivate")
    assert refused.status == 403 and "reactivate" in refused.message
    # the owner may make its image community (communitize_image)
    community = glance.patch(iid, [{"op": "replace", "path": "/visibility",
                                    "value": "community"}])
    assert community.status == 200 and community.body["visibility"] == "community"


def test_an_operator_rule_changes_the_decision(glance: Glance) -> None:
    _with_policy(glance, Policy({"add_image": "role:admin",
                                 "communitize_image": "role:admin",
                                 "modify_member": "role:admin"}))
    refused = glance.call("POST", "/v2/images", {"name": "n"})
    assert refused.status == 403 and "add_image" in refused.message
    iid = glance.create(token="admin", name="s", visibility="shared", owner=OWNER)["id"]
    community = glance.patch(iid, [{"op": "replace", "path": "/visibility",
                                    "value": "community"}])
    assert community.status == 403 and "communitize_image" in community.message
    glance.share(iid, OTHER)
    refused = glance.call("PUT", f"/v2/images/{iid}/members/{OTHER}",
                          {"status": "accepted"}, token="other")
    assert refused.status == 403 and "modify_member" in refused.message
    _with_policy(glance, Policy({"get_image": "!"}))
    assert glance.call("GET", f"/v2/images/{iid}").status == 403
    assert glance.call("GET", f"/v2/images/{iid}", token="admin").status == 403
