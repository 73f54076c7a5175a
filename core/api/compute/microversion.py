"""Compute API microversions: the range served and which one a request asks for.

A client names its version in ``OpenStack-API-Version: compute X.Y`` or in the
older ``X-OpenStack-Nova-API-Version: X.Y`` (``latest`` meaning the maximum);
without either a request is served at 2.1. A well-formed version outside the
range is refused with 406, a malformed one with 400, as Nova does. Every answer
names the version it was served at, in both headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from nimbus.core.api.versions import MAX_MICROVERSION, MIN_MICROVERSION
from nimbus.core.errors import ApiError

SERVICE_TYPE = "compute"
HEADER = "openstack-api-version"
LEGACY_HEADER = "x-openstack-nova-api-version"


class Version(NamedTuple):
    """A microversion; compares with tuples, so ``version >= (2, 47)`` reads well."""

    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


def parse(text: str) -> Version:
    """``"2.47"`` as a Version; a 400 ``ApiError`` if it is not ``MAJOR.MINOR``."""
    major, dot, minor = text.strip().partition(".")
    try:
        if not dot:
            raise ValueError(text)
        return Version(int(major), int(minor))
    except ValueError:
        raise ApiError(400, f"Invalid API version request string {text!r}: it must be "
                            "of the form MAJOR.MINOR or 'latest'") from None


MIN_VERSION = parse(MIN_MICROVERSION)
MAX_VERSION = parse(MAX_MICROVERSION)


def requested(headers: Mapping[str, str]) -> str | None:
    """The compute version the headers (lower-case names) ask for, or None.

    ``OpenStack-API-Version`` wins over the legacy header; it may name several
    services, comma separated, and the last entry for compute counts.
    """
    value = headers.get(HEADER)
    if value:
        for entry in reversed(value.split(",")):
            service, _, version = entry.strip().partition(" ")
            if service.lower() == SERVICE_TYPE and version.strip():
                return version.strip()
    legacy = headers.get(LEGACY_HEADER)
    return legacy.strip() if legacy and legacy.strip() else None


def negotiate(headers: Mapping[str, str], maximum: Version = MAX_VERSION) -> Version:
    """The version to serve a request at; 400 if malformed, 406 if out of range."""
    text = requested(headers)
    if text is None:
        return MIN_VERSION
    if text.lower() == "latest":
        return maximum
    version = parse(text)
    if not MIN_VERSION <= version <= maximum:
        raise ApiError(406, f"Version {version} is not supported by the API. Minimum is "
                            f"{MIN_VERSION} and maximum is {maximum}.")
    return version


def answer_headers(version: Version) -> dict[str, str]:
    """The version headers of an answer served at ``version``."""
    return {"OpenStack-API-Version": f"{SERVICE_TYPE} {version}",
            "X-OpenStack-Nova-API-Version": str(version),
            "Vary": "OpenStack-API-Version, X-OpenStack-Nova-API-Version"}
