"""The fake hypervisor driver: instances in memory, timings and failures drawn from the Runtime."""

from nimbus.core.compute.driver import DriverFactory

from .config import OPERATIONS, FakeDriverConfig, Timing, parse_timing
from .driver import FakeDriver

#: The factory a driver registry holds for the name "fake" (typed: mypy checks that
#: FakeDriver keeps the HypervisorDriver protocol).
factory: DriverFactory = FakeDriver

__all__ = ["OPERATIONS", "FakeDriver", "FakeDriverConfig", "Timing", "factory", "parse_timing"]
