"""The database as compute sees it: Store methods called through the conductor.

Compute never holds a database connection (a compromised hypervisor host must
not reach every tenant's rows): it holds a :class:`RemoteStore`, which has the
Store's methods but runs each one in the conductor with a :class:`StoreCall`.
Only the methods named in :data:`COMPUTE_STORE_METHODS` may be called so; the
conductor refuses any other (a ``Forbidden``, never a silent pass).

The same code works in-process (arguments and records travel as objects) and
over a byte transport (MessagePack turns records into maps): each side turns
what arrives back into the types the Store method declares. Errors the Store
raises come back as their own class (``NotFound``, ``UnexpectedStateError``...),
so compute handles them as if it called the Store itself.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import msgspec

from nimbus.core.errors import Forbidden, InvalidInput, RemoteError, local_error
from nimbus.core.messages import message

if TYPE_CHECKING:
    from nimbus.core.db.store import Store
    from nimbus.core.rpc import RpcEndpoint

#: The Store methods compute may run through the conductor, and nothing else.
COMPUTE_STORE_METHODS = frozenset({
    # instances and what hangs off them
    "get_instance", "instances_by_host", "update_instance",
    "soft_delete_instance",
    "start_event", "finish_event", "finish_action", "add_instance_fault", "bdms_for_instance",
    "group_for_instance", "list_instances",
    "start_action",  # the stop of a guest that stopped by itself (power state sync)
    # services and compute nodes
    "service_by_host_binary", "create_service", "service_heartbeat", "compute_node_by_host",
    "create_compute_node", "record_node_usage", "list_compute_nodes",
    # placement, for the resource tracker
    "get_resource_provider", "create_resource_provider", "get_inventories", "set_inventories",
    "set_traits", "ensure_traits", "get_allocations", "allocations_for_provider",
    "claim_allocations", "delete_allocations", "move_allocations",
    # migrations
    "get_migration", "get_migration_by_uuid", "update_migration", "update_migration_status",
    "migrations_by_instance", "migration_by_instance_and_status",
    "in_progress_migrations_by_host", "list_migrations",
    # images made by snapshots and shelving
    "get_image", "create_image", "update_image", "set_image_status", "set_image_data",
    "delete_image",
})


@message("conductor.store_call")
@dataclass(frozen=True, slots=True)
class StoreCall:
    """Run Store method ``method`` with these arguments in the conductor."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@message("conductor.store_result")
@dataclass(frozen=True, slots=True)
class StoreResult:
    """What the Store method returned."""

    value: Any = None


@functools.cache
def _signature(method: str) -> tuple[inspect.Signature, dict[str, Any]]:
    from nimbus.core.db.store import Store  # the conductor side only

    fn = getattr(Store, method)
    return inspect.signature(fn), typing.get_type_hints(fn)


@functools.cache
def _shape(method: str) -> tuple[tuple[str, ...], frozenset[str], bool]:
    """The method's positional parameter names (after self), every keyword name it
    takes, and whether it takes ``**kwargs``."""
    sig, _ = _signature(method)
    params = list(sig.parameters.values())[1:]
    kinds = inspect.Parameter
    positional = tuple(p.name for p in params
                       if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD))
    keywords = frozenset(p.name for p in params
                         if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY))
    return positional, keywords, any(p.kind is kinds.VAR_KEYWORD for p in params)


def _is_plain(value: Any) -> bool:
    """True for what needs no conversion: scalars and records already built."""
    if value is None or isinstance(value, (str, int, float, bool, bytes)):
        return True
    if dataclasses.is_dataclass(value):
        return True
    if isinstance(value, (list, tuple)) and value:
        return dataclasses.is_dataclass(value[0])
    return False


def typed(value: Any, hint: Any) -> Any:
    """``value`` as type ``hint``: records rebuilt from the maps a byte transport made.

    Values that already are records, and scalars, pass through untouched (the
    in-process case, which simulation runs millions of times).
    """
    if hint is Any or _is_plain(value):
        return value
    try:
        return msgspec.convert(value, hint, from_attributes=True, strict=False)
    except (msgspec.ValidationError, TypeError) as exc:
        raise InvalidInput(f"cannot read {value!r} as {hint}: {exc}") from None


async def serve_store_call(store: Store, msg: StoreCall) -> StoreResult:
    """The conductor's side: check the method is allowed, type the arguments, run it."""
    if msg.method not in COMPUTE_STORE_METHODS:
        raise Forbidden(f"Store method {msg.method!r} may not be called by compute")
    sig, hints = _signature(msg.method)
    fn: Callable[..., Awaitable[Any]] = getattr(store, msg.method)
    positional, keywords, var_kw = _shape(msg.method)
    if (len(msg.args) <= len(positional) and not var_kw
            and all(k in keywords for k in msg.kwargs)
            and not any(k in positional[:len(msg.args)] for k in msg.kwargs)):
        # the common call, checked without binding a signature (each compute Store call
        # comes through here); a required argument left out fails in the call itself
        args = [typed(v, hints.get(name, Any)) for name, v in zip(positional, msg.args,
                                                                    strict=False)]
        kwargs = {k: typed(v, hints.get(k, Any)) for k, v in msg.kwargs.items()}
        try:
            call = fn(*args, **kwargs)
        except TypeError as exc:
            raise InvalidInput(f"bad arguments for {msg.method}: {exc}") from None
        return StoreResult(await call)
    try:
        bound = sig.bind(None, *msg.args, **msg.kwargs)  # None stands for self
    except TypeError as exc:
        raise InvalidInput(f"bad arguments for {msg.method}: {exc}") from None
    params = sig.parameters
    for name, value in list(bound.arguments.items())[1:]:
        hint = hints.get(name, Any)
        if params[name].kind is inspect.Parameter.VAR_KEYWORD:
            bound.arguments[name] = dict(value)
        else:
            bound.arguments[name] = typed(value, hint)
    return StoreResult(await fn(*bound.args[1:], **bound.kwargs))


class RemoteStore:
    """A Store whose allowed methods run in the conductor (see the module docstring).

    Build one with :meth:`for_endpoint`, which types it as a ``Store`` for the code
    that uses it; calling a method not in ``COMPUTE_STORE_METHODS`` is an
    ``AttributeError`` here, before anything is sent.
    """

    def __init__(self, rpc: RpcEndpoint, *, topic: str = "conductor",
                 timeout: float | None = None) -> None:
        self._rpc = rpc
        self._topic = topic
        self._timeout = timeout
        self._methods: dict[str, Callable[..., Awaitable[Any]]] = {}

    @classmethod
    def for_endpoint(cls, rpc: RpcEndpoint, *, topic: str = "conductor",
                     timeout: float | None = None) -> Store:
        """A RemoteStore over ``rpc``, typed as the Store it stands for."""
        return cast("Store", cls(rpc, topic=topic, timeout=timeout))

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        if name.startswith("_") or name not in COMPUTE_STORE_METHODS:
            raise AttributeError(f"Store method {name!r} is not available to compute")
        method = self._methods.get(name)
        if method is None:
            method = self._methods[name] = self._remote(name)
        return method

    def _remote(self, name: str) -> Callable[..., Awaitable[Any]]:
        rpc, topic, timeout = self._rpc, self._topic, self._timeout
        hint = _return_hint(name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            try:
                got = await rpc.call(topic, StoreCall(name, args, kwargs), timeout)
            except RemoteError as err:
                raise local_error(err) from None
            return typed(got.value, hint)

        call.__name__ = name
        return call


@functools.cache
def _return_hint(method: str) -> Any:
    return _signature(method)[1].get("return", Any)
