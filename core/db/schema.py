"""Every table, on one MetaData: importing this module declares the whole schema."""

from __future__ import annotations

from nimbus.core.db import services
from nimbus.core.db.meta import metadata

#: The area modules that declare tables; each adds its own to ``metadata``.
AREAS = (services,)

__all__ = ["AREAS", "metadata"]
