"""The Runtime contract: every test runs on SimRuntime and on AsyncioRuntime.

Under simulation, virtual times are asserted exactly. Under asyncio, sleeps
are a few milliseconds and only order and lower bounds on time are asserted.
The last section holds what only the simulator promises: bit-identical runs
for a seed, deadlock detection, and ``run(..., until=T)``.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest

from nimbus.core.errors import Cancelled, RpcTimeout
from nimbus.core.runtime import QueueEmpty, QueueFull, Task
from nimbus.runtime import AsyncioRuntime
from nimbus.sim.runtime import DEFAULT_EPOCH, SimRuntime

from .conftest import run_body

pytestmark = pytest.mark.timeout(30)

#: One time unit: exact in binary (so sums of units are exact virtual times),
#: and about 8 ms of real time under asyncio.
U = 1 / 128
#: How early asyncio may report a deadline as reached (clock resolution).
SLACK = 1e-3
#: A sleep that is never meant to end: the test cancels it first.
FOREVER = 1000.0


class Clock:
    """Time since the body started: exact in simulation, a lower bound in asyncio."""

    def __init__(self, rt: Any, kind: str) -> None:
        self.rt = rt
        self.sim = kind == "sim"
        self.t0 = rt.now()

    def elapsed(self) -> float:
        return float(self.rt.now() - self.t0)

    def check(self, expected: float) -> None:
        got = self.elapsed()
        if self.sim:
            assert got == expected
        else:
            assert expected - SLACK <= got < expected + 2.0


# -- time ---------------------------------------------------------------------


def test_now_advances_with_sleep(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> None:
        clock = Clock(rt, runtime_kind)
        clock.check(0.0)
        await rt.sleep(U)
        clock.check(U)
        await rt.sleep(2 * U)
        clock.check(3 * U)
        await rt.sleep(-1)  # a negative pause is no pause
        clock.check(3 * U)

    run_rt(body)


def test_wall_time(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> None:
        await rt.sleep(U)
        if runtime_kind == "sim":
            assert rt.wall_time() == DEFAULT_EPOCH + U
        else:
            assert abs(rt.wall_time() - time.time()) < 1.0

    run_rt(body)


def test_sleep_zero_yields_to_ready_tasks(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> None:
        clock = Clock(rt, runtime_kind)
        log: list[str] = []

        async def ping(name: str) -> None:
            for i in range(3):
                log.append(f"{name}{i}")
                await rt.sleep(0)

        started: list[bool] = []

        async def flag() -> None:
            started.append(True)

        rt.spawn(flag())
        assert started == []  # spawn runs nothing now...
        await rt.sleep(0)
        assert started == [True]  # ...but at the next scheduling step

        a, b = rt.spawn(ping("a")), rt.spawn(ping("b"))
        await a.join()
        await b.join()
        assert log == ["a0", "b0", "a1", "b1", "a2", "b2"]
        clock.check(0.0)

    run_rt(body)


def test_tasks_wake_in_time_order(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> None:
        clock = Clock(rt, runtime_kind)
        log: list[tuple[str, float]] = []

        async def sleeper(name: str, units: int) -> None:
            await rt.sleep(units * U)
            log.append((name, clock.elapsed()))

        tasks = [rt.spawn(sleeper(n, d)) for n, d in [("c", 3), ("a", 1), ("b", 2)]]
        for t in tasks:
            await t.join()
        assert [n for n, _ in log] == ["a", "b", "c"]
        if runtime_kind == "sim":
            assert [t for _, t in log] == [U, 2 * U, 3 * U]

    run_rt(body)


def test_equal_sleeps_wake_fifo(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> None:
        clock = Clock(rt, runtime_kind)
        log: list[int] = []

        async def sleeper(i: int) -> None:
            await rt.sleep(U)
            log.append(i)

        tasks = [rt.spawn(sleeper(i)) for i in range(6)]
        for t in tasks:
            await t.join()
        assert log == list(range(6))
        clock.check(U)

    run_rt(body)


# -- tasks --------------------------------------------------------------------


def test_spawn_and_join_return_values(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> None:
        clock = Clock(rt, runtime_kind)

        async def double(x: int) -> int:
            await rt.sleep(U)
            return 2 * x

        tasks = [rt.spawn(double(i), name=f"d{i}") for i in range(3)]
        assert all(isinstance(t, Task) for t in tasks)
        assert [t.name for t in tasks] == ["d0", "d1", "d2"]
        assert [await t.join() for t in tasks] == [0, 2, 4]
        assert await tasks[1].join() == 2  # joining a finished task returns at once
        clock.check(U)
        unnamed = rt.spawn(double(5))
        assert "double" in unnamed.name  # the default name says what runs
        assert await unnamed.join() == 10

    run_rt(body)


def test_result_and_exception_before_and_after_done(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> None:
        async def ok() -> str:
            await rt.sleep(U)
            return "v"

        async def bad() -> None:
            await rt.sleep(U)
            raise ValueError("boom")

        t_ok, t_bad = rt.spawn(ok()), rt.spawn(bad())
        assert not t_ok.done() and not t_ok.cancelled()
        with pytest.raises(RuntimeError):
            t_ok.result()
        with pytest.raises(RuntimeError):
            t_ok.exception()

        assert await t_ok.join() == "v"
        assert t_ok.done() and not t_ok.cancelled()
        assert t_ok.result() == "v"
        assert t_ok.exception() is None

        with pytest.raises(ValueError, match="boom"):
            await t_bad.join()
        assert t_bad.done() and not t_bad.cancelled()
        assert isinstance(t_bad.exception(), ValueError)
        with pytest.raises(ValueError, match="boom"):
            t_bad.result()

    run_rt(body)


def test_exception_propagates_through_a_chain_of_joins(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> None:
        async def bad() -> None:
            await rt.sleep(U)
            raise KeyError("deep")

        async def middle() -> None:
            await rt.spawn(bad()).join()

        t = rt.spawn(middle())
        with pytest.raises(KeyError, match="deep"):
            await t.join()
        assert isinstance(t.exception(), KeyError)

    run_rt(body)


def test_a_failed_task_nobody_joins_does_not_stop_the_runtime(
    runtime_kind: str, run_rt: Any
) -> None:
    async def body(rt: Any) -> str:
        async def bad() -> None:
            raise ValueError("ignored")

        t = rt.spawn(bad())
        await rt.sleep(U)
        assert t.done() and isinstance(t.exception(), ValueError)
        return "still running"

    assert run_rt(body) == "still running"


def test_run_returns_the_result_or_raises(runtime_kind: str) -> None:
    async def ok(rt: Any) -> int:
        await rt.sleep(U)
        return 3

    async def bad(rt: Any) -> None:
        await rt.sleep(U)
        raise ValueError("main failed")

    assert run_body(runtime_kind, ok) == 3
    with pytest.raises(ValueError, match="main failed"):
        run_body(runtime_kind, bad)


# -- cancellation -------------------------------------------------------------


def test_cancel_a_sleeping_task(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> None:
        clock = Clock(rt, runtime_kind)
        log: list[str] = []

        async def sleeper() -> None:
            try:
                await rt.sleep(FOREVER)
                log.append("woke")
            except BaseException:  # Cancelled in sim, asyncio.CancelledError in asyncio
                log.append("interrupted")
                raise
            finally:
                log.append("finally")

        t = rt.spawn(sleeper())
        await rt.sleep(U)
        assert t.cancel() is True
        with pytest.raises(Cancelled):
            await t.join()
        assert log == ["interrupted", "finally"]
        assert t.done() and t.cancelled()
        with pytest.raises(Cancelled):
            t.result()
        assert isinstance(t.exception(), Cancelled)
        clock.check(U)

    run_rt(body)


def test_cancel_a_finished_task_returns_false(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> None:
        async def quick() -> int:
            return 1

        t = rt.spawn(quick())
        assert await t.join() == 1
        assert t.cancel() is False
        assert not t.cancelled() and t.result() == 1

    run_rt(body)


def test_cancel_a_task_that_has_not_started(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> None:
        ran: list[int] = []

        async def never() -> None:
            ran.append(1)

        t = rt.spawn(never())
        assert t.cancel() is True
        with pytest.raises(Cancelled):
            await t.join()
        assert ran == [] and t.cancelled()

    run_rt(body)


def test_a_task_cancelling_itself(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> None:
        log: list[str] = []
        me: list[Any] = []

        async def selfish() -> None:
            try:
                assert me[0].cancel() is True
                log.append("asked")
                await rt.sleep(U)  # the cancel lands at this wait
                log.append("after")
            finally:
                log.append("finally")

        t = rt.spawn(selfish())
        me.append(t)
        with pytest.raises(Cancelled):
            await t.join()
        assert log == ["asked", "finally"]
        assert t.cancelled()

    run_rt(body)


def test_a_task_cancelling_itself_then_returning_is_cancelled(
    runtime_kind: str, run_rt: Any
) -> None:
    async def body(rt: Any) -> None:
        me: list[Any] = []

        async def quitter() -> str:
            me[0].cancel()
            return "returned anyway"

        t = rt.spawn(quitter())
        me.append(t)
        with pytest.raises(Cancelled):
            await t.join()
        assert t.cancelled()

    run_rt(body)


def test_cancelling_a_joiner_does_not_cancel_the_joined_task(
    runtime_kind: str, run_rt: Any
) -> None:
    async def body(rt: Any) -> None:
        clock = Clock(rt, runtime_kind)
        log: list[str] = []

        async def worker() -> str:
            await rt.sleep(3 * U)
            return "v"

        async def joiner(w: Any) -> str:
            try:
                return str(await w.join())
            finally:
                log.append("joiner finally")

        w = rt.spawn(worker())
        j = rt.spawn(joiner(w))
        await rt.sleep(U)
        assert j.cancel() is True
        with pytest.raises(Cancelled):
            await j.join()
        assert j.cancelled() and log == ["joiner finally"]
        assert not w.done()
        assert await w.join() == "v"
        assert not w.cancelled()
        clock.check(3 * U)

    run_rt(body)


def test_a_task_ending_with_cancelled_counts_as_cancelled(runtime_kind: str, run_rt: Any) -> None:
    """A task that lets ``Cancelled`` out (here from joining a cancelled task) is cancelled."""

    async def body(rt: Any) -> None:
        async def sleeper() -> None:
            await rt.sleep(FOREVER)

        async def follower(t: Any) -> None:
            await t.join()

        s = rt.spawn(sleeper())
        f = rt.spawn(follower(s))
        await rt.sleep(U)
        s.cancel()
        with pytest.raises(Cancelled):
            await f.join()
        assert s.cancelled() and f.cancelled()
        assert isinstance(f.exception(), Cancelled)

    run_rt(body)


@pytest.mark.parametrize("shared", ["future", "task"])
def test_cancel_a_task_woken_by_the_same_event_as_the_canceller(
    runtime_kind: str, run_rt: Any, shared: str
) -> None:
    """A and B wait on one thing; A, woken first, cancels B before B runs: B is cancelled."""

    async def body(rt: Any) -> None:
        log: list[str] = []
        fut = rt.future()

        async def source() -> int:
            return int(await fut)

        thing: Any = fut if shared == "future" else rt.spawn(source())
        waitable = (lambda: thing) if shared == "future" else thing.join
        others: list[Any] = []

        async def first() -> None:
            await waitable()
            log.append("first woke")
            assert others[0].cancel() is True

        async def second() -> None:
            await waitable()
            log.append("second woke")

        a = rt.spawn(first())
        b = rt.spawn(second())
        others.append(b)
        await rt.sleep(U)  # both wait now
        fut.set_result(1)
        await a.join()
        with pytest.raises(Cancelled):
            await b.join()
        assert b.cancelled()
        assert log == ["first woke"]

    run_rt(body)


# -- timeout ------------------------------------------------------------------


def test_timeout_returns_the_value_when_fast(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> None:
        clock = Clock(rt, runtime_kind)

        async def fast() -> int:
            await rt.sleep(U)
            return 7

        assert await rt.timeout(fast(), 4 * U) == 7
        clock.check(U)

        async def bad() -> None:
            await rt.sleep(U)
            raise ValueError("inner")

        with pytest.raises(ValueError, match="inner"):
            await rt.timeout(bad(), 4 * U)

    run_rt(body)


def test_timeout_lets_the_inner_works_own_timeout_error_through(
    runtime_kind: str, run_rt: Any
) -> None:
    async def body(rt: Any) -> None:
        async def rpc() -> None:
            await rt.sleep(U)
            raise RpcTimeout("no reply")

        with pytest.raises(RpcTimeout, match="no reply"):
            await rt.timeout(rpc(), 4 * U)

    run_rt(body)


def test_timeout_when_slow_cancels_the_inner_work(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> None:
        clock = Clock(rt, runtime_kind)
        log: list[str] = []

        async def slow() -> None:
            try:
                await rt.sleep(FOREVER)
                log.append("woke")
            finally:
                log.append("finally")

        with pytest.raises(TimeoutError):
            await rt.timeout(slow(), 2 * U)
        assert log == ["finally"]  # the inner work was cancelled before timeout raised
        clock.check(2 * U)

    run_rt(body)


def test_nested_timeouts_each_raise_only_for_their_own_deadline(
    runtime_kind: str, run_rt: Any
) -> None:
    async def body(rt: Any) -> None:
        clock = Clock(rt, runtime_kind)

        async def slow() -> None:
            await rt.sleep(FOREVER)

        with pytest.raises(TimeoutError):  # the outer deadline comes first
            await rt.timeout(rt.timeout(slow(), 4 * U), U)
        clock.check(U)

        async def inner_first() -> str:
            try:
                await rt.timeout(slow(), U)
            except TimeoutError:
                return "inner timed out"
            return "no timeout"

        assert await rt.timeout(inner_first(), 4 * U) == "inner timed out"
        clock.check(2 * U)
        await rt.sleep(U)  # no cancel is left pending on this task
        clock.check(3 * U)

    run_rt(body)


def test_a_cancel_from_outside_at_the_deadline_is_a_cancel(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> None:
        async def waiter() -> None:
            await rt.timeout(rt.sleep(FOREVER), U)

        t = rt.spawn(waiter())
        await rt.sleep(U)  # in simulation: the same instant as the deadline
        t.cancel()
        with pytest.raises(Cancelled):
            await t.join()
        assert t.cancelled()

    run_rt(body)


def test_timeout_on_queue_get_loses_no_item(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> None:
        q = rt.queue()
        with pytest.raises(TimeoutError):
            await rt.timeout(q.get(), U)

        async def getter() -> Any:
            return await q.get()

        g = rt.spawn(getter())
        await rt.sleep(U)
        q.put_nowait("x")  # goes to the next getter, not to the timed-out one
        assert await g.join() == "x"
        assert q.qsize() == 0

    run_rt(body)


def test_timeout_expiring_as_the_item_arrives_loses_no_item(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> None:
        q = rt.queue()

        async def putter() -> None:
            await rt.sleep(U)
            q.put_nowait("x")

        rt.spawn(putter())
        try:
            got = [await rt.timeout(q.get(), U)]
        except TimeoutError:
            got = []
        await rt.sleep(2 * U)
        rest = [q.get_nowait() for _ in range(q.qsize())]
        assert got + rest == ["x"]

    run_rt(body)


def test_cancel_during_timeout_wins_over_an_arriving_item(runtime_kind: str, run_rt: Any) -> None:
    """Cancelled while waiting in a timeout, as the item arrives: cancelled, item kept."""

    async def body(rt: Any) -> None:
        q = rt.queue()

        async def waiter() -> Any:
            return await rt.timeout(q.get(), FOREVER)

        t = rt.spawn(waiter())
        await rt.sleep(U)
        q.put_nowait("x")
        assert t.cancel() is True
        with pytest.raises(Cancelled):
            await t.join()
        assert t.cancelled()
        await rt.sleep(U)
        assert q.get_nowait() == "x"

    run_rt(body)


def test_timeout_on_a_future_leaves_the_future_usable(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> None:
        fut = rt.future()
        with pytest.raises(TimeoutError):
            await rt.timeout(fut, U)
        assert not fut.done()
        fut.set_result(3)  # a late reply still resolves it
        assert await fut == 3

    run_rt(body)


# -- queue --------------------------------------------------------------------


def test_queue_is_fifo(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> None:
        clock = Clock(rt, runtime_kind)
        q = rt.queue()
        for i in range(5):
            await q.put(i)
        q.put_nowait(5)
        assert q.qsize() == 6
        assert [await q.get() for _ in range(3)] == [0, 1, 2]
        assert [q.get_nowait() for _ in range(3)] == [3, 4, 5]
        assert q.qsize() == 0
        with pytest.raises(QueueEmpty):
            q.get_nowait()
        clock.check(0.0)

    run_rt(body)


def test_bounded_queue_put_waits(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> None:
        clock = Clock(rt, runtime_kind)
        q = rt.queue(maxsize=2)
        q.put_nowait(1)
        await q.put(2)
        with pytest.raises(QueueFull):
            q.put_nowait(3)
        log: list[float] = []

        async def putter() -> None:
            await q.put(3)
            log.append(clock.elapsed())

        p = rt.spawn(putter())
        await rt.sleep(U)
        assert log == [] and q.qsize() == 2
        assert q.get_nowait() == 1
        await p.join()
        if runtime_kind == "sim":
            assert log == [U]
        assert [q.get_nowait(), q.get_nowait()] == [2, 3]

    run_rt(body)


def test_cancelled_putter_adds_nothing(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> None:
        q = rt.queue(maxsize=1)
        q.put_nowait(1)

        async def putter() -> None:
            await q.put(2)

        p = rt.spawn(putter())
        await rt.sleep(U)
        p.cancel()
        assert q.get_nowait() == 1
        await rt.sleep(U)
        assert q.qsize() == 0 and p.cancelled()

    run_rt(body)


def test_waiting_getters_are_served_in_order(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> None:
        q = rt.queue()
        log: list[tuple[str, str]] = []

        async def getter(name: str) -> None:
            log.append((name, await q.get()))

        tasks = [rt.spawn(getter(f"g{i}")) for i in range(3)]
        await rt.sleep(U)
        for x in "abc":
            q.put_nowait(x)
        for t in tasks:
            await t.join()
        assert log == [("g0", "a"), ("g1", "b"), ("g2", "c")]

    run_rt(body)


@pytest.mark.parametrize("order", ["cancel-then-put", "put-then-cancel"])
def test_cancelled_getter_does_not_swallow_an_item(
    runtime_kind: str, run_rt: Any, order: str
) -> None:
    async def body(rt: Any) -> None:
        q = rt.queue()
        log: list[tuple[str, str]] = []

        async def getter(name: str) -> None:
            log.append((name, await q.get()))

        g0, g1 = rt.spawn(getter("g0")), rt.spawn(getter("g1"))
        await rt.sleep(U)
        if order == "cancel-then-put":
            g0.cancel()
            q.put_nowait("x")
        else:  # g0 is woken for the item, then cancelled before it runs
            q.put_nowait("x")
            g0.cancel()
        await g1.join()
        assert log == [("g1", "x")]
        assert g0.cancelled() and q.qsize() == 0

    run_rt(body)


# -- event --------------------------------------------------------------------


def test_event_set_clear_wait(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> None:
        clock = Clock(rt, runtime_kind)
        ev = rt.event()
        log: list[tuple[str, float]] = []

        async def waiter(name: str) -> None:
            await ev.wait()
            log.append((name, clock.elapsed()))

        tasks = [rt.spawn(waiter(f"w{i}")) for i in range(3)]
        await rt.sleep(U)
        assert log == [] and not ev.is_set()
        ev.set()
        assert ev.is_set()
        for t in tasks:
            await t.join()
        assert [n for n, _ in log] == ["w0", "w1", "w2"]
        if runtime_kind == "sim":
            assert [t for _, t in log] == [U, U, U]

        await ev.wait()  # already set: returns at once
        ev.set()  # setting twice is harmless
        ev.clear()
        assert not ev.is_set()
        late = rt.spawn(waiter("late"))
        await rt.sleep(U)
        assert len(log) == 3  # a cleared event makes waiters wait again
        ev.set()
        await late.join()
        assert log[-1][0] == "late"
        clock.check(2 * U)

    run_rt(body)


def test_cancelled_event_waiter_does_not_block_others(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> None:
        ev = rt.event()
        log: list[str] = []

        async def waiter(name: str) -> None:
            await ev.wait()
            log.append(name)

        a, b = rt.spawn(waiter("a")), rt.spawn(waiter("b"))
        await rt.sleep(U)
        a.cancel()
        ev.set()
        await b.join()
        assert log == ["b"] and a.cancelled()

    run_rt(body)


# -- lock and semaphore -------------------------------------------------------


def test_lock_mutual_exclusion_in_fifo_order(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> None:
        clock = Clock(rt, runtime_kind)
        lock = rt.lock()
        log: list[tuple[str, str]] = []

        async def worker(name: str) -> None:
            async with lock:
                log.append(("in", name))
                await rt.sleep(U)
                log.append(("out", name))

        tasks = [rt.spawn(worker(f"t{i}")) for i in range(4)]
        await rt.sleep(0)
        assert lock.locked()
        for t in tasks:
            await t.join()
        assert log == [(io, f"t{i}") for i in range(4) for io in ("in", "out")]
        assert not lock.locked()
        clock.check(4 * U)

        await lock.acquire()
        assert lock.locked()
        lock.release()
        assert not lock.locked()
        with pytest.raises(RuntimeError):
            lock.release()

    run_rt(body)


@pytest.mark.parametrize("order", ["cancel-then-release", "release-then-cancel"])
def test_lock_waiter_cancelled_leaks_nothing(runtime_kind: str, run_rt: Any, order: str) -> None:
    async def body(rt: Any) -> None:
        lock = rt.lock()
        log: list[str] = []

        async def worker(name: str) -> None:
            async with lock:
                log.append(name)
                await rt.sleep(U)

        await lock.acquire()
        w1, w2 = rt.spawn(worker("w1")), rt.spawn(worker("w2"))
        await rt.sleep(U)
        if order == "cancel-then-release":
            w1.cancel()
            lock.release()
        else:  # the lock is handed to w1, which is cancelled before it runs
            lock.release()
            w1.cancel()
        await w2.join()
        with pytest.raises(Cancelled):
            await w1.join()
        assert log == ["w2"]
        assert not lock.locked()
        await lock.acquire()  # free, not leaked to the cancelled task
        lock.release()

    run_rt(body)


def test_lock_holder_cancelled_inside_async_with_releases(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> None:
        lock = rt.lock()
        log: list[str] = []

        async def holder() -> None:
            async with lock:
                log.append("holder in")
                await rt.sleep(FOREVER)

        async def waiter() -> None:
            async with lock:
                log.append("waiter in")

        h = rt.spawn(holder())
        await rt.sleep(U)
        w = rt.spawn(waiter())
        await rt.sleep(U)
        assert lock.locked() and log == ["holder in"]
        h.cancel()
        await w.join()
        with pytest.raises(Cancelled):
            await h.join()
        assert log == ["holder in", "waiter in"]
        assert not lock.locked()

    run_rt(body)


def test_semaphore_limits_concurrency(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> None:
        clock = Clock(rt, runtime_kind)
        sem = rt.semaphore(2)
        active = peak = 0
        order: list[int] = []

        async def worker(i: int) -> None:
            nonlocal active, peak
            async with sem:
                order.append(i)
                active += 1
                peak = max(peak, active)
                await rt.sleep(U)
                active -= 1

        tasks = [rt.spawn(worker(i)) for i in range(6)]
        await rt.sleep(0)
        assert sem.locked()
        for t in tasks:
            await t.join()
        assert peak == 2 and active == 0
        assert order == list(range(6))
        assert not sem.locked()
        clock.check(3 * U)

    run_rt(body)


# -- future and call_later ----------------------------------------------------


def test_future_set_result_and_set_exception(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> None:
        fut = rt.future()

        async def waiter(f: Any) -> Any:
            return await f

        w = rt.spawn(waiter(fut))
        await rt.sleep(U)
        assert not fut.done()
        fut.set_result(5)
        assert fut.done()
        assert await w.join() == 5
        assert await fut == 5  # a done future can be awaited again
        with pytest.raises(RuntimeError):
            fut.set_result(6)
        with pytest.raises(RuntimeError):
            fut.set_exception(ValueError("late"))

        bad = rt.future()
        w = rt.spawn(waiter(bad))
        await rt.sleep(U)
        bad.set_exception(KeyError("k"))
        with pytest.raises(KeyError):
            await w.join()
        with pytest.raises(KeyError):
            await bad
        with pytest.raises(RuntimeError):
            bad.set_result(1)

    run_rt(body)


def test_future_outlives_a_cancelled_awaiter(runtime_kind: str, run_rt: Any) -> None:
    """Cancelling one task that awaits a future leaves the future for the others."""

    async def body(rt: Any) -> None:
        fut = rt.future()

        async def waiter() -> Any:
            return await fut

        a, b = rt.spawn(waiter()), rt.spawn(waiter())
        await rt.sleep(U)
        a.cancel()
        await rt.sleep(U)
        assert a.cancelled()
        assert not fut.done()
        fut.set_result("late")
        assert await b.join() == "late"

    run_rt(body)


def test_call_later(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> None:
        clock = Clock(rt, runtime_kind)
        log: list[tuple[str, float]] = []

        def note(tag: str) -> None:
            log.append((tag, clock.elapsed()))

        rt.call_later(2 * U, note, "late")
        early = rt.call_later(U, note, "early")
        never = rt.call_later(U, note, "never")
        never.cancel()
        await rt.sleep(4 * U)
        early.cancel()  # after it ran: no effect
        assert [tag for tag, _ in log] == ["early", "late"]
        if runtime_kind == "sim":
            assert [t for _, t in log] == [U, 2 * U]
        else:
            assert log[0][1] >= U - SLACK and log[1][1] >= 2 * U - SLACK

    run_rt(body)


# -- ids, randomness, blocking calls ------------------------------------------


def test_new_id_gives_uuid4_strings(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> list[str]:
        ids = [rt.new_id() for _ in range(50)]
        for s in ids:
            u = uuid.UUID(s)
            assert u.version == 4 and u.variant == uuid.RFC_4122
            assert str(u) == s
        assert len(set(ids)) == len(ids)
        return ids

    assert run_rt(body, seed=5) == run_rt(body, seed=5)
    assert run_rt(body, seed=5) != run_rt(body, seed=6)


def test_rng_is_deterministic_for_a_seed(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> list[float]:
        return [rt.rng.random() for _ in range(5)] + [rt.rng.randint(0, 10**9)]

    assert run_rt(body, seed=11) == run_rt(body, seed=11)
    assert run_rt(body, seed=11) != run_rt(body, seed=12)


def test_both_runtimes_draw_the_same_ids_for_a_seed() -> None:
    sim, real = SimRuntime(9), AsyncioRuntime(seed=9)
    assert [sim.new_id() for _ in range(3)] == [real.new_id() for _ in range(3)]


def test_run_blocking(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> None:
        def work(x: int) -> tuple[int, int]:
            return 2 * x, threading.get_ident()

        value, ident = await rt.run_blocking(work, 21)
        assert value == 42
        if runtime_kind == "asyncio":
            assert ident != threading.get_ident()  # really ran in another thread
        else:
            assert ident == threading.get_ident()  # simulation has no threads

        def fail() -> None:
            raise ValueError("blocked")

        with pytest.raises(ValueError, match="blocked"):
            await rt.run_blocking(fail)

    run_rt(body)


# -- same-instant order: FIFO, as asyncio's ready queue ------------------------


def test_a_spawned_task_starts_after_tasks_already_woken(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> None:
        ev = rt.event()
        log: list[str] = []

        async def waiter() -> None:
            await ev.wait()
            log.append("woken")

        async def fresh() -> None:
            log.append("spawned")

        w = rt.spawn(waiter())
        await rt.sleep(U)
        ev.set()
        s = rt.spawn(fresh())
        await w.join()
        await s.join()
        assert log == ["woken", "spawned"]

    run_rt(body)


def test_a_cancel_is_delivered_after_wake_ups_already_due(runtime_kind: str, run_rt: Any) -> None:
    async def body(rt: Any) -> None:
        ev = rt.event()
        log: list[str] = []

        async def waiter() -> None:
            await ev.wait()
            log.append("woken")

        async def sleeper() -> None:
            try:
                await rt.sleep(FOREVER)
            finally:
                log.append("cancelled")

        w, s = rt.spawn(waiter()), rt.spawn(sleeper())
        await rt.sleep(U)
        ev.set()
        s.cancel()
        await w.join()
        with pytest.raises(Cancelled):
            await s.join()
        assert log == ["woken", "cancelled"]

    run_rt(body)


# -- simulation only ------------------------------------------------------------


def random_scenario(seed: int) -> list[tuple[float, str, str]]:
    """Producers, consumers, a lock, a semaphore, timeouts and cancellations, all rng-driven."""
    rt = SimRuntime(seed)
    trace: list[tuple[float, str, str]] = []

    def note(name: str, what: str) -> None:
        trace.append((rt.now(), name, what))

    async def main() -> list[tuple[float, str, str]]:
        q = rt.queue(maxsize=3)
        lock = rt.lock()
        sem = rt.semaphore(2)
        done = rt.event()

        async def producer(name: str) -> None:
            try:
                for i in range(rt.rng.randint(3, 8)):
                    await rt.sleep(rt.rng.expovariate(2.0))
                    item = f"{name}-{i}-{rt.new_id()[:8]}"
                    await q.put(item)
                    note(name, f"put {item}")
            finally:
                note(name, "producer exit")

        async def consumer(name: str) -> None:
            try:
                while True:
                    try:
                        item = await rt.timeout(q.get(), rt.rng.uniform(0.1, 1.0))
                    except TimeoutError:
                        note(name, "timeout")
                        if done.is_set():
                            return
                        continue
                    async with lock:
                        note(name, f"got {item}")
                        await rt.sleep(rt.rng.uniform(0.0, 0.3))
                    async with sem:
                        await rt.sleep(rt.rng.random() * 0.2)
                        note(name, "worked")
            finally:
                note(name, "consumer exit")

        producers = [rt.spawn(producer(f"p{i}"), name=f"p{i}") for i in range(4)]
        consumers = [rt.spawn(consumer(f"c{i}"), name=f"c{i}") for i in range(3)]
        await rt.sleep(rt.rng.uniform(0.5, 2.0))
        for victim in (rt.rng.choice(producers), rt.rng.choice(consumers)):
            note("chaos", f"cancel {victim.name}: {victim.cancel()}")
        for t in producers:
            try:
                await t.join()
            except Cancelled:
                note("main", f"{t.name} cancelled")
        done.set()
        for t in consumers:
            try:
                await t.join()
            except Cancelled:
                note("main", f"{t.name} cancelled")
        note("main", f"left in queue: {q.qsize()}")
        return trace

    return rt.run(main())


def test_sim_random_scenario_is_bit_identical_for_a_seed() -> None:
    first = random_scenario(42)
    assert first == random_scenario(42)
    assert repr(first) == repr(random_scenario(42))
    kinds = {what.split()[0] for _, _, what in first}
    assert {"put", "got", "worked", "timeout", "cancel"} <= kinds
    assert first != random_scenario(43)


def test_sim_deadlock_raises_instead_of_hanging() -> None:
    rt = SimRuntime(1)

    async def main() -> None:
        await rt.event().wait()  # nobody will ever set it

    with pytest.raises(RuntimeError):
        rt.run(main())


def test_sim_run_until_raises_if_main_is_not_done() -> None:
    rt = SimRuntime(1)

    async def main() -> None:
        await rt.sleep(10.0)

    with pytest.raises(TimeoutError):
        rt.run(main(), until=2.0)
    assert rt.now() == 2.0


def test_sim_run_until_stops_when_main_ends() -> None:
    rt = SimRuntime(1)
    ticks: list[float] = []

    async def background() -> None:
        while True:
            await rt.sleep(1.0)
            ticks.append(rt.now())

    async def main() -> str:
        rt.spawn(background())
        await rt.sleep(2.5)
        return "done"

    assert rt.run(main(), until=100.0) == "done"
    assert rt.now() == 2.5 and ticks == [1.0, 2.0]


def test_sim_run_blocking_takes_the_modeled_time() -> None:
    def cost(fn: Any) -> float:
        return 0.5

    rt = SimRuntime(1, blocking_cost=cost)

    async def main() -> int:
        value: int = await rt.run_blocking(pow, 2, 10)
        assert rt.now() == 0.5
        return value

    assert rt.run(main()) == 1024


def test_sim_run_until_raises_what_main_raised() -> None:
    rt = SimRuntime(1)

    async def main() -> None:
        await rt.sleep(1.0)
        raise ValueError("main failed")

    with pytest.raises(ValueError, match="main failed"):
        rt.run(main(), until=5.0)
    assert rt.now() == 1.0
