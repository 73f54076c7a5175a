"""The one MetaData every table is declared on, and the column conventions.

Conventions, chosen so that one schema behaves the same on SQLite, PostgreSQL
and MariaDB, and so that simulation can run statements on raw ``sqlite3``:

* times are ``Double`` seconds since the Unix epoch (from ``Runtime.wall_time``),
  never DATETIME: no time zones, no driver conversions;
* structured values (metadata, specs, stats) are ``Text`` holding JSON, encoded
  and decoded by the Store with :func:`dumps` / :func:`loads`;
* booleans are ``Boolean`` (0/1 on SQLite and MariaDB), read back with ``bool()``;
* short strings that are indexed are ``String(n)`` (MariaDB cannot index TEXT);
* soft delete is a ``deleted`` integer: 0 for live rows, the row id once
  deleted, so unique keys that include it allow a name to be reused;
* in an UPDATE or INSERT, a bind parameter outside the SET / VALUES (in the
  WHERE clause, a subquery) must not share the name of a column of the table:
  executed with that key, SQLAlchemy would also SET the column from it, and it
  refuses to compile the statement ("bindparam() name 'id' is reserved ...").
  Name such parameters for what they hold, e.g. ``sid``, ``iuuid``, ``aid``
  (``.values(name=bindparam("name"))`` may keep the column's name).

Update methods take :data:`KEEP` for "leave this field as it is" (``None``
sets NULL) and resolve it with :func:`pick`.
"""

from __future__ import annotations

import enum
from typing import Any, Final, TypeVar

import msgspec
from sqlalchemy import Boolean, Column, Double, Integer, MetaData, String

#: Constraint names that are stable across databases (alembic needs them).
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

T = TypeVar("T")


class Keep(enum.Enum):
    """The type of :data:`KEEP`."""

    KEEP = "keep"


#: "Leave this field as it is" in update methods (``None`` means set it to NULL).
KEEP: Final = Keep.KEEP


def pick(new: T | Keep, old: T) -> T:
    """``new`` unless it is :data:`KEEP`, then ``old``."""
    return old if isinstance(new, Keep) else new

UUID_LEN = 36
NAME_LEN = 255

_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder()


def dumps(value: Any) -> str:
    """JSON text for a structured column."""
    return _enc.encode(value).decode()


def loads(text: str | bytes | None, default: Any = None) -> Any:
    """The value of a structured column (``default`` for NULL)."""
    if text is None:
        return default
    return _dec.decode(text)


def id_column() -> Column[int]:
    """An autoincrementing integer primary key."""
    return Column("id", Integer, primary_key=True, autoincrement=True)


def uuid_column(name: str = "uuid", *, nullable: bool = False, unique: bool = False) -> Column[str]:
    """A UUID held as its 36-character string."""
    return Column(name, String(UUID_LEN), nullable=nullable, unique=unique)


def time_columns() -> list[Column[Any]]:
    """created_at, updated_at: epoch seconds."""
    return [
        Column("created_at", Double, nullable=True),
        Column("updated_at", Double, nullable=True),
    ]


def soft_delete_columns() -> list[Column[Any]]:
    """deleted_at and deleted (0 = live; the row id once soft-deleted)."""
    return [
        Column("deleted_at", Double, nullable=True),
        Column("deleted", Integer, nullable=False, default=0, server_default="0"),
    ]


def flag(name: str, default: bool = False) -> Column[bool]:
    """A boolean column with a server default."""
    return Column(name, Boolean, nullable=False, default=default,
                  server_default="1" if default else "0")
