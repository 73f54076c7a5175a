"""Placement: resource providers, what they hold, and who uses it.

Modelled on OpenStack Placement. A *resource provider* (a compute node, a NUMA
node or PF below it, a shared storage pool) has *inventories*, one per
*resource class* (``VCPU``, ``MEMORY_MB``, ``CUSTOM_*``), each with a total,
a reserved part, an allocation ratio and the unit rules ``min_unit``,
``max_unit`` and ``step_size``. A *consumer* (an instance, a migration) holds
*allocations* against providers. Providers carry *traits* (qualitative
capabilities) and belong to *aggregates*; a provider with the trait
``MISC_SHARES_VIA_AGGREGATE`` shares its inventory with the providers of its
aggregates. Providers form trees (``root_provider_id``, ``parent_provider_id``).

Capacity of an inventory is ``(total - reserved) * allocation_ratio``; the sum of
allocations against it never exceeds that. Every change to a provider's
inventories, traits, aggregates or (added) allocations bumps its ``generation``
with a compare-and-swap, which is what serializes concurrent claims on every
engine. Consumers carry a generation too, so two writers of one consumer's
allocations cannot both win.

Standard resource classes live in code with fixed ids (as ``os-resource-classes``
gives them); their rows in ``resource_classes`` are seeded by
:meth:`ProviderStore.sync_standard_resource_classes` but nothing depends on them.
Custom classes get ids from :data:`CUSTOM_CLASS_START` up. Standard traits are
inserted into ``traits`` when first used.

This module holds the tables, names and records; ``placement_sql`` the statements
and helpers that the Store modules share (``placement_providers``,
``placement_names``, ``placement_allocations``, ``placement_candidates``);
``placement_store`` composes them into one mixin.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import (
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
)

from nimbus.core.db.database import Row
from nimbus.core.db.meta import NAME_LEN, UUID_LEN, id_column, metadata, time_columns, uuid_column
from nimbus.core.errors import InvalidPlacementInput

#: The largest value of an integer inventory field (placement's MAX_INT).
MAX_INT = 2147483647
PROVIDER_NAME_LEN = 200

# -- tables ------------------------------------------------------------------------

resource_providers = Table(
    "resource_providers", metadata,
    id_column(),
    uuid_column(unique=True),
    Column("name", String(PROVIDER_NAME_LEN), nullable=False, unique=True),
    Column("generation", Integer, nullable=False, default=0, server_default="0"),
    # No foreign keys to itself: MariaDB checks them row by row, so a plain DELETE of a
    # tree could fail depending on row order. The Store keeps them consistent.
    Column("root_provider_id", Integer, nullable=True),
    Column("parent_provider_id", Integer, nullable=True),
    *time_columns(),
    Index(None, "root_provider_id"),
    Index(None, "parent_provider_id"),
)

resource_classes = Table(
    "resource_classes", metadata,
    # Explicit ids: standard classes have fixed ones, custom ones start at CUSTOM_CLASS_START.
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(NAME_LEN), nullable=False, unique=True),
    *time_columns(),
)

inventories = Table(
    "inventories", metadata,
    id_column(),
    Column("resource_provider_id", Integer, ForeignKey("resource_providers.id"),
           nullable=False),
    Column("resource_class_id", Integer, nullable=False),
    Column("total", Integer, nullable=False),
    Column("reserved", Integer, nullable=False),
    Column("min_unit", Integer, nullable=False),
    Column("max_unit", Integer, nullable=False),
    Column("step_size", Integer, nullable=False),
    Column("allocation_ratio", Double, nullable=False),
    *time_columns(),
    UniqueConstraint("resource_provider_id", "resource_class_id"),
    Index(None, "resource_class_id"),
)

consumers = Table(
    "consumers", metadata,
    id_column(),
    uuid_column(unique=True),
    Column("project_id", String(NAME_LEN), nullable=False),
    Column("user_id", String(NAME_LEN), nullable=False),
    Column("consumer_type", String(NAME_LEN), nullable=True),
    Column("generation", Integer, nullable=False, default=0, server_default="0"),
    *time_columns(),
    Index(None, "project_id", "user_id"),
)

allocations = Table(
    "allocations", metadata,
    id_column(),
    Column("resource_provider_id", Integer, ForeignKey("resource_providers.id"),
           nullable=False),
    Column("consumer_id", String(UUID_LEN), nullable=False),
    Column("resource_class_id", Integer, nullable=False),
    Column("used", Integer, nullable=False),
    *time_columns(),
    # One allocation per consumer, provider and class; also the index by consumer.
    UniqueConstraint("consumer_id", "resource_provider_id", "resource_class_id"),
    # Usage sums per provider and class read only the index.
    Index(None, "resource_provider_id", "resource_class_id", "used"),
)

traits = Table(
    "traits", metadata,
    id_column(),
    Column("name", String(NAME_LEN), nullable=False, unique=True),
    *time_columns(),
)

resource_provider_traits = Table(
    "resource_provider_traits", metadata,
    Column("resource_provider_id", Integer, ForeignKey("resource_providers.id"),
           primary_key=True),
    Column("trait_id", Integer, ForeignKey("traits.id"), primary_key=True),
    Index(None, "trait_id"),
)

placement_aggregates = Table(
    "placement_aggregates", metadata,
    id_column(),
    uuid_column(unique=True),
    *time_columns(),
)

resource_provider_aggregates = Table(
    "resource_provider_aggregates", metadata,
    Column("resource_provider_id", Integer, ForeignKey("resource_providers.id"),
           primary_key=True),
    Column("aggregate_id", Integer, ForeignKey("placement_aggregates.id"), primary_key=True),
    Index(None, "aggregate_id"),
)

# -- standard names ----------------------------------------------------------------

#: Standard resource classes; a class's id is its index (as in os-resource-classes).
STANDARD_RESOURCE_CLASSES: tuple[str, ...] = (
    "VCPU", "MEMORY_MB", "DISK_GB", "PCI_DEVICE", "SRIOV_NET_VF", "NUMA_SOCKET",
    "NUMA_CORE", "NUMA_THREAD", "NUMA_MEMORY_MB", "IPV4_ADDRESS", "VGPU",
    "VGPU_DISPLAY_HEAD", "NET_BW_EGR_KILOBIT_PER_SEC", "NET_BW_IGR_KILOBIT_PER_SEC",
    "PCPU", "MEM_ENCRYPTION_CONTEXT", "FPGA", "PGPU", "NET_PACKET_RATE_KILOPACKET_PER_SEC",
    "NET_PACKET_RATE_EGR_KILOPACKET_PER_SEC", "NET_PACKET_RATE_IGR_KILOPACKET_PER_SEC",
)
STANDARD_CLASS_IDS: dict[str, int] = {n: i for i, n in enumerate(STANDARD_RESOURCE_CLASSES)}
#: Custom resource classes get ids from here up.
CUSTOM_CLASS_START = 10000

#: The trait that makes a provider share its inventory with the members of its aggregates.
MISC_SHARES_VIA_AGGREGATE = "MISC_SHARES_VIA_AGGREGATE"

#: Standard traits (a subset of os-traits); each is inserted into ``traits`` when first used.
STANDARD_TRAITS: frozenset[str] = frozenset({
    MISC_SHARES_VIA_AGGREGATE,
    "COMPUTE_NODE", "COMPUTE_STATUS_DISABLED", "COMPUTE_DEVICE_TAGGING",
    "COMPUTE_NET_ATTACH_INTERFACE", "COMPUTE_NET_ATTACH_INTERFACE_WITH_TAG",
    "COMPUTE_VOLUME_ATTACH_WITH_TAG", "COMPUTE_VOLUME_EXTEND", "COMPUTE_VOLUME_MULTI_ATTACH",
    "COMPUTE_TRUSTED_CERTS", "COMPUTE_RESCUE_BFV", "COMPUTE_SAME_HOST_COLD_MIGRATE",
    "COMPUTE_ACCELERATORS", "COMPUTE_SOCKET_PCI_NUMA_AFFINITY",
    "COMPUTE_IMAGE_TYPE_AKI", "COMPUTE_IMAGE_TYPE_AMI", "COMPUTE_IMAGE_TYPE_ARI",
    "COMPUTE_IMAGE_TYPE_ISO", "COMPUTE_IMAGE_TYPE_QCOW2", "COMPUTE_IMAGE_TYPE_RAW",
    "COMPUTE_IMAGE_TYPE_VDI", "COMPUTE_IMAGE_TYPE_VHD", "COMPUTE_IMAGE_TYPE_VHDX",
    "COMPUTE_IMAGE_TYPE_VMDK", "COMPUTE_IMAGE_TYPE_PLOOP",
    "COMPUTE_ARCH_X86_64", "COMPUTE_ARCH_AARCH64", "COMPUTE_ARCH_PPC64LE", "COMPUTE_ARCH_S390X",
    "COMPUTE_GRAPHICS_MODEL_VGA", "COMPUTE_GRAPHICS_MODEL_VIRTIO",
    "COMPUTE_NET_VIF_MODEL_VIRTIO", "COMPUTE_NET_VIF_MODEL_E1000",
    "COMPUTE_STORAGE_BUS_VIRTIO", "COMPUTE_STORAGE_BUS_SCSI", "COMPUTE_STORAGE_BUS_IDE",
    "COMPUTE_STORAGE_BUS_SATA", "COMPUTE_STORAGE_BUS_USB", "COMPUTE_STORAGE_BUS_FDC",
    "COMPUTE_SECURITY_TPM_1_2", "COMPUTE_SECURITY_TPM_2_0",
    "COMPUTE_SECURITY_UEFI_SECURE_BOOT",
    "HW_CPU_HYPERTHREADING", "HW_NUMA_ROOT",
    "HW_CPU_X86_AVX", "HW_CPU_X86_AVX2", "HW_CPU_X86_AVX512F", "HW_CPU_X86_SSE",
    "HW_CPU_X86_SSE2", "HW_CPU_X86_SSE3", "HW_CPU_X86_SSSE3", "HW_CPU_X86_SSE41",
    "HW_CPU_X86_SSE42", "HW_CPU_X86_AESNI", "HW_CPU_X86_FMA3", "HW_CPU_X86_BMI",
    "HW_CPU_X86_BMI2", "HW_CPU_X86_MMX", "HW_CPU_X86_F16C", "HW_CPU_X86_SHA",
    "HW_CPU_X86_SVM", "HW_CPU_X86_VMX", "HW_CPU_X86_AMD_SVM", "HW_CPU_X86_INTEL_VMX",
    "HW_NIC_SRIOV", "HW_NIC_SRIOV_MULTIQUEUE", "HW_NIC_OFFLOAD_TSO", "HW_NIC_OFFLOAD_GSO",
    "STORAGE_DISK_HDD", "STORAGE_DISK_SSD",
    "OWNER_NOVA", "OWNER_CYBORG",
})

_CUSTOM_NAME = re.compile(r"CUSTOM_[A-Z0-9_]+")


def is_custom_name(name: str) -> bool:
    """Whether ``name`` is a well-formed custom class or trait name (``CUSTOM_[A-Z0-9_]+``)."""
    return _CUSTOM_NAME.fullmatch(name) is not None


def check_class_name(name: str) -> None:
    """``InvalidPlacementInput`` unless ``name`` is a standard or well-formed custom class."""
    if name not in STANDARD_CLASS_IDS and not is_custom_name(name):
        raise InvalidPlacementInput(
            f"invalid resource class {name!r}: not a standard class and not CUSTOM_[A-Z0-9_]+")


def check_trait_names(names: Iterable[str]) -> None:
    """``InvalidPlacementInput`` naming every name neither standard nor well-formed custom."""
    bad = sorted(n for n in names if n not in STANDARD_TRAITS and not is_custom_name(n))
    if bad:
        raise InvalidPlacementInput(
            f"invalid trait(s) {', '.join(bad)}: not standard and not CUSTOM_[A-Z0-9_]+")


def check_amounts(resources: Mapping[str, int], what: str) -> None:
    """``InvalidPlacementInput`` for a bad class name or an amount that is not a positive int."""
    for rc, amount in resources.items():
        check_class_name(rc)
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
            raise InvalidPlacementInput(f"{what}: amount of {rc} must be an integer >= 1, "
                                        f"got {amount!r}")


# -- records -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class InventorySpec:
    """One resource class's inventory on a provider (placement's defaults)."""

    total: int
    reserved: int = 0
    min_unit: int = 1
    max_unit: int = MAX_INT
    step_size: int = 1
    allocation_ratio: float = 1.0

    @property
    def capacity(self) -> int:
        """What may be allocated in all: ``(total - reserved) * allocation_ratio``."""
        return int((self.total - self.reserved) * self.allocation_ratio)

    def check(self, rc: str) -> None:
        """``InvalidPlacementInput`` naming the class and field if a value is out of range."""
        problems = []
        if not 1 <= self.total <= MAX_INT:
            problems.append(f"total {self.total} must be in 1..{MAX_INT}")
        if not 0 <= self.reserved <= self.total:
            problems.append(f"reserved {self.reserved} must be in 0..total ({self.total})")
        if not 1 <= self.min_unit <= self.max_unit:
            problems.append(f"min_unit {self.min_unit} must be in 1..max_unit "
                            f"({self.max_unit})")
        if not 1 <= self.max_unit <= MAX_INT:
            problems.append(f"max_unit {self.max_unit} must be in 1..{MAX_INT}")
        if not 1 <= self.step_size <= MAX_INT:
            problems.append(f"step_size {self.step_size} must be in 1..{MAX_INT}")
        if not 0 < self.allocation_ratio < 3.4e38:
            problems.append(f"allocation_ratio {self.allocation_ratio} must be > 0")
        if problems:
            raise InvalidPlacementInput(f"invalid inventory of {rc}: {'; '.join(problems)}")

    @classmethod
    def from_row(cls, r: Row) -> InventorySpec:
        """Build from (total, reserved, min_unit, max_unit, step_size, allocation_ratio)."""
        return cls(r[0], r[1], r[2], r[3], r[4], float(r[5]))


@dataclass(frozen=True, slots=True)
class ResourceProviderRecord:
    """One resource provider, with the uuids of its tree's root and its parent."""

    id: int
    uuid: str
    name: str
    generation: int
    root_provider_uuid: str
    parent_provider_uuid: str | None
    created_at: float | None
    updated_at: float | None

    @classmethod
    def from_row(cls, r: Row) -> ResourceProviderRecord:
        """Build from a row of ``PROVIDER_COLUMNS``."""
        return cls(r[0], r[1], r[2], r[3], r[4] or r[1], r[5], r[6], r[7])


@dataclass(frozen=True, slots=True)
class ProviderInventories:
    """A provider's inventories by class name, at its generation."""

    generation: int
    inventories: dict[str, InventorySpec]


@dataclass(frozen=True, slots=True)
class ProviderTraits:
    """A provider's traits, at its generation."""

    generation: int
    traits: frozenset[str]


@dataclass(frozen=True, slots=True)
class ProviderAggregates:
    """The uuids of a provider's aggregates, at its generation."""

    generation: int
    aggregates: frozenset[str]


@dataclass(frozen=True, slots=True)
class ConsumerAllocations:
    """What one consumer holds: ``allocations[provider_uuid][resource_class] = used``.

    ``generation`` is None when the consumer holds nothing (it does not exist).
    """

    consumer_uuid: str
    generation: int | None
    project_id: str | None
    user_id: str | None
    consumer_type: str | None
    allocations: dict[str, dict[str, int]]


@dataclass(frozen=True, slots=True)
class ResourceSummary:
    """One class on one provider: its capacity and what is allocated of it."""

    capacity: int
    used: int


@dataclass(frozen=True, slots=True)
class ProviderSummary:
    """A provider named in allocation candidates: its place, resources and traits."""

    uuid: str
    name: str
    generation: int
    root_provider_uuid: str
    parent_provider_uuid: str | None
    resources: dict[str, ResourceSummary]
    traits: frozenset[str]


@dataclass(frozen=True, slots=True)
class AllocationCandidates:
    """Ways to satisfy a request: each request maps provider uuid -> class -> amount.

    Requests served by one provider tree come first, then those using a shared
    provider. ``provider_summaries`` covers every provider in any request.
    """

    allocation_requests: list[dict[str, dict[str, int]]]
    provider_summaries: dict[str, ProviderSummary]
