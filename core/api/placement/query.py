"""Parsing Placement's filter query parameters: ``resources``, ``required``, ``member_of``.

Each parser turns one parameter into plain values or raises a 400 in
Placement's format. Whether a named trait or resource class exists is asked
of the Store by :func:`check_traits_exist` and :func:`check_classes_exist`,
because Placement answers an unknown one with 400, not with an empty result.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from nimbus.core.api.placement.errors import bad_request
from nimbus.core.api.placement.schemas import is_uuid_like

if TYPE_CHECKING:
    from nimbus.core.db.store import Store

_RESOURCES_FORM = "?resources=VCPU:2,MEMORY_MB:1024"


def resources(value: str, key: str = "resources") -> dict[str, int]:
    """``VCPU:2,MEMORY_MB:1024`` as ``{"VCPU": 2, "MEMORY_MB": 1024}``."""
    if not value.strip():
        raise bad_request(f"Badly formed {key} parameter: expected the form "
                          f"{_RESOURCES_FORM}, got an empty string.")
    amounts: dict[str, int] = {}
    for item in value.split(","):
        name, sep, amount = item.partition(":")
        if not sep or ":" in amount:
            raise bad_request(f"Badly formed {key} parameter: expected the form "
                              f"{_RESOURCES_FORM}, got {item!r}.")
        try:
            number = int(amount)
        except ValueError:
            raise bad_request(f"Requested resource {name} needs a positive integer "
                              f"amount, got {amount!r}.") from None
        if number < 1:
            raise bad_request(f"Requested resource {name} needs an amount of at least 1, "
                              f"got {number}.")
        amounts[name] = number
    return amounts


def traits(value: str, *, allow_forbidden: bool, key: str = "required") -> tuple[set[str],
                                                                                 set[str]]:
    """``A,!B`` as required ``{A}`` and forbidden ``{B}`` (``!`` from microversion 1.22)."""
    names = [part.strip() for part in value.split(",")]
    forbidden = {name.lstrip("!") for name in names if name.startswith("!")}
    required = {name for name in names if not name.startswith("!")}
    form = "HW_CPU_X86_VMX,!CUSTOM_MAGIC" if allow_forbidden else "HW_CPU_X86_VMX,CUSTOM_MAGIC"
    if not all(names) or not all(forbidden):
        raise bad_request(f"Invalid query string parameters: expected {key} of the form "
                          f"{form}, got an empty trait in {value!r}.")
    if forbidden and not allow_forbidden:
        raise bad_request(f"Invalid query string parameters: expected {key} of the form "
                          f"{form}, got {value!r}.")
    return required, forbidden


def member_of(values: Sequence[str], *, allow_multiple: bool,
              key: str = "member_of") -> list[set[str]]:
    """Each ``member_of`` value as a set of aggregate uuids, any one of which is required.

    A value is one uuid or ``in:`` and a comma-separated list; several values
    (from microversion 1.24) must all hold. Forbidden aggregates (``!``) come
    with microversion 1.32, which this server does not serve.
    """
    if len(values) > 1 and not allow_multiple:
        raise bad_request(f"Multiple {key} parameters are not supported at this microversion.")
    groups: list[set[str]] = []
    for value in values:
        if value.startswith("!"):
            raise bad_request(f"Forbidden {key} parameters are not supported at this "
                              f"microversion.")
        if "," in value and not value.startswith("in:"):
            raise bad_request(f"Several aggregates in {key} must be given as "
                              f"'in:<uuid>,<uuid>', got {value!r}.")
        uuids = set(value[3:].split(",")) if value.startswith("in:") else {value}
        for agg in sorted(uuids):
            if not is_uuid_like(agg):
                raise bad_request(f"Invalid query string parameters: {key} must hold "
                                  f"aggregate UUIDs, got {agg!r}.")
        groups.append(uuids)
    return groups


async def check_traits_exist(store: Store, names: Collection[str], key: str = "required") -> None:
    """400 naming every trait in ``names`` that does not exist."""
    if not names:
        return
    known = set(await store.list_traits(names=set(names)))
    missing = sorted(set(names) - known)
    if missing:
        raise bad_request(f"Invalid trait(s) in {key!r} parameter: no such trait(s): "
                          f"{', '.join(missing)}.")


async def check_classes_exist(store: Store, names: Collection[str],
                              key: str = "resources") -> None:
    """400 naming every resource class in ``names`` that does not exist."""
    if not names:
        return
    missing = sorted(set(names) - set(await store.list_resource_classes()))
    if missing:
        raise bad_request(f"Invalid resource class in {key} parameter: no such resource "
                          f"class(es): {', '.join(missing)}.")
