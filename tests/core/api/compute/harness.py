"""The Compute API over a simulated cloud, called without sockets.

``run(scenario)`` starts a :class:`~tests.core.compute.cloud.SimCloud` and hands
``scenario`` an :class:`Api`: requests go through the real routes (token check,
microversions, errors) to the real handlers. Tokens are fixed strings:
``USER`` (project p1), ``READER`` (project p1, the reader role only), ``OTHER``
(project p2), ``ADMIN``. ``run(scenario, policy=Policy({...}))`` serves the API
under other rules.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from nimbus.core.api.compute.routes import compute_routes
from nimbus.core.api.compute.wire import ComputeEnv
from nimbus.core.api.dispatch import Dispatcher
from nimbus.core.api.http import ApiContext, Response
from nimbus.core.context import ADMIN, MEMBER, READER, RequestContext
from nimbus.core.errors import ApiError
from nimbus.core.policy import DEFAULT_POLICY, Policy
from tests.core.compute import cloud as sim

USER, OTHER, ADMIN_TOKEN, READER_TOKEN = "tok-user", "tok-other", "tok-admin", "tok-reader"
CONTEXTS = {
    USER: ("u1", "p1", (MEMBER, READER)),
    READER_TOKEN: ("u3", "p1", (READER,)),
    OTHER: ("u2", "p2", (MEMBER, READER)),
    ADMIN_TOKEN: ("admin", "admin", (ADMIN, MEMBER, READER)),
}


async def authenticate(token: str, request_id: str) -> RequestContext:
    """The fixed tokens of these tests; anything else is a 401."""
    try:
        user, project, roles = CONTEXTS[token]
    except KeyError:
        raise ApiError(401, "The request you have made requires authentication.") from None
    return RequestContext(user, project, request_id, roles)


@dataclass
class Answer:
    """A response with its JSON body decoded."""

    status: int
    body: Any
    headers: Mapping[str, str]


@dataclass
class Api:
    """Requests to the Compute API of a simulated cloud."""

    cloud: sim.SimCloud
    dispatcher: Dispatcher

    async def request(self, method: str, path: str, body: Any = None, *, token: str = USER,
                      version: str | None = None, query: Mapping[str, Any] | None = None,
                      headers: Mapping[str, str] | None = None) -> Answer:
        heads = {"x-auth-token": token, **(headers or {})} if token else dict(headers or {})
        if version is not None:
            heads["openstack-api-version"] = f"compute {version}"
        resp: Response = await self.dispatcher.call(method, f"/v2.1{path}", body=body,
                                                    headers=heads, query=query)
        raw = resp.encoded()
        decoded = msgspec.json.decode(raw) if raw and resp.content_type.startswith(
            "application/json") else raw
        return Answer(resp.status, decoded, resp.headers)

    async def get(self, path: str, **kw: Any) -> Answer:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, body: Any = None, **kw: Any) -> Answer:
        return await self.request("POST", path, body, **kw)

    async def put(self, path: str, body: Any = None, **kw: Any) -> Answer:
        return await self.request("PUT", path, body, **kw)

    async def delete(self, path: str, **kw: Any) -> Answer:
        return await self.request("DELETE", path, **kw)


def run(scenario: Callable[[Api], Awaitable[Any]], *, policy: Policy = DEFAULT_POLICY,
        **kw: Any) -> Any:
    """Run ``scenario(api)`` against a started simulated cloud (``kw`` go to its ``run``)."""
    async def with_api(cloud: sim.SimCloud) -> Any:
        assert cloud.api is not None
        cloud.api.policy = policy
        env = ComputeEnv(cloud.store, cloud.api, cloud.rt, authenticate,
                         base_url="http://nimbus.test:8774", policy=policy)
        ctx = ApiContext(cloud.rt, cloud.metrics, "http://nimbus.test:8774", cloud.client,
                         store=cloud.store)
        return await scenario(Api(cloud, Dispatcher(ctx, compute_routes(env))))

    return sim.run(with_api, **kw)
