"""What a simulation run found: the figures the report prints, plots and saves.

The engine (:mod:`nimbus.sim.engine`) fills an :class:`Outcome`; the report
(:mod:`nimbus.sim.report`) renders it as text, JSON, PNG plots and a comparison
of two runs. Everything here is a plain value of the run's virtual time, so two
runs with one seed give equal outcomes, and equal JSON.
"""

from __future__ import annotations

import msgspec


class Sample(msgspec.Struct, frozen=True, kw_only=True):
    """The fleet at one moment of virtual time."""

    t: float
    hosts_up: int
    #: hosts up with no instance on them
    hosts_empty: int
    #: resource class (VCPU, MEMORY_MB, DISK_GB) -> units in use (allocations) over
    #: every host up
    used: dict[str, float]
    #: resource class -> usable capacity ((total - reserved) * allocation ratio) of the
    #: hosts up
    capacity: dict[str, float]
    #: resource class -> usable capacity of the hosts up that hold an instance
    capacity_nonempty: dict[str, float]
    #: resource class -> free units on hosts where another resource is exhausted
    #: (free VCPU on hosts that cannot fit the smallest flavor's memory, and the reverse)
    stranded: dict[str, float]
    instances_active: int
    #: instances in a task (building, resizing, migrating, deleting...)
    instances_busy: int
    #: requests refused so far, by reason
    refused: dict[str, int]
    #: messages sent but not yet delivered, by destination topic
    queues: dict[str, int]


class Latency(msgspec.Struct, frozen=True, kw_only=True):
    """Percentiles of a set of durations, in virtual seconds."""

    count: int = 0
    p50: float = 0.0
    p90: float = 0.0
    p99: float = 0.0
    max: float = 0.0
    mean: float = 0.0


class Violation(msgspec.Struct, frozen=True, kw_only=True):
    """An invariant that did not hold: which, on what, and the figures."""

    invariant: str
    subject: str
    detail: str
    t: float = 0.0


class Outcome(msgspec.Struct, kw_only=True):
    """A whole run."""

    scenario: str
    seed: int
    #: virtual seconds from the first arrival to the end of the run
    end_time: float = 0.0
    hosts: int = 0
    arrivals: int = 0
    #: servers the API accepted (each then became ACTIVE or ERROR)
    accepted: int = 0
    #: requests the API refused, by reason (``quota:instances``, ``policy``...)
    refused: dict[str, int] = {}
    #: accepted servers that went to ERROR, by reason (``NoValidHost:<filter>``,
    #: ``MaxRetriesExceeded``, ``driver``...)
    failed: dict[str, int] = {}
    active: int = 0
    time_to_active: Latency = Latency()
    #: lifecycle actions (resize, migrate, stop_start, reboot) -> outcome -> count
    actions: dict[str, dict[str, int]] = {}
    reschedules: int = 0
    migrations: int = 0
    #: hosts that crashed, and came back
    host_failures: int = 0
    host_recoveries: int = 0
    #: the largest number of hosts in use at once, and the fewest hosts of the fleet's
    #: classes that would have held that peak (first fit, largest flavors first)
    peak_hosts_used: int = 0
    hosts_needed: int = 0
    #: scheduling decisions and claim conflicts, from the scheduler
    decisions: int = 0
    claim_conflicts: int = 0
    samples: list[Sample] = []
    violations: list[Violation] = []
    #: server-group policy breaks found by the checker (must be 0)
    group_violations: int = 0

    def to_json(self) -> bytes:
        """The outcome as JSON, keys in a fixed order (runs with one seed compare equal)."""
        return msgspec.json.format(msgspec.json.encode(self, order="sorted"), indent=2)
