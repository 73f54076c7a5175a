"""The errors the image logic raises, shaped as Glance raises them.

Glance answers with webob's HTTP exceptions: each status has a stock
*explanation* ("The resource could not be found."), which Glance mostly
replaces with its own sentence (``explanation=msg``) and sometimes keeps,
adding a *detail* (``HTTPForbidden(msg)``). :class:`GlanceError` carries both,
so that :mod:`nimbus.core.api.image.errors` renders the body Glance would.
"""

from __future__ import annotations

from collections.abc import Mapping

from nimbus.core.errors import ApiError

#: webob's stock explanation of each status Glance answers with.
EXPLANATIONS: Mapping[int, str] = {
    400: "The server could not comply with the request since it is either malformed or "
         "otherwise incorrect.",
    401: "This server could not verify that you are authorized to access the document you "
         "requested.  Either you supplied the wrong credentials (e.g., bad password), or "
         "your browser does not understand how to supply the credentials required.",
    403: "Access was denied to this resource.",
    404: "The resource could not be found.",
    405: "The method is not allowed for this resource.",
    409: "There was a conflict when trying to complete your request.",
    410: "This resource is no longer available.  No forwarding address is given.",
    413: "The body of your request was too large for this server.",
    415: "The request media type is not supported by this server.",
    500: "The server has either erred or is incapable of performing the requested "
         "operation.",
    503: "The server is currently unavailable. Please try again at a later time.",
}


def explanation_of(status: int) -> str:
    """webob's stock explanation of ``status`` (a 500's for statuses it has none for)."""
    return EXPLANATIONS.get(status, EXPLANATIONS[500])


class GlanceError(ApiError):
    """An error answered to an image client: a status, an explanation, a detail.

    ``explanation`` None keeps webob's stock one; ``headers`` are added to the
    answer (``Accept-Patch`` on a 415).
    """

    def __init__(self, status: int, explanation: str | None = None, detail: str = "",
                 headers: Mapping[str, str] | None = None) -> None:
        self.explanation = explanation if explanation is not None else explanation_of(status)
        self.detail = detail
        self.headers = dict(headers or {})
        super().__init__(status, f"{self.explanation} {detail}".strip())


def bad_request(explanation: str) -> GlanceError:
    """A 400 with Glance's sentence."""
    return GlanceError(400, explanation)


def forbidden(explanation: str) -> GlanceError:
    """A 403 with Glance's sentence."""
    return GlanceError(403, explanation)


def denied(action: str) -> GlanceError:
    """Glance's 403 for a policy rule that does not allow ``action``."""
    return forbidden(f"You are not authorized to complete {action} action.")


def forbidden_detail(detail: str) -> GlanceError:
    """A 403 keeping webob's explanation, the sentence as detail (``HTTPForbidden(msg)``)."""
    return GlanceError(403, None, detail)


def not_found(explanation: str) -> GlanceError:
    """A 404 with Glance's sentence."""
    return GlanceError(404, explanation)


def conflict(explanation: str) -> GlanceError:
    """A 409 with Glance's sentence."""
    return GlanceError(409, explanation)


def conflict_detail(detail: str) -> GlanceError:
    """A 409 keeping webob's explanation, the sentence as detail (``HTTPConflict(msg)``)."""
    return GlanceError(409, None, detail)


def too_large(explanation: str) -> GlanceError:
    """A 413 with Glance's sentence."""
    return GlanceError(413, explanation)


def image_not_found(image_id: str) -> GlanceError:
    """Glance's 404 for an image that does not exist or that the caller may not see."""
    return not_found(f"No image found with ID {image_id}")
