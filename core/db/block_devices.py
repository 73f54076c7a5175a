"""Block device mappings: which disks an instance has, and where each comes from.

For now the minimal root disk: an image copied to local disk (boot index 0),
or a volume to boot from. The rows are written with their instance by
``create_instance`` (one transaction), soft-deleted with it, and purged with it.
The volume columns (``volume_id``, ``attachment_id``, ``connection_info``) are
there for the volume attachments a later issue adds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    select,
)

from nimbus.core.db.area import StoreArea
from nimbus.core.db.database import Row
from nimbus.core.db.meta import (
    NAME_LEN,
    UUID_LEN,
    flag,
    id_column,
    metadata,
    soft_delete_columns,
    time_columns,
    uuid_column,
)

block_device_mappings = Table(
    "block_device_mappings", metadata,
    id_column(),
    uuid_column(unique=True),
    Column("instance_uuid", String(UUID_LEN), ForeignKey("instances.uuid"), nullable=False),
    Column("source_type", String(32), nullable=False),
    Column("destination_type", String(32), nullable=False),
    Column("device_type", String(32), nullable=True),
    Column("disk_bus", String(32), nullable=True),
    Column("guest_format", String(32), nullable=True),
    Column("device_name", String(NAME_LEN), nullable=True),
    Column("boot_index", Integer, nullable=True),
    Column("volume_size", Integer, nullable=True),
    Column("image_id", String(UUID_LEN), nullable=True),
    Column("snapshot_id", String(UUID_LEN), nullable=True),
    Column("volume_id", String(UUID_LEN), nullable=True),
    Column("volume_type", String(NAME_LEN), nullable=True),
    Column("attachment_id", String(UUID_LEN), nullable=True),
    Column("connection_info", Text, nullable=True),
    Column("tag", String(NAME_LEN), nullable=True),
    flag("no_device"),
    flag("delete_on_termination"),
    *time_columns(),
    *soft_delete_columns(),
    Index(None, "instance_uuid", "deleted"),
    Index(None, "volume_id"),
)


@dataclass(frozen=True, slots=True)
class BlockDeviceSpec:
    """A disk asked for with a new instance."""

    uuid: str
    source_type: str
    destination_type: str
    boot_index: int | None = None
    device_name: str | None = None
    device_type: str | None = "disk"
    disk_bus: str | None = None
    guest_format: str | None = None
    volume_size: int | None = None
    image_id: str | None = None
    snapshot_id: str | None = None
    volume_id: str | None = None
    volume_type: str | None = None
    tag: str | None = None
    delete_on_termination: bool = False


def image_root_disk(uuid: str, image_id: str, *, size_gb: int | None = None) -> BlockDeviceSpec:
    """The root disk of an instance booted from an image: the image copied to local disk."""
    return BlockDeviceSpec(uuid=uuid, source_type="image", destination_type="local",
                           boot_index=0, image_id=image_id, volume_size=size_gb,
                           delete_on_termination=True)


@dataclass(frozen=True, slots=True)
class BlockDeviceRecord:
    """One row of ``block_device_mappings``."""

    id: int
    uuid: str
    instance_uuid: str
    source_type: str
    destination_type: str
    device_type: str | None
    disk_bus: str | None
    guest_format: str | None
    device_name: str | None
    boot_index: int | None
    volume_size: int | None
    image_id: str | None
    snapshot_id: str | None
    volume_id: str | None
    volume_type: str | None
    attachment_id: str | None
    connection_info: str | None
    tag: str | None
    no_device: bool
    delete_on_termination: bool
    created_at: float | None
    updated_at: float | None

    @classmethod
    def from_row(cls, r: Row) -> BlockDeviceRecord:
        """Build from a row of ``BDM_COLUMNS``."""
        v = list(r)
        v[18], v[19] = bool(v[18]), bool(v[19])
        return cls(*v)


BDM_NAMES = tuple(BlockDeviceRecord.__dataclass_fields__)
BDM_COLUMNS = [block_device_mappings.c[n] for n in BDM_NAMES]

_b = block_device_mappings.c
INSERT_BDM = block_device_mappings.insert()
_OF_INSTANCE = (select(*BDM_COLUMNS)
                .where(_b.instance_uuid == bindparam("uuid"), _b.deleted == 0)
                .order_by(_b.id))


def bdm_values(instance_uuid: str, spec: BlockDeviceSpec, now: float) -> dict[str, Any]:
    """The row to insert for ``spec`` (``INSERT_BDM`` inside a caller's transaction)."""
    return {
        "uuid": spec.uuid, "instance_uuid": instance_uuid, "source_type": spec.source_type,
        "destination_type": spec.destination_type, "device_type": spec.device_type,
        "disk_bus": spec.disk_bus, "guest_format": spec.guest_format,
        "device_name": spec.device_name, "boot_index": spec.boot_index,
        "volume_size": spec.volume_size, "image_id": spec.image_id,
        "snapshot_id": spec.snapshot_id, "volume_id": spec.volume_id,
        "volume_type": spec.volume_type, "attachment_id": None, "connection_info": None,
        "tag": spec.tag, "no_device": False,
        "delete_on_termination": spec.delete_on_termination, "created_at": now,
        "updated_at": now, "deleted": 0,
    }


class BlockDeviceStore(StoreArea):
    """Store methods for block device mappings."""

    async def bdms_for_instance(self, instance_uuid: str) -> list[BlockDeviceRecord]:
        """A live instance's disks, in the order they were mapped (none once deleted)."""
        rows = await self._rows(_OF_INSTANCE, {"uuid": instance_uuid})
        return [BlockDeviceRecord.from_row(r) for r in rows]
