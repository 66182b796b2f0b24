"""Rows another plugin owns, and lines applied in part, through `postsync run` on SQLite,
PostgreSQL and MariaDB.

A cohort sync (enrol_cohort) enrols users with its own role (component enrol_cohort,
itemid its instance) and puts them in its target group (enrol.customint2) with its own
membership: a sync file never removes those; the last unenrolment does (as Moodle's
unenrol_user). A line whose group part fails still applies its enrolment, the groups
that exist, and goes to the retry file; re-running it changes nothing more.
"""

from __future__ import annotations

from tests.sync.conftest import ENROLMENTS_STEP, Site
from tests.sync.test_enrolments import HEADER, add_instance, latest_record, report, sync
from tests.sync.test_group_members import STEP as MEMBERS_STEP
from tests.sync.test_group_members import members


def ids(site: Site, course: str, user: str, group: str) -> tuple[int, int, int]:
    (cid, uid, gid) = site.query(
        "SELECT c.id, u.id, g.id FROM mdl_course c, mdl_user u, mdl_groups g"
        " WHERE c.idnumber = :c AND u.idnumber = :u AND g.courseid = c.id AND g.name = :g",
        c=course,
        u=user,
        g=group,
    )[0]
    return int(cid), int(uid), int(gid)


def cohort_enrol(site: Site, course: str, user: str, group: str) -> int:
    """What enrol_cohort's sync writes for a cohort member: its enrolment, its student
    role, its membership of the instance's target group (customint2)."""
    instance = add_instance(site, course, "cohort")
    cid, uid, gid = ids(site, course, user, group)
    site.execute("UPDATE mdl_enrol SET customint2 = :g WHERE id = :e", g=gid, e=instance)
    site.execute(
        "INSERT INTO mdl_user_enrolments (status, enrolid, userid, timestart, timeend,"
        " modifierid, timecreated, timemodified) VALUES (0, :e, :u, 0, 0, 0, 0, 0)",
        e=instance,
        u=uid,
    )
    site.execute(
        "INSERT INTO mdl_role_assignments (roleid, contextid, userid, timemodified,"
        " modifierid, component, itemid, sortorder) SELECT r.id, x.id, :u, 0, 0,"
        " 'enrol_cohort', :e, 0 FROM mdl_role r, mdl_context x WHERE r.shortname = 'student'"
        " AND x.contextlevel = 50 AND x.instanceid = :c",
        u=uid,
        e=instance,
        c=cid,
    )
    site.add_member(course, user, group, "enrol_cohort", instance)
    return instance


def roles(site: Site, user: str) -> list[tuple[str, str]]:
    return site.query(
        "SELECT r.shortname, ra.component FROM mdl_role_assignments ra JOIN mdl_role r"
        " ON r.id = ra.roleid JOIN mdl_user u ON u.id = ra.userid WHERE u.idnumber = :u"
        " ORDER BY 1, 2",
        u=user,
    )


def components(site: Site, course: str, user: str) -> list[tuple[str, str]]:
    return site.query(
        "SELECT g.name, m.component FROM mdl_groups_members m JOIN mdl_groups g"
        " ON g.id = m.groupid JOIN mdl_user u ON u.id = m.userid JOIN mdl_course c"
        " ON c.id = g.courseid WHERE u.idnumber = :u AND c.idnumber = :c ORDER BY 1",
        u=user,
        c=course,
    )


def test_enrolment_lines_leave_another_plugins_roles_and_memberships(site: Site) -> None:
    cohort_enrol(site, "MATH101", "U0001", "G1")
    sync(site, "add;MATH101;U0001;teacher;;;;gadd;G2;\n")
    # shift: the manual roles give way, the cohort's student role stays
    assert sync(site, "shift;MATH101;U0001;editingteacher;;;;;;\n") == [
        "line 2: shift editingteacher U0001 in MATH101: ok (kept role student of enrol_cohort)"
    ]
    assert roles(site, "U0001") == [("editingteacher", ""), ("student", "enrol_cohort")]
    # greplace: the manual membership goes, the cohort's stays
    assert sync(site, "add;MATH101;U0001;editingteacher;;;;greplacecreate;G3;\n") == [
        "line 2: add editingteacher U0001 in MATH101: ok (kept group 'G1' of enrol_cohort)"
    ]
    assert components(site, "MATH101", "U0001") == [("G1", "enrol_cohort"), ("G3", "")]
    # gdel of the cohort's membership: that part fails, the line goes to the retry file
    site.write("enrols.csv", HEADER + "add;MATH101;U0001;editingteacher;;;;gdel;G1;G3\n")
    result = site.run(steps=ENROLMENTS_STEP)
    assert result.code == 2, result.out
    assert report(site) == [
        "line 2: add editingteacher U0001 in MATH101: failed: the membership of group 'G1'"
        " belongs to enrol_cohort (a sync removes only its own) (the rest of the line was"
        " applied)"
    ]
    assert components(site, "MATH101", "U0001") == [("G1", "enrol_cohort")]
    # del of the manual role: the cohort still enrols the user, nothing of it goes
    sync(site, "del;MATH101;U0001;editingteacher;;;;;;\n")
    assert roles(site, "U0001") == [("student", "enrol_cohort")]
    assert components(site, "MATH101", "U0001") == [("G1", "enrol_cohort")]
    # the cohort's own unenrolment through a file (enrol=cohort) is the last one: as
    # Moodle's unenrol_user, it takes every membership in the course
    assert sync(site, "del;MATH101;U0001;student;cohort;;;;;\n") == [
        "line 2: del student U0001 in MATH101: ok"
    ]
    assert roles(site, "U0001") == []
    assert components(site, "MATH101", "U0001") == []


def test_group_member_lines_leave_another_plugins_memberships(site: Site) -> None:
    cohort_enrol(site, "MATH101", "U0002", "G1")
    lines = members(site, "MATH101;MATH101-G2;U0002;shift\nMATH101;MATH101-G1;U0002;del\n")
    assert lines == [
        "line 2: shift U0002 in group MATH101-G2 of MATH101: ok (kept group 'G1' of enrol_cohort)",
        "line 3: del U0002 in group MATH101-G1 of MATH101: failed: the membership belongs to"
        " enrol_cohort (a sync removes only its own)",
    ]
    assert components(site, "MATH101", "U0002") == [("G1", "enrol_cohort"), ("G2", "")]
    assert latest_record(site)["control_files"][0]["lines"]["partly"] == 0


def test_cleanup_keeps_the_group_a_cohort_sync_fills(site: Site) -> None:
    """An empty group that an enrol instance targets (cohort sync's group) is kept,
    with the reason in the step's detail, even when every empty group may go; the
    other empty groups go."""
    instance = add_instance(site, "MATH101", "cohort")
    _, _, gid = ids(site, "MATH101", "U0001", "G1")
    site.execute("UPDATE mdl_enrol SET customint2 = :g WHERE id = :e", g=gid, e=instance)
    site.write("enrols.csv", HEADER + "add;MATH101;U0005;student;;;;;;\n")
    site.playbook(ENROLMENTS_STEP)
    text = (site.root / "playbook.yml").read_text()
    (site.root / "playbook.yml").write_text(
        text + "post_treatments:\n  - clean_empty_groups: {groups: all_empty}\n"
    )
    result = site.run("--diff")
    assert result.code == 0, result.out + result.err
    assert 'delete group "G2" in course MATH101' in result.out
    assert (
        'kept 1 empty group: "G1" in course MATH101 (the cohort enrolment instance of the'
        " course fills it)" in result.out
    )
    assert site.query(
        "SELECT g.name FROM mdl_groups g JOIN mdl_course c ON c.id = g.courseid"
        " WHERE c.idnumber = 'MATH101' ORDER BY 1"
    ) == [("G1",)]


def test_a_line_whose_group_fails_still_enrols_and_is_retried(site: Site) -> None:
    """tool_sync enrols a user whose group does not exist and reports the group: so does
    postsync, and the line goes to the retry file; re-run, it changes nothing more."""
    site.write(
        "enrols.csv",
        HEADER + "add;MATH101;U0003;student;;;;gadd;G1;G7\nadd;MATH101;U0004;student;;;;gfoo;G1;\n",
    )
    steps = ENROLMENTS_STEP + ("post_treatments:\n  - write_retry_file: {}\n")
    result = site.run(steps=steps)
    assert result.code == 2, result.out + result.err
    assert report(site) == [
        "line 2: add student U0003 in MATH101: failed: no group 'G7' in course MATH101 (use"
        " gaddcreate) (the rest of the line was applied)",
        "line 3: add student U0004 in MATH101: failed: unknown gcmd 'gfoo' (gadd, gaddcreate,"
        " greplace, greplacecreate, gdel) (the rest of the line was applied)",
    ]
    assert site.enrolled("MATH101", "U0003") == [("student", 0)]
    assert site.groups_of("MATH101", "U0003") == ["G1"]
    assert site.enrolled("MATH101", "U0004") == [("student", 0)]
    entry = latest_record(site)["control_files"][0]
    assert entry["lines"] == {"total": 2, "changed": 0, "unchanged": 0, "failed": 2, "partly": 2}
    assert "2 failed, 2 of them in part applied" in result.out
    (retry,) = site.area.glob("enrols_tryback_*.csv")
    assert retry.read_text().splitlines()[1:] == [
        "add;MATH101;U0003;student;;;;gadd;G1;G7",
        "add;MATH101;U0004;student;;;;gfoo;G1;",
    ]
    # the retry file again: still failing on its group, the rest already so
    (site.area / "enrols.csv").write_bytes(retry.read_bytes())
    retry.unlink()
    before = site.dump()
    result = site.run(steps=ENROLMENTS_STEP)
    assert result.code == 2, result.out
    assert report(site)[0].endswith("(the rest of the line was already so)")
    assert site.dump() == before
    assert latest_record(site)["control_files"][0]["lines"]["partly"] == 0


def test_greplace_with_a_missing_group_takes_the_user_out_of_none(site: Site) -> None:
    sync(site, "add;MATH101;U0005;student;;;;gadd;G1;\n")
    lines = sync(site, "add;MATH101;U0005;student;;;;greplace;G2;Nope\n")
    assert lines == [
        "line 2: add student U0005 in MATH101: failed: no group 'Nope' in course MATH101"
        " (use greplacecreate) (the rest of the line was applied)"
    ]
    assert site.groups_of("MATH101", "U0005") == ["G1", "G2"]


def test_memberships_written_as_tool_sync_protects_them(site: Site) -> None:
    """`membership_component: tool_sync` writes memberships as tool_sync does when it
    protects groups, and removes only those: a teacher's manual membership stays."""
    step = ENROLMENTS_STEP + "    membership_component: tool_sync\n"
    site.write("enrols.csv", HEADER + "add;MATH101;U0006;student;;;;gadd;G1;\n")
    assert site.run(steps=step).code == 0
    site.add_member("MATH101", "U0006", "G2", "")  # a teacher's, by hand
    assert components(site, "MATH101", "U0006") == [("G1", "tool_sync"), ("G2", "")]
    site.write("enrols.csv", HEADER + "add;MATH101;U0006;student;;;;greplacecreate;G3;\n")
    assert site.run(steps=step).code == 0
    assert report(site) == [
        "line 2: add student U0006 in MATH101: ok (kept group 'G2' of no plugin (a manual"
        " membership))"
    ]
    assert components(site, "MATH101", "U0006") == [("G2", ""), ("G3", "tool_sync")]
    # a group_members step with the same option removes its own only
    by_name = MEMBERS_STEP + "    group_key: name\n"
    members_step = by_name + "    membership_component: tool_sync\n"
    assert members(site, "MATH101;G3;U0006;del\n", members_step) == [
        "line 2: del U0006 in group G3 of MATH101: ok"
    ]
    assert members(site, "MATH101;G2;U0006;del\n", members_step) == [
        "line 2: del U0006 in group G2 of MATH101: failed: the membership belongs to"
        " no plugin (a manual membership) (a sync removes only its own)"
    ]
    # without the option, tool_sync's memberships are another plugin's
    members(site, "MATH101;G1;U0006;add\n", members_step)
    assert members(site, "MATH101;G1;U0006;del\n", by_name) == [
        "line 2: del U0006 in group G1 of MATH101: failed: the membership belongs to"
        " tool_sync (a sync removes only its own)"
    ]
