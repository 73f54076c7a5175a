"""Who sees and lists an image: every visibility x relation x member status, three ways.

For each case, ``can_see`` (what the compute API's boot asks), the Store's own
rule, ``GET /v2/images/{id}`` and the listings must all give Glance's answer.
"""

from __future__ import annotations

import itertools

import pytest

from nimbus.core.image.visibility import can_see, membership_of

from .conftest import CONTEXTS, OTHER, Glance, drive

VISIBILITIES = ("private", "shared", "public", "community")
#: How the viewer relates to the image: a token, and its member status if a member.
RELATIONS = {
    "owner": ("owner", None),
    "admin": ("admin", None),
    "stranger": ("third", None),
    "pending": ("other", "pending"),
    "accepted": ("other", "accepted"),
    "rejected": ("other", "rejected"),
}


def expected(visibility: str, relation: str) -> dict[str, bool]:
    """Glance's answers: seen (show/boot), listed by default, with member_status=all,
    with visibility=community, with member_status equal to the viewer's status."""
    member = relation in ("pending", "accepted", "rejected")
    owner_or_admin = relation in ("owner", "admin")
    seen = owner_or_admin or visibility in ("public", "community") or (
        visibility == "shared" and member)
    if relation == "owner":
        listed = True
    elif relation == "admin":
        listed = visibility != "community"
    else:
        listed = visibility == "public" or (visibility == "shared" and relation == "accepted")
    listed_all = listed or (visibility == "shared" and member)
    return {"seen": seen, "listed": listed, "listed_all": listed_all,
            "community": visibility == "community",
            "own_status": listed_all if member else listed}


CASES = list(itertools.product(VISIBILITIES, RELATIONS))


@pytest.mark.parametrize(("visibility", "relation"), CASES)
def test_visibility_matrix(glance: Glance, visibility: str, relation: str) -> None:
    token, status = RELATIONS[relation]
    name = f"{visibility}-{relation}"
    iid = glance.create(name=name, visibility="shared")["id"]
    if status is not None:
        glance.share(iid, OTHER, status)
    if visibility != "shared":
        answer = glance.patch(iid, [{"op": "replace", "path": "/visibility",
                                     "value": visibility}], token="admin")
        assert answer.status == 200, answer.body
    want = expected(visibility, relation)

    ctx = CONTEXTS[token]
    image = drive(glance.store.get_image(iid))
    membership = drive(membership_of(glance.store, ctx, image))
    assert (membership is not None) == (status is not None and visibility == "shared")
    assert can_see(ctx, image, membership) is want["seen"]
    assert drive(glance.store.image_visible_to(image, ctx.project_id, ctx.is_admin)) \
        is want["seen"]
    shown = glance.call("GET", f"/v2/images/{iid}", token=token)
    assert shown.status == (200 if want["seen"] else 404)
    data = glance.call("GET", f"/v2/images/{iid}/file", token=token)
    assert data.status == (204 if want["seen"] else 404)

    def listed(**query: str) -> bool:
        return glance.names(token, name=name, **query) == [name]

    assert listed() is want["listed"]
    assert listed(member_status="all") is want["listed_all"]
    assert listed(visibility="community") is want["community"]
    if status is not None:
        assert listed(member_status=status) is want["own_status"]


def test_member_rows_of_a_once_shared_image_grant_nothing(glance: Glance) -> None:
    """``can_see`` ignores a membership that is not of this image, or of another project."""
    iid = glance.create(name="m")["id"]
    glance.share(iid, OTHER, "accepted")
    image = drive(glance.store.get_image(iid))
    member = drive(glance.store.get_image_member(iid, OTHER))
    assert can_see(CONTEXTS["other"], image, member)
    assert not can_see(CONTEXTS["third"], image, member)
    assert not can_see(CONTEXTS["other"], image, None)


def test_ownerless_images_are_everyones(glance: Glance) -> None:
    iid = glance.create(name="nobody", token="admin", visibility="private")["id"]
    assert glance.patch(iid, [{"op": "replace", "path": "/owner", "value": None}],
                        token="admin").status == 200
    image = drive(glance.store.get_image(iid))
    assert image.owner is None and can_see(CONTEXTS["third"], image, None)
    assert glance.call("GET", f"/v2/images/{iid}", token="third").status == 200
