"""Claims in placement through the Store: the scheduler's claimer in a real cloud.

:class:`PlacementClaimer` is an :class:`~nimbus.core.scheduler.steps.AsyncClaimer`:

* ``candidates``: placement's pre-filter, ``allocation_candidates`` for the
  flavor's resources, with the required and forbidden traits of its
  ``trait:NAME=required|forbidden`` extra specs and the request's ``member_of``
  aggregate groups. Each allocation request is mapped to the host whose compute
  node (resource provider) it names, and kept: the claim on that host is that
  very request (a shared provider's part included);
* ``claim``: ``claim_allocations`` for the instance (the consumer is the instance
  uuid). Placement serializes claims with compare-and-swap on the providers'
  generations; a claim that loses the race after the Store's retries, or that
  finds the room gone (another scheduler, a column not yet refreshed), raises
  ``ConflictError``, and the scheduler claims its next host. Room found gone
  also refreshes that host's usage from placement. A consumer that already
  holds allocations is left as it is and the decision ends with
  :class:`AlreadyClaimed`: its request was served already (messages may be
  delivered twice), and moving the claim would leave it on a host the instance
  is not built on. No caller asks for a replacement: a reschedule claims its
  alternate itself, and a move first gives the instance's allocation to its
  migration;
* ``release``: deletes the instance's allocations.

After each claim or release the host's columns in :class:`HostStates` move by
the instance's amounts, so the next decision sees them at once.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from nimbus.core.db.store import Store
from nimbus.core.errors import (
    CapacityExceeded,
    ConflictError,
    GenerationConflict,
    InvalidInput,
    NotFound,
    SchedulingError,
)
from nimbus.core.runtime import Runtime
from nimbus.core.scheduler.host_spec import HostUsage
from nimbus.core.scheduler.host_state import HostStates
from nimbus.core.scheduler.plugins import IntArray
from nimbus.core.scheduler.request import RequestSpec

Allocations = dict[str, dict[str, int]]  # provider uuid -> class -> amount

#: placement's consumer_type for instances
CONSUMER_TYPE = "INSTANCE"

#: The classes a compute node's own provider holds (claimed there without a prefilter).
ROOT_CLASSES = frozenset({"VCPU", "MEMORY_MB", "DISK_GB"})


class AlreadyClaimed(SchedulingError):
    """The instance holds allocations already: its request was served (a redelivered
    select_destinations); nothing was claimed or moved (409)."""

    status = 409


class PlacementClaimer:
    """Placement through the Store, as the scheduler's claimer (see the module docstring).

    One request is scheduled at a time per claimer: the allocation requests that
    ``candidates`` found are kept for the claims of that request.
    """

    def __init__(self, store: Store, states: HostStates, runtime: Runtime, *,
                 prefilter: bool = True) -> None:
        self.store = store
        #: False: skip placement's candidates for plain requests (SchedulerConfig's
        #: ``placement_prefilter``)
        self.prefilter = prefilter
        self.states = states
        self.runtime = runtime
        self.claims = 0
        self.refused = 0
        self._offers: dict[int, Allocations] = {}
        self._offered_for: RequestSpec | None = None

    async def candidates(self, request: RequestSpec) -> IntArray | None:
        """Rows of the hosts placement offers; None for a request that asks no resource
        (placement takes none), or a plain one without the prefilter: ResourceFit then
        decides alone and the claim goes to the host's root provider."""
        resources = request.resources()
        required, forbidden = request.traits()
        plain = (not required and not forbidden and not request.member_of
                 and set(resources) <= ROOT_CLASSES)
        if not resources or (plain and not self.prefilter):
            self._offered_for = None
            return None
        found = await self.store.allocation_candidates(
            resources, required_traits=required, forbidden_traits=forbidden,
            member_of=request.member_of, summaries=False)
        offers: dict[int, Allocations] = {}
        for allocation in found.allocation_requests:
            for provider in allocation:
                row = self.states.row_of_uuid(provider)
                if row is not None:
                    offers.setdefault(row, allocation)
                    break
        self._offers, self._offered_for = offers, request
        return np.array(sorted(offers), dtype=np.int64)

    async def claim(self, row: int, request: RequestSpec, instance_uuid: str | None) -> None:
        """Allocate the instance on host ``row`` in placement; ``ConflictError`` when the
        race or the room is lost, ``AlreadyClaimed`` when the instance holds some already."""
        if instance_uuid is None:
            raise InvalidInput("a claim in placement needs the instance's uuid")
        allocation = self._offers.get(row) if self._offered_for is request else None
        if allocation is None:
            allocation = {self._provider(row): request.resources()}
        try:
            await self._claim(instance_uuid, allocation, request, None)
        except GenerationConflict as exc:  # a consumer exists only while it holds something
            raise AlreadyClaimed(f"instance {instance_uuid} holds allocations already: its "
                                 f"request was served") from exc
        except CapacityExceeded as exc:
            await self._refused(row, exc)
        except NotFound as exc:  # the host's provider went away
            self.refused += 1
            raise ConflictError(f"host {self.states.name(row)}: {exc.message}") from exc
        except ConflictError:
            self.refused += 1
            raise
        self.states.apply_claim(row, request.vcpus, request.memory_mb, request.disk_gb)
        self.claims += 1

    async def release(self, row: int, request: RequestSpec, instance_uuid: str | None) -> None:
        """Delete the instance's allocations, and take its amounts off host ``row``."""
        if instance_uuid is not None:
            try:
                await self.store.delete_allocations(instance_uuid)
            except NotFound:
                pass  # nothing held: nothing to give back
        self.states.release_claim(row, request.vcpus, request.memory_mb, request.disk_gb)

    async def _claim(self, instance_uuid: str, allocation: Allocations, request: RequestSpec,
                     generation: int | None) -> None:
        await self.store.claim_allocations(
            instance_uuid, allocation, project_id=request.project_id,
            user_id=request.user_id or request.project_id, now=self.runtime.wall_time(),
            consumer_generation=generation, consumer_type=CONSUMER_TYPE)

    async def _refused(self, row: int, exc: CapacityExceeded) -> None:
        """The room went under our columns: read the host's usage again, then conflict."""
        self.refused += 1
        try:
            used = await self.store.usages_for_provider(self._provider(row))
        except NotFound:
            used = None
        if used is not None:
            s = self.states
            usage = HostUsage(float(used.get("VCPU", 0)), float(used.get("MEMORY_MB", 0)),
                              float(used.get("DISK_GB", 0)), int(s.num_instances[row]),
                              int(s.io_ops[row]), int(s.failed_builds[row]))
            s.update_usage(row, usage)
        raise ConflictError(f"host {self.states.name(row)}: {exc.message}") from exc

    def _provider(self, row: int) -> str:
        spec = self.states.specs[row]
        if spec is None or spec.uuid is None:
            raise NotFound(f"host in row {row} has no resource provider")
        return spec.uuid


def with_instance_uuids(request: RequestSpec, runtime: Runtime) -> RequestSpec:
    """The request with a fresh uuid for each instance, unless it names them."""
    if request.instance_uuids:
        return request
    return replace(request, instance_uuids=tuple(
        runtime.new_id() for _ in range(request.num_instances)))
