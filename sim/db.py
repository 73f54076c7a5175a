"""The simulation Database: one in-memory SQLite connection, no suspension.

Every awaitable here completes without yielding to the runtime, so a
transaction body runs atomically in virtual time and no other task can
interleave with it.

Speed is the point (the Store is the hot path of a simulation): each statement
object is compiled once for SQLite, in the ``qmark`` paramstyle, and run on the
``sqlite3`` connection directly, with ``BEGIN``/``COMMIT``/``ROLLBACK`` issued
here (``isolation_level=None``). A compiled *plan* knows, for every ``?`` of
the SQL, which parameter key fills it and what the value is when the key is
absent (a bound literal such as ``deleted == 0``, or a scalar ``default=`` of a
Column that SQLAlchemy would fill in at execution time). Plans are cached by
the statement object's identity (holding the statement, so the id is never
reused), and for INSERT and UPDATE also by the set of parameter keys, since
those decide which columns the statement writes.

What SQLite takes natively is not converted (``bool``, ``int``, ``float``,
``str``; Boolean columns read back as 0/1, which the Store turns into bools);
any other type's processors (JSON, Numeric, dates) are applied as SQLAlchemy
would. Statements that cannot be a fixed string are still handled: expanding
``IN`` parameters are rendered once per combination of list lengths (per call
for tuple ``IN`` and literal-execute parameters); statements whose defaults need
SQLAlchemy's execution context (callables, ``callable_`` bind parameters) run
through a SQLAlchemy Connection on the same ``sqlite3`` connection, inside the
same transaction.
"""

from __future__ import annotations

import logging
import operator
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Boolean, Float, Integer, String, create_engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import ValuesBase
from sqlalchemy.sql.expression import Executable

from nimbus.core.db.database import Params, Row, TxBody, retryable
from nimbus.core.db.meta import metadata
from nimbus.core.errors import DatabaseError, DuplicateError
from nimbus.core.runtime import Runtime

T = TypeVar("T")
log = logging.getLogger(__name__)

#: Types whose values ``sqlite3`` stores as SQLAlchemy's processors would.
_NATIVE_BIND = (Boolean, Float, Integer, String)

#: More cached plans than this means statements are being built per call: start over.
PLAN_LIMIT = 20_000

_DIALECT = sqlite_dialect.dialect(paramstyle="qmark")

_FAST, _EXPANDING, _FALLBACK = 0, 1, 2

#: Where one ``?`` of an expanded statement comes from: (parameter key, index in its list
#: or None, processor or None).
_Slot = tuple[str, int | None, Callable[[Any], Any] | None]


class _Plan:
    """How to run one compiled statement with one set of parameter keys."""

    __slots__ = ("bind_procs", "compiled", "consts", "dml_returning", "expand_keys",
                 "expansions", "getter", "keys", "mode", "result_procs", "sql", "writes")

    def __init__(self, stmt: Executable, param_keys: Sequence[str] | None) -> None:
        compile_ = stmt.compile  # type: ignore[attr-defined]
        compiled = compile_(dialect=_DIALECT, column_keys=param_keys)
        assert isinstance(compiled, SQLCompiler)
        self.compiled = compiled
        self.sql = compiled.string
        #: An INSERT/UPDATE/DELETE ... RETURNING: stepped to its end before it counts.
        #: It changes rows: the transaction must have begun before it runs.
        self.writes = bool(compiled.isinsert or compiled.isupdate or compiled.isdelete)
        self.dml_returning = bool(compiled._result_columns) and self.writes
        self.result_procs = _result_processors(compiled)
        self.consts: dict[str, Any] = {}
        self.keys: list[str] = []
        self.bind_procs: list[Callable[[Any], Any] | None] | None = None
        self.getter: Callable[[Mapping[str, Any]], Any] | None = None
        #: Expanding parameters' keys, when the SQL depends only on their lengths.
        self.expand_keys: list[str] | None = None
        #: Lengths of the expanding parameters -> (SQL, where each ``?`` comes from).
        self.expansions: dict[tuple[int, ...], tuple[str, list[_Slot]]] = {}
        if compiled.post_compile_params or compiled.literal_execute_params:
            self.mode = _EXPANDING
            self._expanding(compiled)
        elif not self._positions(compiled):
            self.mode = _FALLBACK
            self.writes = True  # run through SQLAlchemy: inside the transaction, whatever it is
        else:
            self.mode = _FAST

    def _positions(self, compiled: SQLCompiler) -> bool:
        """Fill keys/consts/bind_procs for the fast path; False if it cannot be used."""
        unescape = {v: k for k, v in compiled.escaped_bind_names.items()}
        by_name = {name: bind for bind, name in compiled.bind_names.items()}
        procs = compiled._bind_processors
        prefetch = {c.key: c.default for c in compiled.insert_prefetch}
        prefetch.update({c.key: c.onupdate for c in compiled.update_prefetch})
        collected = getattr(compiled, "_collected_params", None) or {}
        positional_procs: list[Callable[[Any], Any] | None] = []
        for pos_name in compiled.positiontup or ():
            name = unescape.get(pos_name, pos_name)
            bind = by_name[name]
            if bind.callable is not None:
                return False
            key = bind.key
            if key in prefetch:
                default = prefetch[key]
                if default is None or not default.is_scalar:
                    return False
                self.consts[key] = default.arg  # type: ignore[attr-defined]
            elif key in collected:
                self.consts[key] = collected[key]
            elif not bind.required:
                self.consts[key] = bind.value
            self.keys.append(key)
            proc = procs.get(name)
            if isinstance(bind.type, _NATIVE_BIND) or not callable(proc):
                proc = None  # natively stored, or a tuple type (rendered as expanding)
            positional_procs.append(proc)
        if any(p is not None for p in positional_procs):
            self.bind_procs = positional_procs
        if len(self.keys) == 1:
            only = self.keys[0]
            self.getter = lambda d: (d[only],)
        elif self.keys:
            self.getter = operator.itemgetter(*self.keys)
        return True

    def args(self, params: Mapping[str, Any] | None) -> Sequence[Any]:
        """The positional parameters for ``params`` (fast mode)."""
        if self.getter is None:
            return ()
        merged = {**self.consts, **params} if params and self.consts else (params or self.consts)
        try:
            values = self.getter(merged)
        except KeyError as exc:
            raise sa_exc.InvalidRequestError(
                f"A value is required for bind parameter {exc.args[0]!r}") from None
        if self.bind_procs is not None:
            values = [v if p is None or v is None else p(v)
                      for p, v in zip(self.bind_procs, values, strict=True)]
        return values

    def _expanding(self, compiled: SQLCompiler) -> None:
        """Set up caching expansions by length, if nothing but lengths changes the SQL."""
        binds = list(compiled.bind_names)
        if (compiled.literal_execute_params or compiled.insert_prefetch
                or compiled.update_prefetch
                or any(b.callable is not None or b.type._is_tuple_type for b in binds)):
            return
        collected = getattr(compiled, "_collected_params", None) or {}
        for bind in binds:
            if bind.expanding:
                continue
            if bind.key in collected:
                self.consts[bind.key] = collected[bind.key]
            elif not bind.required:
                self.consts[bind.key] = bind.value
        self.expand_keys = [b.key for b in compiled.post_compile_params]

    def _expansion(self, params: Mapping[str, Any]) -> tuple[str, list[_Slot]]:
        compiled = self.compiled
        state = compiled.construct_expanded_state(params)
        unescape = {v: k for k, v in compiled.escaped_bind_names.items()}
        by_name = {name: bind for bind, name in compiled.bind_names.items()}
        element = {n: (orig, i) for orig, names in state.parameter_expansion.items()
                   for i, n in enumerate(names)}
        slots: list[_Slot] = []
        for name in state.positiontup or ():
            orig, index = element.get(name, (name, None))
            bind = by_name[unescape.get(orig, orig)]
            proc = state.processors.get(name)
            if isinstance(bind.type, _NATIVE_BIND) or not callable(proc):
                proc = None
            slots.append((bind.key, index, proc))
        if len(self.expansions) >= 256:
            self.expansions.clear()
        return state.statement, slots

    def expanded(self, params: Mapping[str, Any] | None) -> tuple[str, list[Any]]:
        """The SQL and positional parameters with expanding parameters rendered."""
        keys = self.expand_keys
        if keys is not None and params is not None and all(
                isinstance(params.get(k), list | tuple) for k in keys):
            lengths = tuple(len(params[k]) for k in keys)
            entry = self.expansions.get(lengths)
            if entry is None:
                entry = self.expansions[lengths] = self._expansion(params)
            sql, slots = entry
            merged = {**self.consts, **params}
            out = []
            for key, index, proc in slots:
                try:
                    value = merged[key] if index is None else merged[key][index]
                except KeyError:
                    raise sa_exc.InvalidRequestError(
                        f"A value is required for bind parameter {key!r}") from None
                out.append(value if proc is None or value is None else proc(value))
            return sql, out
        state = self.compiled.construct_expanded_state(params)
        procs = state.processors
        out = []
        for name in state.positiontup or ():
            value = state.parameters[name]
            proc = procs.get(name)
            out.append(proc(value) if proc is not None and value is not None else value)
        return state.statement, out


def _result_processors(compiled: SQLCompiler) -> list[Callable[[Any], Any] | None] | None:
    procs: list[Callable[[Any], Any] | None] = []
    for entry in compiled._result_columns:
        if isinstance(entry.type, Boolean):
            procs.append(None)  # the Store reads booleans with bool()
        else:
            procs.append(entry.type._cached_result_processor(_DIALECT, None))
    return procs if any(p is not None for p in procs) else None


class _Entry:
    """The plans of one statement object, which it keeps alive (so its id stays unique)."""

    __slots__ = ("by_keys", "plan", "stmt")

    def __init__(self, stmt: Executable) -> None:
        self.stmt = stmt
        self.plan: _Plan | None = None
        self.by_keys: dict[tuple[str, ...], _Plan] | None = (
            {} if isinstance(stmt, ValuesBase) else None)


class _Tx:
    __slots__ = ("db",)

    def __init__(self, db: SimDatabase) -> None:
        self.db = db

    async def rows(self, stmt: Executable, params: Params | None = None) -> list[Row]:
        return self.db._rows(stmt, params)

    async def one(self, stmt: Executable, params: Params | None = None) -> Row | None:
        rows = self.db._rows(stmt, params, first=True)
        return rows[0] if rows else None

    async def scalar(self, stmt: Executable, params: Params | None = None) -> Any:
        rows = self.db._rows(stmt, params, first=True)
        return rows[0][0] if rows else None

    async def run(self, stmt: Executable, params: Params | Sequence[Params] | None = None) -> int:
        if isinstance(params, Sequence):
            return self.db._run_many(stmt, params) if params else 0
        return self.db._run(stmt, params)


class SimDatabase:
    """A Database in memory for simulation; the schema is created at once."""

    dialect = "sqlite"

    def __init__(self, runtime: Runtime | None = None) -> None:
        #: with a runtime, each transaction first waits ``delay`` seconds (a slow database)
        self.runtime = runtime
        self.delay = 0.0
        self.raw = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False,
                                   cached_statements=1024)
        self.raw.execute("PRAGMA foreign_keys=ON")
        self.engine = create_engine("sqlite://", creator=lambda: self.raw, poolclass=StaticPool)
        metadata.create_all(self.engine)
        #: For statements the raw path cannot run; shares ``raw`` and its transaction.
        self.conn: Connection = self.engine.connect()
        self.raw.isolation_level = None
        self._plans: dict[int, _Entry] = {}
        self._tx = _Tx(self)
        #: a transaction body is running; it has written (``BEGIN`` was issued)
        self._open = self._begun = False
        #: Statements run since creation (for benchmarks).
        self.statements = 0

    # -- plans ----------------------------------------------------------------------
    def _plan(self, stmt: Executable, params: Mapping[str, Any] | None) -> _Plan:
        entry = self._plans.get(id(stmt))
        if entry is None or entry.stmt is not stmt:
            if len(self._plans) >= PLAN_LIMIT:
                log.warning("%d statements compiled: are statements built per call?",
                            len(self._plans))
                self._plans.clear()
            entry = self._plans[id(stmt)] = _Entry(stmt)
        if entry.by_keys is None:
            if entry.plan is None:
                entry.plan = _Plan(stmt, None)
            return entry.plan
        keys = tuple(params) if params else ()
        plan = entry.by_keys.get(keys)
        if plan is None:
            plan = entry.by_keys[keys] = _Plan(stmt, list(keys))
        return plan

    # -- execution ------------------------------------------------------------------
    def _rows(self, stmt: Executable, params: Params | None, first: bool = False) -> list[Row]:
        self.statements += 1
        plan = self._plan(stmt, params)
        if plan.writes and not self._begun:
            self._begin()
        if plan.mode == _FAST:
            cur = self.raw.execute(plan.sql, plan.args(params))
        elif plan.mode == _EXPANDING:
            cur = self.raw.execute(*plan.expanded(params))
        else:
            result = self.conn.execute(stmt, params)
            if first:
                row = result.first()
                return [tuple(row)] if row is not None else []
            return [tuple(r) for r in result.all()]
        if first and not plan.dml_returning:
            one = cur.fetchone()
            got: list[Row] = [one] if one is not None else []
        else:
            got = cur.fetchall()
            if first:
                got = got[:1]
        procs = plan.result_procs
        if procs is not None:
            got = [tuple(v if p is None or v is None else p(v)
                         for p, v in zip(procs, r, strict=True)) for r in got]
        return got

    def _run(self, stmt: Executable, params: Params | None) -> int:
        self.statements += 1
        plan = self._plan(stmt, params)
        if not self._begun:
            self._begin()
        if plan.mode == _FAST:
            cur = self.raw.execute(plan.sql, plan.args(params))
        elif plan.mode == _EXPANDING:
            cur = self.raw.execute(*plan.expanded(params))
        else:
            return int(self.conn.execute(stmt, params).rowcount)
        if plan.dml_returning:
            cur.fetchall()  # step a RETURNING statement to its end
        return int(cur.rowcount)

    def _run_many(self, stmt: Executable, seq: Sequence[Params]) -> int:
        plan = self._plan(stmt, seq[0])
        if plan.mode != _FAST or plan.dml_returning:
            return sum(self._run(stmt, params) for params in seq)
        self.statements += len(seq)
        if not self._begun:
            self._begin()
        cur = self.raw.executemany(plan.sql, [plan.args(params) for params in seq])
        return int(cur.rowcount)

    # -- transactions ---------------------------------------------------------------
    async def transact(self, body: TxBody[T], *, conflict_retries: int = 0) -> T:
        """Run ``body`` in a transaction; see :class:`nimbus.core.db.database.Database`.

        ``BEGIN`` is issued before the body's first write, not before its first read:
        nothing else runs on this connection while a body runs, so reads before it see
        what they would inside, and a body that only reads costs no ``BEGIN``/``COMMIT``.
        """
        attempts = 0
        if self.delay > 0.0 and self.runtime is not None:
            await self.runtime.sleep(self.delay)
        while True:
            if self._open:
                raise DatabaseError(
                    "a transaction is already open: a transaction body awaited "
                    "something other than its Tx")
            self._open, self._begun = True, False
            try:
                result = await body(self._tx)
            except BaseException as exc:
                self._end("ROLLBACK")
                if retryable(exc) and attempts < conflict_retries:
                    attempts += 1
                    continue
                err = _translate(exc)
                if err is None:
                    raise
                raise err from None
            try:
                self._end("COMMIT")
            except sqlite3.Error as exc:
                self._end("ROLLBACK")
                raise DatabaseError(f"commit failed: {exc}") from None
            return result

    def _begin(self) -> None:
        self.raw.execute("BEGIN")
        self._begun = True

    def _end(self, sql: str) -> None:
        self._open = self._begun = False
        if self.raw.in_transaction:
            self.raw.execute(sql)
        if self.conn.in_transaction():  # the fallback path was used: end its bookkeeping
            self.conn.rollback()

    async def close(self) -> None:
        """Close the connection (the in-memory database goes with it)."""
        self.conn.close()
        self.engine.dispose()
        self.raw.close()


def _translate(exc: BaseException) -> Exception | None:
    """A core error for an sqlite3 (or SQLAlchemy-wrapped) error, or None to re-raise."""
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    if isinstance(orig, sqlite3.IntegrityError):
        text = str(orig)
        if "UNIQUE" in text:
            return DuplicateError(f"duplicate: {text}")
        return DatabaseError(f"integrity error: {text}")
    if isinstance(orig, sqlite3.Error):
        return DatabaseError(f"database error: {orig}")
    return None
