"""The one tree of Nimbus errors.

Every error a component raises on purpose is a :class:`NimbusError`. Errors that
reach an API carry the HTTP status they map to, so the HTTP adapter never guesses.
"""

from __future__ import annotations

from collections.abc import Sequence


class NimbusError(Exception):
    """Base of every error Nimbus raises on purpose."""

    status: int = 500

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message or self.__class__.__doc__ or self.__class__.__name__


class ConfigError(NimbusError):
    """A configuration value, key, or plug-in name is wrong."""

    status = 500


class UnknownNameError(ConfigError):
    """A configured name is not in its registry; the message lists the valid names."""

    def __init__(self, kind: str, name: str, valid: list[str] | tuple[str, ...]) -> None:
        listed = ", ".join(sorted(valid)) or "(none)"
        super().__init__(f"unknown {kind} {name!r}; valid {kind} names: {listed}")
        self.kind = kind
        self.name = name
        self.valid = tuple(sorted(valid))


class Cancelled(BaseException):
    """A task was cancelled. A BaseException, so ``except Exception`` does not swallow it."""


class TransportError(NimbusError):
    """A message could not be sent, delivered or understood."""

    status = 503


class RpcTimeout(TransportError, TimeoutError):
    """No reply to an RPC call arrived within its timeout."""

    status = 504


class MessageError(TransportError):
    """A message on the wire is malformed, of an unknown type, or of an unknown version."""

    status = 400


class RemoteError(NimbusError):
    """The remote end of an RPC call raised; carries the remote error's type and message."""

    def __init__(self, exc_type: str, message: str, status: int = 500) -> None:
        super().__init__(f"{exc_type}: {message}")
        self.exc_type = exc_type
        self.remote_message = message
        self.status = status


class NoSuchEndpoint(NimbusError):
    """A service received a message for which it declares no endpoint."""

    status = 501


class ApiError(NimbusError):
    """An error answered to an API client, with its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Forbidden(ApiError):
    """The request is understood but refused (403): the caller may not do this to this
    record (a protected image, a project with children)."""

    status = 403

    def __init__(self, message: str = "") -> None:
        super().__init__(type(self).status, message)


class InvalidInput(ApiError):
    """A request value is malformed or out of range (400): an unknown name, key, sort
    key or direction, or a value the operation does not allow."""

    status = 400

    def __init__(self, message: str = "") -> None:
        super().__init__(type(self).status, message)


class NotFound(NimbusError):
    """A record does not exist (or is not visible to whoever asks)."""

    status = 404


class ConflictError(NimbusError):
    """A write conflicts with the state of a record (409).

    Most often it lost a race: a generation or version changed underneath it, or
    the database found a deadlock. Such a conflict is ``retryable``: a retry
    from a fresh read may succeed, and ``Database.transact(...,
    conflict_retries=N)`` re-runs the transaction for it. A subclass whose
    answer cannot change on a re-run (a duplicate key, a state the caller did
    not expect, a generation the caller gave) says ``retryable=False`` in its
    class statement.
    """

    status = 409

    #: Whether a retry from a fresh read may succeed (see the class docstring).
    retryable: bool = True

    def __init_subclass__(cls, *, retryable: bool | None = None, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if retryable is not None:
            cls.retryable = retryable


class DuplicateError(ConflictError, retryable=False):
    """A record with the same unique key already exists."""


class InUse(ConflictError, retryable=False):
    """A record is in use and cannot be deleted or changed so (a network with allocated
    addresses, a security group with members, a resource class with inventories)."""


class GenerationConflict(ConflictError, retryable=False):
    """The generation of a resource provider or consumer that the caller gave is not the
    current one (placement's ``placement.concurrent_update``): the caller must read again."""


class UnexpectedStateError(ConflictError, retryable=False):
    """An instance's task or vm state is not one the caller expected
    (Nova's ``UnexpectedTaskStateError``); ``field``, ``actual``, ``expected`` say how."""

    def __init__(self, uuid: str, field: str, actual: str | None,
                 expected: Sequence[str | None]) -> None:
        super().__init__(f"instance {uuid}: {field} is {actual!r}, expected "
                         f"{' or '.join(map(repr, expected)) or 'nothing'}")
        self.field = field
        self.actual = actual
        self.expected = tuple(expected)


class InstanceInvalidState(ConflictError, retryable=False):
    """An action cannot start in the instance's current state (Nova's
    ``InstanceInvalidState``: 409 at the API)."""


class InstanceLocked(ConflictError, retryable=False):
    """The instance is locked and the caller may not act on it (409)."""


class StaleVersionError(ConflictError):
    """An instance changed since the caller read it; re-read and retry (retryable: a
    transaction that read the version itself may simply run again)."""


class QuotaExceeded(NimbusError):
    """A request would take a project or user over a quota limit (Nova answers 403).

    ``overs`` names every resource over its limit (sorted); the message gives the
    numbers of the first, in Nova's words.
    """

    status = 403

    def __init__(self, overs: list[str] | tuple[str, ...], requested: int, used: int,
                 limit: int) -> None:
        self.overs = tuple(sorted(overs))
        names = ",".join(self.overs)
        super().__init__(f"Quota exceeded for {names}: Requested {requested}, but already "
                         f"used {used} of {limit} {names}")
        self.resource = self.overs[0]
        self.requested = requested
        self.used = used
        self.limit = limit


class CapacityExceeded(NimbusError):
    """An allocation does not fit a provider's inventory: over its capacity, or against
    its min_unit, max_unit or step_size; the message names provider, class and numbers.

    Not a ConflictError: retrying from a fresh read gives the same answer.
    """

    status = 409


class InvalidPlacementInput(NimbusError):
    """A placement request is malformed: an inventory value out of range, an amount below
    one, a resource class or trait name that is neither standard nor CUSTOM_*."""

    status = 400


class DatabaseError(NimbusError):
    """The database failed in a way that is not the caller's fault."""

    status = 500


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached (down, wrong URL, connection lost); names the URL."""

    status = 503


class SchedulingError(NimbusError):
    """The scheduler could not place a request."""


class NoValidHost(SchedulingError):
    """No host can take the request."""

    status = 400


class DriverError(NimbusError):
    """A hypervisor driver operation failed."""


class DriverNotSupported(DriverError):
    """The hypervisor driver does not support this operation."""

    status = 409


def describe(error: BaseException) -> str:
    """An error as an instance fault's message: a NimbusError's own message, else the
    exception's type and text."""
    if isinstance(error, NimbusError):
        return error.message
    return f"{type(error).__name__}: {error}"


def fault_code(error: BaseException) -> int:
    """The HTTP status an instance fault records for ``error`` (500 if it has none)."""
    return error.status if isinstance(error, NimbusError) else 500


def _subclasses(cls: type[NimbusError]) -> dict[str, type[NimbusError]]:
    found: dict[str, type[NimbusError]] = {}
    for sub in cls.__subclasses__():
        found.setdefault(sub.__name__, sub)
        for name, deeper in _subclasses(sub).items():
            found.setdefault(name, deeper)
    return found


def local_error(err: RemoteError) -> NimbusError:
    """The error a remote handler raised, as its own class again where this process knows
    that class (a ``NimbusError`` subclass of that name), else ``err`` itself.

    The rebuilt error carries the remote message and status; constructor arguments
    beyond the message (``UnexpectedStateError.field`` ...) are not carried.
    """
    cls = _subclasses(NimbusError).get(err.exc_type)
    if cls is None or cls is RemoteError:
        return err
    exc = cls.__new__(cls)
    NimbusError.__init__(exc, err.remote_message)
    exc.status = err.status
    return exc
