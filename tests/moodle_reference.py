"""Moodle's own definitions of the tables postsync uses, release by release.

tests/fixtures/moodle-tables/<release>.json holds the facts of that release's
lib/db/install.xml for those tables (tests/moodle_install_xml.py extracts them, and
names the commit read): columns (XMLDB type, length, NOT NULL, default), primary key
and indexes with the names Moodle's installer gives them.

`expected_columns` and `expected_indexes` say what Moodle's installer makes of them on
a database: int(N) as SMALLINT (N <= 4), INTEGER (N <= 9) or BIGINT, char(N) as
VARCHAR(N), text as TEXT, number(N, D) as NUMERIC(N, D); a NOT NULL char column without
a default gets DEFAULT '' (a NOT NULL text column none); an index for every index and
every unique or foreign key; on PostgreSQL, a second index `<name>_pattern` with
`varchar_pattern_ops` where install.xml hints so. On a Moodle site of each release
installed on PostgreSQL, the 24 tables came out as these say.

`database_columns`, `database_indexes` and `database_primary_key` read the same facts
back from a database (tests/db/test_init.py: the tables `postsync db init` makes;
tests/moodle/test_moodle_tables.py: those of a site Moodle installed).

`moodle_metadata` builds the same tables (without going through postsync's code), for
tests that run postsync on Moodle's own tables.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    inspect,
    text,
)

FIXTURES = Path(__file__).parent / "fixtures" / "moodle-tables"
RELEASES = ("4.2", "4.5", "5.0", "5.1")
PATTERN_OPS = "varchar_pattern_ops"


@cache
def fixture(release: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{release}.json").read_text())
    return data


def definitions(release: str) -> dict[str, Any]:
    tables: dict[str, Any] = fixture(release)["tables"]
    return tables


def sql_type(column: dict[str, Any]) -> tuple[str, int | None, int | None]:
    """(SQL type, length, scale) as Moodle's PostgreSQL installer types an XMLDB column."""
    kind = column["type"]
    if kind == "int":
        n = column["length"]
        return ("SMALLINT" if n <= 4 else "INTEGER" if n <= 9 else "BIGINT"), None, None
    if kind == "char":
        return "VARCHAR", column["length"], None
    if kind == "text":
        return "TEXT", None, None
    if kind == "number":
        return "NUMERIC", column["length"], column["decimals"]
    raise ValueError(f"no such XMLDB type {kind!r}")


def default(column: dict[str, Any]) -> str | None:
    """The column's default as SQL, as Moodle's installer gives it (None: none)."""
    if column.get("sequence"):
        return None
    if "default" in column:
        value = str(column["default"])
        return (
            value if column["type"] in ("int", "number") else "'" + value.replace("'", "''") + "'"
        )
    if column["type"] == "char" and column["notnull"]:
        return "''"
    return None


def expected_columns(release: str, table: str) -> list[tuple[Any, ...]]:
    """(name, SQL type, length, scale, nullable, default, sequence) of each column."""
    return [
        (
            c["name"],
            *sql_type(c),
            not c["notnull"],
            default(c),
            bool(c.get("sequence")),
        )
        for c in definitions(release)[table]["columns"]
    ]


def expected_indexes(
    release: str, table: str, prefix: str, dialect: str
) -> set[tuple[str, tuple[str, ...], bool, str | None]]:
    """(name, columns, unique, operator class) of each index but the primary key's."""
    found = set()
    for index in definitions(release)[table]["indexes"]:
        name, fields = prefix + index["name"], tuple(index["fields"])
        found.add((name, fields, index["unique"], None))
        if dialect == "postgresql" and PATTERN_OPS in index.get("hints", ()):
            found.add((f"{name}_pattern", fields, False, PATTERN_OPS))
    return found


def expected_primary_key(release: str, table: str, prefix: str) -> tuple[str, list[str]]:
    primary = definitions(release)[table]["primary"]
    return prefix + primary["name"], primary["fields"]


def database_columns(engine: Engine, table: str) -> list[tuple[Any, ...]]:
    """(name, SQL type, length, scale, nullable, default, sequence) as the database has
    them: a sequence is PostgreSQL's BIGSERIAL (its default takes the table's
    `<table>_id_seq`), or SQLite's INTEGER PRIMARY KEY (its only auto-increment: a
    64-bit integer, as BIGINT)."""
    found = []
    pk = inspect(engine).get_pk_constraint(table)["constrained_columns"]
    for c in inspect(engine).get_columns(table):
        kind = type(c["type"]).__name__.upper()
        default = c.get("default")
        sequence = default == f"nextval('{table}_id_seq'::regclass)" or (
            engine.dialect.name == "sqlite" and c["name"] in pk and kind == "INTEGER"
        )
        if sequence:
            kind, default = "BIGINT", None
        elif default is not None:
            default = str(default).removesuffix("::character varying")
        length = getattr(c["type"], "length", None) or getattr(c["type"], "precision", None)
        found.append(
            (
                c["name"],
                kind,
                length,
                getattr(c["type"], "scale", None),
                c["nullable"],
                default,
                sequence,
            )
        )
    return found


def database_indexes(
    engine: Engine, table: str
) -> set[tuple[str, tuple[str, ...], bool, str | None]]:
    """(name, columns, unique, operator class) of each index but the primary key's, as
    the database has them."""
    found = set()
    for index in inspect(engine).get_indexes(table):
        ops = index.get("dialect_options", {}).get("postgresql_ops", {})
        columns = tuple(str(c) for c in index["column_names"])
        found.add((str(index["name"]), columns, bool(index["unique"]), ops.get(columns[0])))
    return found


def database_primary_key(engine: Engine, table: str) -> tuple[str, list[str]]:
    found = inspect(engine).get_pk_constraint(table)
    return str(found["name"]), list(found["constrained_columns"])


def _type(column: dict[str, Any]) -> Any:
    kind, length, scale = sql_type(column)
    if column.get("sequence"):
        return BigInteger().with_variant(Integer(), "sqlite")
    return {
        "SMALLINT": SmallInteger(),
        "INTEGER": Integer(),
        "BIGINT": BigInteger(),
        "TEXT": Text(),
        "VARCHAR": String(length),
        "NUMERIC": Numeric(length, scale),
    }[kind]


def _server_default(column: dict[str, Any]) -> Any:
    sql = default(column)
    return None if sql is None else text(sql)


def moodle_metadata(prefix: str, release: str, without: Iterable[str] = ()) -> MetaData:
    """Moodle's tables; `without`: `table.column` names left out (an older Moodle)."""
    left_out = set(without)
    md = MetaData()
    for name, table in definitions(release).items():
        columns = [
            Column(
                c["name"],
                _type(c),
                autoincrement=bool(c.get("sequence")),
                nullable=not c["notnull"],
                server_default=_server_default(c),
            )
            for c in table["columns"]
            if f"{name}.{c['name']}" not in left_out
        ]
        primary = PrimaryKeyConstraint(
            *table["primary"]["fields"], name=prefix + table["primary"]["name"]
        )
        indexes = []
        for index in table["indexes"]:
            if any(f"{name}.{f}" in left_out for f in index["fields"]):
                continue
            label = prefix + index["name"]
            indexes.append(Index(label, *index["fields"], unique=index["unique"]))
            if PATTERN_OPS in index.get("hints", ()):
                ops = dict.fromkeys(index["fields"], PATTERN_OPS)
                pattern = Index(f"{label}_pattern", *index["fields"], postgresql_ops=ops)
                indexes.append(pattern.ddl_if(dialect="postgresql"))
        Table(prefix + name, md, *columns, primary, *indexes)
    return md
