"""Every table, on one MetaData: importing this module declares the whole schema."""

from __future__ import annotations

from nimbus.core.db import (
    actions,
    aggregates,
    block_devices,
    faults,
    flavors,
    groups,
    identity_schema,
    images,
    instance_migrations,
    instance_schema,
    network_schema,
    placement,
    quotas,
    roles,
    security_groups,
    services,
    tokens,
)
from nimbus.core.db.meta import metadata

#: The area modules that declare tables; each adds its own to ``metadata``.
AREAS = (
    services,
    flavors,
    groups,
    aggregates,
    quotas,
    instance_schema,
    block_devices,
    faults,
    actions,
    instance_migrations,
    identity_schema,
    roles,
    tokens,
    images,
    network_schema,
    security_groups,
    placement,
)

__all__ = ["AREAS", "metadata"]
