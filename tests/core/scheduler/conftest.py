"""A small fleet builder shared by the scheduler's unit tests."""

from __future__ import annotations

import random
from typing import Any

import pytest

from nimbus.core.scheduler import (
    HostSpec,
    HostStates,
    InMemoryClaimer,
    RequestSpec,
    ScheduleContext,
    Scheduler,
    SchedulerConfig,
)
from nimbus.core.scheduler.filters import FILTERS

# The Store on each engine, for the claimer, loader and service tests (see tests/core/db).
from tests.core.db.conftest import run_store, server_databases  # noqa: F401


def spec(name: str, **kw: Any) -> HostSpec:
    kw.setdefault("vcpus", 8)
    kw.setdefault("memory_mb", 8192)
    kw.setdefault("disk_gb", 100)
    return HostSpec(name, **kw)


def mask_of(states: HostStates, filter_name: str, request: RequestSpec,
            ctx: ScheduleContext | None = None) -> list[bool]:
    """Which present hosts a filter passes, in row order (None means all)."""
    config = SchedulerConfig()
    f = FILTERS[filter_name](config)
    m = f.mask(states, request, ctx or ScheduleContext(config))
    return [True if m is None else bool(m[r]) for r in states.rows()]


def scheduler(states: HostStates, **config: Any) -> Scheduler:
    return Scheduler(states, SchedulerConfig(**config), InMemoryClaimer(states), random.Random(0))


@pytest.fixture
def states() -> HostStates:
    return HostStates()
