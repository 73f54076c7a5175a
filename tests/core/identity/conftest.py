"""An identity world in simulation: a SimRuntime, the sim Store, the logic, bootstrapped."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nimbus.core.db.store import Store
from nimbus.core.identity.bootstrap import BootstrapResult, bootstrap
from nimbus.core.identity.catalog import standard_catalog
from nimbus.core.identity.passwords import Passwords
from nimbus.core.identity.service import IdentityLogic
from nimbus.core.identity.tokens import FernetTokens, generate_key
from nimbus.sim.db import SimDatabase
from nimbus.sim.runtime import SimRuntime

ADMIN_PASSWORD = "admin-secret"
DEMO_PASSWORD = "demo-secret"

CATALOG = standard_catalog(identity="http://h:5000/v3", compute="http://h:8774/v2.1",
                           image="http://h:9292", placement="http://h:8778")

Body = Callable[[IdentityLogic, BootstrapResult], Awaitable[Any]]


def cheap_passwords(rt: Any) -> Passwords:
    """argon2id at the lowest cost worth having, so tests stay fast."""
    return Passwords(rt, time_cost=1, memory_kib=1024)


def run_identity(body: Body, *, expiration: float = 3600, seed: int = 0,
                 keys: list[str] | None = None) -> Any:
    """Run ``body(logic, boot)`` on a fresh bootstrapped identity in virtual time."""
    rt = SimRuntime(seed)
    store = Store(SimDatabase())
    logic = IdentityLogic(store, rt, tokens=FernetTokens(keys or [generate_key()]),
                          passwords=cheap_passwords(rt), catalog=CATALOG,
                          token_expiration=expiration)

    async def main() -> Any:
        try:
            boot = await bootstrap(store, rt, logic.passwords, admin_password=ADMIN_PASSWORD,
                                   demo_password=DEMO_PASSWORD)
            return await body(logic, boot)
        finally:
            await store.close()

    return rt.run(main())
