"""Configuration of the fake driver: capacity, capabilities, timings and failure rates.

Built from the plain mapping a :class:`~nimbus.core.compute.driver.DriverContext`
carries (a config file section or a simulation scenario's host class). Every
value is checked here, once, so a typo fails at start-up with a ``ConfigError``
naming the key instead of as a strange simulation hours later.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from nimbus.core.compute import driver as d
from nimbus.core.compute.driver import ALL_CAPABILITIES, HypervisorDriver
from nimbus.core.errors import ConfigError

#: Every operation of the driver interface: the names ``timings`` and ``failure_rates`` take.
OPERATIONS: tuple[str, ...] = tuple(sorted(
    name for name, value in vars(HypervisorDriver).items()
    if not name.startswith("_") and callable(value)
))

#: The capability each optional operation needs (the others are mandatory; get_console
#: needs the one its kind names in CONSOLE_KINDS).
NEEDS: dict[str, str] = {
    "pause": d.PAUSE, "unpause": d.PAUSE, "suspend": d.SUSPEND, "resume": d.SUSPEND,
    "rescue": d.RESCUE, "unrescue": d.RESCUE, "snapshot": d.SNAPSHOT, "rebuild": d.REBUILD,
    **dict.fromkeys(("migrate_disk_and_power_off", "finish_migration", "confirm_migration",
                     "finish_revert_migration"), d.RESIZE),
    **dict.fromkeys(("check_can_live_migrate_destination", "check_can_live_migrate_source",
                     "pre_live_migration", "live_migration", "post_live_migration",
                     "post_live_migration_at_destination",
                     "rollback_live_migration_at_destination"), d.LIVE_MIGRATION),
    "get_console_output": d.CONSOLE_OUTPUT,
}

#: The parameters of each timing distribution, in the order :class:`Timing` keeps them.
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "constant": ("value",),
    "uniform": ("low", "high"),
    "lognormal": ("median", "sigma"),
    "exponential": ("mean",),
}


@dataclass(frozen=True, slots=True)
class Timing:
    """How long an operation takes: a distribution and its (up to two) parameters."""

    dist: str = "constant"
    a: float = 0.0
    b: float = 0.0

    @property
    def always_zero(self) -> bool:
        """True when every draw is 0 s (the operation never waits, nor draws from the rng)."""
        return (self.dist == "constant" and self.a == 0.0) or (
            self.dist == "uniform" and self.b == 0.0)

    def draw(self, rng: random.Random) -> float:
        """One duration in seconds; constant timings do not touch ``rng``."""
        if self.dist == "constant":
            return self.a
        if self.dist == "uniform":
            return rng.uniform(self.a, self.b)
        if self.dist == "lognormal":
            return rng.lognormvariate(math.log(self.a), self.b)
        return rng.expovariate(1.0 / self.a)  # exponential, a = mean


def _number(key: str, value: Any, low: float = 0.0, high: float = math.inf) -> float:
    # bool is an int to Python, never a meaningful number of seconds or a probability
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigError(f"fake driver config {key}: expected a number, got {value!r}")
    if not low <= value <= high:
        bounds = f"{low} or more" if high == math.inf else f"between {low} and {high}"
        raise ConfigError(f"fake driver config {key}: expected {bounds}, got {value!r}")
    return float(value)


def _integer(key: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"fake driver config {key}: expected an integer of {low} or more, "
                          f"got {value!r}")
    return value


def _names(key: str, value: Any) -> tuple[str, ...]:
    # a bare string is a sequence too, of letters: refuse it rather than split it
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, set, frozenset)):
        raise ConfigError(f"fake driver config {key}: expected a list of names, got {value!r}")
    for name in value:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"fake driver config {key}: expected names, got {name!r}")
    return tuple(value)


def _mapping(key: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"fake driver config {key}: expected a mapping, got {value!r}")
    return value


def _operation(key: str, op: Any) -> str:
    if op not in OPERATIONS:
        raise ConfigError(f"fake driver config {key}: unknown operation {op!r}; "
                          f"valid operations: {', '.join(OPERATIONS)}")
    return str(op)


def parse_timing(key: str, spec: Any) -> Timing:
    """A :class:`Timing` from a number of seconds or a ``{"dist": ..., ...}`` mapping."""
    if not isinstance(spec, Mapping):
        return Timing("constant", _number(key, spec))
    dist = spec.get("dist")
    if not isinstance(dist, str) or dist not in DISTRIBUTIONS:
        raise ConfigError(f"fake driver config {key}.dist: unknown distribution {dist!r}; "
                          f"valid distributions: {', '.join(DISTRIBUTIONS)}")
    params = DISTRIBUTIONS[dist]
    extra = sorted(set(spec) - {"dist", *params})
    if extra:
        raise ConfigError(f"fake driver config {key}: unknown keys {', '.join(map(str, extra))} "
                          f"for a {dist} timing; it takes {', '.join(params)}")
    missing = [p for p in params if p not in spec]
    if missing:
        raise ConfigError(f"fake driver config {key}.{missing[0]}: missing for a {dist} timing")
    values = [_number(f"{key}.{p}", spec[p]) for p in params]
    if dist == "uniform" and values[0] > values[1]:
        raise ConfigError(f"fake driver config {key}: low {values[0]} is above high {values[1]}")
    if dist in ("lognormal", "exponential") and values[0] <= 0.0:
        raise ConfigError(f"fake driver config {key}.{params[0]}: expected above 0, "
                          f"got {values[0]!r}")
    return Timing(dist, *values)


def default_cpu_info(vcpus: int) -> dict[str, Any]:
    """The cpu_info a fake host reports unless configured: one socket of ``vcpus`` cores."""
    return {"arch": "x86_64", "model": "fake-cpu", "vendor": "Nimbus",
            "topology": {"sockets": 1, "cores": vcpus, "threads": 1}, "features": []}


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class FakeDriverConfig:
    """The fake driver's settings; build it with :meth:`from_mapping`.

    ``timings`` and ``failure_rates`` are keyed by operation name (a method of
    the driver interface); an operation with no entry takes ``default_timing``
    and fails only through ``host_failure_rate``.
    """

    capabilities: frozenset[str] = ALL_CAPABILITIES
    timings: Mapping[str, Timing] = field(default_factory=lambda: _frozen({}))
    default_timing: Timing = Timing()
    failure_rates: Mapping[str, float] = field(default_factory=lambda: _frozen({}))
    host_failure_rate: float = 0.0
    vcpus: int = 16
    memory_mb: int = 65536
    local_gb: int = 1000
    hypervisor_type: str = "fake"
    hypervisor_version: int = 1
    host_ip: str | None = None
    traits: frozenset[str] = frozenset()
    cpu_info: Mapping[str, Any] = field(default_factory=lambda: _frozen(default_cpu_info(16)))
    supported_instances: tuple[tuple[str, str, str], ...] = (("x86_64", "fake", "hvm"),)
    console_port_base: int = 5900

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> FakeDriverConfig:
        """Check and convert a plain config mapping; ``ConfigError`` names a bad key."""
        valid = cls.__dataclass_fields__
        unknown = sorted(set(config) - set(valid))
        if unknown:
            raise ConfigError(f"fake driver config: unknown key {unknown[0]!r}; "
                              f"valid keys: {', '.join(sorted(valid))}")
        c = config
        vcpus = _integer("vcpus", c.get("vcpus", 16), 1)
        return cls(
            capabilities=_capabilities(c.get("capabilities", sorted(ALL_CAPABILITIES))),
            timings=_frozen({_operation(f"timings.{op}", op): parse_timing(f"timings.{op}", s)
                             for op, s in _mapping("timings", c.get("timings", {})).items()}),
            default_timing=parse_timing("default_timing", c.get("default_timing", 0.0)),
            failure_rates=_frozen({
                _operation(f"failure_rates.{op}", op): _number(f"failure_rates.{op}", p, 0, 1)
                for op, p in _mapping("failure_rates", c.get("failure_rates", {})).items()}),
            host_failure_rate=_number("host_failure_rate", c.get("host_failure_rate", 0.0), 0, 1),
            vcpus=vcpus,
            memory_mb=_integer("memory_mb", c.get("memory_mb", 65536), 1),
            local_gb=_integer("local_gb", c.get("local_gb", 1000), 0),
            hypervisor_type=_text("hypervisor_type", c.get("hypervisor_type", "fake")),
            hypervisor_version=_integer("hypervisor_version", c.get("hypervisor_version", 1), 0),
            host_ip=_optional_text("host_ip", c.get("host_ip")),
            traits=frozenset(_names("traits", c.get("traits", ()))),
            cpu_info=_frozen(_mapping("cpu_info", c.get("cpu_info", default_cpu_info(vcpus)))),
            supported_instances=_triples(c.get("supported_instances",
                                               (("x86_64", "fake", "hvm"),))),
            console_port_base=_port_base(c.get("console_port_base", 5900)),
        )


def _capabilities(value: Any) -> frozenset[str]:
    names = _names("capabilities", value)
    for name in names:
        if name not in ALL_CAPABILITIES:
            raise ConfigError(f"fake driver config capabilities: unknown capability {name!r}; "
                              f"valid capabilities: {', '.join(sorted(ALL_CAPABILITIES))}")
    return frozenset(names)


def _port_base(value: Any) -> int:
    base = _integer("console_port_base", value, 1)
    if base > 65535:
        raise ConfigError(f"fake driver config console_port_base: expected a TCP port, "
                          f"got {value!r}")
    return base


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"fake driver config {key}: expected a non-empty string, got {value!r}")
    return value


def _optional_text(key: str, value: Any) -> str | None:
    return None if value is None else _text(key, value)


def _triples(value: Any) -> tuple[tuple[str, str, str], ...]:
    key = "supported_instances"
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(f"fake driver config {key}: expected a list of "
                          f"[arch, hypervisor type, vm mode], got {value!r}")
    triples = []
    for item in value:
        if (isinstance(item, (str, bytes)) or not isinstance(item, Sequence) or len(item) != 3
                or not all(isinstance(part, str) and part for part in item)):
            raise ConfigError(f"fake driver config {key}: expected "
                              f"[arch, hypervisor type, vm mode], got {item!r}")
        triples.append((item[0], item[1], item[2]))
    return tuple(triples)
