"""The tree keeps the shape DESIGN.md draws: packaging maps it, ruff guards rule one."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAPPED = {"nimbus": "nimbus", "nimbus.core": "core", "nimbus.sim": "sim",
          "nimbus.backends": "backends", "nimbus.bench": "bench"}


def test_every_package_folder_is_listed_in_pyproject() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(meta["tool"]["setuptools"]["packages"])
    assert meta["tool"]["setuptools"]["package-dir"] == MAPPED
    found = set()
    for name, folder in MAPPED.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *rel.parts]) if rel.parts else name)
    # nimbus/ holds only its own modules; the others are mapped folders
    assert found - listed == set(), "add these to [tool.setuptools] packages"


@pytest.mark.parametrize("banned", ["asyncio", "simpy", "zmq", "aiohttp", "libvirt"])
def test_ruff_bans_world_imports_in_core(banned: str) -> None:
    source = f"import {banned}\n"
    probe = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--stdin-filename",
         "core/probe.py", "-"],
        input=source, capture_output=True, text=True, cwd=ROOT,
    )
    assert probe.returncode == 1 and "TID251" in probe.stdout, probe.stdout + probe.stderr
    allowed = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "TID251",
         "--stdin-filename", "nimbus/probe.py", "-"],
        input=source, capture_output=True, text=True, cwd=ROOT,
    )
    assert allowed.returncode == 0, allowed.stdout


BANNED = {"asyncio", "simpy", "zmq", "aiohttp", "aio_pika", "pika", "libvirt", "pyVmomi",
          "XenAPI", "threading"}


def test_core_imports_nothing_of_the_world() -> None:
    """Read every core module's imports (a second check beside ruff's TID251).

    Libraries core uses may import asyncio themselves (SQLAlchemy does); what
    rule one forbids is core code waiting on it.
    """
    offenders = []
    for path in (ROOT / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names
                          if n.split(".")[0] in BANNED]
    assert offenders == []
