"""Array literals: what PostgreSQL reads back is what was sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine

from runner.db.raw import MAX_ROWS, Raw, array_literal

TEXTS = ['O"Brien', "back\\slash", "a,b", "{braces}", "NULL", "", " lead", "é ü", "x'y", '\\"']


def test_array_literal_shapes() -> None:
    assert array_literal([1, 22, 333]) == "{1,22,333}"
    assert array_literal([]) == "{}"
    assert array_literal(['a"b', "c\\d"]) == '{"a\\"b","c\\\\d"}'
    assert array_literal(iter(["", "x,y"])) == '{"","x,y"}'
    assert array_literal([1, "a"]) == '{1,"a"}'


@pytest.mark.parametrize(
    "cast,values",
    [
        ("text", TEXTS),
        # no quote or backslash to escape: the fast path
        ("text", [t for t in TEXTS if '"' not in t and "\\" not in t]),
        ("bigint", [0, -1, 2**62, 7]),
    ],
)
def test_postgresql_reads_back_every_value(
    postgresql_server: Any, tmp_path: Path, cast: str, values: list[Any]
) -> None:
    engine = create_engine(postgresql_server.create_database("arrays"))
    try:
        with engine.connect() as conn:
            got = conn.exec_driver_sql(
                f"SELECT unnest(%s::{cast}[])", (array_literal(values),)
            ).scalars()
            assert list(got) == values
    finally:
        engine.dispose()


@pytest.mark.parametrize("count", [0, 1, 5, 300, MAX_ROWS, MAX_ROWS + 3, 3 * MAX_ROWS + 1])
def test_sqlite_inserts_every_row_in_few_statement_shapes(tmp_path: Path, count: int) -> None:
    """SQLite inserts many rows a statement (the driver then runs it without Python's
    lock); the statements come in power-of-two sizes, so that the driver's statement
    cache holds a few of them whatever the batch sizes."""
    engine = create_engine(f"sqlite:///{tmp_path / 'raw.db'}")
    table = Table("t", MetaData(), Column("a", Integer), Column("b", String(10)))
    table.metadata.create_all(engine)
    rows = [(i, f"v{i}") for i in range(count)]
    with engine.begin() as conn:
        raw = Raw(conn)
        statements = raw.inserts(table, ("a", "b"), rows)
        sizes = [len(params) // 2 for _sql, params in statements]
        assert sum(sizes) == count
        assert all(size & (size - 1) == 0 and size <= MAX_ROWS for size in sizes)
        assert len(set(sizes)) <= 1 + MAX_ROWS.bit_length()
        raw.run(statements)
        got = conn.exec_driver_sql("SELECT a, b FROM t ORDER BY rowid").all()
    engine.dispose()
    assert [tuple(r) for r in got] == rows


def test_sqlite_inserts_stay_within_the_parameter_limit(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'raw.db'}")
    columns = [f"c{i}" for i in range(9)]
    table = Table("t", MetaData(), *(Column(c, Integer) for c in columns))
    table.metadata.create_all(engine)
    with engine.begin() as conn:
        raw = Raw(conn)
        raw.insert_params = 999  # an older SQLite build
        statements = raw.inserts(table, columns, [tuple(range(9))] * 1000)
        assert max(len(params) for _sql, params in statements) <= 999
        raw.run(statements)
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 1000
    engine.dispose()
