"""The stock ``openstack`` CLI for tests, installed once into a virtual environment.

The environment lives in pytest's cache (``.pytest_cache/d/osc-placement-venv``),
so only the first run pays for the download (about 30 s). A test using it is
skipped, saying why, only when the environment cannot be made (no network, no
``venv`` module). ``NIMBUS_TEST_OPENSTACK`` may name an ``openstack`` executable
to use instead.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: The versions CLIENTS.md captured.
CLIENT_PACKAGES = ("python-openstackclient==10.5.0", "osc-placement==4.9.1")
INSTALL_TIMEOUT = 300
#: The cache folder (named when only the placement test used it; kept so it is reused).
CACHE_KEY = "osc-placement-venv"


def make_venv(where: Path) -> Path:
    """``where/venv`` with the client installed (once); the path of its ``openstack``."""
    openstack = where / "venv" / "bin" / "openstack"
    ready = where / "ready"
    spec = " ".join(CLIENT_PACKAGES)
    with open(where / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # xdist workers wait for the one that installs
        if ready.exists() and ready.read_text() == spec and openstack.exists():
            return openstack
        steps = [[sys.executable, "-m", "venv", "--clear", str(where / "venv")],
                 [str(where / "venv" / "bin" / "python"), "-m", "pip", "install", "-q",
                  "--disable-pip-version-check", *CLIENT_PACKAGES]]
        for step in steps:
            try:
                done = subprocess.run(step, capture_output=True, text=True,
                                      timeout=INSTALL_TIMEOUT)
            except (OSError, subprocess.TimeoutExpired) as exc:
                pytest.skip(f"cannot create a virtualenv with the stock OpenStack client: {exc}")
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
                pytest.skip("cannot create a virtualenv with the stock OpenStack client: "
                            f"{' '.join(step[:4])} failed: {' '.join(tail)}")
        ready.write_text(spec)
    return openstack


def openstack_executable(config: pytest.Config) -> Path:
    """The ``openstack`` executable of the stock client (``NIMBUS_TEST_OPENSTACK`` or
    the cached virtual environment, made on first use)."""
    given = os.environ.get("NIMBUS_TEST_OPENSTACK")
    if given:
        return Path(given)
    assert config.cache is not None
    return make_venv(config.cache.mkdir(CACHE_KEY))
