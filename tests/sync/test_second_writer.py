"""A second writer on the database while a sync runs: Moodle enrols a user, or adds a
member, after the sync read the state and before it writes. On PostgreSQL and MariaDB
(on SQLite the sync holds the write lock from the start: the other writer waits)."""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import POSTSYNC
from tests.sync.conftest import ENROLMENTS_STEP, Site
from tests.sync.test_enrolments import HEADER, report


def test_rows_moodle_inserted_meanwhile_do_not_undo_the_file(site: Site) -> None:
    if site.url.startswith("sqlite"):
        pytest.skip("SQLite: the sync takes the write lock first; a second writer waits")
    site.write(
        "enrols.csv",
        HEADER + "add;MATH101;U0001;student;;;;gadd;G1;\nadd;MATH101;U0002;student;;;;;;\n",
    )
    playbook = site.playbook(ENROLMENTS_STEP)
    trace = site.root / "trace"
    env = {**os.environ, "POSTSYNC_FAULTS": f"trace={trace},sleep=sync.loaded:3"}
    run = subprocess.Popen(
        [*POSTSYNC, "run", str(playbook)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (trace.exists() and "sync.loaded" in trace.read_text()):
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.02)
    # Moodle, meanwhile: U0001 enrolled by the manual instance and put in G1
    engine = create_engine(site.url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO mdl_user_enrolments (status, enrolid, userid, timestart, timeend,"
                " modifierid, timecreated, timemodified) SELECT 0, e.id, u.id, 0, 0, 2, 0, 0"
                " FROM mdl_enrol e JOIN mdl_course c ON c.id = e.courseid, mdl_user u"
                " WHERE c.idnumber = 'MATH101' AND e.enrol = 'manual' AND u.idnumber = 'U0001'"
            )
        )
        conn.execute(
            text(
                "INSERT INTO mdl_groups_members (groupid, userid, timeadded, component, itemid)"
                " SELECT g.id, u.id, 0, '', 0 FROM mdl_groups g JOIN mdl_course c"
                " ON c.id = g.courseid, mdl_user u WHERE c.idnumber = 'MATH101'"
                " AND g.name = 'G1' AND u.idnumber = 'U0001'"
            )
        )
    engine.dispose()
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, out + err
    assert report(site) == [
        "line 2: add student U0001 in MATH101: ok",
        "line 3: add student U0002 in MATH101: ok",
    ]
    # one enrolment and one membership each: Moodle's rows stand (modifierid 2)
    assert site.query(
        "SELECT u.idnumber, ue.modifierid FROM mdl_user_enrolments ue JOIN mdl_user u"
        " ON u.id = ue.userid WHERE u.idnumber IN ('U0001', 'U0002') ORDER BY 1"
    ) == [("U0001", 2), ("U0002", 0)]
    assert site.groups_of("MATH101", "U0001") == ["G1"]
    assert site.enrolled("MATH101", "U0001") == [("student", 0)]
    # and a second run finds everything in place
    site.write(
        "enrols.csv",
        HEADER + "add;MATH101;U0001;student;;;;gadd;G1;\nadd;MATH101;U0002;student;;;;;;\n",
    )
    assert site.run(steps=ENROLMENTS_STEP).code == 0
    assert all(line.endswith("(unchanged)") for line in report(site))


def _start(site: Site, playbook: object, trace: object, sleep: str) -> subprocess.Popen[str]:
    env = {**os.environ, "POSTSYNC_FAULTS": f"trace={trace},sleep={sleep}"}
    return subprocess.Popen(
        [*POSTSYNC, "run", str(playbook)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _reached(run: subprocess.Popen[str], trace: Any, point: str) -> None:
    deadline = time.monotonic() + 60
    while not (trace.exists() and point in trace.read_text()):
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.02)


def _copies(site: Site, user: str, group: str) -> tuple[int, int]:
    """(role assignments of `user` as student in MATH101, groups named `group` there)."""
    ((roles,),) = site.query(
        "SELECT COUNT(*) FROM mdl_role_assignments ra JOIN mdl_user u ON u.id = ra.userid"
        " JOIN mdl_context x ON x.id = ra.contextid JOIN mdl_course c ON c.id = x.instanceid"
        " JOIN mdl_role r ON r.id = ra.roleid WHERE x.contextlevel = 50"
        " AND c.idnumber = 'MATH101' AND u.idnumber = :u AND r.shortname = 'student'",
        u=user,
    )
    ((groups,),) = site.query(
        "SELECT COUNT(*) FROM mdl_groups g JOIN mdl_course c ON c.id = g.courseid"
        " WHERE c.idnumber = 'MATH101' AND g.name = :g",
        g=group,
    )
    return roles, groups


def test_a_role_or_group_another_writer_made_meanwhile_is_not_made_twice(site: Site) -> None:
    if site.url.startswith("sqlite"):
        pytest.skip("SQLite: the sync takes the write lock first; a second writer waits")
    site.write("enrols.csv", HEADER + "add;MATH101;U0003;student;;;;gaddcreate;G9;\n")
    trace = site.root / "trace"
    run = _start(site, site.playbook(ENROLMENTS_STEP), trace, "sync.loaded:3")
    _reached(run, trace, "sync.loaded")
    # Moodle, meanwhile: the student role and a group G9 (tables without a unique key)
    site.execute(
        "INSERT INTO mdl_role_assignments (roleid, contextid, userid, timemodified,"
        " modifierid, component, itemid, sortorder) SELECT r.id, x.id, u.id, 0, 2, '', 0, 0"
        " FROM mdl_role r, mdl_context x JOIN mdl_course c ON c.id = x.instanceid, mdl_user u"
        " WHERE r.shortname = 'student' AND x.contextlevel = 50 AND c.idnumber = 'MATH101'"
        " AND u.idnumber = 'U0003'"
    )
    site.execute(
        "INSERT INTO mdl_groups (courseid, idnumber, name, description, descriptionformat,"
        " timecreated, timemodified) SELECT c.id, '', 'G9', '', 1, 0, 0 FROM mdl_course c"
        " WHERE c.idnumber = 'MATH101'"
    )
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, out + err
    assert _copies(site, "U0003", "G9") == (1, 1)
    assert site.groups_of("MATH101", "U0003") == ["G9"]


def test_two_postsyncs_on_one_database_make_no_duplicate(
    site: Site, request: pytest.FixtureRequest
) -> None:
    if not site.url.startswith("postgresql"):
        pytest.skip("PostgreSQL: the insert lock (SQLite: the write lock serialises)")
    line = "add;MATH101;U0004;student;;;;gaddcreate;G8;\n"
    site.write("enrols.csv", HEADER + line)
    other = Site(site.root / "other", site.url, site.cli, site.tables)
    (other.area).mkdir(parents=True)
    other.write("enrols.csv", HEADER + line)
    trace = site.root / "trace"
    # the first holds its inserts uncommitted while the second applies the same line
    first = _start(site, site.playbook(ENROLMENTS_STEP), trace, "sync.commit:4")
    _reached(first, trace, "sync.commit")
    second = _start(other, other.playbook(ENROLMENTS_STEP), other.root / "trace", "none:0")
    for run in (first, second):
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, out + err
    assert _copies(site, "U0004", "G8") == (1, 1)


def test_duplicates_another_writer_made_do_not_fail_later_runs(site: Site) -> None:
    site.write("enrols.csv", HEADER + "add;MATH101;U0005;student;;;;gaddcreate;G7;\n")
    assert site.run(steps=ENROLMENTS_STEP).code == 0
    # another writer's copies: the role assignment and the group
    site.execute(
        "INSERT INTO mdl_role_assignments (roleid, contextid, userid, timemodified,"
        " modifierid, component, itemid, sortorder) SELECT roleid, contextid, userid,"
        " timemodified, 2, component, itemid, sortorder FROM mdl_role_assignments"
        " WHERE userid = (SELECT id FROM mdl_user WHERE idnumber = 'U0005')"
    )
    site.execute(
        "INSERT INTO mdl_groups (courseid, idnumber, name, description, descriptionformat,"
        " timecreated, timemodified) SELECT courseid, '', name, '', 1, 0, 0 FROM mdl_groups"
        " WHERE name = 'G7'"
    )
    assert _copies(site, "U0005", "G7") == (2, 2)
    ((first,),) = site.query("SELECT MIN(id) FROM mdl_groups WHERE name = 'G7'")
    ((second,),) = site.query("SELECT MAX(id) FROM mdl_groups WHERE name = 'G7'")
    warning = (
        f"warning: 2 groups have name 'G7' in course MATH101 (ids {first}, {second}):"
        " the line used the first"
    )
    # a line needing them finds them present; the group by name: the first, said so
    site.write("enrols.csv", HEADER + "add;MATH101;U0005;student;;;;gadd;G7;\n")
    assert site.run(steps=ENROLMENTS_STEP).code == 0
    assert report(site) == [f"line 2: add student U0005 in MATH101: ok (unchanged; {warning})"]
    site.write("enrols.csv", HEADER + "add;MATH101;U0006;student;;;;gadd;G7;\n")
    assert site.run(steps=ENROLMENTS_STEP).code == 0
    assert site.query(
        "SELECT m.groupid FROM mdl_groups_members m JOIN mdl_user u ON u.id = m.userid"
        " WHERE u.idnumber = 'U0006'"
    ) == [(first,)]
    # the role's removal removes every copy
    site.write("enrols.csv", HEADER + "del;MATH101;U0005;student;;;;;;\n")
    assert site.run(steps=ENROLMENTS_STEP).code == 0
    assert _copies(site, "U0005", "G7") == (0, 2)
    assert site.enrolled("MATH101", "U0005") == []


def test_a_user_moodle_created_meanwhile_does_not_fail_the_users_file(site: Site) -> None:
    if site.url.startswith("sqlite"):
        pytest.skip("SQLite: the sync takes the write lock first; a second writer waits")
    site.write("userimport.csv", "username;idnumber;firstname;lastname\nw1;W1;A;B\nw2;W2;C;D\n")
    trace = site.root / "trace"
    steps = "  - command: users\n    file: userimport*.csv\n"
    run = _start(site, site.playbook(steps), trace, "sync.loaded:3")
    _reached(run, trace, "sync.loaded")
    # Moodle, meanwhile: a user w1 (a copy of u0001's row), with its context
    columns = ", ".join(c.name for c in site.tables.user.columns if c.name != "id")
    copied = columns.replace("username", "'w1'").replace("idnumber", "'M1'")
    site.execute(
        f"INSERT INTO mdl_user ({columns}) SELECT {copied} FROM mdl_user WHERE username = 'u0001'"
    )
    site.execute(
        "INSERT INTO mdl_context (contextlevel, instanceid, depth, path, locked)"
        " SELECT 30, id, 2, NULL, 0 FROM mdl_user WHERE username = 'w1'"
    )
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, out + err
    assert site.query("SELECT idnumber FROM mdl_user WHERE username = 'w1'") == [("M1",)]
    assert site.query("SELECT firstname FROM mdl_user WHERE username = 'w2'") == [("C",)]
    ((contexts,),) = site.query(
        "SELECT COUNT(*) FROM mdl_context x JOIN mdl_user u ON u.id = x.instanceid"
        " WHERE x.contextlevel = 30 AND u.username IN ('w1', 'w2')"
    )
    assert contexts == 2
