"""Configuration of the image service: where it listens, what it accepts, where data goes."""

from __future__ import annotations

from dataclasses import dataclass, field


def _port(value: int) -> str | None:
    return None if 0 <= value <= 65535 else f"expected a port number 0-65535, got {value}"


def _positive(value: int) -> str | None:
    return None if value > 0 else f"expected a positive number, got {value}"


def _not_negative(value: int) -> str | None:
    return None if value >= 0 else f"expected zero or more, got {value}"


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """The ``[image]`` section (Glance's options of the same names where it has them).

    ``port`` 0 picks a free port; 9292 is where clients look for Glance.
    ``public_url`` is where clients reach it (``http://cloud.example:9292``), for
    the version document and the catalog; empty means the Host header of each
    request. ``data_dir`` is where image files are kept; empty means the
    ``images`` folder of the state directory (whoever serves picks it).
    ``auth_url`` is the identity endpoint named in a 401's ``WWW-Authenticate``.

    ``max_body_bytes`` bounds JSON request bodies; image data is streamed and
    bounded by ``image_size_cap`` instead (Glance's default, 1 TiB). A listing
    returns ``limit_param_default`` images unless asked, never more than
    ``api_limit_max``. The ``image_*_quota`` values bound members, extra
    properties and tags per image (413 beyond them, as Glance).
    """

    listen: str = "127.0.0.1"
    port: int = field(default=9292, metadata={"check": _port})
    public_url: str = ""
    auth_url: str = ""
    data_dir: str = ""
    max_body_bytes: int = field(default=114688, metadata={"check": _positive})
    image_size_cap: int = field(default=1 << 40, metadata={"check": _not_negative})
    chunk_size: int = field(default=65536, metadata={"check": _positive})
    limit_param_default: int = field(default=25, metadata={"check": _positive})
    api_limit_max: int = field(default=1000, metadata={"check": _positive})
    image_member_quota: int = field(default=128, metadata={"check": _not_negative})
    image_property_quota: int = field(default=128, metadata={"check": _not_negative})
    image_tag_quota: int = field(default=128, metadata={"check": _not_negative})
