"""Array literals: what PostgreSQL reads back is what was sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from runner.sync.raw import array_literal

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
