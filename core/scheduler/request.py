"""What the scheduler is asked and what it answers: request specs, server groups, selections.

A :class:`RequestSpec` is frozen and hashable: its mappings (flavor extra specs,
image properties, scheduler hints) are stored as sorted tuples of pairs, so a
filter can use a piece of the request directly as the key of a cached mask.
Build one with :meth:`RequestSpec.build`, which takes plain dicts. It is also a
message body as it is (nested frozen dataclasses and tuples, which msgspec
encodes); a malformed one is an :class:`InvalidRequestSpec`, which is a
``ValueError`` too, so that decoding one off the wire fails as a validation error.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from nimbus.core.errors import InvalidInput

Pairs = tuple[tuple[str, str], ...]
Hints = tuple[tuple[str, tuple[str, ...]], ...]

#: Server group policies, as Nova names them.
POLICIES = frozenset({"affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"})

_TRAIT = "trait:"  # flavor extra specs trait:CUSTOM_X=required|forbidden, as Nova reads them


class InvalidRequestSpec(InvalidInput, ValueError):
    """A request spec or server group spec is malformed (400)."""


def _pairs(mapping: Mapping[str, object] | None) -> Pairs:
    return tuple(sorted((str(k), str(v)) for k, v in (mapping or {}).items()))


def _hints(mapping: Mapping[str, str | Iterable[str]] | None) -> Hints:
    out = []
    for key, value in (mapping or {}).items():
        values = (value,) if isinstance(value, str) else tuple(value)
        out.append((key, values))
    return tuple(sorted(out))


@dataclass(frozen=True, slots=True)
class ServerGroupSpec:
    """The server group an instance joins: its policy and, for anti-affinity, its rule.

    Where its members already run is known to :class:`HostStates` (instances
    are recorded there with their group), so the request names the group only.
    """

    uuid: str
    policy: str
    max_server_per_host: int = 1

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise InvalidRequestSpec(f"unknown server group policy {self.policy!r}; "
                                     f"valid policies: {', '.join(sorted(POLICIES))}")
        if self.max_server_per_host < 1:
            raise InvalidRequestSpec("max_server_per_host must be at least 1")


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One boot request: a flavor, an image, where, with whom, and how many.

    ``num_instances`` is the max count; the request succeeds when at least
    ``min_count`` instances are placed (Nova asks the scheduler for all of them,
    which is the default ``min_count=None``). ``instance_uuids``, when given,
    has one uuid per instance (placement's consumers). ``member_of`` are groups
    of placement aggregate uuids: placement offers only hosts in at least one
    aggregate of each group. ``ignore_hosts`` are hosts the request must not land on
    (a move's source; every host but the target of a move to a named host).
    """

    vcpus: int
    memory_mb: int
    root_gb: int = 0
    ephemeral_gb: int = 0
    swap_mb: int = 0
    extra_specs: Pairs = ()
    image_properties: Pairs = ()
    project_id: str = ""
    availability_zone: str | None = None
    scheduler_hints: Hints = ()
    group: ServerGroupSpec | None = None
    num_instances: int = 1
    min_count: int | None = None
    instance_uuids: tuple[str, ...] = ()
    flavor_name: str = ""
    user_id: str = ""
    member_of: tuple[tuple[str, ...], ...] = ()
    ignore_hosts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.num_instances < 1:
            raise InvalidRequestSpec("num_instances must be at least 1")
        if self.min_count is not None and not 1 <= self.min_count <= self.num_instances:
            raise InvalidRequestSpec("min_count must be between 1 and num_instances")
        if self.instance_uuids and len(self.instance_uuids) != self.num_instances:
            raise InvalidRequestSpec("instance_uuids must have one uuid per instance")
        if min(self.vcpus, self.memory_mb, self.root_gb, self.ephemeral_gb, self.swap_mb) < 0:
            raise InvalidRequestSpec("flavor amounts must not be negative")

    @classmethod
    def build(
        cls,
        vcpus: int,
        memory_mb: int,
        root_gb: int = 0,
        *,
        ephemeral_gb: int = 0,
        swap_mb: int = 0,
        extra_specs: Mapping[str, object] | None = None,
        image_properties: Mapping[str, object] | None = None,
        project_id: str = "",
        availability_zone: str | None = None,
        scheduler_hints: Mapping[str, str | Iterable[str]] | None = None,
        group: ServerGroupSpec | None = None,
        num_instances: int = 1,
        min_count: int | None = None,
        instance_uuids: Iterable[str] = (),
        flavor_name: str = "",
        user_id: str = "",
        member_of: Iterable[Iterable[str]] = (),
        ignore_hosts: Iterable[str] = (),
    ) -> RequestSpec:
        """A request from plain mappings (dicts are sorted into tuples of pairs)."""
        return cls(
            vcpus, memory_mb, root_gb, ephemeral_gb, swap_mb, _pairs(extra_specs),
            _pairs(image_properties), project_id, availability_zone, _hints(scheduler_hints),
            group, num_instances, min_count, tuple(instance_uuids), flavor_name, user_id,
            tuple(tuple(sorted(g)) for g in member_of), tuple(sorted(set(ignore_hosts))),
        )

    @property
    def disk_gb(self) -> int:
        """DISK_GB asked of placement: root + ephemeral + swap rounded up to whole GiB."""
        return self.root_gb + self.ephemeral_gb + math.ceil(self.swap_mb / 1024)

    def resources(self) -> dict[str, int]:
        """What one instance asks of placement: class -> amount (amounts of 0 left out)."""
        asked = {"VCPU": self.vcpus, "MEMORY_MB": self.memory_mb, "DISK_GB": self.disk_gb}
        return {rc: n for rc, n in asked.items() if n}

    def traits(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(required, forbidden) traits from the flavor's ``trait:NAME`` extra specs."""
        required, forbidden = [], []
        for key, value in self.extra_specs:
            if key.startswith(_TRAIT):
                if value == "required":
                    required.append(key[len(_TRAIT):])
                elif value == "forbidden":
                    forbidden.append(key[len(_TRAIT):])
        return tuple(required), tuple(forbidden)

    @property
    def min_instances(self) -> int:
        """How many instances must be placed for the request to succeed."""
        return self.num_instances if self.min_count is None else self.min_count

    def extra_spec_dict(self) -> dict[str, str]:
        """The flavor extra specs as a dict."""
        return dict(self.extra_specs)

    def image_property_dict(self) -> dict[str, str]:
        """The image properties as a dict."""
        return dict(self.image_properties)

    def hint(self, name: str) -> tuple[str, ...]:
        """The values of scheduler hint ``name`` (empty when absent)."""
        for key, values in self.scheduler_hints:
            if key == name:
                return values
        return ()

    def instance_uuid(self, n: int) -> str | None:
        """The uuid of the ``n``-th instance of the request, if uuids were given."""
        return self.instance_uuids[n] if self.instance_uuids else None


@dataclass(frozen=True, slots=True)
class Selection:
    """Where one instance goes: the claimed host, its weight, and alternates for reschedules.

    Alternates are not claimed; the conductor claims one if the build on the
    chosen host fails.
    """

    instance_uuid: str | None
    host: str
    host_index: int
    weight: float
    alternates: tuple[str, ...] = ()
    alternate_indices: tuple[int, ...] = ()
