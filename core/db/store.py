"""The Store: every statement Nimbus runs, behind methods named for what services need.

One class, composed of one mixin per area (services and nodes, instances,
placement, identity, ...), each a :class:`~nimbus.core.db.area.StoreArea` in
its own module beside its tables (or beside an ``*_schema`` module that
declares them). The Store holds statements, never an engine: it runs them on
the :class:`Database` it is given, which is an async engine in real mode and
an in-memory SQLite in simulation.
"""

from __future__ import annotations

from nimbus.core.db import schema
from nimbus.core.db.actions import InstanceActionStore
from nimbus.core.db.aggregates import AggregateStore
from nimbus.core.db.block_devices import BlockDeviceStore
from nimbus.core.db.database import Database
from nimbus.core.db.faults import FaultStore
from nimbus.core.db.flavors import FlavorStore
from nimbus.core.db.floating_ips import FloatingIpStore
from nimbus.core.db.groups import GroupStore
from nimbus.core.db.identity import IdentityStore
from nimbus.core.db.image_listing import ImageListingStore
from nimbus.core.db.image_members import ImageMemberStore
from nimbus.core.db.images import ImageStore
from nimbus.core.db.instance_migrations import MigrationStore
from nimbus.core.db.instances import InstanceStore
from nimbus.core.db.network import NetworkStore
from nimbus.core.db.node_usage import NodeUsageStore
from nimbus.core.db.placement_store import PlacementStore
from nimbus.core.db.quotas import QuotaStore
from nimbus.core.db.roles import RoleStore
from nimbus.core.db.security_groups import SecurityGroupStore
from nimbus.core.db.services import ServiceStore
from nimbus.core.db.tokens import TokenStore


class Store(
    ServiceStore,
    FlavorStore,
    GroupStore,
    AggregateStore,
    QuotaStore,
    InstanceStore,
    BlockDeviceStore,
    FaultStore,
    InstanceActionStore,
    MigrationStore,
    IdentityStore,
    RoleStore,
    TokenStore,
    ImageStore,
    ImageListingStore,
    ImageMemberStore,
    NetworkStore,
    FloatingIpStore,
    SecurityGroupStore,
    PlacementStore,
    NodeUsageStore,
):
    """All state of the cloud, reached through named methods."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @property
    def dialect(self) -> str:
        """The database's dialect name."""
        return self.db.dialect

    async def close(self) -> None:
        """Release the database's connections."""
        await self.db.close()


#: The MetaData of the whole schema (for migrations and tests).
metadata = schema.metadata
