"""AsyncioRuntime: the core Runtime on a real asyncio event loop, in real time."""

from __future__ import annotations

import asyncio
import functools
import os
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from nimbus.core.errors import Cancelled
from nimbus.core.runtime import QueueEmpty, QueueFull, uuid_from_rng

T = TypeVar("T")


class AioTask:
    """A Task handle over an ``asyncio.Task`` that speaks the core protocol."""

    __slots__ = ("_task",)

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self._task = task

    @property
    def name(self) -> str:
        return self._task.get_name()

    def cancel(self) -> bool:
        return self._task.cancel()

    def done(self) -> bool:
        return self._task.done()

    def cancelled(self) -> bool:
        return self._task.cancelled()

    def result(self) -> Any:
        if not self._task.done():
            raise RuntimeError(f"task {self.name!r} is not done")
        if self._task.cancelled():
            raise Cancelled()
        return self._task.result()

    def exception(self) -> BaseException | None:
        if not self._task.done():
            raise RuntimeError(f"task {self.name!r} is not done")
        if self._task.cancelled():
            return Cancelled()
        return self._task.exception()

    async def join(self) -> Any:
        # shield: a joiner that is cancelled must not cancel the task it waits for
        try:
            await asyncio.shield(self._task)
        except asyncio.CancelledError:
            if not self._task.cancelled():
                raise  # the joiner itself was cancelled
        return self.result()

    def __await__(self) -> Any:
        return self.join().__await__()


class AioQueue(asyncio.Queue[Any]):
    """asyncio.Queue raising the core's QueueEmpty / QueueFull."""

    def get_nowait(self) -> Any:
        try:
            return super().get_nowait()
        except asyncio.QueueEmpty:
            raise QueueEmpty() from None

    def put_nowait(self, item: Any) -> None:
        try:
            super().put_nowait(item)
        except asyncio.QueueFull:
            raise QueueFull() from None


class AioEvent(asyncio.Event):
    """asyncio.Event whose ``wait`` returns None, as the core protocol says."""

    async def wait(self) -> None:  # type: ignore[override]
        await super().wait()


class AioLock(asyncio.Lock):
    """asyncio.Lock whose ``acquire`` returns None."""

    async def acquire(self) -> None:  # type: ignore[override]
        await super().acquire()


class AioSemaphore(asyncio.Semaphore):
    """asyncio.Semaphore whose ``acquire`` returns None."""

    async def acquire(self) -> None:  # type: ignore[override]
        await super().acquire()


class AsyncioRuntime:
    """The Runtime in real time. Without a seed, randomness comes from the OS."""

    def __init__(self, seed: int | None = None, *, executor: Any = None) -> None:
        self.seed = seed
        self.rng = random.Random(seed if seed is not None else os.urandom(16))
        self._t0 = time.monotonic()
        self._executor = executor

    def now(self) -> float:
        return time.monotonic() - self._t0

    def wall_time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> Awaitable[None]:
        return asyncio.sleep(max(0.0, seconds))

    def spawn(self, coro: Coroutine[Any, Any, T], name: str = "") -> AioTask:
        return AioTask(asyncio.get_running_loop().create_task(coro, name=name or None))

    def call_later(
        self, delay: float, fn: Callable[..., object], *args: object
    ) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(max(0.0, delay), fn, *args)

    async def timeout(self, awaitable: Awaitable[T], seconds: float) -> T:
        try:
            return await asyncio.wait_for(awaitable, max(0.0, seconds))
        except TimeoutError:
            raise TimeoutError(f"timed out after {seconds} s") from None

    def future(self) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()

    def queue(self, maxsize: int = 0) -> AioQueue:
        return AioQueue(maxsize)

    def event(self) -> AioEvent:
        return AioEvent()

    def lock(self) -> AioLock:
        return AioLock()

    def semaphore(self, value: int = 1) -> AioSemaphore:
        return AioSemaphore(value)

    def new_id(self) -> str:
        return uuid_from_rng(self.rng)

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on a new event loop until it ends (for plain code and tests)."""
        return asyncio.run(coro)
