"""Moodle's own definitions of the tables postsync uses, as a database.

tests/fixtures/moodle-tables.json holds the facts of Moodle's lib/db/install.xml for
those tables (columns: type, length, nullability, default; keys; indexes). This module
builds them the way Moodle's installer does: int(N) as SMALLINT (N <= 4), INTEGER
(N <= 9) or BIGINT, char(N) as VARCHAR(N), text as TEXT, number(N, D) as NUMERIC; an
index for every unique or foreign key and every index, named as Moodle names them
(prefix, four letters of each word of the table, three of each column, a counter on a
clash, `_ix` or `_uix`).

A database built here is Moodle's, not `postsync db init`'s: the tests compare the two,
and run postsync on this one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    text,
)

REFERENCE = Path(__file__).parent / "fixtures" / "moodle-tables.json"


def definitions() -> dict[str, Any]:
    tables: dict[str, Any] = json.loads(REFERENCE.read_text())["tables"]
    return tables


def _type(column: dict[str, Any]) -> Any:
    kind = column["type"]
    if kind == "int":
        if column.get("sequence"):
            return BigInteger().with_variant(Integer(), "sqlite")
        n = int(column["length"])
        return SmallInteger() if n <= 4 else Integer() if n <= 9 else BigInteger()
    if kind == "char":
        return String(int(column["length"]))
    if kind == "text":
        return Text()
    if kind == "number":
        return Numeric(int(column["length"]), int(column["decimals"]))
    raise ValueError(f"no such XMLDB type {kind!r}")


def _default(column: dict[str, Any]) -> Any:
    if "default" not in column:
        return None
    value = str(column["default"])
    if column["type"] in ("int", "number"):
        return text(value)
    return text("'" + value.replace("'", "''") + "'")


def index_name(prefix: str, table: str, fields: list[str], suffix: str, used: set[str]) -> str:
    """The name Moodle's XMLDB generator gives an index."""
    base = prefix + "".join(part[:4] for part in table.split("_")) + "_"
    base += "".join(field[:3] for field in fields)
    name, counter = f"{base}_{suffix}", 1
    while name in used:
        counter += 1
        name = f"{base}{counter}_{suffix}"
    used.add(name)
    return name


def moodle_metadata(prefix: str = "mdl_", without: Iterable[str] = ()) -> MetaData:
    """Moodle's tables; `without`: `table.column` names left out (an older Moodle)."""
    left_out = set(without)
    md = MetaData()
    used: set[str] = set()
    for name, table in definitions().items():
        columns = [
            Column(
                c["name"],
                _type(c),
                primary_key=bool(c.get("sequence")),
                autoincrement=bool(c.get("sequence")),
                nullable=not c["notnull"],
                server_default=_default(c),
            )
            for c in table["columns"]
            if f"{name}.{c['name']}" not in left_out
        ]
        indexes = []
        for key in [k for k in table["keys"] if k["type"] != "primary"] + table["indexes"]:
            fields = [f.strip() for f in key["fields"].split(",")]
            if any(f"{name}.{f}" in left_out for f in fields):
                continue
            unique = key.get("type") == "unique" or key.get("unique") is True
            label = index_name(prefix, name, fields, "uix" if unique else "ix", used)
            indexes.append(Index(label, *fields, unique=unique))
        Table(prefix + name, md, *columns, *indexes)
    return md
