"""Configuration of the API service: where it listens and what it accepts."""

from __future__ import annotations

from dataclasses import dataclass, field


def _port(value: int) -> str | None:
    return None if 0 <= value <= 65535 else f"expected a port number 0-65535, got {value}"


def _positive(value: int) -> str | None:
    return None if value > 0 else f"expected a positive number, got {value}"


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """The ``[api]`` section.

    ``port`` 0 picks a free port. ``public_url`` is the base URL put in links
    (``http://cloud.example:8774``); empty means the Host header of each request.
    ``max_body_bytes`` is Nova's default request size limit (112 KiB).
    """

    listen: str = "127.0.0.1"
    port: int = field(default=8774, metadata={"check": _port})
    max_body_bytes: int = field(default=114688, metadata={"check": _positive})
    public_url: str = ""
