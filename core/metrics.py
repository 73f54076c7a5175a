"""Prometheus metrics, the same in real services and in simulation.

Each process (or each simulation run) owns one :class:`Metrics` with its own
registry; nothing is global, so two simulations in one process never mix their
figures. Durations are measured with ``Runtime.now()``, so the simulator
reports them in virtual time.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import generate_latest

#: Buckets in seconds, from an in-process call (~50 us) to a slow boot.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)


#: Buckets for boot-to-ACTIVE times, from a fake driver's instant to a slow real host.
BUILD_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
                 300.0, 600.0)


class Metrics:
    """Every metric Nimbus exports, on one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # The *_created series double what a scrape carries and no dashboard reads them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.http_requests = Counter(
            "nimbus_http_requests", "HTTP requests answered",
            ["method", "route", "status"], registry=r,
        )
        self.http_latency = Histogram(
            "nimbus_http_request_seconds", "Time to answer an HTTP request",
            ["method", "route"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.rpc_calls = Counter(
            "nimbus_rpc_calls", "RPC calls made, by outcome (ok, error, timeout)",
            ["type", "outcome"], registry=r,
        )
        self.rpc_call_latency = Histogram(
            "nimbus_rpc_call_seconds", "Round trip of an RPC call",
            ["type"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.rpc_sent = Counter(
            "nimbus_rpc_messages_sent", "Messages sent, by kind (call, cast, fanout, reply)",
            ["kind"], registry=r,
        )
        self.rpc_handled = Counter(
            "nimbus_rpc_handled", "Requests handled by a service, by outcome",
            ["type", "outcome"], registry=r,
        )
        self.rpc_handle_latency = Histogram(
            "nimbus_rpc_handle_seconds", "Time a service spent handling a request",
            ["type"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.rpc_dropped = Counter(
            "nimbus_rpc_dropped", "Messages dropped, by reason",
            ["reason"], registry=r,
        )
        self.rpc_inflight = Gauge(
            "nimbus_rpc_inflight_calls", "RPC calls waiting for a reply", registry=r,
        )
        self.periodic_runs = Counter(
            "nimbus_periodic_task_runs", "Periodic task runs, by outcome",
            ["task", "outcome"], registry=r,
        )
        self.scheduler_requests = Counter(
            "nimbus_scheduler_requests", "select_destinations requests, by outcome "
            "(placed, no_valid_host, error)", ["outcome"], registry=r,
        )
        self.scheduler_instances = Counter(
            "nimbus_scheduler_instances_placed", "Instances placed by the scheduler", registry=r,
        )
        self.scheduler_conflicts = Counter(
            "nimbus_scheduler_claim_conflicts",
            "Claims that lost a race or found the room gone (the scheduler tried the next host)",
            registry=r,
        )
        self.scheduler_latency = Histogram(
            "nimbus_scheduler_seconds", "Time to answer select_destinations, claims included",
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.scheduler_hosts = Gauge(
            "nimbus_scheduler_hosts", "Compute hosts the scheduler knows, by state (up, down, "
            "disabled)", ["state"], registry=r,
        )

        self.instance_events = Counter(
            "nimbus_instance_action_events", "Steps of instance actions finished by compute and "
            "the conductor, by event (compute_reboot_instance ...) and result (Success, Error)",
            ["event", "result"], registry=r,
        )
        self.builds = Counter(
            "nimbus_instance_builds", "Instance builds ended, by outcome (active, rescheduled, "
            "error)", ["outcome"], registry=r,
        )
        self.build_latency = Histogram(
            "nimbus_instance_build_seconds", "Time from the create request to ACTIVE",
            buckets=BUILD_BUCKETS, registry=r,
        )

    def child(self, metric: Any, *values: str) -> Any:
        """``metric.labels(*values)``, looked up once: the hot paths (each RPC message)
        count through it."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


#: The content type of :meth:`Metrics.render`.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
