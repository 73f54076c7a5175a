"""RequestSpec.ignore_hosts: hosts a move must not land on, removed before any filter."""

from __future__ import annotations

import msgspec
import pytest

from nimbus.core.errors import NoValidHost
from nimbus.core.scheduler import HostsFilteredOut, HostStates, RequestSpec
from nimbus.core.scheduler.service import SelectDestinations
from tests.core.scheduler.conftest import scheduler, spec


def fleet(n: int) -> HostStates:
    states = HostStates()
    for i in range(n):
        states.add_host(spec(f"h{i}"))
    return states


def test_build_keeps_ignore_hosts_sorted_once_and_last() -> None:
    request = RequestSpec.build(1, 512, ignore_hosts=["h2", "h0", "h2"])
    assert request.ignore_hosts == ("h0", "h2")
    assert RequestSpec.build(1, 512).ignore_hosts == ()
    # it travels as the message body it is
    body = SelectDestinations(request)
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(body), type=SelectDestinations) == body


@pytest.mark.parametrize("shortlist_size", [0, 2])
def test_ignored_hosts_are_never_chosen_nor_offered_as_alternates(shortlist_size: int) -> None:
    states = fleet(5)
    sched = scheduler(states, max_attempts=5)
    sched.shortlist_size = shortlist_size
    ignored = ("h0", "h3")
    for n in range(6):
        [sel] = sched.select_destinations(RequestSpec.build(
            1, 512, instance_uuids=[f"i{n}"], ignore_hosts=ignored))
        assert sel.host not in ignored
        assert not set(sel.alternates) & set(ignored)
        assert sorted([sel.host, *sel.alternates]) == ["h1", "h2", "h4"]


def test_the_same_request_shape_without_ignore_hosts_still_sees_every_host() -> None:
    """The pre-mask is per request: the plan cached for the shape does not keep it."""
    states = fleet(2)
    sched = scheduler(states, max_attempts=1)
    # fill h1 up a little so that h0 (emptier) weighs best
    sched.select_destinations(RequestSpec.build(1, 4096, ignore_hosts=["h0"],
                                                instance_uuids=["a"]))
    [sel] = sched.select_destinations(RequestSpec.build(1, 512, ignore_hosts=["h0"],
                                                        instance_uuids=["b"]))
    assert sel.host == "h1"
    [sel] = sched.select_destinations(RequestSpec.build(1, 512, instance_uuids=["c"]))
    assert sel.host == "h0"


def test_ignoring_every_host_is_no_valid_host_naming_the_step() -> None:
    states = fleet(3)
    with pytest.raises(HostsFilteredOut) as err:
        scheduler(states).select_destinations(
            RequestSpec.build(1, 512, ignore_hosts=["h0", "h1", "h2"]))
    assert isinstance(err.value, NoValidHost)
    assert [(s.name, s.before, s.after) for s in err.value.steps] == [("IgnoreHosts", 3, 0)]


def test_unknown_names_ignore_nothing() -> None:
    states = fleet(1)
    [sel] = scheduler(states).select_destinations(
        RequestSpec.build(1, 512, ignore_hosts=["nowhere"]))
    assert sel.host == "h0"
