"""Messages between services: frozen dataclasses with a name and a version.

A message type is declared once::

    @message("compute.reboot_instance", version=1)
    @dataclass(frozen=True, slots=True)
    class RebootInstance:
        instance_uuid: str
        hard: bool = False

Every message travels inside an :class:`Envelope`. In-process transports pass
envelopes as objects (messages are immutable, so sharing is safe); byte
transports turn them into MessagePack with :class:`Codec`.

Why msgspec: it encodes and decodes dataclasses directly, validating field
types on the way in, so a malformed message fails in the codec with a message
that names the field, not deep inside a handler; and it is the fastest
well-kept MessagePack codec for Python (a few hundred nanoseconds per small
message), which matters for ZeroMQ round trips. orjson is as fast for JSON but
does not decode into typed dataclasses.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from nimbus.core.errors import MessageError

#: Version of the envelope layout on the wire. Bump it when the layout changes.
WIRE_VERSION = 1

C = TypeVar("C", bound=type)


class Kind(enum.IntEnum):
    """What an envelope is for."""

    CALL = 1
    CAST = 2
    FANOUT = 3
    REPLY = 4
    ERROR = 5


class MessageRegistry:
    """Message types by name and version; what a receiver can decode."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, int], type] = {}
        self._names: dict[type, tuple[str, int]] = {}

    def register(self, cls: type, name: str, version: int) -> None:
        """Add a message type; a clash of name and version is an error."""
        if not (dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen):  # type: ignore[attr-defined]
            raise TypeError(f"message {name!r} must be a frozen dataclass")
        key = (name, version)
        known = self._types.get(key)
        if known is not None and known is not cls:
            raise TypeError(f"message {name!r} v{version} is already {known.__qualname__}")
        self._types[key] = cls
        self._names[cls] = key

    def lookup(self, name: str, version: int) -> type:
        """The class for ``name`` at ``version``; ``MessageError`` if unknown."""
        try:
            return self._types[(name, version)]
        except KeyError:
            versions = sorted(v for (n, v) in self._types if n == name)
            if versions:
                raise MessageError(
                    f"message {name!r} has no version {version} (known: {versions})"
                ) from None
            raise MessageError(f"unknown message type {name!r}") from None

    def name_of_type(self, cls: type) -> tuple[str, int]:
        """The (name, version) of a registered message class."""
        try:
            return self._names[cls]
        except KeyError:
            raise MessageError(f"{cls.__qualname__} is not a registered message type") from None

    def name_of(self, msg: object) -> tuple[str, int]:
        """The (name, version) of a message instance; plain values are ("", 0)."""
        key = self._names.get(type(msg))
        if key is not None:
            return key
        # Tuples are left out: MessagePack would hand them back as lists.
        if msg is None or isinstance(msg, (bool, int, float, str, bytes, list, dict)):
            return ("", 0)
        raise MessageError(f"{type(msg).__qualname__} is not a registered message type")


#: The registry that ``@message`` adds to. Modules declare their messages at import.
MESSAGES = MessageRegistry()


def message(name: str, version: int = 1) -> Callable[[C], C]:
    """Class decorator: register a frozen dataclass as message ``name`` at ``version``."""

    def register(cls: C) -> C:
        MESSAGES.register(cls, name, version)
        return cls

    return register


@message("rpc.failure")
@dataclass(frozen=True, slots=True)
class Failure:
    """The body of an ERROR reply: what the remote handler raised."""

    exc_type: str
    message: str
    status: int = 500


@dataclass(frozen=True, slots=True)
class Undecodable:
    """Body of an envelope whose header parsed but whose body did not.

    The receiver can still answer the caller (the header names it) with an error.
    """

    reason: str


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message in flight, with what routing and correlation need.

    ``topic`` is where it goes (a service topic such as ``compute``, a host topic
    such as ``compute.host1``, or an endpoint's own address); ``reply_to`` is the
    sender's address for replies; ``body`` is the message itself.
    """

    kind: Kind
    msg_id: str
    topic: str
    reply_to: str
    type: str
    version: int
    body: Any
    sent_at: float = 0.0


class _Wire(msgspec.Struct, array_like=True, frozen=True):
    wire: int
    kind: int
    msg_id: str
    topic: str
    reply_to: str
    type: str
    version: int
    sent_at: float
    body: msgspec.Raw


class Codec:
    """Envelopes to bytes and back, with MessagePack; validates bodies by type."""

    def __init__(self, registry: MessageRegistry = MESSAGES) -> None:
        self.registry = registry
        self._enc = msgspec.msgpack.Encoder()
        self._wire_dec = msgspec.msgpack.Decoder(_Wire)
        self._any_dec = msgspec.msgpack.Decoder()
        self._decoders: dict[type, msgspec.msgpack.Decoder[Any]] = {}

    def encode(self, env: Envelope) -> bytes:
        """Serialize an envelope."""
        # One pass: the same array layout as _Wire, with the body encoded in place.
        return self._enc.encode((
            WIRE_VERSION, int(env.kind), env.msg_id, env.topic, env.reply_to,
            env.type, env.version, env.sent_at, env.body,
        ))

    def decode_header(self, data: bytes) -> _Wire:
        """Parse the envelope around the body; ``MessageError`` if malformed."""
        try:
            wire = self._wire_dec.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise MessageError(f"malformed envelope: {exc}") from None
        if wire.wire != WIRE_VERSION:
            raise MessageError(f"envelope wire version {wire.wire}, expected {WIRE_VERSION}")
        try:
            Kind(wire.kind)
        except ValueError:
            raise MessageError(f"unknown envelope kind {wire.kind}") from None
        return wire

    def decode(self, data: bytes) -> Envelope:
        """Parse an envelope and its body; ``MessageError`` names what is wrong.

        Use :meth:`decode_header` first when you need to answer a caller whose
        body cannot be decoded.
        """
        return self.decode_body(self.decode_header(data))

    def decode_lenient(self, data: bytes) -> Envelope:
        """Like :meth:`decode`, but a bad body becomes an :class:`Undecodable` body.

        Raises ``MessageError`` only when the envelope header itself is unreadable.
        """
        wire = self.decode_header(data)
        try:
            return self.decode_body(wire)
        except MessageError as exc:
            return Envelope(
                Kind(wire.kind), wire.msg_id, wire.topic, wire.reply_to,
                wire.type, wire.version, Undecodable(exc.message), wire.sent_at,
            )

    def decode_body(self, wire: _Wire) -> Envelope:
        """Decode the body of a parsed header into its registered type."""
        if wire.type:
            cls = self.registry.lookup(wire.type, wire.version)
            dec = self._decoders.get(cls)
            if dec is None:
                dec = self._decoders[cls] = msgspec.msgpack.Decoder(cls)
        else:
            dec = self._any_dec
        try:
            body = dec.decode(wire.body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise MessageError(f"bad body for {wire.type or 'value'!r}: {exc}") from None
        return Envelope(
            Kind(wire.kind), wire.msg_id, wire.topic, wire.reply_to,
            wire.type, wire.version, body, wire.sent_at,
        )
