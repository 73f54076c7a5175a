"""Placement Store, part five: every provider's capacity and usage at once, for the scheduler.

The scheduler keeps its host columns (:mod:`nimbus.core.scheduler.host_state`)
current from placement. Asking provider by provider would take two queries per
host; :meth:`SnapshotStore.provider_snapshot` reads every provider's
inventories, with what is allocated of each, in one statement.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from nimbus.core.db.area import StoreArea
from nimbus.core.db.placement import (
    InventorySpec,
    inventories,
    resource_classes,
    resource_providers,
)
from nimbus.core.db.placement_sql import class_name, used_sum

_rp = resource_providers.c
_inv = inventories.c
_rc = resource_classes.c

_SNAPSHOT = (
    select(_rp.uuid, _rp.generation, _inv.resource_class_id, _rc.name, _inv.total,
           _inv.reserved, _inv.min_unit, _inv.max_unit, _inv.step_size,
           _inv.allocation_ratio, used_sum(inventories))
    .select_from(inventories.join(resource_providers, _rp.id == _inv.resource_provider_id)
                 .outerjoin(resource_classes, _rc.id == _inv.resource_class_id))
    .order_by(_rp.id, _inv.resource_class_id))


@dataclass(frozen=True, slots=True)
class ProviderCapacity:
    """One provider's inventories and what is allocated of each class, at its generation."""

    generation: int
    inventories: dict[str, InventorySpec]
    used: dict[str, int]


class SnapshotStore(StoreArea):
    """Store methods that read all of placement at once."""

    async def provider_snapshot(self) -> dict[str, ProviderCapacity]:
        """Provider uuid -> its inventories and usage (providers with no inventory left
        out), in one consistent read."""
        out: dict[str, ProviderCapacity] = {}
        for row in await self._rows(_SNAPSHOT):
            uuid, generation, rc_id, custom = row[0], row[1], row[2], row[3]
            found = out.get(uuid)
            if found is None:
                found = out[uuid] = ProviderCapacity(generation, {}, {})
            rc = class_name(rc_id, custom)
            found.inventories[rc] = InventorySpec.from_row(row[4:10])
            found.used[rc] = int(row[10])
        return out
