"""Placement Store, part three: claiming, moving and reading allocations.

How a claim stays within capacity when many run at once, on every engine:
the transaction first reads each provider's generation, then the inventories
and what is allocated of them, checks, and only then writes; its first write
is a compare-and-swap of each provider's generation from the value it read
(``UPDATE ... SET generation = generation + 1 WHERE id = :id AND generation =
:seen``), in provider-id order so that two claims never wait on each other in
a cycle. Whoever swaps second matches no row: PostgreSQL (READ COMMITTED)
re-checks the WHERE against the row the first committed, and InnoDB
(REPEATABLE READ) evaluates an UPDATE's WHERE on the latest committed row,
not the snapshot. The loser raises ``ConflictError`` and the Database re-runs
the whole transaction from a fresh read, up to ``claim_retries`` times. Every
claim that adds to a provider bumps its generation, so no two claims that
read the same usage can both commit.

Refusals are final and not retried as if they were lost races: a stale
consumer generation given by the caller is a ``GenerationConflict`` (a
``ConflictError`` that is not retryable), and over capacity is
``CapacityExceeded`` (not a ``ConflictError`` at all).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import bindparam, func, select

from nimbus.core.db.area import StoreArea
from nimbus.core.db.database import Row, Tx, TxBody
from nimbus.core.db.placement import (
    ConsumerAllocations,
    allocations,
    check_amounts,
    consumers,
    inventories,
    resource_classes,
    resource_providers,
)
from nimbus.core.db.placement_sql import (
    bump_generation,
    class_ids,
    class_name,
    provider_id_gen,
    used_sum,
)
from nimbus.core.errors import (
    CapacityExceeded,
    ConflictError,
    DuplicateError,
    GenerationConflict,
    InvalidPlacementInput,
    NotFound,
)

_rp = resource_providers.c
_al = allocations.c
_co = consumers.c
_inv = inventories.c
_rc = resource_classes.c

_CONSUMER = select(_co.id, _co.generation, _co.project_id, _co.user_id, _co.consumer_type).where(
    _co.uuid == bindparam("uuid"))
_INSERT_CONSUMER = consumers.insert()
_UPDATE_CONSUMER_IF = (
    consumers.update()
    .where(_co.id == bindparam("consumer_id"), _co.generation == bindparam("seen"))
    .values(generation=_co.generation + 1, project_id=bindparam("new_project"),
            user_id=bindparam("new_user"), consumer_type=bindparam("new_type"),
            updated_at=bindparam("now")))
_BUMP_CONSUMER_IF = (
    consumers.update()
    .where(_co.id == bindparam("consumer_id"), _co.generation == bindparam("seen"))
    .values(generation=_co.generation + 1, updated_at=bindparam("now")))
_DELETE_CONSUMER_IF = consumers.delete().where(
    _co.id == bindparam("consumer_id"), _co.generation == bindparam("seen"))

_BUMP_ANY = (resource_providers.update().where(_rp.id == bindparam("rp_id"))
             .values(generation=_rp.generation + 1, updated_at=bindparam("now")))
#: What a claim checks against: a provider's inventories, and what others hold of them.
#: (One provider at a time, without IN lists: most claims name one provider, and a fixed
#: statement is what the simulation's executor runs fastest.)
_CLAIM_INVENTORY = (
    select(_inv.resource_class_id, _inv.total, _inv.reserved, _inv.min_unit, _inv.max_unit,
           _inv.step_size, _inv.allocation_ratio, used_sum(inventories, but_consumer=True))
    .where(_inv.resource_provider_id == bindparam("rp_id")))

_DELETE_ALLOCATIONS_OF = allocations.delete().where(_al.consumer_id == bindparam("uuid"))
_INSERT_ALLOCATION = allocations.insert()
_MOVE_ALLOCATIONS = (allocations.update().where(_al.consumer_id == bindparam("source"))
                     .values(consumer_id=bindparam("target"), updated_at=bindparam("now")))
_ALLOCATIONS_OF = (
    select(_rp.uuid, _al.resource_class_id, _rc.name, _al.used, _rp.id)
    .select_from(allocations.join(resource_providers, _rp.id == _al.resource_provider_id)
                 .outerjoin(resource_classes, _rc.id == _al.resource_class_id))
    .where(_al.consumer_id == bindparam("uuid"))
    .order_by(_rp.id, _al.resource_class_id))
_ALLOCATIONS_ON = (
    select(_al.consumer_id, _al.resource_class_id, _rc.name, _al.used)
    .select_from(allocations.outerjoin(resource_classes, _rc.id == _al.resource_class_id))
    .where(_al.resource_provider_id == bindparam("rp_id"))
    .order_by(_al.consumer_id, _al.resource_class_id))
_PROVIDER_USAGES = (
    select(_inv.resource_class_id, _rc.name, used_sum(inventories))
    .select_from(inventories.outerjoin(resource_classes, _rc.id == _inv.resource_class_id))
    .where(_inv.resource_provider_id == bindparam("rp_id")))
_PROJECT_USAGES = (
    select(_al.resource_class_id, _rc.name, func.sum(_al.used))
    .select_from(allocations.join(consumers, _co.uuid == _al.consumer_id)
                 .outerjoin(resource_classes, _rc.id == _al.resource_class_id))
    .where(_co.project_id == bindparam("project_id"))
    .group_by(_al.resource_class_id, _rc.name))
_PROJECT_USER_USAGES = _PROJECT_USAGES.where(_co.user_id == bindparam("user_id"))

#: (provider id, generation read, provider uuid) of each provider a claim adds to.
Seen = Sequence[tuple[int, int, str]]


class AllocationStore(StoreArea):
    """Store methods for consumers' allocations and usages."""

    #: How many times a claim is re-run after losing a race on a provider's generation.
    claim_retries: int = 10

    async def claim_allocations(
        self, consumer_uuid: str, allocations: Mapping[str, Mapping[str, int]], *,
        project_id: str, user_id: str, now: float, consumer_generation: int | None = None,
        consumer_type: str | None = None,
    ) -> ConsumerAllocations:
        """Atomically replace what a consumer holds (placement's PUT /allocations/{consumer}).

        ``allocations``: provider uuid -> class -> amount (empty: release all).
        ``consumer_generation`` is the consumer's generation as last read, or
        None for a consumer that holds nothing yet; otherwise ``ConflictError``.
        ``CapacityExceeded`` naming provider, class and numbers if any amount
        does not fit ``(total - reserved) * allocation_ratio`` beside what other
        consumers hold, or breaks min_unit, max_unit or step_size;
        ``NotFound`` for an unknown provider or class. Lost races on provider
        generations are retried (``claim_retries``), then ``ConflictError``.
        """
        wanted = {rp: dict(res) for rp, res in allocations.items()}
        for rp_uuid, res in wanted.items():
            if not res:
                raise InvalidPlacementInput(f"allocation on resource provider {rp_uuid} "
                                            "names no resources")
            check_amounts(res, f"allocation on resource provider {rp_uuid}")
        classes = sorted({rc for res in wanted.values() for rc in res})

        async def body(tx: Tx) -> ConsumerAllocations:
            consumer = await tx.one(_CONSUMER, {"uuid": consumer_uuid})
            _check_consumer(consumer_uuid, consumer, consumer_generation)
            if not wanted:
                if consumer is not None:
                    await _release(tx, consumer_uuid, consumer)
                return ConsumerAllocations(consumer_uuid, None, None, None, None, {})
            # Generations first: whatever usage is read after them is at least as new.
            providers = {uuid: await provider_id_gen(tx, uuid) for uuid in sorted(wanted)}
            ids = await class_ids(tx, classes)
            await _check_capacity(tx, consumer_uuid, wanted, providers, ids)
            await self._guard_providers(tx, sorted(
                (rp_id, gen, uuid) for uuid, (rp_id, gen) in providers.items()), now)
            if consumer is None:
                generation = 1
                await tx.run(_INSERT_CONSUMER, {
                    "uuid": consumer_uuid, "project_id": project_id, "user_id": user_id,
                    "consumer_type": consumer_type, "generation": generation,
                    "created_at": now, "updated_at": now})
            else:
                generation = consumer[1] + 1
                if not await tx.run(_UPDATE_CONSUMER_IF, {
                        "consumer_id": consumer[0], "seen": consumer[1],
                        "new_project": project_id, "new_user": user_id,
                        "new_type": consumer_type, "now": now}):
                    raise ConflictError(f"consumer {consumer_uuid} changed concurrently")
                await tx.run(_DELETE_ALLOCATIONS_OF, {"uuid": consumer_uuid})
            await tx.run(_INSERT_ALLOCATION, [
                {"resource_provider_id": providers[rp][0], "consumer_id": consumer_uuid,
                 "resource_class_id": ids[rc], "used": n, "created_at": now, "updated_at": now}
                for rp, res in wanted.items() for rc, n in res.items()])
            return ConsumerAllocations(consumer_uuid, generation, project_id, user_id,
                                       consumer_type, wanted)

        # two first claims for one new consumer: the other inserted it first
        return await self._transact_claim(body, consumer_uuid)

    async def _guard_providers(self, tx: Tx, seen: Seen, now: float) -> None:
        """Bump each provider's generation from the one read; ``ConflictError`` if one moved.

        The guard against over-allocation (``seen`` is in provider-id order).
        """
        for rp_id, generation, uuid in seen:
            await bump_generation(tx, rp_id, generation, uuid, now)

    async def move_allocations(
        self, source_uuid: str, target_uuid: str, *, source_generation: int,
        target_generation: int | None = None, now: float,
    ) -> ConsumerAllocations:
        """Give all of one consumer's allocations to another (a migration's bookkeeping).

        The target's own allocations are replaced; the source ends up holding
        nothing. The target, if new, takes the source's project, user and
        type. ``ConflictError`` if either generation is stale (None: the target
        holds nothing yet); ``NotFound`` if the source holds nothing.
        """
        if source_uuid == target_uuid:
            raise InvalidPlacementInput(f"cannot move allocations of {source_uuid} to itself")

        async def body(tx: Tx) -> ConsumerAllocations:
            source = await tx.one(_CONSUMER, {"uuid": source_uuid})
            if source is None:
                raise NotFound(f"consumer {source_uuid} has no allocations")
            target = await tx.one(_CONSUMER, {"uuid": target_uuid})
            _check_consumer(source_uuid, source, source_generation)
            _check_consumer(target_uuid, target, target_generation)
            rows = await tx.rows(_ALLOCATIONS_OF, {"uuid": source_uuid})
            # Usage does not grow, so no capacity check; the bump tells readers it changed.
            touched = sorted({r[4] for r in rows})
            await tx.run(_BUMP_ANY, [{"rp_id": i, "now": now} for i in touched])
            if target is None:
                generation = 1
                await tx.run(_INSERT_CONSUMER, {
                    "uuid": target_uuid, "project_id": source[2], "user_id": source[3],
                    "consumer_type": source[4], "generation": generation,
                    "created_at": now, "updated_at": now})
                project, user, kind = source[2], source[3], source[4]
            else:
                generation = target[1] + 1
                if not await tx.run(_BUMP_CONSUMER_IF, {"consumer_id": target[0],
                                                        "seen": target[1], "now": now}):
                    raise ConflictError(f"consumer {target_uuid} changed concurrently")
                await tx.run(_DELETE_ALLOCATIONS_OF, {"uuid": target_uuid})
                project, user, kind = target[2], target[3], target[4]
            await tx.run(_MOVE_ALLOCATIONS, {"source": source_uuid, "target": target_uuid,
                                             "now": now})
            if not await tx.run(_DELETE_CONSUMER_IF, {"consumer_id": source[0],
                                                      "seen": source[1]}):
                raise ConflictError(f"consumer {source_uuid} changed concurrently")
            return ConsumerAllocations(target_uuid, generation, project, user, kind,
                                       _by_provider(rows))

        return await self._transact_claim(body, target_uuid)

    async def _transact_claim(
        self, body: TxBody[ConsumerAllocations], new_consumer: str
    ) -> ConsumerAllocations:
        """Run a body that may insert consumer ``new_consumer``, retrying lost races; a
        concurrent insert of the same consumer is a ``ConflictError``."""
        try:
            return await self.db.transact(body, conflict_retries=self.claim_retries)
        except DuplicateError:
            raise ConflictError(f"consumer {new_consumer} was created concurrently") from None

    async def delete_allocations(self, consumer_uuid: str) -> None:
        """Release everything a consumer holds; ``NotFound`` if it holds nothing."""
        async def body(tx: Tx) -> None:
            consumer = await tx.one(_CONSUMER, {"uuid": consumer_uuid})
            if consumer is None:
                raise NotFound(f"consumer {consumer_uuid} has no allocations")
            await _release(tx, consumer_uuid, consumer)

        await self.db.transact(body, conflict_retries=self.claim_retries)

    async def get_allocations(self, consumer_uuid: str) -> ConsumerAllocations:
        """What a consumer holds, with its generation (None, and nothing, if it holds nothing)."""
        async def body(tx: Tx) -> tuple[Row | None, list[Row]]:
            consumer = await tx.one(_CONSUMER, {"uuid": consumer_uuid})
            if consumer is None:
                return None, []
            return consumer, await tx.rows(_ALLOCATIONS_OF, {"uuid": consumer_uuid})

        consumer, rows = await self.db.transact(body)
        if consumer is None:
            return ConsumerAllocations(consumer_uuid, None, None, None, None, {})
        return ConsumerAllocations(consumer_uuid, consumer[1], consumer[2], consumer[3],
                                   consumer[4], _by_provider(rows))

    async def allocations_for_provider(self, uuid: str) -> dict[str, dict[str, int]]:
        """What each consumer holds of a provider: consumer uuid -> class -> used."""
        async def body(tx: Tx) -> list[Row]:
            rp_id, _ = await provider_id_gen(tx, uuid)
            return await tx.rows(_ALLOCATIONS_ON, {"rp_id": rp_id})

        out: dict[str, dict[str, int]] = {}
        for consumer, rc_id, custom, used in await self.db.transact(body):
            out.setdefault(consumer, {})[class_name(rc_id, custom)] = used
        return out

    async def usages_for_provider(self, uuid: str) -> dict[str, int]:
        """What is allocated of each class a provider has inventory of (0 if nothing)."""
        return await self.db.transact(lambda tx: provider_usages(tx, uuid))

    async def usages_for_project(
        self, project_id: str, user_id: str | None = None
    ) -> dict[str, int]:
        """What a project (or one user of it) holds, by class, across all providers."""
        stmt = _PROJECT_USAGES if user_id is None else _PROJECT_USER_USAGES
        rows = await self._rows(stmt, {"project_id": project_id, "user_id": user_id})
        return {class_name(r[0], r[1]): int(r[2]) for r in rows}


def _check_consumer(uuid: str, row: Row | None, expected: int | None) -> None:
    """``GenerationConflict`` unless the consumer is at the generation the caller gave."""
    actual = None if row is None else row[1]
    if actual == expected:
        return
    if expected is None:
        raise GenerationConflict(f"consumer {uuid} generation conflict: expected a new "
                                 f"consumer, it exists at generation {actual}")
    if actual is None:
        raise GenerationConflict(f"consumer {uuid} generation conflict: expected generation "
                                 f"{expected}, the consumer holds nothing")
    raise GenerationConflict(f"consumer {uuid} generation conflict: expected generation "
                             f"{expected}, current is {actual}")


async def _check_capacity(
    tx: Tx, consumer_uuid: str, wanted: dict[str, dict[str, int]],
    providers: dict[str, tuple[int, int]], ids: dict[str, int],
) -> None:
    """``CapacityExceeded`` naming the first requested amount that does not fit."""
    for rp_uuid, res in wanted.items():
        rows = await tx.rows(_CLAIM_INVENTORY, {"rp_id": providers[rp_uuid][0],
                                                "consumer": consumer_uuid})
        inv = {r[0]: r[1:] for r in rows}
        for rc, amount in res.items():
            found = inv.get(ids[rc])
            if found is None:
                raise CapacityExceeded(
                    f"resource provider {rp_uuid} has no inventory of {rc}")
            total, reserved, min_unit, max_unit, step, ratio, used = found
            if amount < min_unit or amount > max_unit or amount % step:
                raise CapacityExceeded(
                    f"{rc} on resource provider {rp_uuid}: amount {amount} is outside "
                    f"min_unit {min_unit}, max_unit {max_unit} or not a multiple of "
                    f"step_size {step}")
            capacity = (total - reserved) * ratio
            if int(used) + amount > capacity:
                raise CapacityExceeded(
                    f"{rc} on resource provider {rp_uuid}: requested {amount}, used "
                    f"{int(used)}, capacity {int(capacity)} ((total {total} - reserved "
                    f"{reserved}) x allocation_ratio {ratio:g})")


async def _release(tx: Tx, consumer_uuid: str, consumer: Row) -> None:
    """Delete a consumer's allocations and the consumer (gone once it holds nothing)."""
    if not await tx.run(_DELETE_CONSUMER_IF, {"consumer_id": consumer[0], "seen": consumer[1]}):
        raise ConflictError(f"consumer {consumer_uuid} changed concurrently")
    await tx.run(_DELETE_ALLOCATIONS_OF, {"uuid": consumer_uuid})


def _by_provider(rows: list[Row]) -> dict[str, dict[str, int]]:
    """provider uuid -> class -> used, from rows of ``_ALLOCATIONS_OF``."""
    out: dict[str, dict[str, int]] = {}
    for rp_uuid, rc_id, custom, used, _ in rows:
        out.setdefault(rp_uuid, {})[class_name(rc_id, custom)] = used
    return out


async def provider_usages(tx: Tx, uuid: str) -> dict[str, int]:
    """Inside a transaction: what is allocated of each class provider ``uuid`` has
    inventory of (0 if nothing); ``NotFound`` naming the provider if there is none."""
    rp_id, _ = await provider_id_gen(tx, uuid)
    return {class_name(r[0], r[1]): int(r[2])
            for r in await tx.rows(_PROVIDER_USAGES, {"rp_id": rp_id})}
