"""The Placement API: OpenStack Placement's URLs, microversions and JSON shapes over the Store.

Handlers are sans-IO like the rest of ``nimbus.core.api``; ``routes.ROUTES``
lists them as data and ``nimbus.services.PlacementService`` serves them on
their own port (8778 by default). Requests need no token yet: Keystone
arrives with a later issue, and ``X-Auth-Token`` is only read into the
request (``PlacementRequest.token``) so that checking it later is one place.
"""
