"""The files an all-in-one cloud keeps in its state directory: secrets and ``clouds.yaml``.

A secret the configuration does not give (the Fernet key that signs tokens, the
bootstrap passwords) is made once, written to ``<state_dir>/secrets/<name>``
readable by its owner only, and read back by every later start and by every
other process sharing the state directory. So tokens survive a restart, and
the admin password the identity bootstrap (re)sets stays the one printed the
first time.

``clouds.yaml`` is what the stock clients read (``OS_CLIENT_CONFIG_FILE``,
``--os-cloud NAME``); it is rewritten at each start with the current address.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nimbus.config import NimbusConfig
from nimbus.core.identity.tokens import generate_key

#: The clouds the generated clouds.yaml names, and the user/project each logs in as.
ADMIN_CLOUD = "nimbus-admin"
DEMO_CLOUD = "nimbus-demo"


def state_secret(state_dir: str | Path, name: str, make: Callable[[], str]) -> str:
    """The secret ``name`` of the state directory, made with ``make()`` on first use.

    Safe when several processes start at once: the file is written aside and
    hard-linked into place, so exactly one value wins and everyone reads it.
    """
    folder = Path(state_dir) / "secrets"
    path = folder / name
    with contextlib.suppress(FileNotFoundError):
        return _read(path)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = folder / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(make() + "\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):  # another process was first: use theirs
            os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return _read(path)


def _read(path: Path) -> str:
    value = path.read_text().strip()
    if not value:
        raise OSError(f"{path} is empty; remove it to make a new one")
    return value


def _password() -> str:
    return secrets.token_urlsafe(15)


@dataclass(frozen=True, slots=True)
class Credentials:
    """The bootstrap users' passwords (from ``[identity]``, else the state directory)."""

    admin_password: str
    demo_password: str


def fernet_keys(config: NimbusConfig) -> tuple[str, ...]:
    """``[identity] fernet_keys``, else the one key of the state directory."""
    if config.identity.fernet_keys:
        return config.identity.fernet_keys
    return (state_secret(config.serve.state_dir, "fernet_key", generate_key),)


def credentials(config: NimbusConfig) -> Credentials:
    """The admin and demo passwords the identity bootstrap sets."""
    cfg, state = config.identity, config.serve.state_dir
    return Credentials(
        cfg.admin_password or state_secret(state, "admin_password", _password),
        cfg.demo_password or state_secret(state, "demo_password", _password))


def clouds_yaml(auth_url: str, region: str, creds: Credentials) -> str:
    """A ``clouds.yaml`` with the clouds ``nimbus-admin`` and ``nimbus-demo``."""
    def cloud(name: str, user: str, password: str) -> list[str]:
        # JSON strings are valid YAML scalars: quoting is never wrong
        q = json.dumps
        return [f"  {name}:",
                "    auth:",
                f"      auth_url: {q(auth_url)}",
                f"      username: {q(user)}",
                f"      password: {q(password)}",
                f"      project_name: {q(user)}",
                "      user_domain_name: Default",
                "      project_domain_name: Default",
                f"    region_name: {q(region)}",
                "    interface: public",
                "    identity_api_version: 3"]

    lines = ["# written by `nimbus serve` at each start", "clouds:",
             *cloud(ADMIN_CLOUD, "admin", creds.admin_password),
             *cloud(DEMO_CLOUD, "demo", creds.demo_password)]
    return "\n".join(lines) + "\n"


def write_clouds_yaml(state_dir: str | Path, auth_url: str, region: str,
                      creds: Credentials) -> Path:
    """Write ``<state_dir>/clouds.yaml`` (owner-only: it holds passwords); its path."""
    path = Path(state_dir).resolve() / "clouds.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".clouds.yaml.{os.getpid()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(clouds_yaml(auth_url, region, creds))
    os.replace(temp, path)
    return path
