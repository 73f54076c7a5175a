"""The seam between the scheduler's array work and claims that wait: a decision as steps.

Ranking hosts is synchronous numpy work; a claim in placement is a database
transaction, which waits. So :meth:`Scheduler.placing` is written once, as a
generator that does all the deciding and *yields* what it needs of the
claimer, sans-IO in the manner of h11:

* :data:`OFFER`: which hosts placement offers (answer: host rows, or None);
* :class:`Claim`: allocate one instance on a host (answer: True, or False when
  the claim lost a race, a :class:`~nimbus.core.errors.ConflictError`);
* :class:`Release`: give a claim back, when a batch fails part way (answer: None).

:func:`drive` answers the steps with a synchronous :class:`Claimer` (the
in-memory one, in simulations and benchmarks: no event loop in the way), and
:func:`drive_async` with an :class:`AsyncClaimer` (placement through the Store).
An error raised by the claimer is thrown into the generator, which releases
what the batch claimed before it lets the error out.
"""

from __future__ import annotations

from collections.abc import Generator
from inspect import isawaitable
from typing import Any, NamedTuple, Protocol

import numpy as np

from nimbus.core.errors import ConflictError
from nimbus.core.scheduler.claims import Claimer
from nimbus.core.scheduler.plugins import IntArray
from nimbus.core.scheduler.request import RequestSpec, Selection


class Offer(NamedTuple):
    """Step: ask which host rows placement offers for the request."""


class Claim(NamedTuple):
    """Step: allocate one instance of the request on host ``row``."""

    row: int
    instance_uuid: str | None


class Release(NamedTuple):
    """Step: give back a claim made earlier in the same request."""

    row: int
    instance_uuid: str | None


OFFER = Offer()
Step = Offer | Claim | Release
#: A decision in steps: yields steps, is sent their answers, returns the selections.
Steps = Generator[Step, Any, list[Selection]]


class AsyncClaimer(Protocol):
    """Placement as the scheduler sees it, when claims wait (see :class:`Claimer`)."""

    async def candidates(self, request: RequestSpec) -> IntArray | None:
        """Host rows placement offers for the request, or None to rely on ResourceFit."""
        ...

    async def claim(self, row: int, request: RequestSpec, instance_uuid: str | None) -> None:
        """Allocate one instance of ``request`` on host ``row``, or raise ConflictError."""
        ...

    async def release(self, row: int, request: RequestSpec, instance_uuid: str | None) -> None:
        """Give back what :meth:`claim` allocated."""
        ...


def drive(steps: Steps, claimer: Claimer | AsyncClaimer,
          request: RequestSpec) -> list[Selection]:
    """Run a decision with a synchronous claimer; its selections."""
    answer: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = steps.throw(error) if error is not None else steps.send(answer)
        except StopIteration as done:
            result: list[Selection] = done.value
            return result
        error = None
        try:
            if type(step) is Claim:
                try:
                    waits = claimer.claim(step.row, request, step.instance_uuid)
                    if waits is not None:  # a claimer that waits answers an awaitable
                        _now(waits)
                    answer = True
                except ConflictError:
                    answer = False
            elif type(step) is Release:
                answer = _now(claimer.release(step.row, request, step.instance_uuid))
            else:
                answer = claimer.candidates(request)
                if answer is not None and type(answer) is not np.ndarray:
                    answer = _now(answer)
        except BaseException as exc:
            error = exc


async def drive_async(steps: Steps, claimer: Claimer | AsyncClaimer,
                      request: RequestSpec) -> list[Selection]:
    """Run a decision with a claimer whose answers may be awaited; its selections."""
    answer: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = steps.throw(error) if error is not None else steps.send(answer)
        except StopIteration as done:
            result: list[Selection] = done.value
            return result
        error = None
        try:
            if type(step) is Claim:
                try:
                    await _settle(claimer.claim(step.row, request, step.instance_uuid))
                    answer = True
                except ConflictError:
                    answer = False
            elif type(step) is Release:
                answer = await _settle(claimer.release(step.row, request, step.instance_uuid))
            else:
                answer = await _settle(claimer.candidates(request))
        except BaseException as exc:
            error = exc


def _now(value: Any) -> Any:
    if value is None or type(value) is np.ndarray:  # what claimers answer, checked cheaply
        return value
    if isawaitable(value):
        close = getattr(value, "close", None)
        if close is not None:
            close()  # a coroutine never awaited would warn
        raise TypeError("this claimer waits: use Scheduler.select_destinations_async")
    return value


async def _settle(value: Any) -> Any:
    return await value if isawaitable(value) else value
