"""Identity: a Keystone-v3-compatible subset, as plain logic over the Store.

Passwords (argon2id, :mod:`.passwords`), Fernet tokens (:mod:`.tokens`), the
service catalog (:mod:`.catalog`), authentication, token validation and
revocation (:mod:`.service`), and the first-start bootstrap (:mod:`.bootstrap`).
The HTTP routes that serve them are in :mod:`nimbus.core.api.identity`.
"""
