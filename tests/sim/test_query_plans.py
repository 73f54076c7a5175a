"""No statement a simulated cloud runs scans a table that grows with its instances.

SQLite has no statistics here (no ANALYZE on an in-memory database), so its
planner picks an index by shape alone; twice it picked one that matched only
``deleted = 0`` and went through every live instance per call (a host's
instances; a project's quota count), and once none at all (changes-since).
Every statement of a run with quotas, server groups, actions, a host crash and
the invariant checker is explained here, on its first execution; a ``SCAN`` of
one of the tables below, or a search of it on ``deleted`` alone (every live
row), fails the test with the statement, unless it is a read of every live row
on purpose (listed in ``WHOLE_READS``).
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

import pytest

from nimbus.core.db.instance_sql import PLACED
from nimbus.sim import db as sim_db
from nimbus.sim import invariants
from nimbus.sim.engine import SimRun
from tests.sim.test_faults import tight

#: Tables with rows per instance (or per action of one): a scan of them grows with the
#: cloud. (allocations and migrations are read whole by the invariant checker, once
#: per check, on purpose; per-host tables such as compute_nodes are read whole by the
#: scheduler's refresh.)
GROWING = frozenset({
    "instances", "instance_actions", "instance_actions_events", "instance_faults",
    "block_device_mappings", "instance_group_member", "consumers", "fixed_ips",
    "virtual_interfaces", "security_group_instance_association", "instance_metadata",
})


#: Reads of every live instance on purpose: the scheduler's refresh, the invariant checker.
WHOLE_READS = frozenset(sim_db._Plan(stmt, None).sql for stmt in (PLACED, invariants._LIVE))

#: A search that narrows a table by ``deleted`` alone: every live row.
_LIVE_ROWS = re.compile(r"SEARCH (\w+) USING (?:COVERING )?INDEX \w+ \(deleted=\?\)")


class _Explaining:
    """A sqlite3 connection that explains each distinct SELECT/UPDATE/DELETE it runs."""

    def __init__(self, raw: sqlite3.Connection, plans: dict[str, str]) -> None:
        self._raw = raw
        self._plans = plans

    def execute(self, sql: str, args: Any = ()) -> sqlite3.Cursor:
        if sql not in self._plans and sql.lstrip()[:6].upper() in ("SELECT", "UPDATE",
                                                                   "DELETE"):
            rows = self._raw.execute("EXPLAIN QUERY PLAN " + sql, args).fetchall()
            self._plans[sql] = " | ".join(str(r[3]) for r in rows)
        return self._raw.execute(sql, args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def test_no_statement_scans_a_growing_table(monkeypatch: pytest.MonkeyPatch) -> None:
    plans: dict[str, str] = {}
    made = sim_db.SimDatabase.__init__

    def explaining(self: sim_db.SimDatabase, *args: Any, **kwargs: Any) -> None:
        made(self, *args, **kwargs)
        self.raw = _Explaining(self.raw, plans)  # type: ignore[assignment]

    monkeypatch.setattr(sim_db.SimDatabase, "__init__", explaining)
    scenario = tight(
        projects=[{"name": "p1", "share": 2.0},
                  {"name": "p2", "share": 1.0, "instances": 6, "cores": 6}],
        workload={"rate": 0.25, "count": 50,
                  "lifetime": {"distribution": "lognormal", "median": 80.0, "sigma": 1.0},
                  "groups": {"share": 0.2, "size": 2, "policy": "anti-affinity"},
                  "actions": {"resize": 0.1, "migrate": 0.1, "stop_start": 0.1,
                              "reboot": 0.1}},
        faults=[{"kind": "host_crash", "at": 60.0, "hosts": ["h-0"], "repair": 60.0}])
    outcome = SimRun(scenario).run()
    assert outcome.accepted > 0 and outcome.violations == []
    assert len(plans) > 50  # the run went through the control plane, not around it
    scans = {sql: plan for sql, plan in plans.items()
             if GROWING & set(re.findall(r"\bSCAN (\w+)", plan))
             or (sql not in WHOLE_READS and GROWING & set(_LIVE_ROWS.findall(plan)))}
    assert scans == {}, "\n\n".join(f"{plan}\n  {sql}" for sql, plan in scans.items())
