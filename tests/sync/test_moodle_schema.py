"""postsync runs on tables built from Moodle's own definitions (tests/moodle_reference.py,
not postsync's code): those of Moodle 4.2 and 5.1, and those of a Moodle older than 4.2,
on SQLite, PostgreSQL and MariaDB. (tests/db/test_init.py checks that `postsync db init`
makes the same tables.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, create_engine, select

from runner.db.init import _install, seed_demo
from runner.db.tables import moodle_tables
from tests.conftest import CLI
from tests.moodle_reference import moodle_metadata
from tests.sync.conftest import ENROLMENTS_STEP, Site
from tests.sync.test_enrolments import HEADER, report

#: columns Moodle added in 3.x and 4.x releases up to 4.2: a site not yet upgraded lacks them
OLDER_MOODLE = (
    "course.pdfexportfont",
    "course.showcompletionconditions",
    "course.showactivitydates",
    "course.originalcourseid",
    "course.downloadcontent",
    "course.relativedatesmode",
    "groups.visibility",
    "groups.participation",
    "user.moodlenetprofile",
    "course_modules.lang",
    "course_modules.downloadcontent",
    "course_modules.completionpassgrade",
    "event.location",
)


@pytest.fixture(params=["4.2", "5.1", "older"])
def moodle_site(
    request: pytest.FixtureRequest, db_url: str, tmp_path: Path, cli: CLI
) -> Iterator[Site]:
    """A site whose tables are Moodle's own (of 4.2, of 5.1, or of 4.2 lacking the
    columns of OLDER_MOODLE), with the demo's courses, users and groups."""
    release = "4.2" if request.param == "older" else request.param
    without = OLDER_MOODLE if request.param == "older" else ()
    engine = create_engine(db_url)
    moodle_metadata("mdl_", release, without).create_all(engine)
    tables, now = moodle_tables(moodle=release), int(time.time())
    with engine.begin() as conn:
        _install(conn, tables, now)
    seed_demo(engine, tables, now)
    engine.dispose()
    (tmp_path / "area").mkdir()
    yield ReflectedSite(tmp_path, db_url, cli, tables)


class ReflectedSite(Site):
    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, read with the columns the database has."""
        engine = create_engine(self.url)
        try:
            md = MetaData()
            md.reflect(engine, only=[t.name for t in self.tables.all])
            with engine.connect() as conn:
                return {
                    name: [tuple(r) for r in conn.execute(select(table).order_by(table.c.id))]
                    for name, table in sorted(md.tables.items())
                }
        finally:
            engine.dispose()


def test_a_sync_and_its_cleanup_on_moodles_own_tables(moodle_site: Site) -> None:
    site = moodle_site
    site.write(
        "enrols.csv",
        HEADER + "add;MATH101;U0001;student;;;;gaddcreate;New;\n"
        "add;MATH101;U0002;editingteacher;;;;gadd;G1;\n"
        "del;MATH102;U0101;student;;;;;;\n"
        "add;PHYS101;U0003;student;;;;greplace;G2;\n",
    )
    site.write("groupmembers.csv", "courseid;groupid;userid;cmd\nMATH101;MATH101-G2;U0001;add\n")
    steps = (
        ENROLMENTS_STEP
        + "  - command: group_members\n    file: groupmembers.csv\n"
        + "post_treatments:\n  - clean_empty_groups:\n      groupings: true\n"
        # the demo's groups were made in Moodle: those with an idnumber may go
        + "      groups: with_idnumber\n"
    )
    result = site.run(steps=steps)
    assert result.code == 0, result.out + result.err
    assert report(site) == [
        "line 2: add student U0001 in MATH101: ok",
        "line 3: add editingteacher U0002 in MATH101: ok",
        "line 4: del student U0101 in MATH102: ok",
        "line 5: add student U0003 in PHYS101: ok",
    ]
    assert site.groups_of("MATH101", "U0001") == ["G2", "New"]
    assert site.enrolled("MATH102", "U0101") == []
    assert site.groups_of("PHYS101", "U0003") == ["G2"]
    assert 'delete group "G1" in course PHYS101' in result.out
    # the same files again: nothing changes
    before = site.dump()
    again = site.run(steps=steps)
    assert again.code == 0, again.out
    assert all(line.endswith("(unchanged)") for line in report(site)), report(site)
    assert site.dump() == before
