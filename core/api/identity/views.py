"""Identity records as Keystone's JSON shows them: tokens, projects, users, roles, domains.

Every entity carries ``links.self`` under the v3 URL. Keystone keeps attributes
it does not know in an ``extra`` blob and shows them beside the known ones;
so do projects and users here (``extra`` never overrides a known attribute).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from nimbus.core.db.identity_schema import DomainRecord, ProjectRecord, UserRecord
from nimbus.core.db.roles import RoleRecord
from nimbus.core.identity.service import TokenInfo

#: The newest Identity API version Nimbus speaks, and when it was released.
VERSION_ID = "v3.14"
VERSION_UPDATED = "2020-04-07T00:00:00Z"
MEDIA_TYPE = "application/vnd.openstack.identity-v3+json"


def iso_time(stamp: float) -> str:
    """A Unix time as Keystone writes it: ``2015-08-27T09:49:58.000000Z``."""
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def version_document(base: str) -> dict[str, Any]:
    """The v3 version, with its link under ``base`` (``http://h:5000``)."""
    return {
        "id": VERSION_ID,
        "status": "stable",
        "updated": VERSION_UPDATED,
        "links": [{"rel": "self", "href": f"{base}/v3/"}],
        "media-types": [{"base": "application/json", "type": MEDIA_TYPE}],
    }


def _named(record_id: str, name: str, domain: DomainRecord) -> dict[str, Any]:
    return {"id": record_id, "name": name, "domain": {"id": domain.id, "name": domain.name}}


def token_body(info: TokenInfo, catalog: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The body of a token answer; ``catalog`` None leaves it out (``?nocatalog``)."""
    p = info.payload
    user = _named(info.user.id, info.user.name, info.user_domain)
    user["password_expires_at"] = None
    token: dict[str, Any] = {
        "methods": list(p.methods),
        "user": user,
        "audit_ids": list(p.audit_ids),
        "expires_at": iso_time(p.expires_at),
        "issued_at": iso_time(p.issued_at),
    }
    if info.project is not None and info.project_domain is not None:
        token["project"] = _named(info.project.id, info.project.name, info.project_domain)
        token["is_domain"] = False
    elif info.domain is not None:
        token["domain"] = {"id": info.domain.id, "name": info.domain.name}
    if not p.unscoped:
        token["roles"] = [{"id": r.id, "name": r.name} for r in info.roles]
        if catalog is not None:
            token["catalog"] = catalog
    return {"token": token}


def project_view(v3: str, p: ProjectRecord) -> dict[str, Any]:
    """A project (a top-level project's parent is its domain, as Keystone shows it)."""
    return {
        **{k: v for k, v in p.extra.items() if k != "tags"},
        "id": p.id,
        "name": p.name,
        "domain_id": p.domain_id,
        "description": p.description or "",
        "enabled": p.enabled,
        "parent_id": p.parent_id or p.domain_id,
        "is_domain": False,
        "tags": list(p.extra.get("tags", [])),
        "options": {},
        "links": {"self": f"{v3}/projects/{p.id}"},
    }


def user_view(v3: str, u: UserRecord) -> dict[str, Any]:
    """A user (never the password hash)."""
    body: dict[str, Any] = {
        **u.extra,
        "id": u.id,
        "name": u.name,
        "domain_id": u.domain_id,
        "enabled": u.enabled,
        "password_expires_at": None,
        "options": {},
        "links": {"self": f"{v3}/users/{u.id}"},
    }
    if u.default_project_id is not None:
        body["default_project_id"] = u.default_project_id
    if u.email is not None:
        body["email"] = u.email
    return body


def role_view(v3: str, r: RoleRecord) -> dict[str, Any]:
    """A (global) role."""
    return {"id": r.id, "name": r.name, "domain_id": None, "description": r.description,
            "options": {}, "links": {"self": f"{v3}/roles/{r.id}"}}


def domain_view(v3: str, d: DomainRecord) -> dict[str, Any]:
    """A domain."""
    return {"id": d.id, "name": d.name, "description": d.description or "",
            "enabled": d.enabled, "tags": [], "options": {},
            "links": {"self": f"{v3}/domains/{d.id}"}}
