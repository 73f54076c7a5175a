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
        # Ending with the core's Cancelled (say, let out of a join) is being cancelled
        # too, as in simulation and as asyncio treats its own CancelledError.
        task = self._task
        return task.cancelled() or (task.done() and isinstance(task.exception(), Cancelled))

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


class AioFuture(asyncio.Future[Any]):
    """asyncio.Future as the core protocol has it: set twice is a ``RuntimeError``, and a
    task cancelled while awaiting it leaves it pending for the others, as in simulation
    (a plain asyncio future would be cancelled with its awaiter)."""

    def set_result(self, value: Any) -> None:
        if self.done():
            raise RuntimeError("future is already done")
        super().set_result(value)

    def set_exception(self, exc: BaseException) -> None:  # type: ignore[override]
        if self.done():
            raise RuntimeError("future is already done")
        super().set_exception(exc)

    def __await__(self) -> Any:
        if self.done():
            return super().__await__()
        return asyncio.shield(self).__await__()


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
        name = name or getattr(coro, "__qualname__", "task")  # as in simulation
        return AioTask(asyncio.get_running_loop().create_task(coro, name=name))

    def call_later(
        self, delay: float, fn: Callable[..., object], *args: object
    ) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(max(0.0, delay), fn, *args)

    async def timeout(self, awaitable: Awaitable[T], seconds: float) -> T:
        # asyncio.timeout, not wait_for: on 3.11 wait_for runs the work in another task
        # and, cancelled as that task finishes, returns its result and drops the cancel.
        deadline = asyncio.timeout(max(0.0, seconds))
        try:
            async with deadline:
                return await awaitable
        except TimeoutError as exc:
            if deadline.expired() and type(exc) is TimeoutError:
                raise TimeoutError(f"timed out after {seconds} s") from None
            raise  # the work's own TimeoutError (an RpcTimeout, say) goes through as is

    def future(self) -> AioFuture:
        return AioFuture(loop=asyncio.get_running_loop())

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
