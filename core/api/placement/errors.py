"""Placement's error answers: ``{"errors": [{status, title, detail, code, request_id}]}``.

The shape follows the OpenStack API working group's errors guideline, as
Placement answers it. ``code`` (from microversion 1.23) tells apart errors of
one status; clients such as Nova's report client act on
``placement.concurrent_update``. Errors the Store raises are mapped here to
a status and code; handlers raise :class:`PlacementError` where a code
depends on what was being done (a provider in use versus an inventory in use).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from nimbus.core.api.placement.microversion import MAX_VERSION, MIN_VERSION, Version
from nimbus.core.errors import (
    ApiError,
    CapacityExceeded,
    ConflictError,
    GenerationConflict,
    InvalidPlacementInput,
    NimbusError,
)

# The error codes (placement's ``errors`` module names the same strings).
UNDEFINED = "placement.undefined_code"
INVENTORY_INUSE = "placement.inventory.inuse"
CONCURRENT_UPDATE = "placement.concurrent_update"
DUPLICATE_NAME = "placement.duplicate_name"
PROVIDER_IN_USE = "placement.resource_provider.inuse"
PROVIDER_CANNOT_DELETE_PARENT = "placement.resource_provider.cannot_delete_parent"
PROVIDER_NOT_FOUND = "placement.resource_provider.not_found"
QUERY_DUPLICATE_KEY = "placement.query.duplicate_key"
QUERY_BAD_VALUE = "placement.query.bad_value"
QUERY_MISSING_VALUE = "placement.query.missing_value"

#: The first microversion whose errors carry ``code``.
CODE_VERSION = (1, 23)

#: The detail of a 500 for an error nobody raised on purpose; details stay in the log.
UNEXPECTED = "An unexpected error occurred; the server logged the details."


class PlacementError(ApiError):
    """An error answered to a Placement client, with its status and error ``code``."""

    def __init__(self, status: int, detail: str, code: str = UNDEFINED) -> None:
        super().__init__(status, detail)
        self.code = code


def bad_request(detail: str, code: str = UNDEFINED) -> PlacementError:
    """A 400 with ``detail``."""
    return PlacementError(400, detail, code)


def not_found(detail: str) -> PlacementError:
    """A 404 with ``detail``."""
    return PlacementError(404, detail)


def conflict(detail: str, code: str = UNDEFINED) -> PlacementError:
    """A 409 with ``detail``."""
    return PlacementError(409, detail, code)


def as_placement_error(exc: NimbusError) -> PlacementError:
    """The Placement answer for an error a handler let through.

    A stale generation, given by the caller or lost in a race, is Placement's
    ``concurrent_update``; anything else keeps its own status.
    """
    if isinstance(exc, PlacementError):
        return exc
    if isinstance(exc, GenerationConflict) or (
            isinstance(exc, ConflictError) and exc.retryable):
        return PlacementError(409, exc.message, CONCURRENT_UPDATE)
    if isinstance(exc, InvalidPlacementInput):
        return PlacementError(400, exc.message)
    if isinstance(exc, CapacityExceeded):
        return PlacementError(409, f"Unable to allocate inventory: {exc.message}")
    return PlacementError(exc.status, exc.message)


def title(status: int) -> str:
    """The reason phrase of a status (``Bad Request``), as the ``title`` of an error."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def error_body(status: int, detail: str, *, code: str = UNDEFINED, request_id: str = "",
               version: Version | None = None) -> dict[str, Any]:
    """The body of an error answer.

    ``version`` is the microversion the request was served at, None if none
    could be negotiated: then a 406 also says which range the server serves,
    which is how ``osc-placement`` falls back to an older version.
    """
    error: dict[str, Any] = {"status": status, "title": title(status), "detail": detail}
    if version is not None and version >= CODE_VERSION:
        error["code"] = code
    if request_id:
        error["request_id"] = request_id
    if status == 406 and version is None:
        error["max_version"] = str(MAX_VERSION)
        error["min_version"] = str(MIN_VERSION)
    return {"errors": [error]}
