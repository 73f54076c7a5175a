"""The stock ``openstack`` CLI with ``osc-placement`` against ``nimbus serve --services placement``.

The client is installed once into a virtual environment kept in pytest's cache
(:mod:`.openstack_venv`), so only the first run pays for the download. No
Keystone is needed: keystoneauth's ``none`` plugin with ``--os-endpoint`` sends
requests straight to the Placement URL, and the ``admin_token`` plugin adds an
``X-Auth-Token``, which Nimbus reads and does not check yet. The test is skipped,
saying why, only when the virtual environment cannot be made (no network, no
``venv`` module).
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .openstack_venv import openstack_executable
from .test_serve_cli import free_port, nimbus, wait_until_up

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


@pytest.fixture(scope="session")
def openstack(request: pytest.FixtureRequest) -> Path:
    """The ``openstack`` executable of the stock client."""
    return openstack_executable(request.config)


@pytest.fixture
def placement_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = nimbus("serve", "--services", "placement", "--set", f"placement.port={port}",
                  "--set", f"serve.state_dir={tmp_path}")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(proc, url + "/")
        yield url
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def _http(url: str, method: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Content-Type": "application/json", "OpenStack-API-Version": "placement 1.29"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        raw = resp.read()
        return json.loads(raw) if raw else None


def _cli(openstack: Path, url: str, tmp_path: Path, *args: str,
         auth: tuple[str, ...] = ("--os-auth-type", "none")) -> Any:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    done = subprocess.run([str(openstack), *auth, "--os-endpoint", url, *args, "-f", "json"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_openstack_cli_lists_providers_inventories_and_usages(
        openstack: Path, placement_url: str, tmp_path: Path) -> None:
    rp = _http(placement_url + "/resource_providers", "POST", {"name": "compute-1"})
    uuid = rp["uuid"]
    _http(f"{placement_url}/resource_providers/{uuid}/inventories", "PUT", {
        "resource_provider_generation": 0,
        "inventories": {"VCPU": {"total": 16, "allocation_ratio": 4.0},
                        "MEMORY_MB": {"total": 32768, "reserved": 512},
                        "DISK_GB": {"total": 500}}})
    _http(f"{placement_url}/allocations/8f1c1c7e-4a55-4c9b-9d2e-0000000000c1", "PUT", {
        "allocations": {uuid: {"resources": {"VCPU": 2, "MEMORY_MB": 2048}}},
        "project_id": "p1", "user_id": "u1", "consumer_generation": None})

    def cli(*args: str, **kw: Any) -> Any:
        return _cli(openstack, placement_url, tmp_path, *args, **kw)

    providers = cli("resource", "provider", "list")
    assert providers == [{"uuid": uuid, "name": "compute-1", "generation": 2,
                          "root_provider_uuid": uuid, "parent_provider_uuid": None}]

    inventory = {row["resource_class"]: row
                 for row in cli("resource", "provider", "inventory", "list", uuid)}
    assert set(inventory) == {"VCPU", "MEMORY_MB", "DISK_GB"}
    assert inventory["VCPU"]["total"] == 16
    assert inventory["VCPU"]["allocation_ratio"] == 4.0
    assert inventory["VCPU"]["used"] == 2
    assert inventory["MEMORY_MB"]["reserved"] == 512

    usage = {row["resource_class"]: row["usage"]
             for row in cli("resource", "provider", "usage", "show", uuid)}
    assert usage == {"VCPU": 2, "MEMORY_MB": 2048, "DISK_GB": 0}

    # writes, and the admin_token plugin (a token is sent, read, not checked)
    made = cli("resource", "provider", "create", "compute-2",
               auth=("--os-auth-type", "admin_token", "--os-token", "t0k"))
    assert made["name"] == "compute-2"
    cli("resource", "provider", "inventory", "set", made["uuid"], "--resource", "VCPU=4")
    candidates = cli("allocation", "candidate", "list", "--resource", "VCPU=8")
    assert [c["resource provider"] for c in candidates] == [uuid]
