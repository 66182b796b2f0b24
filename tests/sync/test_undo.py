"""`postsync undo RECORD` end to end on SQLite, PostgreSQL and MariaDB: a run with
users files (a user created, updated, renamed; an idnumber changed through
user_key username; a password set), cohorts, groups (a group and a grouping renamed,
a grouping's description changed), enrolments (groups, roles, an update, a manual and a
self unenrolment that take a tool_sync membership with them) and group members files,
then clean_empty_groups (a group, a grouping the run updated and one it made deleted),
and a user and a cohort with members deleted, undone through postsync undo and
postsync run of the written playbook: the enrolments, roles, memberships with their
component, groups, groupings and their links, cohorts (the deleted one with its
members), cohort members and users are those before the run, but the group the run
made, the password it set and the user it deleted with their rows (noted)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.sync.conftest import Site
from tests.sync.test_enrolments import child_context, give_role

STEPS = """\
  - command: users
    file: userimport.csv
    update_passwords: true
  - command: users
    file: userdelete.csv
  - command: users
    file: userbyname.csv
    user_key: username
  - command: cohorts
    file: cohorts.csv
  - command: groups
    file: groups.csv
  - command: enrolments
    file: enrols*.csv
  - command: group_members
    file: groupmembers.csv
"""
#: the run's cleanup: every empty group of MATH201 but Kept, and the groupings left
#: without a group that has members
CLEANUP = """\
post_treatments:
  - clean_empty_groups: {groups: all_empty, groupings: true, exclude: [Kept]}
"""

SETUP = {
    "groups.csv": "type;courseid;name;idnumber;description;grouping\n"
    "grouping;MATH201;Pairs;MATH201-P;Pair work;\n"
    "grouping;MATH201;Teams;MATH201-T;;\n"
    "group;MATH201;G1;MATH201-G1;First group;MATH201-T\n"
    "group;MATH201;G2;MATH201-G2;;MATH201-P\n"
    "group;MATH201;Kept;MATH201-K;;MATH201-T\n",
    "enrols.csv": "cmd;cid;uid;rolename;enrol;starttime;endtime;gcmd;g1\n"
    "add;MATH201;U0201;student;manual;;;gadd;G1\n"
    "add;MATH201;U0202;student;manual;;;;\n"
    "add;MATH201;U0203;student;manual;;;;\n"
    "add;MATH201;U0204;student;manual;;;gadd;G2\n"
    "add;MATH201;U0209;student;self;1767225600;1798761600;;\n"
    "add;MATH201;U0215;student;manual;;;gadd;G1\n",
    "cohorts.csv": "cmd;cidnumber;cname;userid;cdescription\n"
    "add;C1;Cohort one;U0205;\n"
    "add;C3;Cohort three;;Third\n"
    "add;C4;Cohort four;U0213;\n"
    "add;C4;Cohort four;U0214;\n"
    "add;C4;Cohort four;U0215;\n",
}

RUN = {
    "userimport.csv": "username;firstname;lastname;idnumber;email;department;password\n"
    "newbie;New;Bie;N0001;newbie@example.org;;\n"
    "u0210;Camille;Garcia;U0210;u0210@example.org;Maths;S3cret!pass\n"
    "u0211b;Dalia;Richard-Martin;U0211;u0211@example.org;;\n",
    "userbyname.csv": "username;firstname;lastname;idnumber\nu0212;Emile;Lefèvre;X0212\n",
    # a deletion takes U0215's enrolment, role, G1 and C4 memberships with it
    "userdelete.csv": "username;firstname;lastname;idnumber;deleted\nu0215;A;B;U0215;1\n",
    "cohorts.csv": "cmd;cidnumber;cname;userid;cdescription\n"
    "del;C4;Cohort four;;\n"
    "del;C1;Cohort one;U0205;\n"
    "add;C1;Cohort one;U0206;\n"
    "add;C2;Cohort two;U0207;\n"
    "add;C3;Cohort three, renamed;;Changed\n",
    "groups.csv": "type;courseid;name;idnumber;description;updateid\n"
    "grouping;MATH201;Labs;MATH201-LABS;;\n"
    "group;MATH201;Lab A;MATH201-LA;;\n"
    "group;MATH201;Lab G1;MATH201-LG1;Renamed;MATH201-G1\n"
    "grouping;MATH201;Teams renamed;MATH201-T2;;MATH201-T\n"
    "grouping;MATH201;Pairs;MATH201-P;Pairs, changed;\n",
    "enrols.csv": "cmd;cid;uid;rolename;enrol;starttime;endtime;gcmd;g1\n"
    "del;MATH201;U0201;student;manual;;;;\n"
    "disable;MATH201;U0202;student;manual;1767225600;1798761600;;\n"
    "shift;MATH201;U0203;editingteacher;manual;;;;\n"
    "add;MATH201;U0208;student;manual;;;gadd;Lab A\n"
    "add;MATH201;U0204;student;manual;;;gdel;G2\n"
    "del;MATH201;U0209;student;self;;;;\n",
    "groupmembers.csv": "cmd;courseid;groupid;userid\nadd;MATH201;MATH201-LG1;U0208\n",
}


def _apply(site: Site, files: dict[str, str], post: str = "") -> Path:
    for name, text in files.items():
        site.write(name, text)
    result = site.run(steps=STEPS + post)
    assert result.code == 0, result.out + result.err
    for name in files:
        (site.area / name).unlink()
    (run_id,) = re.findall(r"^RECORD .*\(run (\S+)\)$", result.out, re.MULTILINE)
    return site.area / ".postsync" / "runs" / f"{run_id}.json"


USERS = (
    "SELECT username, idnumber, firstname, lastname, email, department, auth, suspended"
    " FROM mdl_user"
)


def state(site: Site) -> dict[str, Any]:
    """What an undo gives back, ids of rows it makes again left out."""
    q = site.query
    return {
        "enrolments": sorted(
            q(
                "SELECT e.courseid, e.enrol, ue.userid, ue.status, ue.timestart, ue.timeend"
                " FROM mdl_user_enrolments ue JOIN mdl_enrol e ON e.id = ue.enrolid"
            )
        ),
        "roles": sorted(
            q("SELECT contextid, userid, roleid, component, itemid FROM mdl_role_assignments")
        ),
        "members": sorted(
            q(
                "SELECT g.courseid, g.name, m.userid, m.component FROM mdl_groups_members m"
                " JOIN mdl_groups g ON g.id = m.groupid"
            )
        ),
        "groups": sorted(q("SELECT courseid, name, idnumber, description FROM mdl_groups")),
        "groupings": sorted(q("SELECT courseid, name, idnumber, description FROM mdl_groupings")),
        "links": sorted(
            q(
                "SELECT gp.name, g.name FROM mdl_groupings_groups gg"
                " JOIN mdl_groupings gp ON gp.id = gg.groupingid"
                " JOIN mdl_groups g ON g.id = gg.groupid"
            )
        ),
        "cohorts": sorted(q("SELECT idnumber, name, description, contextid FROM mdl_cohort")),
        "cohort_members": sorted(
            q(
                "SELECT c.idnumber, m.userid FROM mdl_cohort_members m"
                " JOIN mdl_cohort c ON c.id = m.cohortid"
            )
        ),
        "users": sorted(q(f"{USERS} WHERE username <> 'newbie'")),
    }


def _prepare(site: Site) -> None:
    """A self enrolment instance in MATH201; once SETUP is applied, U0201 also in G2
    through tool_sync (a membership the run's unenrolment takes, of a component the
    undo's group_members file names)."""
    site.execute(
        "INSERT INTO mdl_enrol (enrol, status, courseid, sortorder, roleid, enrolperiod,"
        " enrolstartdate, enrolenddate, expirynotify, expirythreshold, notifyall,"
        " timecreated, timemodified) SELECT 'self', 0, id, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0"
        " FROM mdl_course WHERE shortname = 'MATH201'"
    )
    _apply(site, SETUP)
    site.execute(
        "INSERT INTO mdl_groups_members (groupid, userid, timeadded, component, itemid)"
        " SELECT g.id, u.id, 0, 'tool_sync', 0 FROM mdl_groups g, mdl_user u"
        " WHERE g.idnumber = 'MATH201-G2' AND u.idnumber = 'U0201'"
    )


def test_undo_gives_back_what_the_run_changed(site: Site) -> None:
    _prepare(site)
    (cohort,) = site.query("SELECT id FROM mdl_cohort WHERE idnumber = 'C3'")[0]
    (hashed,) = site.query("SELECT password FROM mdl_user WHERE username = 'u0210'")[0]
    (gone,) = site.query("SELECT id FROM mdl_user WHERE username = 'u0215'")[0]
    # U0201's last enrolment takes their role in an activity of the course with it
    activity = child_context(site, "MATH201", 9001)
    give_role(site, "U0201", activity, "teacher")
    before_run = state(site)
    record = _apply(site, RUN, CLEANUP)
    run_dir = record.parent / record.stem
    (cleanup,) = run_dir.glob("*_clean_empty_groups.journal")
    deleted = [json.loads(line) for line in cleanup.read_text().splitlines()]
    assert sorted((d["kind"], d["name"]) for d in deleted) == [
        ("group_deleted", "G2"),
        ("grouping_deleted", "Labs"),
        ("grouping_deleted", "Pairs"),
    ]
    assert state(site) != before_run

    preview = site.cli("undo", record, "--check")
    assert preview.code == 2, preview.out + preview.err  # notes: what is not reversed
    assert not (site.area / ".postsync" / "undo").exists()
    assert "(preview: nothing written" in preview.out

    result = site.cli("undo", record)
    assert result.code == 2, result.out + result.err
    assert result.out.splitlines()[:-3] == preview.out.splitlines()[:-1]
    where = site.area / ".postsync" / "undo" / record.stem
    notes = (where / "NOTES.txt").read_text()
    files = {f.name: f.read_text() for f in where.iterdir()}
    # updated rows given back their values before the run (a grouping updated, then
    # deleted by the cleanup, made again as it was), named as the earlier files leave
    # them: G1 renamed back before its memberships' lines name it
    assert files["01_groups.csv"].splitlines() == [
        "type;courseid;name;idnumber;description;grouping;updateid",
        "grouping;MATH201;Pairs;MATH201-P;Pair work;;",
        "grouping;MATH201;Teams;MATH201-T;;;MATH201-T2",
        "group;MATH201;G2;MATH201-G2;;;",
        "group;MATH201;G2;MATH201-G2;;MATH201-P;",
        "group;MATH201;G1;MATH201-G1;First group;;MATH201-LG1",
    ]
    assert files["02_group_members.csv"].splitlines()[1:] == [
        "del;MATH201;Lab A;u0208",
        "del;MATH201;G1;u0208",
    ]
    # a membership given back with its component, each component in a file of its own
    assert files["05_group_members.csv"].splitlines()[1:] == ["add;MATH201;G2;u0201"]
    assert "membership_component: tool_sync" in files["undo.yml"]
    assert "add;MATH201;u0209;student;self;1767225600;1798761600" in files["03_enrolments.csv"]
    # a deleted cohort made again, then given back the members its deletion took
    assert files["06_cohorts.csv"].splitlines()[1:4] == [
        "add;C4;Cohort four;;",
        "add;C4;Cohort four;u0213;",
        "add;C4;Cohort four;u0214;",
    ]
    lines = "".join(text for name, text in files.items() if name.endswith(".csv"))
    assert "u0215" not in lines  # a deleted user is named by no line
    assert "cohort C4 re-created: its description is not journaled" in notes
    assert (
        "user u0215 was deleted: a deleted user cannot be restored (Moodle's deletion"
        " rewrites the username, e-mail and idnumber; the profile is not journaled); with"
        " them went 1 enrolment, 1 role assignment, 1 group membership, 1 cohort"
        " membership: not given back\n"
    ) in notes
    assert files["07_cohorts.csv"].splitlines() == [
        "cmd;cid;cname;cidnumber;cdescription;ccatcontext",
        f"add;{cohort};Cohort three;;Third;",
    ]
    # users named by idnumber (renamed back), or by username when the run changed it
    assert files["09_users.csv"].splitlines()[1:] == [
        "manual;u0210;Camille;Garcia;U0210;",
        "manual;u0211;Dalia;Richard;U0211;",
    ]
    assert files["10_users.csv"].splitlines()[1:] == ["manual;u0212;Emile;Lefèvre;U0212"]
    assert "user u0210's password was set: a password is never journaled" in notes
    assert (
        f"role teacher in context {activity}, below the course (an activity or a block):"
        " no control file assigns roles there: not reversed"
    ) in notes
    applied = site.cli("run", where / "undo.yml")
    assert applied.code == 0, applied.out + applied.err

    after = state(site)
    expected = dict(before_run)
    # the user the run deleted stays deleted (noted), without what went with them
    for key, column in (("enrolments", 2), ("roles", 1), ("members", 2), ("cohort_members", 1)):
        expected[key] = [r for r in before_run[key] if r[column] != gone]
        assert len(expected[key]) == len(before_run[key]) - 1, key
    # the activity's role stays gone (noted)
    expected["roles"] = [r for r in expected["roles"] if r[0] != activity]
    (deleted,) = site.query(f"{USERS} WHERE id = :id AND deleted = 1", id=gone)
    expected["users"] = sorted([*(r for r in before_run["users"] if r[0] != "u0215"), deleted])
    # the group the run made stays (no control format deletes one): noted
    assert "'Lab A' created: the groups format never deletes" in notes
    expected["groups"] = sorted(
        [*before_run["groups"], *[g for g in after["groups"] if g[1] == "Lab A"]]
    )
    for key in expected:
        assert after[key] == expected[key], key
    (suspended,) = site.query("SELECT suspended FROM mdl_user WHERE username = 'newbie'")[0]
    assert suspended == 1
    # the password the run set stays (noted)
    assert site.query("SELECT password FROM mdl_user WHERE username = 'u0210'")[0][0] != hashed
    again = site.cli("undo", record)
    assert again.code == 3
    assert "exists: an undo never overwrites a file" in again.err
