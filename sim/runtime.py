"""SimRuntime: core coroutines stepped on a SimPy event heap, in virtual time.

A core coroutine awaits only what its Runtime hands it. Here every such
awaitable is (or yields) exactly one SimPy event; a :class:`SimTask` steps the
coroutine with ``send()``/``throw()`` from that event's callback, the way a
SimPy ``Process`` steps a generator. No threads, no wall clock: the same seed
gives the same run, bit for bit.

Queues, events, locks and semaphores are built from plain SimPy events with
the hand-off rules asyncio uses, including the cleanup a task owes when it is
cancelled while it waits.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, TypeVar

import simpy
from simpy.events import NORMAL, PENDING

from nimbus.core.errors import Cancelled
from nimbus.core.runtime import QueueEmpty, QueueFull, uuid_from_rng

T = TypeVar("T")
log = logging.getLogger(__name__)

#: A fixed wall-clock origin so that simulated timestamps are repeatable.
DEFAULT_EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z


class _Wait(simpy.Event):
    """A plain SimPy event that a core coroutine can await."""

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield self)


class _Sleep(simpy.Timeout):
    """A SimPy timeout that a core coroutine can await."""

    def __await__(self) -> Generator[Any, Any, None]:
        return (yield self)


class SimTask(simpy.Event):
    """A core coroutine driven as a SimPy process; the event fires when it ends."""

    def __init__(self, rt: SimRuntime, coro: Coroutine[Any, Any, Any], name: str) -> None:
        env = rt.env
        self.env = env
        self.callbacks = []
        self.name = name
        self._rt = rt
        self._coro = coro
        self._target: simpy.Event | None = None
        self._cancel_requested = False
        self._was_cancelled = False
        self._cancels = 0  # cancel() calls that returned True; see SimRuntime.timeout
        start = simpy.Event(env)
        start._ok = True
        start._value = None
        start.callbacks.append(self._resume)
        self._target = start
        # NORMAL, not URGENT: a new task starts after what is already due now,
        # as on asyncio's FIFO ready queue.
        env.schedule(start, NORMAL)

    # -- the stepping -------------------------------------------------------
    def _resume(self, event: simpy.Event) -> None:
        self._target = None
        coro = self._coro
        rt = self._rt
        rt.current = self
        if self._cancel_requested:
            # cancel() came while this wake-up was being delivered: it wins.
            self._cancel_requested = False
            event = self._cancel_event()
        try:
            while True:
                try:
                    if event._ok:
                        nxt = coro.send(event._value)
                    else:
                        event._defused = True
                        nxt = coro.throw(event._value)
                except StopIteration as stop:
                    if self._cancel_requested:  # cancelled itself, then returned
                        self._finish(False, Cancelled())
                    else:
                        self._finish(True, stop.value)
                    return
                except BaseException as exc:
                    self._finish(False, exc)
                    return
                if self._cancel_requested:
                    # cancel() was called by this very task: throw at this wait.
                    self._cancel_requested = False
                    self._detach(nxt)
                    event = self._cancel_event()
                    continue
                if nxt.callbacks is None:  # already processed: resume at once
                    event = nxt
                    continue
                nxt.callbacks.append(self._resume)
                self._target = nxt
                return
        finally:
            rt.current = None

    def _detach(self, nxt: Any) -> None:
        """Undo what awaiting ``nxt`` registered, if anything."""
        cbs = getattr(nxt, "callbacks", None)
        if cbs and self._resume in cbs:
            cbs.remove(self._resume)

    def _cancel_event(self) -> simpy.Event:
        ev = simpy.Event(self.env)
        ev._ok = False
        ev._value = Cancelled()
        ev._defused = True
        return ev

    def _finish(self, ok: bool, value: Any) -> None:
        self._coro = None  # type: ignore[assignment]
        self._ok = ok
        self._value = value
        if not ok:
            self._defused = True  # a failed task never crashes the whole simulation
            if isinstance(value, Cancelled):
                self._was_cancelled = True
            elif not self.callbacks:
                self._rt.unjoined_failures.append((self.name, value))
                log.debug("task %r failed with nobody waiting: %r", self.name, value)
        self.env.schedule(self, NORMAL)

    # -- the Task protocol --------------------------------------------------
    def cancel(self) -> bool:
        if self._value is not PENDING:
            return False
        self._cancels += 1
        target = self._target
        if self._rt.current is self or target is None or target.callbacks is None:
            # Running now, or the event it waits on is delivering its wake-ups
            # (several tasks awaited it): throw at the next resumption or wait.
            self._cancel_requested = True
            return True
        target.callbacks.remove(self._resume)
        ev = self._cancel_event()
        ev.callbacks.append(self._resume)
        self._target = ev
        self.env.schedule(ev, NORMAL)
        return True

    def done(self) -> bool:
        return self._value is not PENDING

    def cancelled(self) -> bool:
        return self._was_cancelled

    def result(self) -> Any:
        if self._value is PENDING:
            raise RuntimeError(f"task {self.name!r} is not done")
        if not self._ok:
            raise self._value
        return self._value

    def exception(self) -> BaseException | None:
        if self._value is PENDING:
            raise RuntimeError(f"task {self.name!r} is not done")
        return None if self._ok else self._value

    def join(self) -> Awaitable[Any]:
        return self

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield self)

    def __repr__(self) -> str:
        state = "pending" if self._value is PENDING else ("ok" if self._ok else "failed")
        return f"<SimTask {self.name!r} {state}>"


class _Future(_Wait):
    """A one-shot result; ``set_*`` trigger the underlying SimPy event."""

    def set_result(self, value: Any) -> None:
        if self._value is not PENDING:
            raise RuntimeError("future is already done")
        self.succeed(value)

    def set_exception(self, exc: BaseException) -> None:
        if self._value is not PENDING:
            raise RuntimeError("future is already done")
        self._ok = False
        self._value = exc
        self._defused = True
        self.env.schedule(self, NORMAL)

    def done(self) -> bool:
        return self._value is not PENDING


class _Handle:
    """A cancellable callback scheduled with ``call_later``."""

    __slots__ = ("_args", "_fn", "_rt")

    def __init__(self, rt: SimRuntime, fn: Callable[..., object], args: tuple[object, ...]):
        self._rt: SimRuntime | None = rt
        self._fn = fn
        self._args = args

    def cancel(self) -> None:
        self._rt = None

    def _run(self, _event: simpy.Event) -> None:
        rt = self._rt
        if rt is None:
            return
        try:
            self._fn(*self._args)
        except Exception as exc:  # a callback's error must not stop the simulation
            rt.unjoined_failures.append((getattr(self._fn, "__name__", "callback"), exc))
            log.exception("call_later callback failed")


def _wait_cancelled(waiters: deque[_Wait], ev: _Wait) -> bool:
    """A waiter gave up: remove it. True if it had already been woken."""
    if ev._value is not PENDING:
        return True
    try:
        waiters.remove(ev)
    except ValueError:
        pass
    return False


class SimQueue:
    """FIFO queue; a woken getter takes the item itself, as in asyncio."""

    def __init__(self, rt: SimRuntime, maxsize: int = 0) -> None:
        self._env = rt.env
        self._maxsize = maxsize
        self._items: deque[Any] = deque()
        self._getters: deque[_Wait] = deque()
        self._putters: deque[_Wait] = deque()

    def qsize(self) -> int:
        return len(self._items)

    def _full(self) -> bool:
        return 0 < self._maxsize <= len(self._items)

    @staticmethod
    def _wake(waiters: deque[_Wait]) -> None:
        while waiters:
            w = waiters.popleft()
            if w._value is PENDING:
                w.succeed()
                return

    def put_nowait(self, item: Any) -> None:
        if self._full():
            raise QueueFull()
        self._items.append(item)
        if self._getters:
            self._wake(self._getters)

    def get_nowait(self) -> Any:
        if not self._items:
            raise QueueEmpty()
        item = self._items.popleft()
        if self._putters:
            self._wake(self._putters)
        return item

    def put(self, item: Any) -> Awaitable[None]:
        return _QueuePut(self, item)

    def get(self) -> Awaitable[Any]:
        return _QueueGet(self)


class _QueueGet:
    __slots__ = ("_q",)

    def __init__(self, q: SimQueue) -> None:
        self._q = q

    def __await__(self) -> Generator[Any, Any, Any]:
        q = self._q
        while not q._items:
            ev = _Wait(q._env)
            q._getters.append(ev)
            try:
                yield ev
            except BaseException:
                if _wait_cancelled(q._getters, ev) and q._items:
                    q._wake(q._getters)  # pass the wake-up on
                raise
        return q.get_nowait()


class _QueuePut:
    __slots__ = ("_item", "_q")

    def __init__(self, q: SimQueue, item: Any) -> None:
        self._q = q
        self._item = item

    def __await__(self) -> Generator[Any, Any, None]:
        q = self._q
        while q._full():
            ev = _Wait(q._env)
            q._putters.append(ev)
            try:
                yield ev
            except BaseException:
                if _wait_cancelled(q._putters, ev) and not q._full():
                    q._wake(q._putters)
                raise
        q.put_nowait(self._item)


class SimEvent:
    """A flag tasks wait on until it is set."""

    def __init__(self, rt: SimRuntime) -> None:
        self._env = rt.env
        self._flag = False
        self._waiters: deque[_Wait] = deque()

    def set(self) -> None:
        if self._flag:
            return
        self._flag = True
        waiters, self._waiters = self._waiters, deque()
        for w in waiters:
            if w._value is PENDING:
                w.succeed()

    def clear(self) -> None:
        self._flag = False

    def is_set(self) -> bool:
        return self._flag

    async def wait(self) -> None:
        if self._flag:
            return
        ev = _Wait(self._env)
        self._waiters.append(ev)
        try:
            await ev
        except BaseException:
            _wait_cancelled(self._waiters, ev)
            raise


class SimSemaphore:
    """A counting semaphore; a release hands its permit straight to the first waiter."""

    def __init__(self, rt: SimRuntime, value: int = 1) -> None:
        if value < 0:
            raise ValueError("semaphore value must be >= 0")
        self._env = rt.env
        self._value = value
        self._waiters: deque[_Wait] = deque()

    def locked(self) -> bool:
        return self._value == 0

    async def acquire(self) -> None:
        if self._value > 0 and not self._waiters:
            self._value -= 1
            return
        ev = _Wait(self._env)
        self._waiters.append(ev)
        try:
            await ev
        except BaseException:
            if _wait_cancelled(self._waiters, ev):
                self.release()  # the permit was handed to us: give it back
            raise

    def release(self) -> None:
        while self._waiters:
            w = self._waiters.popleft()
            if w._value is PENDING:
                w.succeed()
                return
        self._value += 1

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class SimLock(SimSemaphore):
    """A mutual-exclusion lock, FIFO among waiters."""

    def __init__(self, rt: SimRuntime) -> None:
        super().__init__(rt, 1)

    def release(self) -> None:
        if self._value and not self._waiters:
            raise RuntimeError("release of an unlocked lock")
        super().release()


def zero_cost(fn: Callable[..., Any]) -> float:
    """The default model of a blocking call: it takes no virtual time."""
    return 0.0


class SimRuntime:
    """The Runtime in virtual time, over one SimPy environment.

    ``blocking_cost(fn)`` models how long ``run_blocking(fn)`` takes; the call itself
    runs inline, since simulation has no threads.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        epoch: float = DEFAULT_EPOCH,
        blocking_cost: Callable[[Callable[..., Any]], float] = zero_cost,
        env: simpy.Environment | None = None,
    ) -> None:
        self.env = env if env is not None else simpy.Environment()
        self.seed = seed
        self.rng = random.Random(seed)
        self.epoch = epoch
        self.blocking_cost = blocking_cost
        self.current: SimTask | None = None
        self.unjoined_failures: list[tuple[str, BaseException]] = []

    def now(self) -> float:
        return float(self.env.now)

    def wall_time(self) -> float:
        return self.epoch + self.env.now

    def events_processed(self) -> int:
        """SimPy events processed so far: those scheduled less those still due.

        Read from the environment's own event-id counter when asked, so counting
        adds nothing to the event loop.
        """
        scheduled = int(repr(self.env._eid)[len("count("):-1])
        return scheduled - len(self.env._queue)

    def sleep(self, seconds: float) -> Awaitable[None]:
        return _Sleep(self.env, max(0.0, seconds))

    def spawn(self, coro: Coroutine[Any, Any, T], name: str = "") -> SimTask:
        return SimTask(self, coro, name or getattr(coro, "__qualname__", "task"))

    def call_later(self, delay: float, fn: Callable[..., object], *args: object) -> _Handle:
        handle = _Handle(self, fn, args)
        simpy.Timeout(self.env, max(0.0, delay)).callbacks.append(handle._run)
        return handle

    async def timeout(self, awaitable: Awaitable[T], seconds: float) -> T:
        # As asyncio.timeout: the work runs in the calling task and the deadline
        # cancels that task, so a result is never left behind in a helper task.
        # Counting cancels tells the deadline's cancel from one asked from outside.
        task = self.current
        assert task is not None, "timeout() is awaited from a task"
        cancels_before = task._cancels
        armed, expired = True, False

        def expire(_ev: simpy.Event) -> None:
            nonlocal expired
            if armed:
                expired = task.cancel()

        simpy.Timeout(self.env, max(0.0, seconds)).callbacks.append(expire)
        try:
            return await awaitable
        except Cancelled:
            if expired and task._cancels - 1 <= cancels_before:
                raise TimeoutError(f"timed out after {seconds} s") from None
            raise
        finally:
            armed = False
            if expired:
                task._cancels -= 1

    def future(self) -> _Future:
        return _Future(self.env)

    def queue(self, maxsize: int = 0) -> SimQueue:
        return SimQueue(self, maxsize)

    def event(self) -> SimEvent:
        return SimEvent(self)

    def lock(self) -> SimLock:
        return SimLock(self)

    def semaphore(self, value: int = 1) -> SimSemaphore:
        return SimSemaphore(self, value)

    def new_id(self) -> str:
        return uuid_from_rng(self.rng)

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        cost = self.blocking_cost(fn)
        try:
            result = fn(*args)
        except Exception:
            await self.sleep(cost)
            raise
        await self.sleep(cost)
        return result

    # -- driving from plain code ------------------------------------------
    def run(self, coro: Coroutine[Any, Any, T], until: float | None = None) -> T:
        """Run ``coro`` as the main task until it ends; return its result or raise.

        With ``until``, stop when main ends or at virtual time ``until``, whichever
        comes first, and raise ``TimeoutError`` if the main task has not ended.
        A deadlock (nothing left to happen) raises ``RuntimeError``.
        """
        main = self.spawn(coro, name="main")
        stop: simpy.Event = main
        if until is not None:
            # whichever comes first: the end of main, or the deadline
            deadline = simpy.Timeout(self.env, max(0.0, until - self.env.now))
            stop = self.env.any_of([main, deadline])
        self.env.run(until=stop)
        if not main.done():
            main.cancel()
            raise TimeoutError(f"main task still running at virtual time {until}")
        return main.result()

    def run_until(self, t: float) -> None:
        """Advance the clock to virtual time ``t``, processing every event before it."""
        self.env.run(until=t)
