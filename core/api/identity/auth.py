"""Discovery and tokens: ``GET /``, ``GET /v3``, ``/v3/auth/tokens``, ``/v3/auth/catalog``,
``/v3/auth/projects``.

Every ``openstack`` command starts here (CLIENTS.md, section 1): version
discovery without a token, then ``POST /v3/auth/tokens`` answered 201 with the
token in ``X-Subject-Token``. Validating or revoking a token (the subject) needs
a token of the caller's own: an admin, or the subject's own user, may do it
(the ``identity:validate_token`` and ``identity:revoke_token`` rules, with the
subject's user as target).
"""

from __future__ import annotations

from nimbus.core.api.http import Response
from nimbus.core.api.identity.views import project_view, token_body, version_document
from nimbus.core.api.identity.wire import IdentityRequest, collection, json_response, no_content
from nimbus.core.errors import ApiError
from nimbus.core.identity.authbody import parse_auth


async def versions(ireq: IdentityRequest) -> Response:
    """``GET /``: 300 Multiple Choices listing the one version, v3."""
    doc = version_document(ireq.base)
    return json_response({"versions": {"values": [doc]}}, 300,
                         {"Location": doc["links"][0]["href"]})


async def version_v3(ireq: IdentityRequest) -> Response:
    """``GET /v3``: the version document."""
    return json_response({"version": version_document(ireq.base)})


def _catalog(ireq: IdentityRequest) -> list[dict[str, object]] | None:
    return None if ireq.request.query_one("nocatalog") is not None else \
        ireq.logic.catalog.render()


async def issue_token(ireq: IdentityRequest) -> Response:
    """``POST /v3/auth/tokens``: 201 with the token in ``X-Subject-Token``, 401 if the
    credentials or the scope do not hold, 400 if the body is malformed."""
    auth = parse_auth(ireq.request.json())
    info = await ireq.logic.authenticate(auth)
    return json_response(token_body(info, _catalog(ireq)), 201,
                         {"X-Subject-Token": info.token_id})


async def validate_token(ireq: IdentityRequest) -> Response:
    """``GET``/``HEAD /v3/auth/tokens``: 200 with the subject token's body, 404 if it is
    not valid."""
    caller = await ireq.caller()
    subject = await ireq.subject()
    ireq.check(caller, "validate_token", {"user_id": subject.user.id})
    return json_response(token_body(subject, _catalog(ireq)),
                         headers={"X-Subject-Token": subject.token_id})


async def revoke_token(ireq: IdentityRequest) -> Response:
    """``DELETE /v3/auth/tokens``: revoke the subject token (204)."""
    caller = await ireq.caller()
    subject = await ireq.subject()
    ireq.check(caller, "revoke_token", {"user_id": subject.user.id})
    await ireq.logic.revoke(subject)
    return no_content()


async def auth_catalog(ireq: IdentityRequest) -> Response:
    """``GET /v3/auth/catalog``: the catalog of a scoped token."""
    caller = await ireq.caller()
    if caller.payload.unscoped:
        raise ApiError(403, "A scoped token is required to read the catalog.")
    return json_response(collection(ireq.logic.catalog.render(), "catalog",
                                    f"{ireq.v3}/auth/catalog"))


async def auth_projects(ireq: IdentityRequest) -> Response:
    """``GET /v3/auth/projects``: the enabled projects the caller has a role on."""
    caller = await ireq.caller()
    found = await ireq.logic.store.list_projects(user_id=caller.user.id, enabled=True)
    return json_response(collection([project_view(ireq.v3, p) for p in found], "projects",
                                    f"{ireq.v3}/auth/projects"))
