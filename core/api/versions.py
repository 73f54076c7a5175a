"""The API versions Nimbus serves and the microversion range it advertises.

Clients use the advertised maximum at once (CLIENTS.md), so ``MAX_MICROVERSION``
only grows when the behaviour of that microversion is implemented faithfully.
"""

from __future__ import annotations

#: The lowest microversion of the v2.1 API.
MIN_MICROVERSION = "2.1"

#: The highest microversion implemented; raise it with each microversion's behaviour.
MAX_MICROVERSION = "2.100"

#: When each major version was last changed, as Nova reports it.
V2_0_UPDATED = "2011-01-21T11:33:21Z"
V2_1_UPDATED = "2013-07-23T11:33:21Z"
