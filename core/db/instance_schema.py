"""The ``instances`` table and its records: the servers users boot.

An instance row holds what Nova spreads over ``instances`` and
``instance_extra``: the flavor snapshot (whole, as JSON, plus ``vcpus``,
``memory_mb``, ``root_gb`` and ``ephemeral_gb`` as columns for quota counting
and scheduling), user and system metadata as JSON, and the state machine
(``vm_state``, ``task_state``, ``power_state``). The Store methods are in
:mod:`nimbus.core.db.instances`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import Column, Double, Index, Integer, String, Table, Text
from sqlalchemy.dialects.mysql import MEDIUMTEXT

from nimbus.core.db.database import Row
from nimbus.core.db.meta import (
    NAME_LEN,
    dumps,
    flag,
    id_column,
    loads,
    metadata,
    soft_delete_columns,
    time_columns,
    uuid_column,
)

#: Up to 16 MiB on MariaDB, where TEXT stops at 64 KiB (user data may be larger).
LONG_TEXT = Text().with_variant(MEDIUMTEXT(), "mysql", "mariadb")

BUILDING, DELETED, SOFT_DELETED = "building", "deleted", "soft-delete"
SCHEDULING = "scheduling"

instances = Table(
    "instances", metadata,
    id_column(),
    uuid_column(unique=True),
    Column("project_id", String(NAME_LEN), nullable=False),
    Column("user_id", String(NAME_LEN), nullable=False),
    Column("display_name", String(NAME_LEN), nullable=True),
    Column("display_description", String(NAME_LEN), nullable=True),
    Column("hostname", String(NAME_LEN), nullable=True),
    Column("flavor_id", String(NAME_LEN), nullable=False),
    Column("vcpus", Integer, nullable=False),
    Column("memory_mb", Integer, nullable=False),
    Column("root_gb", Integer, nullable=False),
    Column("ephemeral_gb", Integer, nullable=False),
    Column("flavor", Text, nullable=False),
    Column("old_flavor", Text, nullable=True),
    Column("new_flavor", Text, nullable=True),
    Column("image_ref", String(NAME_LEN), nullable=True),
    Column("kernel_id", String(NAME_LEN), nullable=True),
    Column("ramdisk_id", String(NAME_LEN), nullable=True),
    Column("root_device_name", String(NAME_LEN), nullable=True),
    Column("key_name", String(NAME_LEN), nullable=True),
    Column("key_data", Text, nullable=True),
    Column("user_data", LONG_TEXT, nullable=True),
    Column("metadata", Text, nullable=False),
    Column("system_metadata", Text, nullable=False),
    Column("vm_state", String(NAME_LEN), nullable=False),
    Column("task_state", String(NAME_LEN), nullable=True),
    Column("power_state", Integer, nullable=False),
    Column("host", String(NAME_LEN), nullable=True),
    Column("node", String(NAME_LEN), nullable=True),
    Column("launched_on", String(NAME_LEN), nullable=True),
    Column("availability_zone", String(NAME_LEN), nullable=True),
    Column("launched_at", Double, nullable=True),
    Column("terminated_at", Double, nullable=True),
    Column("scheduled_at", Double, nullable=True),
    flag("locked"),
    Column("locked_by", String(16), nullable=True),
    flag("config_drive"),
    flag("auto_disk_config"),
    Column("access_ip_v4", String(39), nullable=True),
    Column("access_ip_v6", String(39), nullable=True),
    Column("progress", Integer, nullable=False),
    Column("reservation_id", String(NAME_LEN), nullable=True),
    Column("launch_index", Integer, nullable=False),
    flag("hidden"),
    flag("cleaned"),
    Column("version", Integer, nullable=False),
    *time_columns(),
    *soft_delete_columns(),
    Index(None, "project_id", "user_id", "deleted"),
    Index(None, "project_id", "deleted"),
    Index(None, "host", "node", "deleted"),
    Index(None, "host", "deleted"),
    Index(None, "updated_at", "project_id"),
    Index(None, "deleted", "created_at"),
    Index(None, "deleted", "updated_at"),
    Index(None, "deleted", "deleted_at"),
    Index(None, "task_state", "updated_at"),
    Index(None, "reservation_id"),
)


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    """One row of ``instances``."""

    id: int
    uuid: str
    project_id: str
    user_id: str
    display_name: str | None
    display_description: str | None
    hostname: str | None
    flavor_id: str
    vcpus: int
    memory_mb: int
    root_gb: int
    ephemeral_gb: int
    flavor: dict[str, Any]
    old_flavor: dict[str, Any] | None
    new_flavor: dict[str, Any] | None
    image_ref: str | None
    kernel_id: str | None
    ramdisk_id: str | None
    root_device_name: str | None
    key_name: str | None
    key_data: str | None
    user_data: str | None
    metadata: dict[str, Any]
    system_metadata: dict[str, Any]
    vm_state: str
    task_state: str | None
    power_state: int
    host: str | None
    node: str | None
    launched_on: str | None
    availability_zone: str | None
    launched_at: float | None
    terminated_at: float | None
    scheduled_at: float | None
    locked: bool
    locked_by: str | None
    config_drive: bool
    auto_disk_config: bool
    access_ip_v4: str | None
    access_ip_v6: str | None
    progress: int
    reservation_id: str | None
    launch_index: int
    hidden: bool
    cleaned: bool
    version: int
    created_at: float | None
    updated_at: float | None
    deleted_at: float | None
    deleted: bool

    @classmethod
    def from_row(cls, r: Row) -> InstanceRecord:
        """Build from a row of ``INSTANCE_COLUMNS``."""
        v = list(r)
        for i in _JSON_AT:
            v[i] = loads(v[i], {})
        for i in _OPTIONAL_JSON_AT:
            v[i] = loads(v[i])
        for i in _BOOL_AT:
            v[i] = bool(v[i])
        return cls(*v)

    @property
    def name(self) -> str:
        """The hypervisor's name for it (Nova's default ``instance-%08x``)."""
        return f"instance-{self.id:08x}"


INSTANCE_NAMES = tuple(InstanceRecord.__dataclass_fields__)
INSTANCE_COLUMNS = [instances.c[n] for n in INSTANCE_NAMES]
_JSON_AT = tuple(INSTANCE_NAMES.index(n) for n in ("flavor", "metadata", "system_metadata"))
_OPTIONAL_JSON_AT = tuple(INSTANCE_NAMES.index(n) for n in ("old_flavor", "new_flavor"))
_BOOL_AT = tuple(INSTANCE_NAMES.index(n) for n in (
    "locked", "config_drive", "auto_disk_config", "hidden", "cleaned", "deleted"))

#: What ``update_instance`` may change (``flavor`` also sets its numeric columns).
MUTABLE = frozenset(INSTANCE_NAMES) - {
    "id", "uuid", "version", "created_at", "updated_at", "deleted_at", "deleted"}
#: What ``list_instances`` may sort by.
SORT_KEYS = frozenset({
    "access_ip_v4", "access_ip_v6", "auto_disk_config", "availability_zone", "config_drive",
    "created_at", "display_description", "display_name", "ephemeral_gb", "flavor_id", "host",
    "hostname", "id", "image_ref", "kernel_id", "key_name", "launch_index", "launched_at",
    "locked", "locked_by", "memory_mb", "node", "power_state", "progress", "project_id",
    "ramdisk_id", "reservation_id", "root_device_name", "root_gb", "task_state",
    "terminated_at", "updated_at", "user_id", "uuid", "vcpus", "vm_state"})


class InstanceUsage(NamedTuple):
    """What live instances use, for quota checks."""

    instances: int
    cores: int
    ram: int


@dataclass(frozen=True, slots=True)
class InstanceState:
    """Where an instance is in its life, as one who watches many servers reads it."""

    uuid: str
    vm_state: str
    task_state: str | None
    deleted: bool
    created_at: float | None
    launched_at: float | None


@dataclass(frozen=True, slots=True)
class NewInstance:
    """What the API knows of an instance when it asks for one."""

    uuid: str
    project_id: str
    user_id: str
    #: The flavor as booted: at least ``flavorid``, ``vcpus``, ``memory_mb``, ``root_gb``.
    flavor: Mapping[str, Any]
    image_ref: str | None = None
    display_name: str | None = None
    display_description: str | None = None
    hostname: str | None = None
    key_name: str | None = None
    key_data: str | None = None
    user_data: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    system_metadata: Mapping[str, Any] = field(default_factory=dict)
    availability_zone: str | None = None
    reservation_id: str | None = None
    launch_index: int = 0
    config_drive: bool = False
    auto_disk_config: bool = False
    access_ip_v4: str | None = None
    access_ip_v6: str | None = None
    kernel_id: str | None = None
    ramdisk_id: str | None = None
    root_device_name: str | None = None
    vm_state: str = BUILDING
    task_state: str | None = SCHEDULING
    power_state: int = 0
    hidden: bool = False


def flavor_columns(flavor: Mapping[str, Any]) -> dict[str, Any]:
    """The columns a flavor snapshot sets; ``ValueError`` if it lacks a number we count."""
    try:
        return {"flavor": dumps(dict(flavor)), "flavor_id": str(flavor["flavorid"]),
                "vcpus": int(flavor["vcpus"]), "memory_mb": int(flavor["memory_mb"]),
                "root_gb": int(flavor["root_gb"]),
                "ephemeral_gb": int(flavor.get("ephemeral_gb") or 0)}
    except KeyError as exc:
        raise ValueError(f"flavor snapshot lacks {exc.args[0]!r}") from None
