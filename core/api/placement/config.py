"""Configuration of the Placement API service: where it listens and what it accepts."""

from __future__ import annotations

from dataclasses import dataclass, field


def _port(value: int) -> str | None:
    return None if 0 <= value <= 65535 else f"expected a port number 0-65535, got {value}"


def _positive(value: int) -> str | None:
    return None if value > 0 else f"expected a positive number, got {value}"


@dataclass(frozen=True, slots=True)
class PlacementConfig:
    """The ``[placement]`` section.

    ``port`` 0 picks a free port; 8778 is where clients look for Placement.
    ``public_url`` is where clients reach it (``http://cloud.example:8778``),
    for the service catalog; empty means this listen address.
    """

    listen: str = "127.0.0.1"
    port: int = field(default=8778, metadata={"check": _port})
    max_body_bytes: int = field(default=114688, metadata={"check": _positive})
    public_url: str = ""
