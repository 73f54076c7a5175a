"""Explicit registries: configured names to implementations.

Nothing is found by scanning directories or entry points. Each kind of
plug-in (services, transports, runtimes, drivers, filters, weighers) has one
:class:`Registry` filled in code, so reading it tells what exists, and an
unknown name fails with the list of valid ones.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from nimbus.core.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T], Mapping[str, T]):
    """A read-only map of names to implementations of one ``kind`` of plug-in."""

    def __init__(self, kind: str, entries: Mapping[str, T]) -> None:
        self.kind = kind
        self._entries = dict(entries)

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, list(self._entries)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str, default: T | None = None) -> T | None:  # type: ignore[override]
        """The entry for ``name``, or ``default``; never raises."""
        return self._entries.get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        """The valid names, sorted."""
        return sorted(self._entries)

    def resolve(self, names: str | list[str] | tuple[str, ...]) -> list[T]:
        """Look up several names (a list, or one comma-separated string), in order."""
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",") if n.strip()]
        return [self[n] for n in names]

    def with_entries(self, entries: Mapping[str, T]) -> Registry[T]:
        """A new registry with more entries (a later layer adds its own plug-ins)."""
        return Registry(self.kind, {**self._entries, **entries})
