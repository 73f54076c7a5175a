"""Sorting and keyset pagination that behave the same on every engine.

A list API sorts by whitelisted keys and pages with a *marker* (the last item
of the previous page) and a limit. Paging by "rows after the marker's sort
values" (keyset pagination) stays correct while rows are added, and costs an
index range scan rather than an OFFSET.

Two portability traps are handled here once:

* NULL ordering differs (PostgreSQL puts NULLs last ascending; SQLite and
  MariaDB first). We define NULL as the smallest value everywhere by ordering a
  nullable column by ``col IS NOT NULL`` first.
* ``col > NULL`` is never true, so the "after the marker" predicate depends on
  which of the marker's values are NULL. Builders take that pattern as part of
  their cache key (``marker_nulls``), so each shape is built once.

A sort is a tuple of ``(column name, descending)`` pairs, always ending with a
unique tie-breaker column so that the order is total.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, bindparam, false, or_
from sqlalchemy.sql.expression import Executable

from nimbus.core.db.database import Tx
from nimbus.core.errors import NimbusError

#: A normalized sort: (column name, descending) pairs, ending with a unique column.
Sort = tuple[tuple[str, bool], ...]

DIRECTIONS = {"asc": False, "desc": True}


def normalize_sort(
    spec: Sequence[tuple[str, str]], allowed: frozenset[str], *, tiebreak: str = "id"
) -> Sort:
    """Check ``(key, "asc"|"desc")`` pairs against ``allowed``; append the tie-breaker.

    ``ValueError`` names the valid keys or directions. The tie-breaker takes the
    direction of the first key, so "newest first" stays newest first among equals.
    """
    out: list[tuple[str, bool]] = []
    for key, direction in spec:
        if key not in allowed:
            raise ValueError(f"invalid sort key {key!r}; valid: {', '.join(sorted(allowed))}")
        if direction not in DIRECTIONS:
            raise ValueError(f"invalid sort direction {direction!r}; valid: asc, desc")
        if key not in (k for k, _ in out):
            out.append((key, DIRECTIONS[direction]))
    if tiebreak not in (k for k, _ in out):
        out.append((tiebreak, out[0][1] if out else False))
    return tuple(out)


def order_by(table: Table, sort: Sort) -> list[ColumnElement[Any]]:
    """ORDER BY clauses for ``sort``, NULL as the smallest value on every engine."""
    clauses: list[ColumnElement[Any]] = []
    for name, desc in sort:
        col = table.c[name]
        if col.nullable:
            present = col.is_not(None)
            clauses.append(present.desc() if desc else present.asc())
        clauses.append(col.desc() if desc else col.asc())
    return clauses


def after_marker(table: Table, sort: Sort, marker_nulls: tuple[bool, ...]) -> ColumnElement[bool]:
    """True for rows that come after the marker in ``sort``.

    The marker's sort values are bound as ``marker_0``, ``marker_1``, ...;
    ``marker_nulls[i]`` says whether value ``i`` is NULL (then it is not bound).
    """
    alternatives: list[ColumnElement[bool]] = []
    for i, (name, desc) in enumerate(sort):
        beyond = _beyond(table, name, desc, i, marker_nulls[i])
        if beyond is None:
            continue
        same = [_same(table, sort[j][0], j, marker_nulls[j]) for j in range(i)]
        alternatives.append(and_(*same, beyond))
    return or_(*alternatives) if alternatives else false()


def marker_params(values: Sequence[Any]) -> dict[str, Any]:
    """Bind values for :func:`after_marker` from the marker row's sort values."""
    return {f"marker_{i}": v for i, v in enumerate(values) if v is not None}


def marker_nulls(values: Sequence[Any]) -> tuple[bool, ...]:
    """Which of the marker row's sort values are NULL (part of a builder's cache key)."""
    return tuple(v is None for v in values)


async def read_marker(
    tx: Tx, stmt: Executable, marker: str | None, params: dict[str, Any], missing: NimbusError
) -> tuple[bool, ...] | None:
    """Inside a listing's transaction: read the marker row's sort values with ``stmt``
    (which binds ``marker``) and add them to ``params`` for :func:`after_marker`.

    Returns which of them are NULL (the builder's ``marker_nulls``), or None
    without a marker; raises ``missing`` if the marker row is not there.
    """
    if marker is None:
        return None
    row = await tx.one(stmt, {"marker": marker})
    if row is None:
        raise missing
    params.update(marker_params(row))
    return marker_nulls(row)


def _same(table: Table, name: str, i: int, null: bool) -> ColumnElement[bool]:
    col = table.c[name]
    return col.is_(None) if null else col == bindparam(f"marker_{i}", type_=col.type)


def _beyond(table: Table, name: str, desc: bool, i: int, null: bool) -> ColumnElement[bool] | None:
    col = table.c[name]
    if null:
        # NULL is the smallest value: ascending, every non-NULL follows; descending, nothing.
        return None if desc else col.is_not(None)
    value = bindparam(f"marker_{i}", type_=col.type)
    if not desc:
        return col > value
    return or_(col < value, col.is_(None)) if col.nullable else col < value
