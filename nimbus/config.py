"""Configuration: frozen per-component sections, loaded from TOML, environment and flags.

There is no global configuration object. Each component declares its own frozen
section dataclass (``ApiConfig`` next to the API, ``RpcConfig`` next to RPC, the
process-level ones below) and is handed that section. :func:`load_config` builds a
:class:`NimbusConfig` from, in increasing precedence:

1. the defaults of each dataclass;
2. a TOML file: ``[api]`` / ``port = 9000``;
3. environment variables ``NIMBUS_<SECTION>__<KEY>``: ``NIMBUS_API__PORT=9000``;
4. overrides ``section.key=value``, from ``--set`` and the dedicated CLI flags.

Strings are converted to each field's type (``"9000"`` to an int, ``"true"`` to a
bool, ``"api,queue"`` to a tuple). An unknown section or key, a wrong type or an
out-of-range value is a :class:`ConfigError` naming the key and where it came from.
A field may declare ``metadata={"check": fn}``, where ``fn(value)`` returns an error
text or None, to validate its range.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import tomllib
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from nimbus.backends.fake.config import FakeDriverConfig
from nimbus.core.api.config import ApiConfig
from nimbus.core.api.placement.config import PlacementConfig
from nimbus.core.compute.config import ComputeConfig
from nimbus.core.conductor.config import ConductorConfig
from nimbus.core.errors import ConfigError
from nimbus.core.identity.config import IdentityConfig
from nimbus.core.image.config import ImageConfig
from nimbus.core.policy import DEFAULT_POLICY, Policy, PolicyError
from nimbus.core.rpc import RpcConfig
from nimbus.core.scheduler.config import SchedulerConfig
from nimbus.core.scheduler.service import SchedulerServiceConfig

ENV_PREFIX = "NIMBUS_"

LOG_LEVELS = ("CRITICAL", "DEBUG", "ERROR", "INFO", "WARNING")


def _log_level(value: str) -> str | None:
    if value.upper() in LOG_LEVELS:
        return None
    return f"unknown log level {value!r} (valid: {', '.join(LOG_LEVELS)})"


def _nonempty(value: str) -> str | None:
    return None if value.strip() else "expected a non-empty string"


def _positive(value: float) -> str | None:
    return None if value > 0 else "expected a number above 0"


def _not_negative(value: int | None) -> str | None:
    return None if value is None or value >= 0 else "expected 0 or more"


@dataclass(frozen=True, slots=True)
class TransportConfig:
    """The ``[transport]`` section: how services of different processes reach each other.

    ``kind`` is ``local`` (in-process) or ``zmq`` (through a ZeroMQ broker at
    ``broker_url``). ``run_broker`` makes this process run the broker too, as the
    ``queue`` service does.
    """

    kind: str = field(default="local", metadata={"check": _nonempty})
    broker_url: str = "tcp://127.0.0.1:5570"
    run_broker: bool = False


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """The ``[runtime]`` section: ``kind`` names the runtime; ``seed`` None draws from the OS."""

    kind: str = field(default="asyncio", metadata={"check": _nonempty})
    seed: int | None = None


def default_state_dir() -> str:
    """Where a process keeps its files by default: ``$XDG_DATA_HOME/nimbus``, else
    ``~/.local/share/nimbus`` (read when the configuration is loaded)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                           "share")
    return os.path.join(base, "nimbus")


#: What ``nimbus serve`` runs by default: a whole cloud in one process.
ALL_IN_ONE = ("api", "identity", "image", "placement", "scheduler", "conductor", "compute")

#: The fake hypervisors of the all-in-one cloud (``[compute] fake_hosts`` unset).
ALL_IN_ONE_FAKE_HOSTS = 3


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """The ``[serve]`` section: which services this process hosts, under which host name.

    The default is the whole cloud (:data:`ALL_IN_ONE`). ``state_dir`` holds the
    process's files: the default SQLite database, image data, the secrets made on
    first start and the ``clouds.yaml`` for the stock clients.
    """

    services: tuple[str, ...] = ALL_IN_ONE
    host: str = field(default_factory=socket.gethostname, metadata={"check": _nonempty})
    state_dir: str = field(default_factory=default_state_dir, metadata={"check": _nonempty})


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    """The ``[database]`` section: where state is kept.

    ``url`` is a SQLAlchemy URL (``sqlite:///path``, ``postgresql://user:pw@host/db``,
    ``mysql://user:pw@host/db``); empty means the SQLite file ``nimbus.sqlite`` in
    ``[serve] state_dir``, which ``nimbus serve`` creates and upgrades by itself. A
    PostgreSQL or MariaDB schema is upgraded by ``nimbus db upgrade``.
    ``reconnect_attempts`` is how often a transaction whose connection was lost is
    re-run on a fresh one; ``connect_timeout`` is seconds.
    """

    url: str = ""
    pool_size: int = field(default=10, metadata={"check": _positive})
    connect_timeout: float = field(default=10.0, metadata={"check": _positive})
    reconnect_attempts: int = field(default=3, metadata={"check": _not_negative})


@dataclass(frozen=True, slots=True)
class LogConfig:
    """The ``[log]`` section: ``level`` is a standard logging level name."""

    level: str = field(default="INFO", metadata={"check": _log_level})


@dataclass(frozen=True, slots=True)
class ComputeServiceConfig(ComputeConfig):
    """The ``[compute]`` section: Nova's compute options (:class:`ComputeConfig`), and the
    hypervisor.

    ``driver`` names the hypervisor driver (``fake``; see :mod:`nimbus.drivers`), whose
    settings are the ``[<driver>_driver]`` section. ``fake_hosts`` above 0 runs that many
    compute services in this process, ``<host>-1`` to ``<host>-N``, each on its own fake
    hypervisor (a cloud on one machine); 0 runs one, named ``[serve] host``. Unset, it
    is 3 for the all-in-one cloud (``[serve] services`` left at its default) and 0
    otherwise.
    """

    driver: str = field(default="fake", metadata={"check": _nonempty})
    fake_hosts: int | None = field(default=None, metadata={"check": _not_negative})


_FAKE = FakeDriverConfig()


@dataclass(frozen=True, slots=True)
class FakeDriverSection:
    """The ``[fake_driver]`` section: the fake hypervisor's capacity, timings and failures.

    The driver checks it (:class:`~nimbus.backends.fake.config.FakeDriverConfig`) when
    ``nimbus serve`` builds it, before anything starts. ``timings`` maps an operation to
    seconds or a distribution table (``spawn = {dist = "uniform", low = 1, high = 3}``),
    ``failure_rates`` an operation to a probability; ``cpu_info`` unset is one socket of
    ``vcpus`` cores.
    """

    vcpus: int = _FAKE.vcpus
    memory_mb: int = _FAKE.memory_mb
    local_gb: int = _FAKE.local_gb
    capabilities: tuple[str, ...] = tuple(sorted(_FAKE.capabilities))
    timings: dict[str, Any] = field(default_factory=dict)
    default_timing: float | dict[str, Any] = 0.0
    failure_rates: dict[str, float] = field(default_factory=dict)
    host_failure_rate: float = 0.0
    hypervisor_type: str = _FAKE.hypervisor_type
    hypervisor_version: int = _FAKE.hypervisor_version
    host_ip: str | None = None
    traits: tuple[str, ...] = ()
    cpu_info: dict[str, Any] | None = None
    supported_instances: tuple[tuple[str, str, str], ...] = _FAKE.supported_instances
    console_port_base: int = _FAKE.console_port_base

    def mapping(self) -> dict[str, Any]:
        """The driver's config mapping: every setting, but the unset optional ones."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) is not None}


@dataclass(frozen=True, slots=True)
class PolicySection:
    """The ``[policy]`` section: an operator's policy file (YAML or JSON, rule name ->
    check string, as Nova's ``policy.yaml``) over the shipped defaults
    (``nimbus policy sample`` prints them)."""

    file: str = ""


def load_policy(section: PolicySection) -> Policy:
    """The rules in force: the defaults with the file's rules over them; ``ConfigError``
    naming the file for one that cannot be read or does not parse."""
    if not section.file:
        return DEFAULT_POLICY
    try:
        data = yaml.safe_load(Path(section.file).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"[policy] file {section.file}: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"[policy] file {section.file}: expected a mapping of rule "
                          "names to check strings")
    try:
        return Policy(data)
    except PolicyError as exc:
        raise ConfigError(f"[policy] file {section.file}: {exc.message}") from None


@dataclass(frozen=True, slots=True)
class NimbusConfig:
    """Every section, composed; components receive only their own section."""

    api: ApiConfig = field(default_factory=ApiConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    scheduler: SchedulerServiceConfig = field(default_factory=SchedulerServiceConfig)
    filter_scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    conductor: ConductorConfig = field(default_factory=ConductorConfig)
    compute: ComputeServiceConfig = field(default_factory=ComputeServiceConfig)
    fake_driver: FakeDriverSection = field(default_factory=FakeDriverSection)
    rpc: RpcConfig = field(default_factory=RpcConfig)
    transport: TransportConfig = field(default_factory=TransportConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    log: LogConfig = field(default_factory=LogConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    policy: PolicySection = field(default_factory=PolicySection)


#: Section name -> its dataclass, the fields of NimbusConfig.
SECTIONS: Mapping[str, type[Any]] = {
    f.name: typing.get_type_hints(NimbusConfig)[f.name] for f in dataclasses.fields(NimbusConfig)
}


@dataclass(frozen=True, slots=True)
class Override:
    """One ``section.key=value`` setting and where it came from (for error messages)."""

    key: str
    value: str
    source: str


def load_config(
    path: str | None,
    env: Mapping[str, str],
    overrides: Sequence[str | Override] = (),
) -> NimbusConfig:
    """Build the configuration from defaults, a TOML file, the environment and overrides.

    ``overrides`` are ``"section.key=value"`` strings (from ``--set``) or
    :class:`Override` values (from dedicated flags); later ones win.
    """
    values: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    if path:
        for section, key, raw in _file_settings(path):
            _apply(values, section, key, raw, f"config file {path}", in_file=True)
    for name in sorted(env):
        if name.startswith(ENV_PREFIX) and "__" in name:
            section, _, key = name[len(ENV_PREFIX) :].partition("__")
            _apply(values, section.lower(), key.lower(), env[name], name)
    for item in overrides:
        ov = item if isinstance(item, Override) else _parse_set(item)
        section, _, key = ov.key.partition(".")
        _apply(values, section, key, ov.value, ov.source)
    return NimbusConfig(**{name: SECTIONS[name](**values[name]) for name in SECTIONS})


def _parse_set(item: str) -> Override:
    source = f"--set {item}"
    key, sep, value = item.partition("=")
    if not sep or "." not in key:
        raise ConfigError(f"{source}: expected SECTION.KEY=VALUE")
    return Override(key.strip(), value, source)


def _file_settings(path: str) -> Iterable[tuple[str, str, Any]]:
    where = f"config file {path}"
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: invalid TOML: {exc}") from None
    for section, table in doc.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: {section!r} is outside any [section] table")
        if section not in SECTIONS:
            raise ConfigError(f"{where}: unknown section [{section}] (valid: {_names(SECTIONS)})")
        for key, raw in table.items():
            yield section, key, raw


def _apply(
    values: dict[str, dict[str, Any]],
    section: str,
    key: str,
    raw: Any,
    where: str,
    *,
    in_file: bool = False,
) -> None:
    cls = SECTIONS.get(section)
    if cls is None:
        raise ConfigError(f"{where}: unknown section {section!r} (valid: {_names(SECTIONS)})")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    spec = fields.get(key)
    if spec is None:
        raise ConfigError(f"{where}: [{section}] unknown key {key!r} (valid: {_names(fields)})")
    what = f"{where}: [{section}] {key}" if in_file else where
    tp = typing.get_type_hints(cls)[key]
    value = _convert(raw, tp, what)
    check: Callable[[Any], str | None] | None = spec.metadata.get("check")
    problem = check(value) if check is not None else None
    if problem:
        raise ConfigError(f"{what}: {problem}")
    values[section][key] = value


def _convert(raw: Any, tp: Any, what: str) -> Any:
    """``raw`` as a value of type ``tp``; strings from env and flags are parsed leniently."""
    if isinstance(raw, str):
        if _is_optional(tp) and raw.strip().lower() in ("", "none", "null"):
            return None
        if typing.get_origin(tp) is tuple:
            raw = [part.strip() for part in raw.split(",") if part.strip()]
        elif _allows(tp, bool) and not _allows(tp, str):
            raw = raw.strip().lower()
            raw = {"yes": "true", "on": "true", "no": "false", "off": "false"}.get(raw, raw)
        elif not _allows(tp, str):
            raw = raw.strip()
    try:
        return msgspec.convert(raw, tp, strict=False)
    except msgspec.ValidationError:
        raise ConfigError(f"{what}: expected {_type_name(tp)}, got {raw!r}") from None


def _is_optional(tp: Any) -> bool:
    return _is_union(tp) and type(None) in typing.get_args(tp)


def _is_union(tp: Any) -> bool:
    return isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union


def _allows(tp: Any, kind: type) -> bool:
    members = typing.get_args(tp) if _is_union(tp) else (tp,)
    return kind in members


def _type_name(tp: Any) -> str:
    if _is_union(tp):
        return " or ".join(_type_name(t) for t in typing.get_args(tp))
    if tp is type(None):
        return "none"
    if typing.get_origin(tp) is tuple:
        return f"a comma-separated list of {_type_name(typing.get_args(tp)[0])}"
    if typing.get_origin(tp) is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _names(names: Iterable[str]) -> str:
    return ", ".join(sorted(names))


def configure_logging(config: LogConfig) -> None:
    """Log to stderr at the configured level."""
    logging.basicConfig(
        level=config.level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if config.level.upper() != "DEBUG":
        # alembic reports every step at INFO; a server's stderr stays quiet unless debugging
        logging.getLogger("alembic").setLevel(logging.WARNING)
