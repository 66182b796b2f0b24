"""The cohorts command through `postsync run`, on SQLite, PostgreSQL and MariaDB, with
files shaped like tool_sync's cohort samples (create only, create with members, add
members, delete members, free, delete cohorts by idnumber and by name)."""

from __future__ import annotations

from tests.sync.conftest import Site
from tests.sync.test_enrolments import report

STEP = "  - command: cohorts\n    file: cohorts*.csv\n"

CREATE_ONLY = """cmd;cname;cdescription;cidnumber
add;COHORT1;Teacher Cohort 1;COH001
add;COHORT2;Student Cohort 2;COH002
add;COHORT3;Student Cohort 3;COH003
"""
CREATE_WITH_MEMBERS = """cmd;cname;userid;cdescription;cidnumber
add;COHORT1;U0001;Teacher Cohort 1;COH001
add;COHORT1;U0002;Teacher Cohort 1;COH001
add;COHORT4;U0004;;COH004
add;COHORT4;UGR1;;COH004
"""
ADD_MEMBERS = "userid;cidnumber\nU0003;COH002\nU0004;COH002\nU0005;COH003\n"
DELETE_MEMBERS = "cmd;userid;cidnumber\ndel;U0001;COH001\ndel;U0003;COH002\n"
FREE = "cmd;cidnumber\nfree;COH002\nfree;COH003\n"
DELETE_ONLY = "cmd;cidnumber\ndel;COH001\ndel;COH004\n"


def cohorts(site: Site, body: str, *args: str, options: str = "") -> list[str]:
    site.write("cohorts.csv", body)
    result = site.run(*args, steps=STEP + options)
    assert result.code in (0, 2), result.err + result.out
    return report(site)


def members(site: Site, idnumber: str) -> list[str]:
    return sorted(
        r[0]
        for r in site.query(
            "SELECT u.idnumber FROM mdl_cohort_members m JOIN mdl_cohort c ON c.id = m.cohortid"
            " JOIN mdl_user u ON u.id = m.userid WHERE c.idnumber = :c",
            c=idnumber,
        )
    )


def test_tool_sync_cohort_samples(site: Site) -> None:
    lines = cohorts(site, CREATE_ONLY)
    assert lines == [
        "line 2: add cohort COH001: ok (created)",
        "line 3: add cohort COH002: ok (created)",
        "line 4: add cohort COH003: ok (created)",
    ]
    (system,) = site.query("SELECT id FROM mdl_context WHERE contextlevel = 10")[0]
    assert site.query(
        "SELECT name, idnumber, description, descriptionformat, visible, component, contextid"
        " FROM mdl_cohort WHERE idnumber = 'COH001'"
    ) == [("COHORT1", "COH001", "Teacher Cohort 1", 1, 1, "", system)]
    assert all(line.endswith("(unchanged)") for line in cohorts(site, CREATE_ONLY))

    lines = cohorts(site, CREATE_WITH_MEMBERS)
    assert lines == [
        "line 2: add U0001 in cohort COH001: ok",
        "line 3: add U0002 in cohort COH001: ok",
        "line 4: add U0004 in cohort COH004: ok (created)",
        "line 5: add UGR1 in cohort COH004: failed: no such user (idnumber UGR1)",
    ]
    assert members(site, "COH001") == ["U0001", "U0002"]
    assert members(site, "COH004") == ["U0004"]

    assert cohorts(site, ADD_MEMBERS) == [
        "line 2: add U0003 in cohort COH002: ok",
        "line 3: add U0004 in cohort COH002: ok",
        "line 4: add U0005 in cohort COH003: ok",
    ]
    assert cohorts(site, DELETE_MEMBERS) == [
        "line 2: del U0001 in cohort COH001: ok",
        "line 3: del U0003 in cohort COH002: ok",
    ]
    assert members(site, "COH001") == ["U0002"]
    assert all(line.endswith("(unchanged)") for line in cohorts(site, DELETE_MEMBERS))
    assert cohorts(site, FREE) == [
        "line 2: free cohort COH002: ok (1 removed)",
        "line 3: free cohort COH003: ok (1 removed)",
    ]
    assert members(site, "COH002") == [] and members(site, "COH003") == []

    assert cohorts(site, DELETE_ONLY) == [
        "line 2: del cohort COH001: ok (deleted)",
        "line 3: del cohort COH004: ok (deleted)",
    ]
    assert site.query("SELECT idnumber FROM mdl_cohort ORDER BY idnumber") == [
        ("COH002",),
        ("COH003",),
    ]
    assert site.query("SELECT COUNT(*) FROM mdl_cohort_members") == [(0,)]
    assert cohorts(site, DELETE_ONLY)[0] == (
        "line 2: del cohort COH001: ok (unchanged; no cohort has idnumber COH001)"
    )
    # by name (tool_sync's cohort_delete_only_by_name.csv)
    lines = cohorts(site, "cmd;cname\ndel;COHORT2\n", options="    cohort_key: name\n")
    assert lines == ["line 2: del cohort COHORT2: ok (deleted)"]


def test_the_preview_is_the_run(site: Site) -> None:
    site.write(
        "cohorts.csv",
        CREATE_WITH_MEMBERS + "add;COHORT4;U0005;;COH004\ndel;COHORT4;U0004;;COH004\n",
    )
    before = site.dump()
    preview = site.run("--check", steps=STEP)
    assert site.dump() == before
    result = site.run(steps=STEP)
    assert result.code == preview.code == 2
    summary = "sync cohorts.csv  (6 lines: 5 changed, 0 unchanged, 1 failed)"
    assert summary in preview.out and summary in result.out, preview.out + result.out
    assert members(site, "COH004") == ["U0005"]


def test_cohorts_others_own_or_use_are_left_alone(site: Site) -> None:
    cohorts(site, CREATE_ONLY)
    site.execute("UPDATE mdl_cohort SET component = 'auth_ldap' WHERE idnumber = 'COH002'")
    (cid,) = site.query("SELECT id FROM mdl_cohort WHERE idnumber = 'COH003'")[0]
    (course,) = site.query("SELECT id FROM mdl_course WHERE idnumber = 'MATH101'")[0]
    site.execute(
        "INSERT INTO mdl_enrol (enrol, status, courseid, sortorder, customint1, timecreated,"
        " timemodified) VALUES ('cohort', 0, :course, 5, :c, 0, 0)",
        course=course,
        c=cid,
    )
    lines = cohorts(site, "cmd;userid;cidnumber\nadd;U0001;COH002\ndel;;COH003\n")
    assert lines == [
        "line 2: add U0001 in cohort COH002: failed: the cohort belongs to auth_ldap",
        "line 3: del cohort COH003: failed: 1 cohort sync enrol instance(s) use the cohort:"
        " delete it in Moodle, which removes them",
    ]
    assert members(site, "COH002") == []


def test_a_category_context_and_a_missing_key_column(site: Site) -> None:
    site.execute("UPDATE mdl_course_categories SET idnumber = 'SCI'")
    (context,) = site.query("SELECT id FROM mdl_context WHERE contextlevel = 40")[0]
    lines = cohorts(site, "cname;cidnumber;ccatcontextidnumber\nScience;SCI1;SCI\nX;X1;NOPE\n")
    assert lines == [
        "line 2: add cohort SCI1: ok (created)",
        "line 3: add cohort X1: failed: no categories have idnumber NOPE",
    ]
    assert site.query("SELECT contextid FROM mdl_cohort WHERE idnumber = 'SCI1'") == [(context,)]
    site.write("cohorts.csv", "cname;userid\nScience;U0001\n")
    result = site.run(steps=STEP)
    assert result.code == 3
    assert "missing column 'cidnumber': it names the cohort (cohort_key: idnumber)" in (
        result.out + result.err
    )
    lines = cohorts(site, "cmd;cidnumber\nadd;NEW1\n", options="    create_cohorts: false\n")
    assert lines == ["line 2: add cohort NEW1: failed: no cohort has idnumber NEW1"]
