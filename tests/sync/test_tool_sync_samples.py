"""Files shaped like tool_sync's own samples (tests/webservices/enrol_sample.csv,
group_members.csv, shift_group_members.csv in the tool_sync plugin; these are our own,
on the demo site's courses renamed TESTCOURSE1..3), with the outcome of each line: what
tool_sync does (the lab compares the enrolment sample with tool_sync itself on a real
Moodle: tests/moodle), except where postsync is deliberately stricter (a group is
looked up only within the line's course)."""

from __future__ import annotations

import pytest

from tests.sync.conftest import ENROLMENTS_STEP, Site
from tests.sync.test_enrolments import report
from tests.sync.test_group_members import STEP as MEMBERS_STEP

ENROL_SAMPLE = """\
cmd;cid;uid;rolename;enrol;gcmd;g1;g2;g3
add;TESTCOURSE1;U0001;editingteacher;manual;gaddcreate;GROUP1A;GROUP1B;
add;TESTCOURSE2;U0001;editingteacher;manual;greplacecreate;GROUP2A;GROUP2B;
add;TESTCOURSE3;U0002;editingteacher;manual;gadd;GROUP3FAILEDCREATE;;
add;TESTCOURSE1;U0003;student;manual;greplace;GROUP1A;GROUP1BFAILED;
add;TESTCOURSE1;U0004;student;manual;gadd;GROUP1A;GROUP2A;GROUP1BFAILED
add;TESTCOURSE1;U0005;student;manual;gaddcreate;GROUP1A;
add;TESTCOURSE2;U0003;student;manual;gadd;GROUP2A;GROUP2BFAILED;
add;TESTCOURSE2;U0004;student;manual;gdel;GROUP2A;GROUP2BFAILED;
add;TESTCOURSE3;U0005;student;manual;gadd;GROUP3FAILED;;
add;TESTCOURSE3;U0003;student;manual;gaddcreate;GROUP3A;;
add;TESTCOURSE3;U0003;student;manual;greplacecreate;GROUP3B;;
"""
REST = " (the rest of the line was applied)"


@pytest.fixture
def test_courses(site: Site) -> Site:
    """MATH101, MATH102, MATH201 as TESTCOURSE1..3, without groups."""
    for code, name in (("MATH101", 1), ("MATH102", 2), ("MATH201", 3)):
        site.execute(
            "DELETE FROM mdl_groups WHERE courseid = (SELECT id FROM mdl_course WHERE"
            " idnumber = :c)",
            c=code,
        )
        site.execute(
            "UPDATE mdl_course SET idnumber = :n, shortname = :n WHERE idnumber = :c",
            n=f"TESTCOURSE{name}",
            c=code,
        )
    return site


def test_the_enrolment_sample(test_courses: Site) -> None:
    site = test_courses
    site.write("enrols.csv", ENROL_SAMPLE)
    result = site.run(steps=ENROLMENTS_STEP)
    assert result.code == 2, result.out + result.err
    assert report(site) == [
        "line 2: add editingteacher U0001 in TESTCOURSE1: ok",
        "line 3: add editingteacher U0001 in TESTCOURSE2: ok",
        "line 4: add editingteacher U0002 in TESTCOURSE3: failed: no group"
        " 'GROUP3FAILEDCREATE' in course TESTCOURSE3 (use gaddcreate)" + REST,
        "line 5: add student U0003 in TESTCOURSE1: failed: no group 'GROUP1BFAILED' in"
        " course TESTCOURSE1 (use greplacecreate)" + REST,
        "line 6: add student U0004 in TESTCOURSE1: failed: no group 'GROUP2A' in course"
        " TESTCOURSE1 (use gaddcreate); no group 'GROUP1BFAILED' in course TESTCOURSE1"
        " (use gaddcreate)" + REST,
        "line 7: add student U0005 in TESTCOURSE1: ok",
        "line 8: add student U0003 in TESTCOURSE2: failed: no group 'GROUP2BFAILED' in"
        " course TESTCOURSE2 (use gaddcreate)" + REST,
        "line 9: add student U0004 in TESTCOURSE2: failed: no group 'GROUP2BFAILED' in"
        " course TESTCOURSE2" + REST,
        "line 10: add student U0005 in TESTCOURSE3: failed: no group 'GROUP3FAILED' in"
        " course TESTCOURSE3 (use gaddcreate)" + REST,
        "line 11: add student U0003 in TESTCOURSE3: ok",
        "line 12: add student U0003 in TESTCOURSE3: ok",
    ]
    # every line enrols its user, as tool_sync does; the groups that exist are joined
    expected = {
        ("TESTCOURSE1", "U0001"): ["GROUP1A", "GROUP1B"],
        ("TESTCOURSE2", "U0001"): ["GROUP2A", "GROUP2B"],
        ("TESTCOURSE3", "U0002"): [],
        ("TESTCOURSE1", "U0003"): ["GROUP1A"],
        ("TESTCOURSE1", "U0004"): ["GROUP1A"],
        ("TESTCOURSE1", "U0005"): ["GROUP1A"],
        ("TESTCOURSE2", "U0003"): ["GROUP2A"],
        ("TESTCOURSE2", "U0004"): [],
        ("TESTCOURSE3", "U0005"): [],
        ("TESTCOURSE3", "U0003"): ["GROUP3B"],
    }
    for (course, user), groups in expected.items():
        assert site.enrolled(course, user), (course, user)
        assert site.groups_of(course, user) == groups, (course, user)
    # the same file again: the failing parts fail again, their rest is already so (lines
    # 11 and 12 join GROUP3A and leave it again: the file itself undoes line 11)
    assert site.run(steps=ENROLMENTS_STEP).code == 2
    again = report(site)
    assert [n for n, line in enumerate(again, 2) if line.endswith("already so)")] == [
        4,
        5,
        6,
        8,
        9,
        10,
    ]
    assert [n for n, line in enumerate(again, 2) if line.endswith("(unchanged)")] == [2, 3, 7]


def test_the_group_members_and_shift_samples(test_courses: Site) -> None:
    site = test_courses
    users = ("U0001", "U0002", "U0003", "U0004", "U0010")
    site.write(
        "enrols.csv",
        "cid;uid;rolename\n"
        + "".join(f"TESTCOURSE{c};{u};student\n" for c in (1, 2) for u in users),
    )
    assert site.run(steps=ENROLMENTS_STEP).code == 0
    for n in (1, 2, 3, 4):
        site.execute(
            "INSERT INTO mdl_groups (courseid, idnumber, name, description,"
            " descriptionformat, timecreated, timemodified) SELECT c.id, :i, :i, '', 1, 0, 0"
            " FROM mdl_course c WHERE c.idnumber = 'TESTCOURSE1'",
            i=f"TC1_GR{n}",
        )
    (site.area / "enrols.csv").unlink()
    step = MEMBERS_STEP.replace("groupmembers.csv", "members*.csv")
    site.write(
        "members.csv",
        "# Group membership by courseid:shortname, groupid:idnumber and userid:username\n"
        "courseid;groupid;userid\n"
        "TESTCOURSE1;TC1_GR1;u0001\nTESTCOURSE1;TC1_GR2;u0002\nTESTCOURSE1;TC1_GR3;u0003\n"
        "TESTCOURSE1;TC1_GR4;u0004\nTESTCOURSE1;TC1_GR1;u0010\nTESTCOURSE1;TC1_GR2;u0010\n"
        "TESTCOURSE1;TC1_GR3;u0010\nTESTCOURSE1;TC1_GR4;u0010\nTESTCOURSE2;TC1_GR1;u0001\n",
    )
    keys = "    course_key: shortname\n    user_key: username\n"
    result = site.run(steps=step + keys)
    assert result.code == 2, result.out
    lines = report(site)
    assert all(line.endswith(": ok") for line in lines[:8]), lines
    # stricter than tool_sync: TESTCOURSE1's group is not TESTCOURSE2's
    assert lines[8] == (
        "line 11: add u0001 in group TC1_GR1 of TESTCOURSE2: failed: no group with idnumber"
        " 'TC1_GR1' in course TESTCOURSE2"
    )
    assert site.groups_of("TESTCOURSE1", "U0010") == ["TC1_GR1", "TC1_GR2", "TC1_GR3", "TC1_GR4"]
    (site.area / "members.csv").unlink()
    site.write(
        "members_shift.csv",
        "cmd;courseid;groupid;userid\n"
        "shift;TESTCOURSE1;TC1_GR2;u0001\nshift;TESTCOURSE1;TC1_GR3;u0002\n"
        "shift;TESTCOURSE1;TC1_GR4;u0003\nshift;TESTCOURSE1;TC1_GR1;u0004\n"
        "shift;TESTCOURSE1;TC1_GR2;u0010\nshift;TESTCOURSE1;TC1_GR3;u0010\n"
        "shift;TESTCOURSE1;TC1_GR4;u0010\nshift;TESTCOURSE1;TC1_GR1;u0010",  # no last EOL
    )
    result = site.run(steps=step + keys)
    assert result.code == 0, result.out
    assert [site.groups_of("TESTCOURSE1", u) for u in users] == [
        ["TC1_GR2"],
        ["TC1_GR3"],
        ["TC1_GR4"],
        ["TC1_GR1"],
        ["TC1_GR1"],
    ]
