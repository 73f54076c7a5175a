"""What every identity request goes through: the caller's token, bodies, Keystone's errors.

An identity handler is ``async (ireq) -> Response`` over an
:class:`IdentityRequest`: the core request, the API context and the
:class:`~nimbus.core.identity.service.IdentityLogic` it serves. :func:`route`
turns one into a core :class:`Route` (the logic is bound in a closure, since
``ApiContext`` has no slot for it), answers every error in Keystone's shape
``{"error": {"code", "title", "message"}}``, and adds the headers every
Keystone answer carries.

Every decision that depends on the caller's roles is a Keystone rule
(``identity:list_projects``) of the logic's policy, checked by
:meth:`IdentityRequest.authorize` against the object's ``user_id`` or
``project_id``; a refusal is Keystone's 403 naming the rule.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from nimbus.core.api.http import JSON_TYPE, ApiContext, Request, Response, Route
from nimbus.core.context import RequestContext
from nimbus.core.errors import ApiError, DuplicateError, NimbusError, NotFound
from nimbus.core.identity.authbody import invalid, member
from nimbus.core.identity.service import IdentityLogic, TokenInfo
from nimbus.core.identity.tokens import AUTH_REQUIRED, InvalidToken, Unauthorized

log = logging.getLogger(__name__)

#: The header naming the request in logs.
REQUEST_ID_HEADER = "x-openstack-request-id"

#: Query values Keystone reads as false for boolean filters and flags.
_FALSE = frozenset({"0", "false", "no", "off"})


def title(status: int) -> str:
    """The reason phrase of a status (``Not Found``), Keystone's error ``title``."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def error_response(ctx: ApiContext, req: Request, status: int, message: str) -> Response:
    """Keystone's error answer; a 401 also says where to authenticate."""
    if status == 401:
        message = AUTH_REQUIRED
    body = {"error": {"code": status, "title": title(status), "message": message}}
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = f'Keystone uri="{ctx.public_url(req)}"'
    return Response(status, body, JSON_TYPE, headers)


def format_error(ctx: ApiContext, req: Request, status: int, message: str) -> Response:
    """The ``ErrorFormatter`` for ``build_app``: errors raised outside any handler
    (unknown URL, wrong method, body too large) in Keystone's shape."""
    return error_response(ctx, req, status, message)


class Denied(ApiError):
    """The caller's token is fine but its roles do not allow the action (403)."""

    def __init__(self, action: str) -> None:
        super().__init__(403, "You are not authorized to perform the requested action: "
                              f"identity:{action}.")


def not_found(kind: str, name: str) -> ApiError:
    """Keystone's 404: ``Could not find project: <id>.``"""
    return ApiError(404, f"Could not find {kind}: {name}.")


def conflict(kind: str, detail: str) -> ApiError:
    """Keystone's 409 for a duplicate."""
    return ApiError(409, f"Conflict occurred attempting to store {kind} - {detail}.")


@dataclass(frozen=True, slots=True)
class IdentityRequest:
    """A request as identity handlers see it."""

    ctx: ApiContext
    request: Request
    logic: IdentityLogic

    @property
    def base(self) -> str:
        """The identity endpoint's root URL (``http://h:5000``)."""
        return self.ctx.public_url(self.request)

    @property
    def v3(self) -> str:
        """The v3 API's URL, the base of every ``links.self``."""
        return f"{self.base}/v3"

    def param(self, name: str) -> str:
        """A value matched by the route template."""
        return self.request.path_params[name]

    def query(self, name: str) -> str | None:
        """The last value of a query parameter, None if absent."""
        return self.request.query_one(name)

    def flag(self, name: str) -> bool:
        """A query flag such as ``?nocatalog`` or ``?include_names=true``: present and
        not a false word."""
        value = self.request.query_one(name)
        return value is not None and value.strip().lower() not in _FALSE

    def bool_filter(self, name: str) -> bool | None:
        """A boolean filter (``?enabled=false``), None if absent."""
        value = self.request.query_one(name)
        return None if value is None else value.strip().lower() not in _FALSE

    async def caller(self) -> TokenInfo:
        """The validated ``X-Auth-Token`` of the request; 401 if missing or not valid."""
        token = self.request.header("x-auth-token").strip()
        if not token:
            raise Unauthorized("no X-Auth-Token")
        return await self.logic.validate(token)

    def check(self, caller: TokenInfo, action: str,
              target: Mapping[str, object] | None = None) -> None:
        """Keystone's 403 naming ``action`` unless the policy lets ``caller`` do
        ``identity:<action>`` to ``target`` (the object's ``user_id``/``project_id``;
        None: nothing in particular)."""
        if not self.logic.policy.allows(f"identity:{action}", policy_context(caller),
                                        target or {}):
            raise Denied(action)

    async def authorize(self, action: str,
                        target: Mapping[str, object] | None = None) -> TokenInfo:
        """The caller, whom the policy must allow ``action`` on ``target``."""
        caller = await self.caller()
        self.check(caller, action, target)
        return caller

    async def subject(self) -> TokenInfo:
        """The validated ``X-Subject-Token``: 400 if missing, 404 if not valid."""
        token = self.request.header("x-subject-token").strip()
        if not token:
            raise ApiError(400, "Expecting to find X-Subject-Token in the request headers.")
        try:
            return await self.logic.validate(token)
        except InvalidToken as exc:
            log.info("subject token not valid: %s", exc.why)
            raise ApiError(404, "Could not find token.") from None

    def body(self, key: str) -> dict[str, Any]:
        """The JSON body's ``key`` object (``{"project": {...}}``); 400 naming what is wrong."""
        data = self.request.json()
        if not isinstance(data, dict):
            raise invalid(key, "the request body must be a JSON object")
        found: dict[str, Any] = member(data, key, "")
        return found


def policy_context(caller: TokenInfo) -> RequestContext:
    """A token as the policy sees it: its user, its project (empty unless it is
    project-scoped) and its role names, implied ones included."""
    project_id = caller.project.id if caller.project is not None else ""
    return RequestContext(caller.user.id, project_id, "", caller.role_names)


def name_field(data: dict[str, Any], where: str, *, required: bool,
               max_length: int = 64) -> str | None:
    """A ``name``: a non-blank string of at most ``max_length`` characters."""
    name: str | None = member(data, "name", where, str, required=required)
    if name is not None and not (name.strip() and len(name) <= max_length):
        raise invalid(f"{where}/name", f"expected 1 to {max_length} characters, not blank")
    return name


def collection(items: list[dict[str, Any]], key: str, url: str) -> dict[str, Any]:
    """A Keystone list answer: the items and the collection's links."""
    return {key: items, "links": {"self": url, "previous": None, "next": None}}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None,
                  ) -> Response:
    """A JSON answer."""
    return Response(status, body, JSON_TYPE, dict(headers or {}))


def no_content() -> Response:
    """A 204 without a body."""
    return Response(204, None)


#: An identity handler.
IdentityHandler = Callable[[IdentityRequest], Awaitable[Response]]


def route(logic: IdentityLogic, method: str, path: str, handler: IdentityHandler,
          name: str = "") -> Route:
    """A core route serving ``handler`` with ``logic``, errors in Keystone's shape."""
    async def serve(ctx: ApiContext, req: Request) -> Response:
        request_id = f"req-{ctx.runtime.new_id()}"
        try:
            resp = await handler(IdentityRequest(ctx, req, logic))
        except NimbusError as exc:
            resp = _answer_error(ctx, req, exc)
        return dataclasses.replace(resp, headers={
            **resp.headers, "Vary": "X-Auth-Token", REQUEST_ID_HEADER: request_id})

    serve.__name__ = handler.__name__
    return Route(method, path, serve, name or handler.__name__)


def _answer_error(ctx: ApiContext, req: Request, exc: NimbusError) -> Response:
    if isinstance(exc, Unauthorized):
        # the reason goes to the log only (never a token, never a password)
        log.info("%s %s: authentication failed: %s", req.method, req.path, exc.why)
        return error_response(ctx, req, 401, exc.message)
    if exc.status >= 500:
        log.warning("%s %s failed: %s", req.method, req.path, exc.message)
    status = exc.status
    if isinstance(exc, DuplicateError):
        status = 409
    elif isinstance(exc, NotFound):
        status = 404
    return error_response(ctx, req, status, exc.message)
