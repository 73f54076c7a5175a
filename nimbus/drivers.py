"""The hypervisor drivers a compute service can run on, by configured name.

``[compute] driver`` names one; its settings are the ``[<name>_driver]`` section,
handed to the driver as a plain mapping in its
:class:`~nimbus.core.compute.driver.DriverContext`. An unknown name is a
``ConfigError`` listing the valid ones. The libvirt, Xen and VMware backends add
their factories here when they come.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nimbus.backends import fake
from nimbus.core.compute.driver import DriverFactory
from nimbus.core.registry import Registry

if TYPE_CHECKING:
    from nimbus.config import NimbusConfig

DRIVERS: Registry[DriverFactory] = Registry("driver", {"fake": fake.factory})


def driver_settings(config: NimbusConfig, name: str) -> Mapping[str, Any]:
    """The ``[<name>_driver]`` section as the driver's config mapping (empty if none)."""
    section = getattr(config, f"{name}_driver", None)
    return section.mapping() if section is not None else {}
