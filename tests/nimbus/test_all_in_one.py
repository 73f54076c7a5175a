"""``nimbus serve`` with no arguments: a whole cloud the stock OpenStack clients use.

One ``nimbus serve`` process (every port 0, a fresh state directory through
``XDG_DATA_HOME``) is driven first over plain HTTP, as CLIENTS.md describes the
clients' requests, then with the stock ``openstack`` CLI through the
``clouds.yaml`` the server writes (see :mod:`.openstack_venv`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from nimbus.cloud_files import credentials, fernet_keys, write_clouds_yaml
from nimbus.config import load_config
from nimbus.serve import compute_hosts, service_names

from .openstack_venv import openstack_executable

#: How long the cloud may take to print its banner (it imports a lot, and CI is busy).
START_DEADLINE = 60.0


@dataclass
class Cloud:
    """A running ``nimbus serve`` and what its banner said."""

    proc: subprocess.Popen[str]
    state_dir: Path
    stderr: Path
    lines: list[str] = field(default_factory=list)

    def line(self, prefix: str) -> str:
        """The banner line starting with ``nimbus: <prefix>``."""
        return next(ln for ln in self.lines if ln.startswith(f"nimbus: {prefix}"))

    @property
    def identity_url(self) -> str:
        return self.line("Identity API on ").split(" on ")[1]

    @property
    def admin_password(self) -> str:
        found = re.search(r"password (\S+)", self.line("admin user"))
        assert found is not None
        return found[1]

    @property
    def clouds_yaml(self) -> Path:
        return Path(self.line("export OS_CLIENT_CONFIG_FILE=").split("=")[1].split(";")[0])

    def logs(self) -> str:
        return self.stderr.read_text()[-4000:]

    def stop(self) -> None:
        """Stop the server as a supervisor would: SIGTERM, then SIGKILL after 10 s."""
        self.proc.terminate()
        try:
            self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


def start_cloud(tmp: Path) -> Cloud:
    """Start ``nimbus serve`` with every port 0 and wait for its whole banner."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NIMBUS_", "OS_"))}
    env["XDG_DATA_HOME"] = str(tmp / "xdg")
    ports = [f"--set={name}.port=0" for name in ("api", "identity", "image", "placement")]
    stderr = tmp / "nimbus.log"
    with open(stderr, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "nimbus", "serve", *ports],
                                stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    cloud = Cloud(proc, tmp / "xdg" / "nimbus", stderr)
    assert proc.stdout is not None
    end = time.monotonic() + START_DEADLINE
    while not cloud.lines or not cloud.lines[-1].startswith("nimbus: export "):
        line = proc.stdout.readline()
        if not line or time.monotonic() > end:
            proc.kill()
            proc.communicate()
            pytest.fail(f"no whole banner (exit {proc.returncode}): {cloud.lines}\n"
                        f"{cloud.logs()}")
        cloud.lines.append(line.strip())
    return cloud


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    running = start_cloud(tmp_path)
    try:
        yield running
    finally:
        running.stop()
    assert running.proc.returncode == 0, running.logs()


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


def http(method: str, url: str, body: Any = None, *, token: str | None = None,
         headers: dict[str, str] | None = None) -> Answer:
    """One request; any status is an answer (urllib raises on most)."""
    sent = dict(headers or {})
    data: bytes | None = None
    if isinstance(body, bytes):
        data = body
        sent.setdefault("Content-Type", "application/octet-stream")
    elif body is not None:
        data = json.dumps(body).encode()
        sent.setdefault("Content-Type", "application/json")
    if token is not None:
        sent["X-Auth-Token"] = token
    sent.setdefault("Accept", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, got, raw = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        status, got, raw = exc.code, dict(exc.headers), exc.read()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw
    return Answer(status, {k.lower(): v for k, v in got.items()}, parsed)


def compute(version: str) -> dict[str, str]:
    return {"OpenStack-API-Version": f"compute {version}",
            "X-OpenStack-Nova-API-Version": version}


def issue_token(identity_url: str, password: str) -> Answer:
    return http("POST", f"{identity_url}/auth/tokens", {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "password": password, "domain": {"name": "Default"}}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}})


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_whole_cloud_over_http(cloud: Cloud) -> None:
    issued = issue_token(cloud.identity_url, cloud.admin_password)
    assert issued.status == 201, issued.body
    token = issued.headers["x-subject-token"]
    catalog = {svc["type"]: svc["endpoints"][0]["url"] for svc in issued.body["token"]["catalog"]}
    assert set(catalog) == {"identity", "compute", "image", "placement"}
    assert catalog["identity"] == cloud.identity_url
    assert catalog["compute"].endswith("/v2.1")

    # every endpoint answers its discovery request
    assert http("GET", catalog["identity"]).body["version"]["id"].startswith("v3")
    assert http("GET", catalog["image"] + "/").status == 300
    assert http("GET", catalog["placement"] + "/").status == 200
    providers = http("GET", catalog["placement"] + "/resource_providers", token=token,
                     headers={"OpenStack-API-Version": "placement 1.29"})
    assert len(providers.body["resource_providers"]) == 3  # the computes report at start
    doc = http("GET", catalog["compute"]).body["version"]
    assert (doc["id"], doc["min_version"]) == ("v2.1", "2.1")
    api = catalog["compute"]
    assert http("GET", api + "/flavors", token="not-a-token").status == 401

    # flavors through the Compute API
    made = http("POST", f"{api}/flavors", {"flavor": {
        "name": "t.tiny", "ram": 256, "vcpus": 1, "disk": 1, "swap": 0,
        "OS-FLV-EXT-DATA:ephemeral": 0, "os-flavor-access:is_public": True, "id": None}},
        token=token, headers=compute("2.61"))
    assert made.status == 200, made.body
    flavor_id = made.body["flavor"]["id"]
    listed = http("GET", f"{api}/flavors/detail?is_public=None", token=token,
                  headers=compute("2.61"))
    assert flavor_id in [f["id"] for f in listed.body["flavors"]]

    # an image, created then uploaded, through the Image API
    image = catalog["image"]
    created = http("POST", f"{image}/v2/images", {
        "name": "t-img", "container_format": "bare", "disk_format": "raw",
        "owner_specified.openstack.md5": ""}, token=token)
    assert created.status == 201, created.body
    image_id = created.body["id"]
    data = os.urandom(300_000)
    assert http("PUT", f"{image}/v2/images/{image_id}/file", data, token=token).status == 204
    shown = http("GET", f"{image}/v2/images/{image_id}", token=token).body
    assert (shown["status"], shown["size"]) == ("active", len(data))

    # a server on one of the three fake hosts, when the servers resource is served
    probe = http("POST", f"{api}/servers", {}, token=token, headers=compute("2.37"))
    if probe.status in (404, 405):
        return
    booted = http("POST", f"{api}/servers", {"server": {
        "name": "t-vm", "imageRef": image_id, "flavorRef": flavor_id, "networks": "auto"}},
        token=token, headers=compute("2.37"))
    assert booted.status == 202, booted.body
    server_id = booted.body["server"]["id"]
    end = time.monotonic() + 30
    server: dict[str, Any] = {}
    while time.monotonic() < end:
        server = http("GET", f"{api}/servers/{server_id}", token=token,
                      headers=compute("2.37")).body["server"]
        if server["status"] in ("ACTIVE", "ERROR"):
            break
        time.sleep(0.2)
    assert server["status"] == "ACTIVE", server
    assert server["addresses"], server  # the SDK's cloud layer needs a fixed IP
    hosts = http("GET", f"{api}/os-hypervisors", token=token, headers=compute("2.53"))
    if hosts.status == 200:  # the all-in-one runs three fake hypervisors
        assert len(hosts.body["hypervisors"]) == 3


@pytest.mark.slow
@pytest.mark.timeout(400)  # building the client's virtualenv may come first
def test_the_stock_openstack_cli(request: pytest.FixtureRequest, cloud: Cloud,
                                 tmp_path: Path) -> None:
    openstack = openstack_executable(request.config)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "OS_CLIENT_CONFIG_FILE": str(cloud.clouds_yaml)}

    def cli(*args: str, output: bool = True) -> Any:
        argv = [str(openstack), "--os-cloud", "nimbus-admin", *args]
        done = subprocess.run([*argv, *(("-f", "json") if output else ())],
                              capture_output=True, text=True, timeout=60, env=env,
                              cwd=tmp_path)
        assert done.returncode == 0, f"{' '.join(args)}: {done.stderr}\n{cloud.logs()}"
        return json.loads(done.stdout) if output else done.stdout

    token = cli("token", "issue")
    assert token["id"] and token["project_id"] and token["user_id"]
    assert {row["Type"] for row in cli("catalog", "list")} == {
        "identity", "compute", "image", "placement"}
    # osc-placement finds Placement through the catalog: one provider per fake host
    assert len(cli("resource", "provider", "list")) == 3

    made = cli("flavor", "create", "--ram", "256", "--vcpus", "1", "--disk", "1", "c.tiny")
    assert made["name"] == "c.tiny"
    assert "c.tiny" in [row["Name"] for row in cli("flavor", "list")]

    (tmp_path / "disk.raw").write_bytes(os.urandom(200_000))
    image = cli("image", "create", "--file", "disk.raw", "--disk-format", "raw",
                "--container-format", "bare", "c-img")
    assert (image["status"], image["size"]) == ("active", 200_000)

    private_key = cli("keypair", "create", "c-key", output=False)
    assert "PRIVATE KEY" in private_key
    assert "c-key" in [row["Name"] for row in cli("keypair", "list")]

    if not (Path(__file__).parents[2] / "core" / "api" / "compute" / "servers.py").exists():
        return
    server = cli("server", "create", "--flavor", "c.tiny", "--image", "c-img",
                 "--key-name", "c-key", "--wait", "c-vm")
    assert server["status"] == "ACTIVE"
    assert server["addresses"]
    listed = cli("server", "list")
    assert [(row["Name"], row["Status"]) for row in listed] == [("c-vm", "ACTIVE")]
    cli("server", "delete", "--wait", "c-vm", output=False)
    assert cli("server", "list") == []


# -- in process: the pieces -------------------------------------------------------------


def test_fake_hosts_default_to_three_for_the_all_in_one_only() -> None:
    def hosts(*overrides: str) -> list[str]:
        return compute_hosts(load_config(None, {}, ["serve.host=h", *overrides]))

    assert hosts() == ["h-1", "h-2", "h-3"]
    assert hosts("compute.fake_hosts=1") == ["h-1"]
    assert hosts("serve.services=compute,conductor") == ["h"]
    assert hosts("serve.services=compute", "compute.fake_hosts=2") == ["h-1", "h-2"]
    names = service_names(load_config(None, {}, []))
    assert names[:2] == ["conductor", "compute"] and names[-1] == "identity"


def test_secrets_are_made_once_owner_only_and_config_wins(tmp_path: Path) -> None:
    config = load_config(None, {}, [f"serve.state_dir={tmp_path}"])
    first, keys = credentials(config), fernet_keys(config)
    assert credentials(config) == first and fernet_keys(config) == keys  # read back
    assert first.admin_password != first.demo_password
    for name in ("admin_password", "demo_password", "fernet_key"):
        assert (tmp_path / "secrets" / name).stat().st_mode & 0o077 == 0
    given = load_config(None, {}, [f"serve.state_dir={tmp_path}", "identity.admin_password=pw",
                                   "identity.fernet_keys=" + keys[0]])
    assert credentials(given).admin_password == "pw"
    assert fernet_keys(given) == keys


def test_clouds_yaml_names_both_clouds(tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    creds = credentials(load_config(None, {}, [f"serve.state_dir={tmp_path}"]))
    path = write_clouds_yaml(tmp_path, "http://127.0.0.1:5000/v3", "RegionOne", creds)
    assert path.stat().st_mode & 0o077 == 0
    clouds = yaml.safe_load(path.read_text())["clouds"]
    assert clouds["nimbus-admin"]["auth"] == {
        "auth_url": "http://127.0.0.1:5000/v3", "username": "admin",
        "password": creds.admin_password, "project_name": "admin",
        "user_domain_name": "Default", "project_domain_name": "Default"}
    assert clouds["nimbus-demo"]["auth"]["password"] == creds.demo_password
