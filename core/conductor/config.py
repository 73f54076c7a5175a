"""The ``[conductor]`` section."""

from __future__ import annotations

from dataclasses import dataclass, field


def _positive(value: float) -> str | None:
    return None if value > 0 else "expected a number above 0"


def _at_least_one(value: int) -> str | None:
    return None if value >= 1 else "expected 1 or more"


@dataclass(frozen=True, slots=True)
class ConductorConfig:
    """How the conductor builds, retries and watches over builds.

    ``max_attempts``: hosts tried per instance build, the first included (Nova's
    ``[scheduler] max_attempts``); ``service_down_time``: a compute service not
    heard from for longer is down; ``rpc_timeout``: for calls to the scheduler and
    computes; ``watch_interval``: how often builds and moves stuck on a host that
    went down are failed and their resources freed; ``allow_resize_to_same_host``: a
    resize may stay on the instance's host (Nova's option; cold migrations never do);
    ``build_timeout``: an instance still being scheduled, on no host, after this long
    lost its request on the way and is failed by the watch.
    """

    max_attempts: int = field(default=3, metadata={"check": _at_least_one})
    service_down_time: float = field(default=60.0, metadata={"check": _positive})
    compute_binary: str = "nimbus-compute"
    rpc_timeout: float = field(default=60.0, metadata={"check": _positive})
    watch_interval: float = field(default=60.0, metadata={"check": _positive})
    allow_resize_to_same_host: bool = False
    build_timeout: float = field(default=600.0, metadata={"check": _positive})
