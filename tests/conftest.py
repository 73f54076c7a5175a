"""Fixtures for every test: nothing may write into the user's home directory.

``nimbus serve`` keeps its default SQLite database in ``$XDG_DATA_HOME/nimbus``;
each test session points ``XDG_DATA_HOME`` at a temporary directory, which the
``nimbus`` subprocesses that tests start inherit too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def _state_out_of_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    before = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("xdg-data-home"))
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("XDG_DATA_HOME", None)
        else:
            os.environ["XDG_DATA_HOME"] = before
