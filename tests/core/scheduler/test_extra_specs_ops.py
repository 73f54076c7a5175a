"""Nova's extra-spec operators, case by case."""

from __future__ import annotations

import pytest

from nimbus.core.scheduler.extra_specs_ops import match


@pytest.mark.parametrize(("value", "requirement", "expected"), [
    ("1", "1", True),  # a bare value is compared as a whole string
    ("1", "2", False),
    ("123", "= 123", True),  # '=' means numerically >=
    ("124", "= 123", True),
    ("122", "= 123", False),
    ("12", "= abc", False),  # not a number: not met (Nova would raise)
    ("123", "== 123", True),
    ("123.0", "== 123", True),
    ("124", "== 123", False),
    ("124", "!= 123", True),
    ("123", "!= 123", False),
    ("10", ">= 9", True),
    ("8", ">= 9", False),
    ("8", "<= 9", True),
    ("10", "<= 9", False),
    ("abc", "s== abc", True),
    ("abd", "s== abc", False),
    ("abd", "s!= abc", True),
    ("abc", "s!= abc", False),
    ("abc", "s< abd", True),
    ("abd", "s< abd", False),
    ("abd", "s<= abd", True),
    ("abe", "s> abd", True),
    ("abd", "s> abd", False),
    ("abd", "s>= abd", True),
    ("12311321", "<in> 11", True),
    ("12311321", "<in> 99", False),
    ("['avx', 'sse4']", "<in> avx", True),  # a list is matched on its string form
    ("12311321", "<all-in> 11 32", True),
    ("12311321", "<all-in> 11 99", False),
    ("12", "<or> 11 <or> 12", True),
    ("13", "<or> 11 <or> 12", False),
    ("12", "<or> 11 <or> 12 <or>", True),
    ("11", "<or>", False),  # nothing to choose from (Nova would raise)
    ("1", "<in>", False),
    (None, "<in> 1", False),
    (None, "s== 1", False),
    ("1", "", False),
    ("", "", True),
    ("x", "foo bar", False),
    ("foo bar", "foo bar", True),
])
def test_match(value: str | None, requirement: str, expected: bool) -> None:
    assert match(value, requirement) is expected
