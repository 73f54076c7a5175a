"""HostStates: rows, derived columns, growth, holes, instances and snapshots."""

from __future__ import annotations

import random

import numpy as np
import pytest

from nimbus.core.errors import NotFound
from nimbus.core.scheduler import HostStates, HostUsage
from tests.core.scheduler.conftest import spec


def test_derived_columns_follow_capacity_usage_and_claims(states: HostStates) -> None:
    row = states.add_host(spec("a", vcpus=8, vcpus_reserved=2, cpu_allocation_ratio=2.0,
                               memory_mb=4096, memory_mb_reserved=1024, disk_gb=100),
                          HostUsage(vcpus_used=4, memory_mb_used=1024, disk_gb_used=10))
    assert states.vcpu_room[row] == 8  # min((8 - 2) * 2 - 4, 8)
    assert states.ram_room[row] == 2048
    assert states.free_vcpus[row] == 12 and states.free_ram[row] == 2048
    assert states.free_disk[row] == 90
    states.apply_claim(row, 4, 1024, 50)
    assert (states.vcpu_room[row], states.ram_room[row], states.disk_room[row]) == (4, 1024, 40)
    states.release_claim(row, 4, 1024, 50)
    assert states.vcpu_room[row] == 8
    states.update_host(row, spec("a", vcpus=16, memory_mb=4096, disk_gb=100))
    assert states.vcpu_room[row] == 16  # min(16 * 4.0 - 4, 16)
    with pytest.raises(NotFound):
        states.update_host(row, spec("b"))


def test_growth_is_amortized_and_rows_keep_their_values() -> None:
    states = HostStates(capacity=1)
    for i in range(20_000):
        states.add_host(spec(f"h{i}", vcpus=i % 7 + 1))
    assert len(states) == states.n == 20_000
    assert states._cap == 32_768  # doubled 15 times, not 20,000
    assert states.vcpus_total[19_999] == 19_999 % 7 + 1
    assert states.index("h12345") == 12345 and states.name(12345) == "h12345"


def test_removed_hosts_leave_holes_that_new_hosts_reuse(states: HostStates) -> None:
    for name in ("a", "b", "c"):
        states.add_host(spec(name))
    states.set_instances(1, [("i1", "g")])
    states.remove_host(1)
    assert len(states) == 2 and states.rows() == [0, 2] and not states.present[1]
    assert states.host_of("i1") is None and states.group_counts("g")[1] == 0  # type: ignore[index]
    with pytest.raises(NotFound):
        states.index("b")
    assert states.add_host(spec("d")) == 1 and states.name(1) == "d"


def test_instances_and_group_counts(states: HostStates) -> None:
    for name in ("a", "b"):
        states.add_host(spec(name))
    assert states.group_counts("g") is None
    states.add_instance(0, "i1", "g")
    states.add_instance(0, None, "g")
    states.add_instance(1, "i2", "g")
    counts = states.group_counts("g")
    assert counts is not None and list(counts) == [2, 1]
    assert states.num_instances[0] == 2 and states.io_ops[0] == 2
    members = states.group_members("g")
    assert members is not None and members.rows.tolist() == [0, 1] and members.total == 3
    states.remove_instance("i1", io_ops=1)
    states.remove_instance(None, row=0, group="g", io_ops=1)
    assert list(states.group_counts("g")) == [0, 1] and states.io_ops[0] == 0  # type: ignore[arg-type]
    states.set_instances(1, [("i3", None), ("i4", "g"), ("i5", "g")])
    assert list(states.group_counts("g")) == [0, 2]  # type: ignore[arg-type]
    assert states.host_of("i2") is None and states.host_of("i3") == 1
    members = states.group_members("g")
    assert members is not None and members.rows.tolist() == [1] and members.total == 2
    states.remove_host(1)
    assert states.group_members("g") is None and states.host_of("i3") is None


def test_aggregates_remember_hosts_added_later(states: HostStates) -> None:
    states.add_host(spec("a"))
    states.set_aggregate("agg", {"k": "v"}, ["a", "later"])
    row = states.add_host(spec("later"))
    assert states.aggregate_metadata(row) == [{"k": "v"}]
    states.delete_aggregate("agg")
    assert states.aggregate_metadata(row) == []
    with pytest.raises(NotFound):
        states.delete_aggregate("agg")


def test_static_versions_move_on_static_changes_only(states: HostStates) -> None:
    row = states.add_host(spec("a"))
    before = states.static_version
    states.apply_claim(row, 1, 1, 1)
    states.update_usage(row, HostUsage(vcpus_used=2))
    assert states.static_version == before
    states.set_service(row, up=False)
    assert states.static_version > before


def test_copy_is_an_independent_snapshot(states: HostStates) -> None:
    states.add_host(spec("a"))
    snap = states.copy()
    states.apply_claim(0, 2, 0, 0)
    states.add_host(spec("b"))
    assert snap.vcpus_used[0] == 0 and len(snap) == 1
    snap.apply_claim(0, 1, 0, 0)
    assert states.vcpus_used[0] == 2 and snap.vcpus_used[0] == 1
    assert np.shares_memory(snap.vcpus_used, snap._buf["vcpus_used"])


def test_group_members_kept_current_match_a_fresh_count() -> None:
    """The view of a group that is read is updated in place of a rebuild: it must always
    be what counting the members afresh gives."""
    rng = random.Random(7)
    states = HostStates()
    for i in range(12):
        states.add_host(spec(f"h{i}"))
    live: list[tuple[int, str]] = []
    for k in range(400):
        states.group_members("g")  # read it, so that the next change updates the view
        if live and rng.random() < 0.4:
            row, uuid = live.pop(rng.randrange(len(live)))
            states.remove_instance(uuid)
        else:
            row, uuid = rng.randrange(12), f"i{k}"
            states.add_instance(row, uuid, "g")
            live.append((row, uuid))
        members = states.group_members("g")
        counts = [0] * 12
        for row, _uuid in live:
            counts[row] += 1
        if members is None:
            assert not live
            continue
        assert members.rows.tolist() == [r for r in range(12) if counts[r]]
        assert members.counts.tolist() == [c for c in counts if c]
        assert members.total == len(live) and members.rows.dtype == np.int64
