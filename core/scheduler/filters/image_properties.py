"""ImagePropertiesFilter: pass hosts that support the image's architecture, hypervisor and mode."""

from __future__ import annotations

import operator
import re
from collections.abc import Hashable, Mapping

import numpy as np

from nimbus.core.scheduler.filters.compute_capabilities import lookup
from nimbus.core.scheduler.host_state import HostStates
from nimbus.core.scheduler.plugins import BoolArray, HostFilter, ScheduleContext
from nimbus.core.scheduler.request import RequestSpec

_ARCH_ALIASES = {"i386": "i686", "i486": "i686", "i586": "i686", "x86_32": "i686",
                 "x86_32p": "i686", "amd64": "x86_64"}
_HV_ALIASES = {"xapi": "xen"}
_MODE_ALIASES = {"pv": "xen", "hv": "hvm", "baremetal": "hvm"}
_PREDICATE = re.compile(r"^\s*(<=|>=|<|>|!=|==)\s*([0-9][0-9.]*)\s*$")
_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
            "==": operator.eq, "!=": operator.ne}


def canonical(value: str | None, aliases: Mapping[str, str]) -> str | None:
    """Lower-case and resolve the historical aliases, as Nova's field types do."""
    if value is None:
        return None
    low = value.lower()
    return aliases.get(low, low)


def wanted(props: Mapping[str, str], default_arch: str | None) -> tuple[str | None, ...]:
    """The (architecture, hypervisor type, vm mode) an image asks for; None where it doesn't."""
    return (canonical(props.get("hw_architecture", default_arch), _ARCH_ALIASES),
            canonical(props.get("img_hv_type"), _HV_ALIASES),
            canonical(props.get("hw_vm_mode"), _MODE_ALIASES))


def _version(text: str) -> tuple[int, ...]:
    parts = [int(p) for p in text.split(".") if p != ""]
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def version_satisfies(hypervisor_version: int, predicate: str) -> bool:
    """``img_hv_requested_version`` (``">= 6.0, < 8"``) against an integer version
    (1000000 * major + 1000 * minor + micro); a malformed predicate is not met."""
    digits: list[int] = []
    rest = hypervisor_version
    while rest:
        rest, part = divmod(rest, 1000)
        digits.insert(0, part)
    have = _version(".".join(map(str, digits)))
    for clause in predicate.split(","):
        found = _PREDICATE.match(clause)
        if not found or not bool(_COMPARE[found.group(1)](have, _version(found.group(2)))):
            return False
    return True


def host_supports(supported: tuple[tuple[str, ...], ...], want: tuple[str | None, ...]) -> bool:
    """Some supported triple holds every asked-for value (Nova checks membership in the triple)."""
    return any(all(w is None or w in triple for w in want) for triple in supported)


def bits_ok(capabilities: Mapping[str, object], required: str | None) -> bool:
    """``hw_maxphysaddr_bits``: the host's CPU has at least that many (or does not say)."""
    if not required:
        return True
    bits = lookup(capabilities, ("cpu_info", "maxphysaddr", "bits"))
    try:
        return not bits or int(str(bits)) >= int(required)
    except ValueError:
        return False


class ImagePropertiesFilter(HostFilter):
    """Pass hosts whose supported instances match the image's ``hw_architecture``,
    ``img_hv_type`` and ``hw_vm_mode``, whose hypervisor version meets
    ``img_hv_requested_version`` and whose CPU has ``hw_maxphysaddr_bits``."""

    name = "ImagePropertiesFilter"
    watches = ("hosts_version",)

    def cache_key(self, request: RequestSpec) -> Hashable:
        return request.image_properties

    def mask(self, states: HostStates, request: RequestSpec,
             ctx: ScheduleContext) -> BoolArray | None:
        props = request.image_property_dict()
        want = wanted(props, self.config.image_properties_default_architecture)
        if not any(want):
            return None
        by_support = np.array([isinstance(s, tuple) and bool(s) and host_supports(s, want)
                               for s in states.supports.values], dtype=np.bool_)
        result: BoolArray = by_support[states.support]
        predicate = props.get("img_hv_requested_version")
        if predicate:
            versions, inverse = np.unique(states.hv_version, return_inverse=True)
            by_version = np.array([not v or version_satisfies(int(v), predicate)
                                   for v in versions], dtype=np.bool_)
            result &= by_version[inverse]
        required = props.get("hw_maxphysaddr_bits")
        if required:
            by_profile = np.array([isinstance(c, dict) and bits_ok(c, required)
                                   for c in states.profiles.values], dtype=np.bool_)
            result &= by_profile[states.profile]
        return result
