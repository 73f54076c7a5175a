"""Placement microversions: the range served, and which one a request asks for.

A client names its version in ``OpenStack-API-Version: placement X.Y`` (or
``latest``); without the header a request is served at the minimum, 1.0. A
version that is well formed but outside the range is refused with 406, a
malformed one with 400. Every answer echoes the version it was served at.

``MAX_VERSION`` only grows when that microversion's behaviour is implemented:
clients use the advertised maximum at once (``osc-placement`` asks for 1.29 and
falls back to the ``max_version`` of a 406).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

#: The service type named in the microversion header.
SERVICE_TYPE = "placement"

#: The microversion header (lower case, as core requests carry header names).
HEADER = "openstack-api-version"


class Version(NamedTuple):
    """A microversion; compares with plain tuples, so ``version >= (1, 14)`` reads well."""

    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


MIN_VERSION = Version(1, 0)
MAX_VERSION = Version(1, 29)


class VersionError(Exception):
    """The header asks for no version this server can serve; ``status`` is 400 or 406."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def requested(headers: Mapping[str, str]) -> str | None:
    """The placement version named in the headers (lower-case names), or None.

    The header may carry several services, comma separated (repeated headers
    arrive folded that way); the last entry for placement wins.
    """
    value = headers.get(HEADER)
    if not value:
        return None
    for entry in reversed(value.split(",")):
        service, _, version = entry.strip().partition(" ")
        if service.lower() == SERVICE_TYPE and version.strip():
            return version.strip()
    return None


def parse(text: str) -> Version:
    """``"1.14"`` as a Version; ``VersionError`` (400) if it is not ``MAJOR.MINOR``."""
    major, dot, minor = text.strip().partition(".")
    try:
        if not dot:
            raise ValueError(text)
        return Version(int(major), int(minor))
    except ValueError:
        raise VersionError(
            400, f"Invalid microversion: {text!r} is not of the form MAJOR.MINOR") from None


def negotiate(headers: Mapping[str, str]) -> Version:
    """The version to serve a request at; ``VersionError`` if there is none."""
    text = requested(headers)
    if text is None:
        return MIN_VERSION
    if text.lower() == "latest":
        return MAX_VERSION
    version = parse(text)
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise VersionError(
            406, f"Invalid microversion: placement {version} is not available; this "
                 f"server serves {MIN_VERSION} to {MAX_VERSION}")
    return version


def header_value(version: Version) -> str:
    """The value of the header that says which version an answer was served at."""
    return f"{SERVICE_TYPE} {version}"
