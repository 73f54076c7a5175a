"""IoOpsWeigher: prefer hosts with fewer I/O-heavy operations in flight."""

from __future__ import annotations

from nimbus.core.scheduler.host_state import HostStates
from nimbus.core.scheduler.plugins import FloatArray, HostWeigher, ScheduleContext
from nimbus.core.scheduler.request import RequestSpec


class IoOpsWeigher(HostWeigher):
    """Weigh hosts by their I/O-heavy operations in flight; the default multiplier of -1
    prefers the least busy."""

    name = "IoOpsWeigher"
    option = "io_ops_weight_multiplier"
    minval = 0.0
    column = "io_ops"

    def weights(self, states: HostStates, request: RequestSpec,
                ctx: ScheduleContext) -> FloatArray | None:
        """Instances in I/O task states (builds, snapshots, migrations) on the host."""
        return states.io_ops
