"""The Identity API (a Keystone v3 subset): discovery, tokens, projects, users, roles.

Routes are data (:mod:`.routes`); handlers are plain logic over
:class:`~nimbus.core.identity.service.IdentityLogic`; errors have Keystone's
shape (:mod:`.wire`).
"""
