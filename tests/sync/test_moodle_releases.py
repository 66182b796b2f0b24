"""postsync writes correctly whichever release the site runs: every sync command and the
group cleanup on a `postsync db init --moodle 4.2` database and on a 5.1 one, on SQLite,
PostgreSQL and MariaDB; and no statement names a column that only some releases have."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.db.releases import RELEASES
from runner.db.tables import moodle_tables
from tests.conftest import CLI
from tests.moodle_reference import definitions
from tests.sync.conftest import Site
from tests.sync.test_enrolments import latest_record

PACKAGE = Path(__file__).resolve().parents[2] / "runner"
#: where the tables are defined: the only modules that may name any column
DEFINITIONS = {"tables.py", "site_tables.py", "people_tables.py", "group_tables.py"}

STEPS = """\
  - command: users
    file: userimport.csv
    create_passwords: true
  - command: cohorts
    file: cohorts.csv
  - command: groups
    file: groups.csv
  - command: enrolments
    file: enrols.csv
  - command: group_members
    file: groupmembers.csv
post_treatments:
  - clean_empty_groups:
      groupings: true
      groups: all_empty  # the demo's groups were made in Moodle, not by a feed
"""
FILES = {
    "userimport.csv": "username;idnumber;firstname;lastname;email;deleted;suspended\n"
    "newbie;N0001;New;Bie;newbie@example.org;0;0\n"
    "u0003;U0003;Camille;Dubois;camille@example.org;0;1\n"
    "u0004;U0004;Dalia;Thomas;u0004@example.org;1;0\n",
    "cohorts.csv": "cmd;cname;userid;cdescription;cidnumber\n"
    "add;Cohort 1;N0001;First;COH1\nadd;Cohort 1;U0005;First;COH1\n",
    "groups.csv": "type;courseid;name;idnumber;description;selfgrouping;grouping\n"
    "grouping;MATH101;Grouping A;GRPA;A grouping;;\n"
    "group;MATH101;Group A1;GA1;A group;0;GRPA\n",
    "enrols.csv": "cmd;cid;uid;rolename;enrol;starttime;endtime;gcmd;g1;g2\n"
    "add;MATH101;N0001;student;;;;gadd;Group A1;\n"
    "add;MATH101;U0005;editingteacher;;;;gaddcreate;New group;\n"
    "del;MATH102;U0101;student;;;;;;\n",
    "groupmembers.csv": "courseid;groupid;userid;cmd\nMATH101;MATH101-G1;U0005;add\n",
}


def all_reports(site: Site) -> list[str]:
    """The report lines of every control file of the newest run."""
    runs = site.area / ".postsync" / "runs"
    entries = latest_record(site)["control_files"]
    return [line for e in entries for line in (runs / e["report"]).read_text().splitlines()]


@pytest.fixture(params=["4.2", "5.1"])
def release_site(
    request: pytest.FixtureRequest, db_url: str, tmp_path: Path, cli: CLI
) -> Iterator[Site]:
    """A demo site made by `postsync db init --moodle RELEASE --demo`."""
    result = cli("db", "init", db_url, "--moodle", request.param, "--demo")
    assert result.code == 0, result.err
    (tmp_path / "area").mkdir()
    yield Site(tmp_path, db_url, cli, moodle_tables(moodle=request.param))


def test_every_command_and_the_cleanup_on_each_release(release_site: Site) -> None:
    site = release_site
    ((gone,),) = site.query("SELECT id FROM mdl_user WHERE username = 'u0004'")
    for name, body in FILES.items():
        site.write(name, body)
    result = site.run(steps=STEPS)
    assert result.code == 0, result.out + result.err
    assert "lines: 11 ok, 0 failed" in result.out
    assert 'delete group "G2" in course MATH101' in result.out
    assert site.enrolled("MATH101", "N0001") == [("student", 0)]
    assert site.groups_of("MATH101", "N0001") == ["Group A1"]
    assert site.groups_of("MATH101", "U0005") == ["G1", "New group"]
    assert site.enrolled("MATH102", "U0101") == []
    assert site.query("SELECT deleted FROM mdl_user WHERE id = :u", u=gone) == [(1,)]
    assert site.query("SELECT suspended FROM mdl_user WHERE username = 'u0003'") == [(1,)]
    # user_preferences.value: char(1333) up to 4.5, text from 5.0
    preferences = "SELECT p.name, p.value FROM mdl_user_preferences p JOIN mdl_user u"
    assert sorted(site.query(preferences + " ON u.id = p.userid WHERE u.username = 'newbie'")) == [
        ("auth_forcepasswordchange", "1"),
        ("create_password", "1"),
    ]
    members = "SELECT COUNT(*) FROM mdl_cohort_members m JOIN mdl_cohort c ON c.id = m.cohortid"
    assert site.query(members + " WHERE c.idnumber = 'COH1'") == [(2,)]
    # a second run of the same files changes nothing
    before = site.dump()
    for name, body in FILES.items():
        site.write(name, body)
    again = site.run(steps=STEPS)
    assert again.code == 0, again.out + again.err
    lines = all_reports(site)
    assert len(lines) == 11 and all("ok (unchanged" in line for line in lines), lines
    assert site.dump() == before


def test_no_statement_names_a_column_only_some_releases_have() -> None:
    """The columns a supported release lacks (or only it has) appear nowhere in postsync's
    code but where the tables are defined: the sync never writes them, whatever the
    site runs (nor reads them: statements are built on the newest release's tables)."""
    columns = [
        {f"{t}.{c['name']}" for t, table in definitions(r).items() for c in table["columns"]}
        for r in RELEASES
    ]
    varying = set.union(*columns) - set.intersection(*columns)
    assert varying == {
        "course.enableaitools",
        "course_modules.enableaitools",
        "course_modules.enabledaiactions",
    }
    names = {c.split(".")[1] for c in varying}
    pattern = re.compile(r"\b(" + "|".join(sorted(names)) + r")\b")
    named = [
        f"{path.relative_to(PACKAGE)}:{n}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if not (path.parent.name == "db" and path.name in DEFINITIONS)
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert named == []
