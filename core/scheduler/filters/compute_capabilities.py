"""ComputeCapabilitiesFilter: pass hosts whose capabilities satisfy the flavor's extra specs."""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping

import numpy as np

from nimbus.core.scheduler.extra_specs_ops import match
from nimbus.core.scheduler.host_state import HostStates
from nimbus.core.scheduler.plugins import BoolArray, HostFilter, ScheduleContext
from nimbus.core.scheduler.request import RequestSpec

_SCOPE = "capabilities"
Requirement = tuple[tuple[str, ...], str, bool]  # (path, requirement, only if present)


def requirements(extra_specs: Mapping[str, str]) -> list[Requirement]:
    """The extra specs this filter checks, as (capability path, requirement, optional).

    ``capabilities:a:b`` looks up ``a`` then ``b``; an unscoped key is checked only
    on hosts that report it (``optional``); keys of other scopes are not ours.
    ``hw:maxphysaddr_bits`` means ``capabilities:cpu_info:maxphysaddr:bits >= N``.
    """
    specs = dict(extra_specs)
    bits = specs.pop("hw:maxphysaddr_bits", None)
    if bits is not None:
        specs["capabilities:cpu_info:maxphysaddr:bits"] = ">= " + bits
    found: list[Requirement] = []
    for key, requirement in specs.items():
        scope = key.split(":")
        if len(scope) == 1:
            found.append(((key,), requirement, True))
        elif scope[0] == _SCOPE:
            found.append((tuple(scope[1:]), requirement, False))
    return found


def lookup(capabilities: Mapping[str, object], path: tuple[str, ...]) -> object | None:
    """Follow ``path`` into nested dicts (JSON strings are decoded on the way), or None."""
    value: object = capabilities
    for part in path:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return None
        if not isinstance(value, dict):
            return None
        value = value.get(part)
        if value is None:
            return None
    return value


def satisfies(capabilities: Mapping[str, object], reqs: list[Requirement]) -> bool:
    """True when one host's capabilities meet every requirement."""
    for path, requirement, optional in reqs:
        if optional and path[0] not in capabilities:
            continue
        value = lookup(capabilities, path)
        if value is None or not match(str(value), requirement):
            return False
    return True


class ComputeCapabilitiesFilter(HostFilter):
    """Pass hosts whose reported capabilities meet the flavor's ``capabilities:`` extra specs.

    Evaluated once per distinct capability set (hosts reporting the same share it).
    """

    name = "ComputeCapabilitiesFilter"
    watches = ("hosts_version",)

    def cache_key(self, request: RequestSpec) -> Hashable:
        return request.extra_specs

    def mask(self, states: HostStates, request: RequestSpec,
             ctx: ScheduleContext) -> BoolArray | None:
        reqs = requirements(request.extra_spec_dict())
        if not reqs:
            return None
        per_profile = np.array([isinstance(caps, dict) and satisfies(caps, reqs)
                                for caps in states.profiles.values], dtype=np.bool_)
        result: BoolArray = per_profile[states.profile]
        return result
