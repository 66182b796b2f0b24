"""`postsync db init --moodle RELEASE` makes the tables of that release exactly as
Moodle's installer does (tests/fixtures/moodle-tables/<release>.json, read from the
release's lib/db/install.xml): columns in order with their types, lengths, NOT NULL and
defaults, indexes with their names, columns and uniqueness, primary keys with theirs;
on SQLite and on PostgreSQL. It records the release in `config` as Moodle does."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from runner.core.errors import Exit
from runner.db.releases import NEWEST, RELEASES
from tests.conftest import CLI
from tests.moodle_reference import (
    database_columns,
    database_indexes,
    database_primary_key,
    definitions,
    expected_columns,
    expected_indexes,
    expected_primary_key,
    fixture,
)

PREFIX = "mdl_"
_names = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'moodle.db'}"
    else:
        server = request.getfixturevalue("postgresql_server")
        yield str(server.create_database(f"init{next(_names)}"))


def _stored(version: str) -> str:
    """version.php's $version as Moodle stores it in config (PHP's float as text)."""
    whole, _, fraction = version.partition(".")
    fraction = fraction.rstrip("0")
    return f"{whole}.{fraction}" if fraction else whole


@pytest.mark.parametrize("release", list(RELEASES))
def test_db_init_makes_the_tables_of_the_release(release: str, database: str, cli: CLI) -> None:
    result = cli("db", "init", database, "--moodle", release)
    assert result.code == 0, result.err
    assert f"created 24 tables of Moodle {release} in" in result.out
    engine = create_engine(database)
    try:
        tables = definitions(release)
        present = {n for n in inspect(engine).get_table_names() if n.startswith(PREFIX)}
        assert present == {PREFIX + name for name in tables}
        for name in tables:
            table = PREFIX + name
            assert database_columns(engine, table) == expected_columns(release, name), name
            wanted = expected_indexes(release, name, PREFIX, engine.dialect.name)
            assert database_indexes(engine, table) == wanted, name
            assert database_primary_key(engine, table) == expected_primary_key(
                release, name, PREFIX
            )
        with engine.connect() as conn:
            config = dict(conn.execute(text("SELECT name, value FROM mdl_config")).all())
    finally:
        engine.dispose()
    source = fixture(release)["source"]
    assert config["version"] == _stored(source["version"]) == RELEASES[release].version
    assert config["release"] == source["release"]


def test_without_moodle_the_newest_release(tmp_path: Path, cli: CLI) -> None:
    url = f"sqlite:///{tmp_path / 'moodle.db'}"
    assert cli("db", "init", url).code == 0
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            version = conn.execute(text("SELECT value FROM mdl_config WHERE name = 'version'"))
            assert version.scalar_one() == RELEASES[NEWEST].version
        assert database_columns(engine, "mdl_course") == expected_columns(NEWEST, "course")
    finally:
        engine.dispose()
    assert max(RELEASES, key=lambda name: RELEASES[name].number) == NEWEST


def test_a_release_postsync_does_not_know_is_refused(tmp_path: Path, cli: CLI) -> None:
    result = cli("db", "init", f"sqlite:///{tmp_path / 'moodle.db'}", "--moodle", "4.3")
    assert result.code == Exit.USAGE
    assert "invalid choice: '4.3' (choose from '4.2', '4.5', '5.0', '5.1')" in result.err
    assert not (tmp_path / "moodle.db").exists()
