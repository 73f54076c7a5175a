"""A Placement API on a SimDatabase-backed Store, called without sockets.

``placement.call(method, path, ...)`` finds the route in ``ROUTES`` as the
adapter would, builds a core ``Request`` and drives the handler to its answer
in one step (the sim Store never suspends), so the tests read like HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest

from nimbus.core.api.http import ApiContext, Request, Response, Route
from nimbus.core.api.placement.routes import ROUTES
from nimbus.core.db.store import Store
from nimbus.core.metrics import Metrics
from nimbus.sim.db import SimDatabase
from nimbus.sim.runtime import SimRuntime

LATEST = "1.29"


def _pattern(route: Route) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", route.path) + "$")


_TABLE = [(route, _pattern(route)) for route in ROUTES]


def drive(coro: Coroutine[Any, Any, Response]) -> Response:
    """Run a handler that never waits: one step, no event loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError("the handler waited on something")


@dataclass
class Answer:
    """A response, with the body decoded."""

    status: int
    body: Any
    headers: dict[str, str]

    @property
    def error(self) -> dict[str, Any]:
        """The one error of a Placement error body."""
        errors = self.body["errors"]
        assert len(errors) == 1, errors
        return errors[0]  # type: ignore[no-any-return]


class Placement:
    """Calls Placement handlers as an HTTP client would."""

    def __init__(self) -> None:
        self.runtime = SimRuntime(seed=7)
        self.store = Store(SimDatabase())
        self.ctx = ApiContext(self.runtime, Metrics(), store=self.store)

    def call(self, method: str, path: str, body: Any = None, *, version: str | None = LATEST,
             query: dict[str, str | list[str]] | None = None,
             headers: dict[str, str] | None = None, raw: bytes | None = None) -> Answer:
        sent: dict[str, str] = {}
        if version is not None:
            sent["openstack-api-version"] = f"placement {version}"
        data = b""
        if raw is not None:
            data = raw
            sent["content-type"] = "application/json"
        elif body is not None:
            data = msgspec.json.encode(body)
            sent["content-type"] = "application/json"
        sent.update({k.lower(): v for k, v in (headers or {}).items()})
        params = {k: v if isinstance(v, list) else [v] for k, v in (query or {}).items()}
        for route, pattern in _TABLE:
            match = pattern.match(path)
            if match and route.method == method:
                req = Request(method, path, match.groupdict(), params, sent, data)
                resp = drive(route.handler(self.ctx, req))
                decoded = (msgspec.json.decode(resp.encoded())
                           if resp.body is not None else None)
                return Answer(resp.status, decoded, dict(resp.headers))
        raise AssertionError(f"no route for {method} {path}")

    # -- shortcuts for setting up ------------------------------------------------------

    def provider(self, name: str, *, parent: str | None = None, **inventory: int) -> str:
        """A new provider with an inventory of each class given (total only); its uuid."""
        body: dict[str, Any] = {"name": name}
        if parent is not None:
            body["parent_provider_uuid"] = parent
        answer = self.call("POST", "/resource_providers", body)
        assert answer.status == 200, answer.body
        uuid: str = answer.body["uuid"]
        if inventory:
            self.inventory(uuid, **{rc: {"total": n} for rc, n in inventory.items()})
        return uuid

    def inventory(self, uuid: str, **inventories: dict[str, Any]) -> None:
        gen = self.call("GET", f"/resource_providers/{uuid}").body["generation"]
        answer = self.call("PUT", f"/resource_providers/{uuid}/inventories",
                           {"resource_provider_generation": gen, "inventories": inventories})
        assert answer.status == 200, answer.body

    def allocate(self, consumer: str, allocations: dict[str, dict[str, int]],
                 generation: int | None = None) -> Answer:
        return self.call("PUT", f"/allocations/{consumer}", {
            "allocations": {rp: {"resources": res} for rp, res in allocations.items()},
            "project_id": "proj", "user_id": "user", "consumer_generation": generation})

    def generation(self, uuid: str) -> int:
        return int(self.call("GET", f"/resource_providers/{uuid}").body["generation"])

    def new_id(self) -> str:
        return self.runtime.new_id()


@pytest.fixture
def placement() -> Iterator[Placement]:
    """A fresh Placement API over an empty in-memory database."""
    api = Placement()
    yield api
    drive(api.store.close())  # type: ignore[arg-type]
