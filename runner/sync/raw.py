"""The sync's hot statements, sent to the driver as plain SQL.

A batch's lookups on key pairs and its executemany writes run once per 2,000 lines;
building them through SQLAlchemy's compiler (an expanding IN of thousands of
parameters, a dict per inserted row) costs more than the database work itself. These
helpers write the same statements directly, with the driver's parameter style, bound
parameters only (never a value in the SQL text).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Table


class Raw:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        self.quote = conn.dialect.identifier_preparer.quote
        # SQLite and PostgreSQL take `(a, b) IN (VALUES (?, ?), ...)`; MySQL a plain list
        self.values = "" if conn.dialect.name in ("mysql", "mariadb") else "VALUES "

    def name(self, table: Table) -> str:
        return self.quote(table.name)

    def select_keys(
        self, table: Table, columns: Sequence[str], keys: Sequence[str], rows: Sequence[Any]
    ) -> Sequence[Any]:
        """SELECT `columns` FROM `table` whose (keys...) is one of `rows`.

        A join with the key rows (a VALUES list), which every database drives through
        the table's index on `keys`; a row-value IN would make SQLite scan the table.
        """
        width = len(keys)
        one = "(" + ", ".join([self.mark] * width) + ")"
        q = self.quote
        params = tuple(v for row in rows for v in row)
        if not self.values:  # MySQL/MariaDB: a row-value IN uses the index
            sql = (
                f"SELECT {', '.join(q(c) for c in columns)} FROM {self.name(table)}"
                f" WHERE ({', '.join(q(k) for k in keys)}) IN ({', '.join([one] * len(rows))})"
            )
            return self.conn.exec_driver_sql(sql, params).fetchall()
        names = [f"k{i}" for i in range(width)]
        on = " AND ".join(f"t.{q(k)} = v.{n}" for k, n in zip(keys, names, strict=True))
        sql = (
            f"WITH v ({', '.join(names)}) AS (VALUES {', '.join([one] * len(rows))})"
            f" SELECT {', '.join(f't.{q(c)}' for c in columns)}"
            f" FROM v JOIN {self.name(table)} t ON {on}"
        )
        return self.conn.exec_driver_sql(sql, params).fetchall()

    def insert_many(self, table: Table, columns: Sequence[str], rows: Iterable[Any]) -> None:
        rows = list(rows)
        if not rows:
            return
        sql = (
            f"INSERT INTO {self.name(table)} ({', '.join(self.quote(c) for c in columns)})"
            f" VALUES ({', '.join([self.mark] * len(columns))})"
        )
        self.conn.exec_driver_sql(sql, rows)

    def delete_ids(self, table: Table, ids: Sequence[int], column: str = "id") -> None:
        if ids:
            sql = (
                f"DELETE FROM {self.name(table)} WHERE {self.quote(column)} IN"
                f" ({', '.join([self.mark] * len(ids))})"
            )
            self.conn.exec_driver_sql(sql, tuple(ids))

    def marks(self, count: int) -> str:
        return ", ".join([self.mark] * count)

    def update_many(self, table: Table, columns: Sequence[str], rows: Iterable[Any]) -> None:
        """UPDATE `columns` by id; each row is (values..., id)."""
        rows = list(rows)
        if rows:
            sets = ", ".join(f"{self.quote(c)} = {self.mark}" for c in columns)
            sql = f"UPDATE {self.name(table)} SET {sets} WHERE {self.quote('id')} = {self.mark}"
            self.conn.exec_driver_sql(sql, rows)
