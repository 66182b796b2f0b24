"""`postsync undo RECORD` end to end on SQLite, PostgreSQL and MariaDB: a run with
users, groups, enrolments (groups, roles, an update, an unenrolment), group members
and cohorts files, a group the cleanup deleted (its part written by hand until the
cleanup journals it), then the undo written and applied through `postsync run`: the
enrolments, roles, memberships, groups and cohort members are those before the run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.sync.conftest import Site

STEPS = """\
  - command: users
    file: userimport.csv
  - command: cohorts
    file: cohorts.csv
  - command: groups
    file: groups.csv
  - command: enrolments
    file: enrols*.csv
  - command: group_members
    file: groupmembers.csv
"""

SETUP = {
    "enrols.csv": "cmd;cid;uid;rolename;enrol;gcmd;g1\n"
    "add;MATH201;U0201;student;manual;gadd;G1\n"
    "add;MATH201;U0202;student;manual;;\n"
    "add;MATH201;U0203;student;manual;;\n"
    "add;MATH201;U0204;student;manual;gadd;G2\n",
    "cohorts.csv": "cmd;cidnumber;cname;userid\nadd;C1;Cohort one;U0205\n",
}

RUN = {
    "userimport.csv": "username;firstname;lastname;idnumber;email\n"
    "newbie;New;Bie;N0001;newbie@example.org\n",
    "cohorts.csv": "cmd;cidnumber;cname;userid\n"
    "del;C1;Cohort one;U0205\n"
    "add;C1;Cohort one;U0206\n"
    "add;C2;Cohort two;U0207\n",
    "groups.csv": "type;courseid;name;idnumber\n"
    "grouping;MATH201;Labs;MATH201-LABS\n"
    "group;MATH201;Lab A;MATH201-LA\n",
    "enrols.csv": "cmd;cid;uid;rolename;enrol;starttime;endtime;gcmd;g1\n"
    "del;MATH201;U0201;student;manual;;;;\n"
    "disable;MATH201;U0202;student;manual;1767225600;1798761600;;\n"
    "shift;MATH201;U0203;editingteacher;manual;;;;\n"
    "add;MATH201;U0208;student;manual;;;gadd;Lab A\n"
    "add;MATH201;U0204;student;manual;;;gdel;G2\n",
    "groupmembers.csv": "cmd;courseid;groupid;userid\nadd;MATH201;MATH201-G1;U0208\n",
}


def _apply(site: Site, files: dict[str, str]) -> Path:
    for name, text in files.items():
        site.write(name, text)
    result = site.run(steps=STEPS)
    assert result.code == 0, result.out + result.err
    for name in files:
        (site.area / name).unlink()
    (record,) = [
        p for p in (site.area / ".postsync" / "runs").glob("*.json") if p.stem in result.out
    ]
    return record


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
        "links": sorted(
            q(
                "SELECT gp.name, g.name FROM mdl_groupings_groups gg"
                " JOIN mdl_groupings gp ON gp.id = gg.groupingid"
                " JOIN mdl_groups g ON g.id = gg.groupid"
            )
        ),
        "cohorts": sorted(q("SELECT idnumber, name FROM mdl_cohort")),
        "cohort_members": sorted(
            q(
                "SELECT c.idnumber, m.userid FROM mdl_cohort_members m"
                " JOIN mdl_cohort c ON c.id = m.cohortid"
            )
        ),
    }


def _cleanup_deletes(site: Site, record: Path) -> dict[str, Any]:
    """As clean_empty_groups does once it journals: group G2 of MATH102 (empty, in a
    grouping) deleted, its part beside the run's with the row as it was."""
    (gid, courseid, name, idnumber, description) = site.query(
        "SELECT id, courseid, name, idnumber, description FROM mdl_groups"
        " WHERE name = 'G2' AND courseid = (SELECT id FROM mdl_course WHERE shortname = 'MATH102')"
    )[0]
    site.execute(
        "INSERT INTO mdl_groupings (courseid, name, idnumber, description,"
        " descriptionformat, configdata, timecreated, timemodified)"
        " VALUES (:c, 'Pairs', 'MATH102-P', '', 1, '', 0, 0)",
        c=courseid,
    )
    (grouping,) = site.query("SELECT id FROM mdl_groupings WHERE idnumber = 'MATH102-P'")[0]
    site.execute(
        "INSERT INTO mdl_groupings_groups (groupingid, groupid, timeadded) VALUES (:p, :g, 0)",
        p=grouping,
        g=gid,
    )
    before = state(site)
    site.execute("DELETE FROM mdl_groupings_groups WHERE groupid = :g", g=gid)
    site.execute("DELETE FROM mdl_groups WHERE id = :g", g=gid)
    line = {
        "seq": 1,
        "kind": "group_deleted",
        "file": None,
        "line": None,
        "step": "clean_empty_groups",
        "courseid": courseid,
        "id": gid,
        "name": name,
        "idnumber": idnumber,
        "description": description,
        "descriptionformat": 1,
        "groupings": [grouping],
        "has_enrolmentkey": False,
    }
    part = record.parent / record.stem / "900_clean_empty_groups.journal"
    part.write_text(json.dumps(line) + "\n")
    return before


def test_undo_gives_back_what_the_run_changed(site: Site) -> None:
    _apply(site, SETUP)
    before_run = state(site)
    record = _apply(site, RUN)
    before_cleanup = _cleanup_deletes(site, record)
    assert before_cleanup != before_run

    preview = site.cli("undo", record, "--check")
    assert preview.code == 2, preview.out + preview.err  # notes: what is not reversed
    assert not (site.area / ".postsync" / "undo").exists()
    assert "user newbie created: suspended" in preview.out
    assert "(preview: nothing written" in preview.out

    result = site.cli("undo", record)
    assert result.code == 2, result.out + result.err
    assert result.out.splitlines()[:-3] == preview.out.splitlines()[:-1]
    where = site.area / ".postsync" / "undo" / record.stem
    assert (where / "NOTES.txt").is_file()
    applied = site.cli("run", where / "undo.yml")
    assert applied.code == 0, applied.out + applied.err

    after = state(site)
    expected = dict(before_run)
    # the groups and grouping the run made stay (no control format deletes one): noted
    assert "'Lab A' created: the groups format never deletes" in result.out
    assert [g for g in after["groups"] if g[1] == "Lab A"]
    expected["groups"] = before_cleanup["groups"]  # G2 of MATH102 made again, Lab A stays
    expected["links"] = before_cleanup["links"]  # G2 in its grouping again
    assert after == expected
    (suspended,) = site.query("SELECT suspended FROM mdl_user WHERE username = 'newbie'")[0]
    assert suspended == 1
    again = site.cli("undo", record)
    assert again.code == 3
    assert "exists: an undo never overwrites a file" in again.err
