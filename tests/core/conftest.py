"""Fixtures for the core contract suites: a fresh runtime of each kind per test.

A test asks for ``runtime_kind`` (parametrized over every Runtime) and for
``run_rt``, which runs an ``async def body(rt)`` as the main task of a fresh
runtime of that kind and returns what the body returned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from nimbus.runtime import AsyncioRuntime
from nimbus.sim.runtime import SimRuntime

RUNTIME_KINDS = ("sim", "asyncio")

#: Real seconds an asyncio body may take before it is failed instead of hanging.
ASYNCIO_GUARD = 5.0

Body = Callable[[Any], Coroutine[Any, Any, Any]]


def make_runtime(kind: str, seed: int = 0) -> Any:
    """A fresh runtime of ``kind`` ("sim" or "asyncio") seeded with ``seed``."""
    if kind == "sim":
        return SimRuntime(seed)
    if kind == "asyncio":
        return AsyncioRuntime(seed=seed)
    raise ValueError(f"unknown runtime kind {kind!r}; valid: {', '.join(RUNTIME_KINDS)}")


def run_body(kind: str, body: Body, seed: int = 0) -> Any:
    """Run ``body(rt)`` as the main task of a fresh runtime of ``kind``; return its result."""
    rt = make_runtime(kind, seed)
    if kind == "sim":
        return rt.run(body(rt))

    async def guarded() -> Any:
        async with asyncio.timeout(ASYNCIO_GUARD):
            return await body(rt)

    return asyncio.run(guarded())


@pytest.fixture(params=RUNTIME_KINDS)
def runtime_kind(request: pytest.FixtureRequest) -> str:
    """The kind of runtime the test runs on, one test per kind."""
    return str(request.param)


@pytest.fixture
def run_rt(runtime_kind: str) -> Callable[..., Any]:
    """``run_rt(body, seed=0)``: run ``body(rt)`` on a fresh runtime of this test's kind."""

    def run(body: Body, seed: int = 0) -> Any:
        return run_body(runtime_kind, body, seed)

    return run
