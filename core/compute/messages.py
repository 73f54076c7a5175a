"""Messages to compute and to the conductor about builds and deletes.

Casts to one compute host go to its host topic ``compute.<host>``; the
conductor is reached on its service topic ``conductor``. Each carries the
``request_id`` of the user's request so that every step is recorded under the
same instance action. The messages of other action families live beside their
handlers (power, moves, shelving...).
"""

from __future__ import annotations

from dataclasses import dataclass

from nimbus.core.messages import message
from nimbus.core.scheduler.request import RequestSpec


def compute_topic(host: str) -> str:
    """The topic of the compute service of ``host``."""
    return f"compute.{host}"


@message("compute.build_and_run_instance")
@dataclass(frozen=True, slots=True)
class BuildAndRunInstance:
    """Spawn an instance the scheduler placed (and claimed) on this host.

    ``spec`` is the request for this one instance; ``alternates`` are hosts to
    try, in order, if the build fails here; ``attempt`` counts the hosts tried.
    """

    instance_uuid: str
    request_id: str
    spec: RequestSpec
    alternates: tuple[str, ...] = ()
    attempt: int = 1
    admin_password: str | None = None


@message("compute.terminate_instance")
@dataclass(frozen=True, slots=True)
class TerminateInstance:
    """Destroy an instance's guest, free its resources and mark it deleted."""

    instance_uuid: str
    request_id: str


@message("conductor.build_instances")
@dataclass(frozen=True, slots=True)
class BuildInstances:
    """Schedule and build the instances of a request (their records exist, in
    ``building``/``scheduling``); ``spec.instance_uuids`` names them."""

    request_id: str
    spec: RequestSpec
    admin_password: str | None = None


@message("conductor.reschedule_instance")
@dataclass(frozen=True, slots=True)
class RescheduleInstance:
    """A build failed on ``failed_host``: try the next alternate, or fail the build."""

    instance_uuid: str
    request_id: str
    spec: RequestSpec
    alternates: tuple[str, ...]
    attempt: int
    failed_host: str
    reason: str
    admin_password: str | None = None
