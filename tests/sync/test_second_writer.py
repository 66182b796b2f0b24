"""A second writer on the database while a sync runs: Moodle enrols a user, or adds a
member, after the sync read the state and before it writes. On PostgreSQL and MariaDB
(on SQLite the sync holds the write lock from the start: the other writer waits)."""

from __future__ import annotations

import os
import subprocess
import time

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
