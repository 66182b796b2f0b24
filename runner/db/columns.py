"""Moodle's XMLDB column kinds as SQLAlchemy columns (runner.db.tables, site_tables), with
the defaults Moodle's installer gives them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Column, Integer, SmallInteger, String, Table, Text, text
from sqlalchemy.dialects import mysql

# int(10) is BIGINT in Moodle; SQLite only auto-increments an INTEGER PRIMARY KEY.
_BIG = BigInteger().with_variant(Integer(), "sqlite")
#: text of any length in postsync's own tables (MySQL's TEXT stops at 64 KiB)
LONG_TEXT = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def id_col() -> Column[int]:
    return Column("id", _BIG, primary_key=True, autoincrement=True)


def int_col(
    name: str,
    default: int | None = 0,
    *,
    nullable: bool = False,
    small: bool = False,
    medium: bool = False,
) -> Column[int]:
    """int(N) as Moodle types it on PostgreSQL: N <= 4 `small`, N <= 9 `medium`."""
    kind = SmallInteger() if small else Integer() if medium else BigInteger()
    server_default = text(str(default)) if default is not None else None
    return Column(name, kind, nullable=nullable, server_default=server_default)


#: the default Moodle's installer gives a NOT NULL char column that install.xml gives
#: none (every one of its DDL generators: PostgreSQL, MySQL, SQL Server); a NOT NULL
#: text column has no default (XMLDB refuses defaults on text)
BLANK = "''"


def char_col(
    name: str, length: int, default: str | None = None, *, nullable: bool = False
) -> Column[str]:
    """char(N), its default `default`, or '' when NOT NULL without one (Moodle's)."""
    if default is not None:
        server_default: Any = text(f"'{default}'")
    else:
        server_default = None if nullable else text(BLANK)
    return Column(name, String(length), nullable=nullable, server_default=server_default)


def text_col(name: str) -> Column[str]:
    return Column(name, Text(), nullable=True)


def filled(table: Table, **values: Any) -> dict[str, Any]:
    """A row with `values`, and '' for the NOT NULL text columns that have no default
    but '' (Moodle's code gives those a value: install.xml gives them no default, and a
    database an older `postsync db init` made has none)."""
    blank = {
        c.name: ""
        for c in table.columns
        if not c.nullable
        and not c.primary_key
        and isinstance(c.type, String | Text)
        and _default(c) in (None, BLANK)
    }
    return {**blank, **values}


def _default(column: Column[Any]) -> str | None:
    default: Any = column.server_default
    return None if default is None else str(default.arg.text)
