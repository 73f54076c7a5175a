"""The Runtime: the only way core code waits or reads the world.

Core code never imports asyncio or simpy. It asks its :class:`Runtime` for the
time, for a pause, for a task, a queue, an event, a lock, randomness and ids.
Two implementations exist: ``nimbus.runtime.AsyncioRuntime`` (real time, real
sockets) and ``nimbus.sim.runtime.SimRuntime`` (virtual time on a SimPy event
heap, deterministic for a seed). The contract suite in ``tests/core`` runs on
both, so core code behaves the same in either world.

Every awaitable a Runtime hands out may only be awaited from a task of that
same Runtime.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Coroutine, Generator
from types import TracebackType
from typing import Any, Protocol, TypeVar, runtime_checkable

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


@runtime_checkable
class Task(Protocol[T_co]):
    """A handle on a spawned coroutine."""

    @property
    def name(self) -> str:
        """The name given at spawn, for logs and traces."""
        ...

    def cancel(self) -> bool:
        """Ask the task to stop; ``Cancelled`` is thrown into it at its next wait.

        Returns False if the task had already finished.
        """
        ...

    def done(self) -> bool:
        """True once the task returned, raised, or was cancelled."""
        ...

    def cancelled(self) -> bool:
        """True if the task ended because it was cancelled."""
        ...

    def result(self) -> T_co:
        """The return value; re-raises the task's exception; ``Cancelled`` if cancelled.

        Raises ``RuntimeError`` if the task is not done yet.
        """
        ...

    def exception(self) -> BaseException | None:
        """The exception the task ended with, or None. Raises ``RuntimeError`` if not done."""
        ...

    def join(self) -> Awaitable[T_co]:
        """Wait for the task; returns its result or raises what it raised."""
        ...


class Queue(Protocol[T]):
    """A FIFO queue between tasks. ``maxsize`` 0 means unbounded."""

    def put_nowait(self, item: T) -> None:
        """Add an item now; raises ``QueueFull`` if the queue is bounded and full."""
        ...

    def put(self, item: T) -> Awaitable[None]:
        """Add an item, waiting while a bounded queue is full."""
        ...

    def get(self) -> Awaitable[T]:
        """Take the oldest item, waiting while the queue is empty."""
        ...

    def get_nowait(self) -> T:
        """Take the oldest item now; raises ``QueueEmpty`` if there is none."""
        ...

    def qsize(self) -> int:
        """How many items wait in the queue."""
        ...


class Event(Protocol):
    """A flag that tasks can wait on until it is set."""

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        ...

    def clear(self) -> None:
        """Reset the flag; later waiters wait again."""
        ...

    def is_set(self) -> bool:
        """Whether the flag is set."""
        ...

    def wait(self) -> Awaitable[None]:
        """Wait until the flag is set (returns at once if it is)."""
        ...


class Lock(Protocol):
    """A mutual-exclusion lock between tasks; waiters acquire it in FIFO order."""

    def acquire(self) -> Awaitable[None]:
        """Wait until the lock is free, then take it."""
        ...

    def release(self) -> None:
        """Give the lock back; raises ``RuntimeError`` if it is not held."""
        ...

    def locked(self) -> bool:
        """Whether the lock is held."""
        ...

    async def __aenter__(self) -> None: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class Semaphore(Lock, Protocol):
    """A counting semaphore; ``locked()`` is True when no permit is free."""


class Future(Protocol[T]):
    """A one-shot result that one side sets and any task may await."""

    def set_result(self, value: T) -> None:
        """Resolve the future; raises ``RuntimeError`` if it is already done."""
        ...

    def set_exception(self, exc: BaseException) -> None:
        """Fail the future; raises ``RuntimeError`` if it is already done."""
        ...

    def done(self) -> bool:
        """Whether a result or exception has been set."""
        ...

    def __await__(self) -> Generator[Any, Any, T]: ...


class Handle(Protocol):
    """A callback scheduled with :meth:`Runtime.call_later`."""

    def cancel(self) -> None:
        """Do not run the callback (no effect if it already ran)."""
        ...


class QueueEmpty(Exception):
    """``get_nowait`` on an empty queue."""


class QueueFull(Exception):
    """``put_nowait`` on a full bounded queue."""


class Runtime(Protocol):
    """Time, concurrency, randomness and ids for core code."""

    rng: random.Random
    """The seeded source of all randomness in core code."""

    def now(self) -> float:
        """Seconds since the runtime's epoch (virtual time in simulation)."""
        ...

    def wall_time(self) -> float:
        """Seconds since the Unix epoch: real in real mode, start + now() in simulation."""
        ...

    def sleep(self, seconds: float) -> Awaitable[None]:
        """Pause the calling task. ``sleep(0)`` yields to other ready tasks."""
        ...

    def spawn(self, coro: Coroutine[Any, Any, T], name: str = "") -> Task[T]:
        """Run a coroutine as a concurrent task, starting at the next scheduling step."""
        ...

    def call_later(self, delay: float, fn: Callable[..., object], *args: object) -> Handle:
        """Call a plain function (not a coroutine) after ``delay`` seconds."""
        ...

    def timeout(self, awaitable: Awaitable[T], seconds: float) -> Awaitable[T]:
        """Await with a deadline; on expiry cancel the inner work and raise ``TimeoutError``."""
        ...

    def queue(self, maxsize: int = 0) -> Queue[Any]:
        """A new queue."""
        ...

    def future(self) -> Future[Any]:
        """A new unresolved future."""
        ...

    def event(self) -> Event:
        """A new event flag, not set."""
        ...

    def lock(self) -> Lock:
        """A new lock, free."""
        ...

    def semaphore(self, value: int = 1) -> Semaphore:
        """A new semaphore with ``value`` permits."""
        ...

    def new_id(self) -> str:
        """A version-4 UUID string drawn from :attr:`rng`."""
        ...

    def run_blocking(self, fn: Callable[..., T], *args: Any) -> Awaitable[T]:
        """Run a blocking function: a thread in real mode, a modeled delay in simulation."""
        ...


def uuid_from_rng(rng: random.Random) -> str:
    """Format 128 bits from ``rng`` as a version-4, variant-1 UUID string."""
    bits = rng.getrandbits(128)
    bits = (bits & ~(0xF << 76)) | (0x4 << 76)  # version 4
    bits = (bits & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
