"""The tree keeps the shape DESIGN.md draws: packaging maps it, ruff guards rule one."""

from __future__ import annotations

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


def test_core_imports_nothing_of_the_world() -> None:
    """Import every core module in a fresh interpreter: no world library gets loaded."""
    code = (
        "import pkgutil, sys, importlib, nimbus.core as c\n"
        "for m in pkgutil.walk_packages(c.__path__, 'nimbus.core.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(n for n in ('asyncio','simpy','zmq','aiohttp') if n in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
