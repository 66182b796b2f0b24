"""The lab's site, made by Moodle's own installer, has the tables that
tests/fixtures/moodle-tables/<release>.json describes, as tests/moodle_reference.py
reads it: what tests/db/test_init.py holds `postsync db init` to is Moodle's own."""

from __future__ import annotations

from sqlalchemy import create_engine

from tests.moodle.lab import Lab, Site
from tests.moodle_reference import (
    RELEASES,
    database_columns,
    database_indexes,
    database_primary_key,
    definitions,
    expected_columns,
    expected_indexes,
    expected_primary_key,
    fixture,
)


def test_moodles_installer_makes_the_tables_the_fixture_describes(lab: Lab, site: Site) -> None:
    """The tables postsync uses on the lab's Moodle: columns, types, lengths, NOT NULL,
    defaults, indexes and primary keys with their names, as the fixture of the release
    says."""
    (release,) = [r for r in RELEASES if fixture(r)["source"]["release"] == lab.release]
    engine = create_engine(site.url)
    try:
        for name in definitions(release):
            table = f"mdl_{name}"
            assert database_columns(engine, table) == expected_columns(release, name), name
            indexes = expected_indexes(release, name, "mdl_", "postgresql")
            assert database_indexes(engine, table) == indexes, name
            primary = expected_primary_key(release, name, "mdl_")
            assert database_primary_key(engine, table) == primary, name
    finally:
        engine.dispose()
