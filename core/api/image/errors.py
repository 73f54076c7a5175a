"""Glance's error answers: webob's HTTP exception bodies, and keystonemiddleware's 401.

Glance raises webob exceptions, and webob writes the body in the media type
the client prefers among HTML and JSON (HTML when it says nothing, plain text
when it accepts neither). The JSON form is ``{"message": "<explanation><br
/><br />\\n<detail>\\n\\n", "code": "404 Not Found", "title": "Not Found"}``,
markup included, exactly as webob builds it; openstacksdk reads ``message``.
A request without a valid token never reaches Glance: keystonemiddleware
answers it with Keystone's JSON 401 and a ``WWW-Authenticate`` header.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Mapping
from http import HTTPStatus

from nimbus.core.api.http import JSON_TYPE, Response
from nimbus.core.errors import NimbusError
from nimbus.core.image.errors import GlanceError, explanation_of

log = logging.getLogger(__name__)

#: Keystone's one sentence for every authentication failure.
AUTH_REQUIRED = "The request you have made requires authentication."

#: webob's titles (``HTTPStatus`` renamed some phrases in later Pythons).
TITLES: Mapping[int, str] = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 409: "Conflict", 410: "Gone",
    413: "Request Entity Too Large", 415: "Unsupported Media Type",
    500: "Internal Server Error", 503: "Service Unavailable",
}

_OFFERS = ("text/html", JSON_TYPE)


def title(status: int) -> str:
    """webob's title of a status (``Not Found``)."""
    if status in TITLES:
        return TITLES[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _parse_accept(accept: str) -> list[tuple[str, float]]:
    items = []
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if not media:
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        items.append((media.lower(), quality))
    return items


def preferred_type(accept: str | None) -> str:
    """The body type webob picks for an ``Accept`` header (None: the client sent none)."""
    if accept is None:
        return _OFFERS[0]
    ranges = _parse_accept(accept)
    best, best_q = "text/plain", 0.0
    for offer in _OFFERS:
        kind = offer.split("/")[0]
        specificity, quality = -1, 0.0
        for media, q in ranges:
            spec = 3 if media == offer else 2 if media == f"{kind}/*" else \
                1 if media == "*/*" else -1
            if spec > specificity:
                specificity, quality = spec, q
        if quality > best_q:  # ties keep the earlier offer, as webob does
            best, best_q = offer, quality
    return best


def webob_error(status: int, explanation: str, detail: str = "", *, accept: str | None,
                headers: Mapping[str, str] | None = None) -> Response:
    """The body webob gives an HTTP exception with this explanation and detail."""
    status_line = f"{status} {title(status)}"
    kind = preferred_type(accept)
    if kind == JSON_TYPE:
        message = f"{explanation}<br /><br />\n{detail}\n\n"
        body: object = {"message": message, "code": status_line, "title": title(status)}
        ctype = JSON_TYPE
    elif kind == "text/html":
        inner = f"{html.escape(explanation)}<br /><br />\n{html.escape(detail)}\n\n"
        body = (f"<html>\n <head>\n  <title>{status_line}</title>\n </head>\n <body>\n"
                f"  <h1>{status_line}</h1>\n  {inner}\n </body>\n</html>")
        ctype = "text/html; charset=UTF-8"
    else:
        inner = re.sub(r"<br\s*/?>", "\n", f"{explanation}<br /><br />\n{detail}\n\n")
        body = f"{status_line}\n\n{inner}"
        ctype = "text/plain; charset=UTF-8"
    return Response(status, body, ctype, dict(headers or {}))


def unauthorized(auth_url: str) -> Response:
    """keystonemiddleware's 401: Keystone's JSON error and where to authenticate."""
    body = {"error": {"code": 401, "title": "Unauthorized", "message": AUTH_REQUIRED}}
    headers = {"WWW-Authenticate": f'Keystone uri="{auth_url}"'} if auth_url else {}
    return Response(401, body, JSON_TYPE, headers)


def error_answer(exc: NimbusError, *, accept: str | None, auth_url: str = "") -> Response:
    """The answer to an error a handler raised.

    A :class:`GlanceError` is rendered as raised; any other error keeps its
    status, its message becoming the explanation, except that a 5xx says
    nothing of the server (the log has it).
    """
    if exc.status == 401:
        return unauthorized(auth_url)
    if isinstance(exc, GlanceError):
        return webob_error(exc.status, exc.explanation, exc.detail, accept=accept,
                           headers=exc.headers)
    if exc.status >= 500:
        return webob_error(exc.status, explanation_of(exc.status), accept=accept)
    return webob_error(exc.status, exc.message, accept=accept)
