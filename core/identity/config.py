"""Configuration of the identity service: where it listens, tokens, catalog, passwords."""

from __future__ import annotations

from dataclasses import dataclass, field


def _port(value: int) -> str | None:
    return None if 0 <= value <= 65535 else f"expected a port number 0-65535, got {value}"


def _positive(value: int) -> str | None:
    return None if value > 0 else f"expected a positive number, got {value}"


def _memory(value: int) -> str | None:
    # argon2 needs at least 8 KiB per lane; below 1 MiB it protects nothing
    return None if value >= 1024 else f"expected at least 1024 KiB, got {value}"


@dataclass(frozen=True, slots=True)
class IdentityConfig:
    """The ``[identity]`` section.

    ``port`` 0 picks a free port; 5000 is where clients look for Keystone.
    ``public_url`` is where clients reach it (``http://cloud.example:5000``), for
    links and the catalog; empty means the Host header of each request.

    ``token_expiration`` is each token's lifetime in seconds (Keystone's default,
    an hour). ``fernet_keys`` are urlsafe-base64 Fernet keys: the first one signs
    new tokens, every one is accepted (rotate by putting a new key first and
    dropping the oldest after a token lifetime). Empty means one key made in
    memory at start: tokens then die with the process and only this process
    accepts them.

    The catalog's URLs (``compute_url`` ``http://h:8774/v2.1``, ``image_url``
    ``http://h:9292``, ``placement_url`` ``http://h:8778``) are given, never
    guessed; empty means whoever builds the service fills them in from the
    addresses of the services it runs, or leaves that service out.

    ``password_time_cost`` and ``password_memory_kib`` are argon2id's parameters
    for new password hashes (see :mod:`nimbus.core.identity.passwords`).
    ``admin_password`` and ``demo_password`` are for the bootstrap; empty means
    the caller picks (``nimbus serve`` makes one and prints it).
    """

    listen: str = "127.0.0.1"
    port: int = field(default=5000, metadata={"check": _port})
    max_body_bytes: int = field(default=114688, metadata={"check": _positive})
    public_url: str = ""
    token_expiration: int = field(default=3600, metadata={"check": _positive})
    fernet_keys: tuple[str, ...] = ()
    region: str = "RegionOne"
    compute_url: str = ""
    image_url: str = ""
    placement_url: str = ""
    password_time_cost: int = field(default=2, metadata={"check": _positive})
    password_memory_kib: int = field(default=8192, metadata={"check": _memory})
    admin_password: str = ""
    demo_password: str = ""
