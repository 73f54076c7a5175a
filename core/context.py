"""Who asks: the request context that travels with every user action.

The API builds one from a validated token; services pass it along in their
messages so that instance actions, events and faults record who asked, and a
simulation builds one per synthetic user. ``request_id`` ties an action's
events together (Nova's ``req-...``).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Role names as Keystone's default roles name them.
ADMIN, MEMBER, READER = "admin", "member", "reader"


@dataclass(frozen=True, slots=True)
class RequestContext:
    """A user of a project, with their roles, making one request."""

    user_id: str
    project_id: str
    request_id: str
    roles: tuple[str, ...] = (MEMBER, READER)

    @property
    def is_admin(self) -> bool:
        """True for a cloud administrator."""
        return ADMIN in self.roles

    def with_request(self, request_id: str) -> RequestContext:
        """The same user and project, for another request."""
        return RequestContext(self.user_id, self.project_id, request_id, self.roles)
