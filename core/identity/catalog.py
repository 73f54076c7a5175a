"""The service catalog: which services this cloud has and where clients reach them.

Clients pick an endpoint from the token's catalog by service ``type`` and
``interface`` (``public`` unless told otherwise) and, if they are given one,
by region (CLIENTS.md, "Endpoint selection"); they never call
``GET /v3/endpoints``. So the catalog is built once, from URLs handed in by
whoever starts the service, and rendered into every scoped token.

Ids are stable hashes of the service type (and interface), so that the same
cloud always shows the same catalog ids, across restarts and processes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: The interfaces every service is listed under; all point at the same URL by default.
INTERFACES = ("public", "internal", "admin")

#: Each service type the standard catalog knows, with the name Keystone's catalog
#: of a real OpenStack cloud gives it.
SERVICE_NAMES = {
    "identity": "keystone",
    "compute": "nova",
    "image": "glance",
    "placement": "placement",
}


def _stable_id(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class CatalogService:
    """One service in the catalog, with its URL for each interface."""

    type: str
    name: str
    public_url: str
    internal_url: str = ""
    admin_url: str = ""

    def url(self, interface: str) -> str:
        """The URL of one interface (the public URL unless another was given)."""
        given = {"internal": self.internal_url, "admin": self.admin_url}.get(interface, "")
        return given or self.public_url

    def render(self, region: str) -> dict[str, Any]:
        """The service as a token's catalog lists it."""
        return {
            "type": self.type,
            "name": self.name,
            "id": _stable_id(self.type),
            "endpoints": [{
                "id": _stable_id(self.type, interface),
                "interface": interface,
                "region_id": region,
                "region": region,
                "url": self.url(interface),
            } for interface in INTERFACES],
        }


@dataclass(frozen=True, slots=True)
class Catalog:
    """Every service of the cloud, in one region."""

    services: tuple[CatalogService, ...] = ()
    region: str = "RegionOne"

    def render(self) -> list[dict[str, Any]]:
        """The catalog as tokens and ``GET /v3/auth/catalog`` show it."""
        return [service.render(self.region) for service in self.services]

    def url_of(self, service_type: str, interface: str = "public") -> str | None:
        """The URL of a service type, or None if the catalog has none."""
        for service in self.services:
            if service.type == service_type:
                return service.url(interface)
        return None


def standard_catalog(*, identity: str = "", compute: str = "", image: str = "",
                     placement: str = "", region: str = "RegionOne",
                     extra: Iterable[CatalogService] = ()) -> Catalog:
    """The catalog of a Nimbus cloud from each service's public URL.

    ``identity`` is the versioned URL (``http://h:5000/v3``), ``compute`` too
    (``http://h:8774/v2.1``); ``image`` and ``placement`` are unversioned roots.
    A service whose URL is empty is left out (clients then do without it).
    """
    given = (("identity", identity), ("compute", compute), ("image", image),
             ("placement", placement))
    services = [CatalogService(kind, SERVICE_NAMES[kind], url.rstrip("/"))
                for kind, url in given if url]
    return Catalog((*services, *extra), region)
