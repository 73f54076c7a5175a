"""What a filter and a weigher are: small named plug-ins over host columns.

A filter answers a boolean mask over the host rows (True passes); a weigher
answers raw weights. A filter whose answer depends only on the request and on
the static host attributes it ``watches`` gives a ``cache_key``, and the
scheduler reuses its mask for every request with the same key until one of the
watched version counters of :class:`HostStates` moves.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from nimbus.core.scheduler.config import SchedulerConfig
    from nimbus.core.scheduler.host_state import HostStates
    from nimbus.core.scheduler.instance_index import GroupMembers
    from nimbus.core.scheduler.request import RequestSpec

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Version counters of HostStates a cached mask may watch.
WATCHABLE = frozenset({"hosts_version", "service_version", "aggregates_version"})


@dataclass(slots=True)
class ScheduleContext:
    """What the filters and weighers see besides the request, for one instance of it.

    ``group`` is where the members of the request's server group run (the hosts
    running any, and how many on each), including instances placed earlier in the
    same multi-create batch; None when it has none. ``group_total`` is their sum.
    """

    config: SchedulerConfig
    instance_uuid: str | None = None
    group: GroupMembers | None = None
    group_total: int = 0


class HostFilter:
    """Base of the filters: ``mask`` answers which host rows pass."""

    name: ClassVar[str] = ""
    #: Version counters the mask depends on; empty means "compute it for every instance".
    watches: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: SchedulerConfig) -> None:
        self.config = config

    def cache_key(self, request: RequestSpec) -> Hashable:
        """The part of the request the mask depends on (used only when ``watches`` is set)."""
        return None

    def applies(self, request: RequestSpec) -> bool:
        """False when the mask passes every host for this request whatever the hosts
        (a server group filter for a request in no group): the scheduler skips it."""
        return True

    def mask(self, states: HostStates, request: RequestSpec,
             ctx: ScheduleContext) -> BoolArray | None:
        """True for each host row that passes; None when every host passes."""
        raise NotImplementedError


class HostWeigher:
    """Base of the weighers: ``weights`` answers a raw weight per host row.

    The scheduler normalizes raw weights to [0, 1] over the hosts that passed
    the filters, ``(w - lo) / (hi - lo)``, where ``hi`` is their maximum and
    ``lo`` is ``minval`` when set, else their minimum (all 0 when ``lo == hi``);
    then multiplies by the weigher's multiplier (the config ``option``, or the
    smallest value of that key in the host's aggregates' metadata; negated when
    ``negate``) and adds the weighers' scores up in order, as Nova does.
    """

    name: ClassVar[str] = ""
    option: ClassVar[str] = ""
    minval: ClassVar[float | None] = None
    negate: ClassVar[bool] = False
    #: The HostStates float column that :meth:`weights` always returns as is, if any:
    #: the scheduler's shortlist (see :mod:`shortlist`) then reads it for a few hosts only.
    column: ClassVar[str | None] = None

    def __init__(self, config: SchedulerConfig) -> None:
        self.config = config

    def applies(self, request: RequestSpec) -> bool:
        """False when every host weighs the same for this request whatever the hosts."""
        return True

    def weights(self, states: HostStates, request: RequestSpec,
                ctx: ScheduleContext) -> FloatArray | None:
        """Raw weights per host row (clamped at ``minval`` when set; the caller must not
        change the array); None when every host weighs the same for this request."""
        raise NotImplementedError

    def sparse_weights(self, states: HostStates, request: RequestSpec,
                       ctx: ScheduleContext) -> tuple[IntArray, FloatArray] | None:
        """The same weights, given as the rows whose weight is not 0 (ascending) and their
        weights, when few rows have one (0 elsewhere); None to use :meth:`weights`."""
        return None
