"""Weight multipliers per host: the config value, overridden by aggregate metadata."""

from __future__ import annotations

import numpy as np

from nimbus.core.scheduler.host_state import HostStates
from nimbus.core.scheduler.plugins import FloatArray


def multiplier(states: HostStates, option: str, default: float) -> float | FloatArray:
    """Nova's ``get_weight_multiplier`` for every host at once.

    A host in aggregates whose metadata sets ``option`` (``ram_weight_multiplier``...)
    gets the smallest of those values; a host in none of them, or where one of them
    is not a number, gets ``default``. A single float when every host gets ``default``.
    """
    table = states.aggregates
    columns = [a for a in table.live_columns() if option in table.metadata[a]]
    if not columns:
        return default
    n = states.n
    smallest = np.full(n, np.inf)
    has = np.zeros(n, dtype=np.bool_)
    bad = np.zeros(n, dtype=np.bool_)
    for a in columns:
        members = table.member[:n, a]
        try:
            value = float(table.metadata[a][option])
        except ValueError:
            bad |= members
            continue
        has |= members
        np.minimum(smallest, np.where(members, value, np.inf), out=smallest)
    result: FloatArray = np.where(has & ~bad, smallest, default)
    if bool((result == default).all()):
        return default
    return result
