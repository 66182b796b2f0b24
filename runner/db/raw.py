"""The sync's hot statements, sent to the driver as plain SQL.

A batch's lookups on key pairs and its executemany writes run once per 2,000 lines;
building them through SQLAlchemy's compiler (an expanding IN of thousands of
parameters, a dict per inserted row) costs more than the database work itself. These
helpers write the same statements directly, with the driver's parameter style, bound
parameters only (never a value in the SQL text).

On PostgreSQL a batch's keys and rows travel as one array per column (`unnest`):
one constant statement per table and batch, instead of thousands of placeholders for
the driver to parse or one pipelined statement per row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain
from typing import Any

from sqlalchemy import Connection, Table

#: (SQL, parameters): a tuple of parameters, or a list of tuples for executemany
Statements = list[tuple[str, Any]]
#: rows in one SQLite INSERT
MAX_ROWS = 2048
#: the PostgreSQL advisory lock (one bigint key: "postsync" in ASCII) a sync takes, to
#: its transaction's end, before inserting into a table that has no unique index on
#: the rows' key: another postsync on the database then waits, and sees its rows
INSERT_LOCK = 0x706F737473796E63


def array_literal(values: Iterable[Any]) -> str:
    """A PostgreSQL array literal (`{1,2}`, `{"a","b\\"c",NULL}`) of ints, strings or None.

    Sent as one text parameter and cast by the statement (`%s::BIGINT[]`): the driver's
    own list adaptation costs more per element than the database's work on it.
    """
    values = values if isinstance(values, (list, tuple)) else list(values)
    kinds = set(map(type, values))  # the common cases at C speed: one type, no escapes
    if kinds <= {int}:
        return "{" + ",".join(map(str, values)) + "}"
    if kinds == {str} and '"' not in (text := "".join(values)) and "\\" not in text:
        return '{"' + '","'.join(values) + '"}'
    items = []
    for value in values:
        if value is None:
            items.append("NULL")
        elif isinstance(value, int):
            items.append(str(value))
        else:
            items.append('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "{" + ",".join(items) + "}"


def _columns(rows: Sequence[Any]) -> tuple[str, ...]:
    """One array literal per column of `rows`."""
    return tuple(array_literal(column) for column in zip(*rows, strict=True))


def _sqlite_variables(conn: Connection) -> int:
    """How many parameters one SQLite statement takes (32766 since 3.32, 999 before)."""
    import sqlite3

    dbapi: Any = conn.connection.dbapi_connection
    return int(dbapi.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))


class Raw:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.dialect = conn.dialect
        self.mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        self.quote = conn.dialect.identifier_preparer.quote
        self.arrays = conn.dialect.name == "postgresql"
        # SQLite takes `(a, b) IN (VALUES (?, ?), ...)`; MySQL a plain list
        self.values = "" if conn.dialect.name in ("mysql", "mariadb") else "VALUES "
        #: values per IN list, key rows per lookup (older SQLite builds take at most
        #: 999 parameters); with arrays, a whole batch in one statement
        self.chunk = 100_000 if self.arrays else 900
        self.pairs = 100_000 if self.arrays else 450
        #: bound parameters an INSERT takes (SQLite: many rows a statement), or None:
        #: one row a statement, executemany
        self.insert_params = _sqlite_variables(conn) if conn.dialect.name == "sqlite" else None
        self._locked = False

    def insert_lock(self) -> Statements:
        """The statement taking the insert lock (PostgreSQL, once a transaction: this
        object lives for one control file's transaction); none elsewhere (SQLite's
        write lock serialises writers already)."""
        if not self.arrays or self._locked:
            return []
        self._locked = True
        return [("SELECT pg_advisory_xact_lock(%s)", (INSERT_LOCK,))]

    def insert_one(self, table: Table, values: dict[str, Any], key: Sequence[str]) -> int:
        """Insert a row unless the table has one with the same `key` columns (a table
        without a unique index there, e.g. a course's groups by name); the id of the
        row: the inserted one, or the lowest of those there. Statements built here and
        run by the driver (SQLAlchemy's expressions cost ten times the database's work)."""
        self.run(self.insert_lock())
        columns, row = tuple(values), tuple(values.values())
        if self.arrays:  # PostgreSQL: the inserted row's id comes back
            (sql, params), *_ = self._inserts_absent(table, columns, [row], key)[-1:]
            found = self.conn.exec_driver_sql(f"{sql} RETURNING {self.quote('id')}", params)
            inserted = found.scalar()
        else:
            done = self.conn.exec_driver_sql(self._insert_absent(table, columns, key), row)
            inserted = done.lastrowid if done.rowcount == 1 else None
        if inserted is not None:
            return int(inserted)
        q = self.quote
        match = " AND ".join(f"{q(k)} = {self.mark}" for k in key)
        sql = f"SELECT {q('id')} FROM {self.name(table)} WHERE {match} ORDER BY {q('id')} LIMIT 1"
        if not self.values:  # MySQL, MariaDB: a locking read sees the row the insert saw
            sql += " LOCK IN SHARE MODE"  # (not the transaction's snapshot)
        first = self.conn.exec_driver_sql(sql, tuple(values[k] for k in key)).scalar_one()
        return int(first)

    def name(self, table: Table) -> str:
        return self.quote(table.name)

    def marks(self, count: int) -> str:
        return ", ".join([self.mark] * count)

    def _array(self, table: Table, column: str) -> str:
        """A bound array parameter of `column`'s SQL type, e.g. `%s::BIGINT[]`."""
        return f"{self.mark}::{table.c[column].type.compile(dialect=self.dialect)}[]"

    def _unnest(self, table: Table, columns: Sequence[str], names: Sequence[str]) -> str:
        arrays = ", ".join(self._array(table, c) for c in columns)
        return f"unnest({arrays}) AS v ({', '.join(names)})"

    def where_in(
        self, table: Table, column: str, values: Sequence[Any]
    ) -> tuple[str, tuple[Any, ...]]:
        """`column IN (...)` or `column = ANY(array)`, and its parameters."""
        if self.arrays:
            return f"{self.quote(column)} = ANY({self._array(table, column)})", (
                array_literal(values),
            )
        return f"{self.quote(column)} IN ({self.marks(len(values))})", tuple(values)

    def select_in(
        self,
        table: Table,
        columns: Sequence[str],
        column: str,
        values: Sequence[Any],
        also: str = "",
    ) -> Sequence[Any]:
        """SELECT `columns` FROM `table` WHERE `column` is one of `values` (and the
        condition `also`, if any: SQL text without parameters)."""
        where, params = self.where_in(table, column, values)
        sql = (
            f"SELECT {', '.join(self.quote(c) for c in columns)} FROM {self.name(table)}"
            f" WHERE {where}" + (f" AND {also}" if also else "")
        )
        return self.conn.exec_driver_sql(sql, params).fetchall()

    def select_keys(
        self,
        table: Table,
        columns: Sequence[str],
        keys: Sequence[str],
        rows: Sequence[Any],
        latest: bool = False,
    ) -> Sequence[Any]:
        """SELECT `columns` FROM `table` whose (keys...) is one of `rows`; `latest`: the
        rows committed since the transaction began too (MySQL and MariaDB read a
        snapshot otherwise; a locking read sees what an insert there just met).

        A join with the key rows (a VALUES list, or arrays), which every database
        drives through the table's index on `keys`; a row-value IN would make SQLite
        scan the table.
        """
        if not rows:
            return []
        q = self.quote
        width = len(keys)
        one = "(" + self.marks(width) + ")"
        flat = tuple(chain.from_iterable(rows))
        if not self.values:  # MySQL/MariaDB: a row-value IN uses the index
            sql = (
                f"SELECT {', '.join(q(c) for c in columns)} FROM {self.name(table)}"
                f" WHERE ({', '.join(q(k) for k in keys)}) IN ({', '.join([one] * len(rows))})"
                + (" LOCK IN SHARE MODE" if latest else "")
            )
            return self.conn.exec_driver_sql(sql, flat).fetchall()
        names = [f"k{i}" for i in range(width)]
        on = " AND ".join(f"t.{q(k)} = v.{n}" for k, n in zip(keys, names, strict=True))
        selected = ", ".join(f"t.{q(c)}" for c in columns)
        if self.arrays:
            sql = (
                f"SELECT {selected} FROM {self._unnest(table, keys, names)}"
                f" JOIN {self.name(table)} t ON {on}"
            )
            return self.conn.exec_driver_sql(sql, _columns(rows)).fetchall()
        sql = (
            f"WITH v ({', '.join(names)}) AS (VALUES {', '.join([one] * len(rows))})"
            f" SELECT {selected} FROM v JOIN {self.name(table)} t ON {on}"
        )
        return self.conn.exec_driver_sql(sql, flat).fetchall()

    def inserts(
        self,
        table: Table,
        columns: Sequence[str],
        rows: Iterable[Any],
        unique: Sequence[str] = (),
        absent: Sequence[str] = (),
        probe: Sequence[str] = (),
    ) -> Statements:
        """The statements that insert `rows` (tuples in `columns` order). With `unique`
        (the columns of a unique index), a row whose key a row of the table already
        has is left out, not an error: the table's row stands (another writer, Moodle
        itself, inserted it since the sync read the table). With `absent` (key
        columns a table has no unique index on), such a row is left out as well,
        under the insert lock (`probe`: see _insert_select)."""
        rows = rows if isinstance(rows, list) else list(rows)
        if not rows:
            return []
        if absent and self.insert_params is None:  # SQLite: the sync holds the write lock
            return self._inserts_absent(table, columns, rows, absent, probe)
        names = [self.quote(c) for c in columns]
        into = f"INSERT INTO {self.name(table)} ({', '.join(names)})"
        tail = ""
        if unique and self.values:  # PostgreSQL, SQLite
            tail = f" ON CONFLICT ({', '.join(self.quote(c) for c in unique)}) DO NOTHING"
        elif unique:  # MySQL, MariaDB: a no-op update (INSERT IGNORE would hide errors)
            tail = f" ON DUPLICATE KEY UPDATE {self.quote('id')} = {self.quote('id')}"
        if self.arrays:
            sql = f"{into} SELECT * FROM {self._unnest(table, columns, names)}{tail}"
            return [(sql, _columns(rows))]
        one = f"({self.marks(len(columns))})"
        if self.insert_params is None:
            return [(f"{into} VALUES {one}{tail}", rows)]
        # SQLite: many rows a statement, so that the whole statement runs in the
        # library, without Python's lock (executemany takes it back after every row).
        # Sizes are powers of two: the driver caches each distinct statement, and one
        # of thousands of rows holds megabytes.
        most = min(MAX_ROWS, self.insert_params // len(columns))
        per = 1 << (most.bit_length() - 1)
        statements: Statements = []
        start = 0
        while start < len(rows):
            left = len(rows) - start
            size = per if left >= per else 1 << (left.bit_length() - 1)
            part = rows[start : start + size]
            sql = f"{into} VALUES {', '.join([one] * size)}{tail}"
            statements.append((sql, tuple(chain.from_iterable(part))))
            start += size
        return statements

    def _inserts_absent(
        self,
        table: Table,
        columns: Sequence[str],
        rows: list[Any],
        absent: Sequence[str],
        probe: Sequence[str] = (),
    ) -> Statements:
        if not self.arrays:  # MySQL, MariaDB: one row a statement
            return [(self._insert_absent(table, columns, absent), rows)]
        names = [self.quote(c) for c in columns]
        source = self._unnest(table, columns, names)
        sql = self._insert_select(table, names, source, absent, probe)
        return [*self.insert_lock(), (sql, _columns(rows))]

    def _insert_absent(self, table: Table, columns: Sequence[str], absent: Sequence[str]) -> str:
        """INSERT of one row (its values bound) unless a row has its `absent` columns
        (MySQL, MariaDB, SQLite)."""
        names = [self.quote(c) for c in columns]
        one = ", ".join(f"{self.mark} AS {n}" for n in names)
        return self._insert_select(table, names, f"(SELECT {one}) AS v", absent)

    def _insert_select(
        self,
        table: Table,
        names: Sequence[str],
        source: str,
        absent: Sequence[str],
        probe: Sequence[str] = (),
    ) -> str:
        """INSERT of the rows of `source` (aliased v) that no row of the table matches on
        the `absent` columns.

        `probe`: the first of them, which an index of the table serves best. PostgreSQL
        then looks each row up by those columns alone (a subquery it plans on its own:
        `OFFSET 0`) and compares the others on the rows found: left to choose among
        the table's indexes for all the columns, on a table whose statistics predate
        the file (a site's first feed, or a table the file is filling), it took one
        that matches every row of the course (role_assignments' (roleid, contextid)),
        and a 1,000,000-line file spent half its time there."""
        q = self.quote
        name = self.name(table)
        rows, compared = f"{name} x", absent
        if probe and self.arrays:
            compared = [k for k in absent if k not in probe]
            found = " AND ".join(f"y.{q(k)} = v.{q(k)}" for k in probe)
            selected = ", ".join(f"y.{q(k)}" for k in compared) or "1"
            rows = f"(SELECT {selected} FROM {name} y WHERE {found} OFFSET 0) x"
        match = " AND ".join(f"x.{q(k)} = v.{q(k)}" for k in compared) or "TRUE"
        return (
            f"INSERT INTO {name} ({', '.join(names)}) SELECT * FROM {source}"
            f" WHERE NOT EXISTS (SELECT 1 FROM {rows} WHERE {match})"
        )

    def run(self, statements: Statements) -> None:
        """Execute statements built by this object (a list of tuples: executemany)."""
        for sql, params in statements:
            self.conn.exec_driver_sql(sql, params)

    def deletes(self, table: Table, ids: Sequence[int], column: str = "id") -> Statements:
        if not ids:
            return []
        where, params = self.where_in(table, column, ids)
        return [(f"DELETE FROM {self.name(table)} WHERE {where}", params)]

    def delete_ids(self, table: Table, ids: Sequence[int], column: str = "id") -> None:
        self.run(self.deletes(table, ids, column))

    def update_in(self, table: Table, values: dict[str, Any], ids: Sequence[int]) -> None:
        """UPDATE `table` SET `values` (the same for every row) WHERE id is one of `ids`."""
        if ids:
            sets = ", ".join(f"{self.quote(c)} = {self.mark}" for c in values)
            where, params = self.where_in(table, "id", ids)
            sql = f"UPDATE {self.name(table)} SET {sets} WHERE {where}"
            self.conn.exec_driver_sql(sql, (*values.values(), *params))

    def updates(self, table: Table, columns: Sequence[str], rows: Iterable[Any]) -> Statements:
        """The statements that UPDATE `columns` by id; each row is (values..., id)."""
        rows = rows if isinstance(rows, list) else list(rows)
        if not rows:
            return []
        q = self.quote
        if self.arrays:
            names = [q(c) for c in (*columns, "id")]
            sets = ", ".join(f"{q(c)} = v.{q(c)}" for c in columns)
            sql = (
                f"UPDATE {self.name(table)} t SET {sets}"
                f" FROM {self._unnest(table, (*columns, 'id'), names)}"
                f" WHERE t.{q('id')} = v.{q('id')}"
            )
            return [(sql, _columns(rows))]
        sets = ", ".join(f"{q(c)} = {self.mark}" for c in columns)
        return [(f"UPDATE {self.name(table)} SET {sets} WHERE {q('id')} = {self.mark}", rows)]
