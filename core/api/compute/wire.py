"""What every Compute API request goes through: token, microversion, checks, errors.

A Compute API handler is ``async (env, creq) -> Response``: ``env`` is the
:class:`ComputeEnv` the service built once (the Store, the compute API logic,
the token check), ``creq`` the :class:`ComputeRequest` (the core request, the
caller's :class:`~nimbus.core.context.RequestContext` and the microversion).
:func:`route` turns a handler into core routes, under ``/v2.1`` and under
``/v2.1/{project_id}`` (clients use both). It checks the ``X-Auth-Token``
(401 without a valid one), negotiates the microversion (400/406), answers 404
outside the handler's microversion range (an API removed, or not yet there),
refuses a project id in the URL that is not the token's (400, as Nova), turns
errors into Nova's fault body, and adds the version and request-id headers.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jsonschema
import msgspec

from nimbus.core.api.compute import microversion
from nimbus.core.api.compute.microversion import MAX_VERSION, Version
from nimbus.core.api.http import JSON_TYPE, ApiContext, Request, Response, Route, error_response
from nimbus.core.compute.api import ComputeAPI
from nimbus.core.context import RequestContext
from nimbus.core.db.store import Store
from nimbus.core.errors import ApiError, InvalidInput, NimbusError
from nimbus.core.policy import DEFAULT_POLICY, Policy
from nimbus.core.runtime import Runtime

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-openstack-request-id"
#: Path prefixes every route is served under (the second as keystoneauth builds it
#: from a catalog URL that names the project).
PREFIXES = ("/v2.1", "/v2.1/{project_id}")

#: Turns a token into the caller's context (``IdentityLogic.context_for``); raises a
#: 401 ``ApiError`` (or any ``NimbusError``) for a token that is not valid.
Authenticator = Callable[[str, str], Awaitable[RequestContext]]


@dataclass(frozen=True, slots=True)
class ComputeEnv:
    """What Compute API handlers work with, built once by the service that serves them."""

    store: Store
    compute: ComputeAPI
    runtime: Runtime
    authenticate: Authenticator
    #: the highest microversion served (the advertised one)
    max_version: Version = MAX_VERSION
    #: public base URL (``http://h:8774``) for links; empty: from the Host header
    base_url: str = ""
    #: the rules in force (``[policy] file`` over the shipped defaults)
    policy: Policy = DEFAULT_POLICY


@dataclass(frozen=True, slots=True)
class ComputeRequest:
    """A request as Compute API handlers see it."""

    request: Request
    ctx: RequestContext
    version: Version
    base_url: str
    policy: Policy = DEFAULT_POLICY

    def at_least(self, minor: int) -> bool:
        """Whether the request is served at microversion 2.``minor`` or later."""
        return self.version >= (2, minor)

    def param(self, name: str) -> str:
        """A value matched by the route template, such as ``server_id``."""
        return self.request.path_params[name]

    def body(self, schema: Mapping[str, Any] | None = None) -> Any:
        """The JSON body (400 if it is not JSON), checked against ``schema`` if given."""
        try:
            data = msgspec.json.decode(self.request.body)
        except msgspec.DecodeError:
            raise InvalidInput("Malformed request body") from None
        if schema is not None:
            validate(data, schema)
        return data

    def query(self, name: str, default: str | None = None) -> str | None:
        """The last value of a query parameter, or ``default``."""
        return self.request.query_one(name, default)

    def link(self, *parts: str) -> str:
        """An absolute link under ``/v2.1/<project>``, as Nova builds ``self`` links."""
        return "/".join([f"{self.base_url}/v2.1/{self.ctx.project_id}", *parts])

    def bookmark(self, *parts: str) -> str:
        """A bookmark link (no version), as Nova builds them."""
        return "/".join([f"{self.base_url}/{self.ctx.project_id}", *parts])

    def allows(self, rule: str, owner: Owned | Mapping[str, object] | None = None) -> bool:
        """Whether the policy lets the caller do ``rule`` to what ``owner`` owns (a
        record with ``project_id``/``user_id``, a target mapping, or by default the
        caller's own project)."""
        return self.policy.allows(rule, self.ctx, target_of(owner))

    def authorize(self, rule: str, owner: Owned | Mapping[str, object] | None = None) -> None:
        """403 in Nova's words (``Policy doesn't allow <rule> to be performed.``)
        unless :meth:`allows`."""
        self.policy.authorize(rule, self.ctx, target_of(owner))


class Owned(Protocol):
    """A record some project (and user) owns: an instance, a key pair, a group."""

    @property
    def project_id(self) -> str: ...


def target_of(owner: Owned | Mapping[str, object] | None) -> Mapping[str, object] | None:
    """The policy target for ``owner``: its ``project_id`` and ``user_id``."""
    if owner is None or isinstance(owner, Mapping):
        return owner
    return {"project_id": owner.project_id, "user_id": getattr(owner, "user_id", None)}


#: A Compute API handler.
ComputeHandler = Callable[[ComputeEnv, ComputeRequest], Awaitable[Response]]


#: Validators of the schemas seen, by id (each kept with its schema, so the id stays its).
_VALIDATORS: dict[int, tuple[Mapping[str, Any], jsonschema.Draft4Validator]] = {}


def _validator(schema: Mapping[str, Any]) -> jsonschema.Draft4Validator:
    """A validator for ``schema``, made once for schemas built once (module constants,
    cached builders); a schema built per request gets a validator of its own."""
    found = _VALIDATORS.get(id(schema))
    if found is not None and found[0] is schema:
        return found[1]
    validator = jsonschema.Draft4Validator(schema)
    if len(_VALIDATORS) < 4096:
        _VALIDATORS[id(schema)] = (schema, validator)
    return validator


def validate(data: Any, schema: Mapping[str, Any]) -> None:
    """400 naming the first field that breaks ``schema``, in Nova's words."""
    validator = _validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is None:
        return
    where = "/".join(str(p) for p in error.absolute_path)
    if where:
        raise InvalidInput(f"Invalid input for field/attribute {where}. Value: "
                           f"{error.instance!r}. {error.message}")
    raise InvalidInput(f"Invalid input: {error.message}")


def isotime(when: float | None) -> str | None:
    """Epoch seconds as Nova prints times (``2026-11-27T06:44:29Z``)."""
    if when is None:
        return None
    moment = datetime.datetime.fromtimestamp(when, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, field: str) -> float:
    """An ISO 8601 time from a query (``changes-since``) as epoch seconds; 400 if it is not."""
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"Invalid input for query parameter {field}: {text!r} is not "
                           "an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON answer."""
    return Response(status, body, JSON_TYPE, dict(headers or {}))


def route(env: ComputeEnv, method: str, path: str, handler: ComputeHandler, *,
          min_minor: int = 1, max_minor: int | None = None, name: str = "",
          needs_token: bool = True) -> list[Route]:
    """Core routes serving ``handler`` at 2.``min_minor`` .. 2.``max_minor`` under every
    prefix (``path`` is what follows ``/v2.1``)."""
    first, last = Version(2, min_minor), Version(2, max_minor) if max_minor else None

    async def serve(ctx: ApiContext, req: Request) -> Response:
        return await _answer(env, ctx, req, handler, first, last, needs_token)

    serve.__name__ = handler.__name__
    return [Route(method, prefix + path, serve, name or handler.__name__)
            for prefix in PREFIXES]


async def _answer(env: ComputeEnv, ctx: ApiContext, req: Request, handler: ComputeHandler,
                  first: Version, last: Version | None, needs_token: bool) -> Response:
    request_id = f"req-{env.runtime.new_id()}"
    headers = {REQUEST_ID_HEADER: request_id}
    try:
        version = microversion.negotiate(req.headers, env.max_version)
        headers.update(microversion.answer_headers(version))
        if needs_token:
            token = req.header("x-auth-token")
            if not token:
                raise ApiError(401, "The request you have made requires authentication.")
            caller = await env.authenticate(token, request_id)
        else:
            caller = RequestContext("", "", request_id, ())
        project = req.path_params.get("project_id")
        if needs_token and project is not None and project != caller.project_id:
            raise InvalidInput("Malformed request URL: URL's project_id "
                               f"'{project}' doesn't match Context's project_id "
                               f"'{caller.project_id}'")
        if version < first or (last is not None and version > last):
            raise ApiError(404, f"The resource could not be found at microversion {version}.")
        base = env.base_url.rstrip("/") or ctx.public_url(req)
        resp = await handler(env, ComputeRequest(req, caller, version, base, env.policy))
    except NimbusError as exc:
        if exc.status >= 500:
            log.warning("%s %s failed: %s", req.method, req.path, exc.message)
        resp = error_response(exc)
    except Exception:
        log.exception("%s %s failed", req.method, req.path)
        resp = error_response(RuntimeError())
    return dataclasses.replace(resp, headers={**resp.headers, **headers})
