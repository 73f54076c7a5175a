"""Nova's extra-spec operators: does a host's value satisfy a requirement string?

A requirement is ``"<op> <operand>"`` or a bare value. Operators:

=========  =============================================================
``=``      numeric: value >= operand (Nova's historical meaning of ``=``)
``==``     numeric equality; ``!=``, ``>=``, ``<=`` numeric as written
``s==``    string equality; ``s!=``, ``s>=``, ``s>``, ``s<=``, ``s<`` likewise
``<in>``   the operand is a substring of the value
``<all-in>`` every operand word is a substring of the value
``<or>``   ``<or> a <or> b ...``: the value equals one of the words
=========  =============================================================

A requirement whose first word is not an operator must equal the value as a
whole string. Where Nova would raise (a numeric operator on a non-number, a
dangling ``<or>``) the requirement is simply not met.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

__all__ = ["OPERATORS", "match"]


def _numeric(compare: Callable[[float, float], bool]) -> Callable[[str, str], bool]:
    def check(value: str, operand: str) -> bool:
        try:
            return compare(float(value), float(operand))
        except ValueError:
            return False

    return check


_BINARY: dict[str, Callable[[str, str], bool]] = {
    "=": _numeric(operator.ge),
    "==": _numeric(operator.eq),
    "!=": _numeric(operator.ne),
    ">=": _numeric(operator.ge),
    "<=": _numeric(operator.le),
    "s==": operator.eq,
    "s!=": operator.ne,
    "s<": operator.lt,
    "s<=": operator.le,
    "s>": operator.gt,
    "s>=": operator.ge,
    "<in>": lambda value, operand: operand in value,
}

#: Every operator ``match`` understands.
OPERATORS = frozenset(_BINARY) | {"<all-in>", "<or>"}


def _any_of(value: str, words: list[str]) -> bool:
    # words alternate: choice, "<or>", choice, ...; only the choices count
    return value in words[0::2]


def match(value: str | None, requirement: str) -> bool:
    """True when ``value`` (a host's, as a string) satisfies ``requirement``."""
    words = requirement.split()
    op = words[0] if words else None
    if op not in OPERATORS:
        return value == requirement
    if value is None:
        return False
    operands = words[1:]
    if op == "<or>":
        return _any_of(value, operands)
    if not operands:
        return False
    if op == "<all-in>":
        return all(word in value for word in operands)
    return _BINARY[op](value, operands[0])
