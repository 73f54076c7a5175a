"""Every table, on one MetaData: importing this module declares the whole schema."""

from __future__ import annotations

from nimbus.core.db import (
    actions,
    aggregates,
    block_devices,
    faults,
    flavors,
    groups,
    identity,
    images,
    instance_migrations,
    instances,
    network,
    placement,
    quotas,
    services,
)
from nimbus.core.db.meta import metadata

#: The area modules that declare tables; each adds its own to ``metadata``.
AREAS = (
    services,
    flavors,
    groups,
    aggregates,
    quotas,
    instances,
    block_devices,
    faults,
    actions,
    instance_migrations,
    identity,
    images,
    network,
    placement,
)

__all__ = ["AREAS", "metadata"]
