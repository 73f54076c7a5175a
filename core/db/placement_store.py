"""The placement mixin of the Store: providers, names, allocations and candidates.

The tables and records are in :mod:`nimbus.core.db.placement`; each part of the
Store is in a module of its own.
"""

from __future__ import annotations

from nimbus.core.db.placement_allocations import AllocationStore
from nimbus.core.db.placement_candidates import CandidateStore
from nimbus.core.db.placement_names import PlacementNameStore
from nimbus.core.db.placement_providers import ProviderStore
from nimbus.core.db.placement_snapshot import SnapshotStore


class PlacementStore(ProviderStore, PlacementNameStore, AllocationStore, CandidateStore,
                     SnapshotStore):
    """Store methods of placement (modelled on OpenStack Placement)."""
