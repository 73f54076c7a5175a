"""Issue 6's must-show: the stock ``openstack`` CLI and openstacksdk against ``nimbus serve``.

One all-in-one cloud (three fake hosts) per test, driven through the
``clouds.yaml`` it writes: the CLI over the whole list of the issue (identity,
flavors, images and their sharing, keypairs, the server lifecycle, quotas and
limits, hypervisors, services, aggregates, server groups), then the main server
path through openstacksdk (:mod:`.sdk_main_path`, run by the client
virtualenv's python). Every command prints ``-f json``, and the test asserts on
the parsed output. Each ``openstack`` call re-authenticates, so commands that
take several names get them at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .openstack_venv import openstack_executable
from .test_all_in_one import Cloud, start_cloud

# building the client's virtualenv may come first; the commands take about a minute or two
pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

#: Seconds a server may take to settle after a command that answers at once.
SETTLE = 60.0


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    running = start_cloud(tmp_path)
    try:
        yield running
    finally:
        running.stop()
    assert running.proc.returncode == 0, running.logs()


class Cli:
    """The ``openstack`` executable against one cloud of the ``clouds.yaml``."""

    def __init__(self, openstack: Path, cloud: Cloud, home: Path) -> None:
        self.openstack, self.cloud, self.home = openstack, cloud, home
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
                    "OS_CLIENT_CONFIG_FILE": str(cloud.clouds_yaml)}
        #: (seconds, command) of every call, to say where the time went
        self.spent: list[tuple[float, str]] = []

    def run(self, *args: str, as_: str = "nimbus-admin") -> subprocess.CompletedProcess[str]:
        """One command, whatever its exit status."""
        began = time.monotonic()
        done = subprocess.run([str(self.openstack), "--os-cloud", as_, *args],
                              capture_output=True, text=True, timeout=90, env=self.env,
                              cwd=self.home)
        self.spent.append((round(time.monotonic() - began, 1), " ".join(args[:3])))
        return done

    def __call__(self, *args: str, as_: str = "nimbus-admin", output: bool = True) -> Any:
        """One command that must succeed: its parsed ``-f json`` output (or its text)."""
        done = self.run(*args, *(("-f", "json") if output else ()), as_=as_)
        assert done.returncode == 0, f"{' '.join(args)}: {done.stderr}\n{self.cloud.logs()}"
        return json.loads(done.stdout) if output else done.stdout

    def settle(self, server: str, status: str) -> dict[str, Any]:
        """``server show`` until ``server`` is in ``status`` with no task running (for
        commands without ``--wait``, or whose work goes on after it)."""
        end = time.monotonic() + SETTLE
        while True:
            shown: dict[str, Any] = self("server", "show", server)
            if shown["status"] == status and not shown["OS-EXT-STS:task_state"]:
                return shown
            assert shown["status"] != "ERROR", shown
            assert time.monotonic() < end, f"{server} not {status}: {shown}"
            time.sleep(0.5)


def test_the_openstack_cli_over_the_issue_list(request: pytest.FixtureRequest, cloud: Cloud,
                                               tmp_path: Path) -> None:
    cli = Cli(openstack_executable(request.config), cloud, tmp_path)
    started = time.monotonic()

    # identity
    token = cli("token", "issue")
    assert token["id"] and token["project_id"] and token["user_id"]
    assert {row["Type"] for row in cli("catalog", "list")} == {
        "identity", "compute", "image", "placement"}

    # flavors
    tiny = cli("flavor", "create", "--ram", "256", "--vcpus", "1", "--disk", "1", "c.tiny")
    assert (tiny["name"], tiny["ram"], tiny["vcpus"]) == ("c.tiny", 256, 1)
    cli("flavor", "create", "--ram", "512", "--vcpus", "2", "--disk", "2", "c.small")
    assert {"c.tiny", "c.small"} <= {row["Name"] for row in cli("flavor", "list")}
    assert cli("flavor", "show", "c.tiny")["id"] == tiny["id"]

    # an image, uploaded, shared with the demo project, accepted there
    (tmp_path / "disk.raw").write_bytes(os.urandom(200_000))
    image = cli("image", "create", "--file", "disk.raw", "--disk-format", "raw",
                "--container-format", "bare", "--private", "c-img")
    assert (image["status"], image["size"], image["visibility"]) == ("active", 200_000,
                                                                     "private")
    assert [row["Name"] for row in cli("image", "list")] == ["c-img"]
    cli("image", "set", "--shared", "c-img", output=False)
    assert cli("image", "show", "c-img")["visibility"] == "shared"
    member = cli("image", "add", "project", "c-img", "demo")
    assert (member["image_id"], member["status"]) == (image["id"], "pending")
    cli("image", "set", "--accept", image["id"], as_="nimbus-demo", output=False)
    assert [row["ID"] for row in cli("image", "list", as_="nimbus-demo")] == [image["id"]]

    # a keypair (the CLI makes the key and posts the public half)
    assert "PRIVATE KEY" in cli("keypair", "create", "c-key", output=False)

    # the server lifecycle
    server = cli("server", "create", "--flavor", "c.tiny", "--image", "c-img",
                 "--key-name", "c-key", "--wait", "c-vm")
    assert (server["status"], server["key_name"]) == ("ACTIVE", "c-key")
    assert server["addresses"]
    listed = cli("server", "list")
    assert [(row["Name"], row["Status"], row["Image"], row["Flavor"]) for row in listed] == [
        ("c-vm", "ACTIVE", "c-img", "c.tiny")]
    shown = cli("server", "show", "c-vm")
    assert (shown["id"], shown["flavor"]["original_name"]) == (server["id"], "c.tiny")
    first_host = shown["OS-EXT-SRV-ATTR:host"]

    cli("server", "reboot", "--wait", "c-vm", output=False)
    assert cli.settle("c-vm", "ACTIVE")["OS-EXT-STS:power_state"] == 1  # running
    cli("server", "stop", "c-vm", output=False)
    assert cli.settle("c-vm", "SHUTOFF")["OS-EXT-STS:power_state"] == 4  # shut down
    cli("server", "start", "c-vm", output=False)
    cli.settle("c-vm", "ACTIVE")

    cli("server", "resize", "--flavor", "c.small", "--wait", "c-vm", output=False)
    resized = cli.settle("c-vm", "VERIFY_RESIZE")
    assert resized["flavor"]["original_name"] == "c.small"
    cli("server", "resize", "confirm", "c-vm", output=False)
    confirmed = cli.settle("c-vm", "ACTIVE")
    assert confirmed["flavor"]["original_name"] == "c.small"
    assert confirmed["OS-EXT-SRV-ATTR:host"] != first_host  # resizes to another host

    cli("server", "migrate", "--wait", "c-vm", output=False)
    migrated = cli.settle("c-vm", "VERIFY_RESIZE")
    assert migrated["OS-EXT-SRV-ATTR:host"] != confirmed["OS-EXT-SRV-ATTR:host"]
    cli("server", "migration", "confirm", "c-vm", output=False)
    assert cli.settle("c-vm", "ACTIVE")["OS-EXT-SRV-ATTR:host"] == migrated[
        "OS-EXT-SRV-ATTR:host"]

    cli("server", "shelve", "--wait", "c-vm", output=False)
    assert cli("server", "show", "c-vm")["status"] in ("SHELVED", "SHELVED_OFFLOADED")
    cli("server", "unshelve", "--wait", "c-vm", output=False)
    assert cli.settle("c-vm", "ACTIVE")["addresses"]

    # a server group with anti-affinity: its two members on two hosts
    group = cli("server", "group", "create", "--policy", "anti-affinity", "c-grp")
    assert (group["name"], group["policy"], group["members"]) == ("c-grp", "anti-affinity", [])
    hosts = []
    for name in ("c-g1", "c-g2"):
        member_vm = cli("server", "create", "--flavor", "c.tiny", "--image", "c-img",
                        "--hint", f"group={group['id']}", "--wait", name)
        assert member_vm["status"] == "ACTIVE"
        hosts.append(member_vm["OS-EXT-SRV-ATTR:host"])
    assert len(set(hosts)) == 2, hosts

    # quotas and limits: instances set to what runs, then a create is refused
    limits = {row["Resource"]: row["Limit"] for row in cli("quota", "show", "admin")}
    assert (limits["instances"], limits["cores"], limits["ram"]) == (10, 20, 51200)
    cli("quota", "set", "--instances", "3", "admin", output=False)
    refused = cli.run("server", "create", "--flavor", "c.tiny", "--image", "c-img",
                      "--wait", "c-over")
    assert refused.returncode != 0
    assert ("Quota exceeded for instances: Requested 1, but already used 3 of 3 instances"
            in refused.stderr), refused.stderr
    absolute = {row["Name"]: row["Value"] for row in cli("limits", "show", "--absolute")}
    assert (absolute["instances"], absolute["instances_used"]) == (3, 3)
    assert absolute["total_cores_used"] == 2 + 1 + 1  # c.small and two c.tiny

    # the admin's view of the hosts
    hypervisors = cli("hypervisor", "list")
    assert len(hypervisors) == 3 and {row["State"] for row in hypervisors} == {"up"}
    stats = cli("hypervisor", "stats", "show")
    assert (stats["count"], stats["running_vms"], stats["vcpus_used"]) == (3, 3, 4)
    services = cli("compute", "service", "list")
    assert sorted(row["Host"] for row in services) == sorted(
        row["Hypervisor Hostname"] for row in hypervisors)
    off = services[0]
    cli("compute", "service", "set", "--disable", "--disable-reason", "maintenance",
        off["Host"], off["Binary"], output=False)
    after = {row["Host"]: row for row in cli("compute", "service", "list", "--long")}
    assert (after[off["Host"]]["Status"], after[off["Host"]]["Disabled Reason"]) == (
        "disabled", "maintenance")
    # Not asserted: that a server created now avoids the disabled host. The scheduler
    # reads service status only when it refreshes its host states (every
    # ``refresh_interval``, 60 s), so for up to a minute a disabled host still gets
    # new servers, where Nova's ComputeFilter refuses it on the next request.

    # delete them all at once
    cli("server", "delete", "--wait", "c-vm", "c-g1", "c-g2", output=False)
    assert cli("server", "list") == []

    # an aggregate with a zone, and a host added to it (a host with instances may not
    # change zone, so this comes once the servers are gone)
    aggregate = cli("aggregate", "create", "--zone", "az1", "--property", "fast=true", "c-agg")
    assert (aggregate["name"], aggregate["availability_zone"]) == ("c-agg", "az1")
    with_host = cli("aggregate", "add", "host", "c-agg", off["Host"])
    assert with_host["hosts"] == [off["Host"]]
    assert with_host["properties"] == {"availability_zone": "az1", "fast": "true"}
    took = time.monotonic() - started
    assert took < 240, (len(cli.spent), sorted(cli.spent, reverse=True)[:10])


def test_the_main_path_through_openstacksdk(request: pytest.FixtureRequest, cloud: Cloud,
                                            tmp_path: Path) -> None:
    openstack = openstack_executable(request.config)
    cli = Cli(openstack, cloud, tmp_path)
    cli("flavor", "create", "--ram", "256", "--vcpus", "1", "--disk", "1", "s.tiny")
    cli("flavor", "create", "--ram", "512", "--vcpus", "2", "--disk", "2", "s.small")
    script = Path(__file__).with_name("sdk_main_path.py")
    done = subprocess.run([str(openstack.parent / "python"), str(script), "nimbus-admin",
                           "s.tiny", "s.small"], capture_output=True, text=True, timeout=180,
                          env=cli.env, cwd=tmp_path)
    assert done.returncode == 0, f"{done.stderr}\n{cloud.logs()}"
    seen = json.loads(done.stdout)
    assert seen["image"] == ["active", 100_000]
    assert seen["keypair"] == ["sdk-key", True, True]  # the server made the key
    assert seen["created"][:2] == ["ACTIVE", True]
    assert (seen["rebooted"], seen["stopped"], seen["started"]) == ("ACTIVE", "SHUTOFF",
                                                                    "ACTIVE")
    assert seen["resized"] == ["VERIFY_RESIZE", "s.small"]
    assert seen["confirmed"] == ["ACTIVE", "s.small"]
    assert seen["left"] == []
