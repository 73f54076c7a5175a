"""Password hashing with argon2id (argon2-cffi), off the event loop.

Keystone hashes with bcrypt by default; argon2id is the current recommendation
(RFC 9106, OWASP) and one of Keystone's own options. The cost is a balance: the
``openstack`` CLI authenticates on *every* command (no token cache, see
CLIENTS.md), so one verify must stay in the few-milliseconds range, yet each
guess must still cost an attacker real memory.

Chosen defaults: ``time_cost=2``, ``memory_cost=8 MiB``, ``parallelism=1``.
Measured on the 2-core development machine, one verify takes ~7-9 ms (the
argon2-cffi default, 64 MiB x 3 passes x 4 lanes, took ~300 ms; OWASP's minimum
of 19 MiB x 2 passes ~35 ms). Hashes carry their own parameters, so raising the
cost later keeps old hashes valid, and :meth:`Passwords.needs_rehash` tells when
a successful login should store a stronger hash.

Hashing and verifying are CPU work: :meth:`Passwords.hash` and
:meth:`Passwords.verify` run them through ``Runtime.run_blocking`` (a thread in
real mode, inline in simulation) so the event loop keeps serving meanwhile. The
salt comes from the operating system's random source, not the runtime's seeded
``rng``: a salt must be unpredictable, and hash strings never steer control flow,
so simulations stay deterministic.
"""

from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from nimbus.core.runtime import Runtime

#: The default cost parameters (see the module docstring for why).
TIME_COST = 2
MEMORY_KIB = 8192
PARALLELISM = 1

#: Hashed once per :class:`Passwords`, verified against when a user is unknown, so that
#: "no such user" takes as long as "wrong password" and user names do not leak by timing.
_DUMMY_PASSWORD = "nimbus-dummy-password"


class Passwords:
    """Hashes and verifies passwords with argon2id at a fixed cost."""

    def __init__(self, runtime: Runtime, *, time_cost: int = TIME_COST,
                 memory_kib: int = MEMORY_KIB, parallelism: int = PARALLELISM) -> None:
        self.runtime = runtime
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib,
                                      parallelism=parallelism, type=Type.ID)
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        """The encoded argon2id hash of ``password`` (``$argon2id$v=19$m=...``)."""
        return await self.runtime.run_blocking(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches ``password_hash``.

        A missing hash (a user who has no password) or one argon2 cannot read
        is a mismatch, after the same work as a real check.
        """
        if password_hash is None:
            await self.burn(password)
            return False
        return await self.runtime.run_blocking(self._check, password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether a hash was made with other parameters than the current ones."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except (InvalidHashError, ValueError):
            return True

    async def burn(self, password: str) -> None:
        """Take as long as a verify does, for a login whose user does not exist."""
        if self._dummy is None:
            self._dummy = await self.hash(_DUMMY_PASSWORD)
        await self.runtime.run_blocking(self._check, self._dummy, password)

    def _check(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
