"""The moodle_events step on a real site: after postsync and the step, Moodle's log
holds the rows its own API writes for the same changes on a twin site, and Moodle's
observers (enrol_meta, enrol_cohort) have run; a replay killed half way and run again
logs each change once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import MAIN, ROOT, postsync_process
from tests.moodle.lab import PHP_OPTIONS, Site
from tests.treatments.test_moodle_caches import gone

HEADER = "cmd;cid;uid;rolename;enrol;gcmd;g1\n"


def events_step(site: Site, batch_size: int = 500) -> str:
    php = ["php", *PHP_OPTIONS]
    return (
        "post_treatments:\n  - moodle_events:\n"
        f"      moodle_dir: {site.lab.webroot}\n      php: {json.dumps(php)}\n"
        f"      run_as: {site.lab.user.pw_name}\n      environment: {{LAB_DB: {site.name}}}\n"
        f"      batch_size: {batch_size}\n"
    )


def playbook(site: Site, tmp_path: Path, files: dict[str, str], steps: str, post: str) -> Path:
    area = tmp_path / "area"
    area.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (area / name).write_text(body)
    book = tmp_path / "playbook.yml"
    book.write_text(f'name: Lab\narea: area\ndatabase: "{site.url}"\nsync:\n{steps}{post}')
    return book


def prepare(site: Site) -> int:
    """A meta course (CHEM103, linked to MATH101) and a cohort sync (cohort LABC, with
    S003, enrolled in PHYS102): the id of the last log row once they are made."""
    site.php("moodle_events_twin.php", "meta", "MATH101", "CHEM103")
    site.php("cohort_sync.php", "setup", "PHYS102", "S003")
    return int(site.php("event_rows.php", "max")["max"] or 0)


#: a deleted user's username: its e-mail and the time of the deletion (delete_user)
DELETED = re.compile(r"^(.+@.+)\.\d{9,}$")


def key(row: dict[str, Any]) -> str:
    """A log row as compared: a deleted user's username without its deletion's time
    (the twin deletes a second later or sooner), in `other` too."""
    return json.dumps(_timeless(row), sort_keys=True)


def _timeless(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items()}
    return DELETED.sub(r"\1.TIME", value) if isinstance(value, str) else value


FILES = {
    "users1.csv": "username;firstname;lastname;idnumber;email;password;city;country\n"
    "lab1;Lab;One;L001;lab1@example.com;Lab-pass-123!;Lyon;FR\n"
    "lab2;Lab;Two;L002;lab2@example.com;Lab-pass-123!;Lyon;FR\n",
    "users2.csv": "username;firstname;lastname;suspended;deleted;password\n"
    "lab1;Lab;One;1;0;Lab-pass-456!\nlab2;Lab;Two;0;1;\n",
    "cohorts.csv": "cmd;cidnumber;userid\nadd;LABC;lab1\n",
    "enrols1.csv": HEADER
    + "add;C101;S001;student;manual;gadd;G1\nadd;C101;S002;student;manual;;\n",
    "enrols2.csv": HEADER
    + "shift;C101;S002;editingteacher;manual;;\ndel;C101;S009;student;manual;;\n",
}
STEPS = (
    "  - command: users\n    file: users*.csv\n    update_passwords: true\n"
    "  - command: cohorts\n    file: cohorts.csv\n    user_key: username\n"
    "  - command: enrolments\n    file: enrols*.csv\n"
)


def test_the_events_step_logs_what_moodles_api_logs(
    site: Site, lab_twin: Site, tmp_path: Path
) -> None:
    """An enrolment with a group, a role change (shift), an unenrolment (that takes a
    role in an activity of the course with it), a user's creation with a password,
    suspension with a new password and deletion and a cohort membership: after
    postsync and moodle_events, logstore_standard_log holds the rows Moodle's own API writes for
    them on a twin (eventname, component, action, target, objecttable, objectid, crud,
    edulevel, context, userid, relateduserid, courseid, other; ids mapped by natural
    key, ids and times aside), those of the observers included: the meta course
    CHEM103 gets S001's enrolment (enrol_meta) and PHYS102 lab1's (enrol_cohort).
    Left out: enrol_meta's role rows in CHEM103 (its observer runs once the run is
    over and sees the roles as the run left them: the course's enrolments, roles and
    groups are compared instead, and equal the twin's), and the modifierid,
    timecreated and timemodified of a deleted enrolment's `other` (not journaled)."""
    for each in (site, lab_twin):  # S009's unenrolment takes a role in an activity
        assert each.php("child_role.php", "MATH101", "S009", "editingteacher") == {
            "contextlevel": 70
        }
    since, twin_since = prepare(site), prepare(lab_twin)
    book = playbook(site, tmp_path, FILES, STEPS, events_step(site))
    preview = postsync_process("run", book, "--check")
    assert preview.returncode == 0, preview.stdout + preview.stderr
    assert "\\core\\event\\user_enrolment_created" in preview.stdout, preview.stdout
    assert site.php("event_rows.php", str(since)) == []
    done = postsync_process("run", book)
    assert done.returncode == 0, done.stdout + done.stderr
    lab_twin.php("moodle_events_twin.php", "enrolments")
    lab_twin.php("moodle_events_twin.php", "people")
    ours = site.php("event_rows.php", str(since))
    theirs = lab_twin.php("event_rows.php", str(twin_since))
    state = site.php("state.php")
    assert "S001" in state["CHEM103"]["users"], state["CHEM103"]
    assert "L001" in state["PHYS102"]["users"], state["PHYS102"]
    known = [known_difference(row) for row in theirs]
    expected = [row for row, why in zip(theirs, known, strict=True) if why is None]
    mine = [row for row in ours if known_difference(row) is None]
    same_rows(mine, expected)
    below = [
        r for r in ours if r["eventname"].endswith("role_unassigned") and r["contextlevel"] == 70
    ]
    assert len(below) == 1, ours
    # Moodle's order for a user: the password set, then user_created (user_updated)
    lab1 = ["user_password_updated", "user_created", "user_password_updated", "user_updated"]
    assert user_events(ours, "lab1") == user_events(theirs, "lab1") == lab1
    # enrol_meta's role rows in the meta course are left out of the comparison: its
    # observer runs once the run is over and sees the roles as the run left them, not
    # each state in between (a role shifted twice is one change for it); what it leaves
    # in the course is what Moodle's API leaves
    assert state["CHEM103"] == lab_twin.php("state.php")["CHEM103"]


def same_rows(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> None:
    """The two sites' log rows are the same, as many of each (in any order)."""
    extra = Counter(map(key, ours)) - Counter(map(key, theirs))
    missing = Counter(map(key, theirs)) - Counter(map(key, ours))
    assert not extra and not missing, (
        f"{len(ours)} rows, {len(theirs)} on the twin\nonly ours:\n"
        + "\n".join(extra)
        + "\nonly Moodle's:\n"
        + "\n".join(missing)
    )


def user_events(rows: list[dict[str, Any]], username: str) -> list[str]:
    """The names of the events on `username`'s own context, in the log's order."""
    return [
        row["eventname"].rsplit("\\", 1)[-1]
        for row in rows
        if row["contextlevel"] == 30 and row["contextinstance"] == username
    ]


def known_difference(row: dict[str, Any]) -> str | None:
    """Why a log row of the twin's (or a part of it) is not expected of the replay."""
    name = row["eventname"].rsplit("\\", 1)[-1]
    if row["courseid"] == "CHEM103" and name.startswith("role_"):
        return (
            "enrol_meta's role rows in CHEM103 (its observer sees the roles as the run"
            " left them, not the intermediate ones)"
        )
    ue = (
        (row.get("other") or {}).get("userenrolment")
        if isinstance(row.get("other"), dict)
        else None
    )
    if ue is not None:
        for field in ("modifierid", "timecreated", "timemodified"):
            ue.pop(field, None)  # the journal keeps none of them
    return None


def test_a_group_deletion_is_logged_as_moodle_logs_it(
    site: Site, lab_twin: Site, tmp_path: Path
) -> None:
    """clean_empty_groups deleting the empty group "Old" of CHEM103 and its grouping
    "Old set" (made in Moodle; `groups: all_empty`, `groupings: true`), then
    moodle_events: Moodle's log holds the group_deleted and grouping_deleted rows Moodle's
    own groups_delete_group and groups_delete_grouping write on a twin (the fields above,
    objectid the deleted row's id)."""
    for each in (site, lab_twin):
        each.php("moodle_events_twin.php", "grouping", "CHEM103", "Old", "Old set")
    ids = _ids(
        site.url, "SELECT name, id FROM mdl_groups UNION ALL SELECT name, id FROM mdl_groupings"
    )
    since = int(site.php("event_rows.php", "max")["max"] or 0)
    enrol = {"enrols.csv": HEADER + "add;C103;S003;student;manual;;\n"}
    clean = "  - clean_empty_groups: {groups: all_empty, groupings: true}\n"
    steps = "  - command: enrolments\n    file: enrols.csv\n"
    book = playbook(
        site,
        tmp_path,
        enrol,
        steps,
        events_step(site).replace("post_treatments:\n", f"post_treatments:\n{clean}"),
    )
    preview = postsync_process("run", book, "--check")
    assert preview.returncode == 0, preview.stdout + preview.stderr
    for name in ("group_deleted", "grouping_deleted"):
        assert f"trigger \\core\\event\\{name}  (1 event)" in preview.stdout, preview.stdout
    done = postsync_process("run", book)
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'delete group "Old" in course CHEM103' in done.stdout, done.stdout
    twin = playbook(lab_twin, tmp_path / "twin", enrol, steps, "")
    assert postsync_process("run", twin).returncode == 0
    twin_since = int(lab_twin.php("event_rows.php", "max")["max"] or 0)
    lab_twin.php("moodle_events_twin.php", "ungroup", "CHEM103", "Old", "Old set")
    theirs = lab_twin.php("event_rows.php", str(twin_since))
    ours = [
        row
        for row in site.php("event_rows.php", str(since))
        if row["target"] in ("group", "grouping")
    ]
    assert sorted(map(key, ours)) == sorted(map(key, theirs)), (ours, theirs)
    assert {row["eventname"] for row in ours} == {
        "\\core\\event\\group_deleted",
        "\\core\\event\\grouping_deleted",
    }
    logged = _ids(
        site.url,
        "SELECT eventname, objectid FROM mdl_logstore_standard_log"
        f" WHERE id > {since} AND target IN ('group', 'grouping')",
    )
    assert logged == {
        "\\core\\event\\group_deleted": ids["Old"],
        "\\core\\event\\grouping_deleted": ids["Old set"],
    }


UPDATES = {
    "enrols.csv": "cmd;cid;uid;rolename;enrol;starttime;endtime\n"
    "disable;C101;S009;student;manual;;\n"
    "add;C102;S010;student;manual;1893456000;1909008000\n",
    "groups.csv": "type;courseid;name;idnumber;updateid\n"
    "group;C102;New group;C102-NEW;\n"
    "grouping;C102;New set;C102-SET;\n"
    "group;C102;Renamed;C102-SPARE2;C102-SPARE\n",
    "cohorts.csv": "cmd;cidnumber;cname;cdescription;ccatcontext\n"
    "add;LABN;New cohort;;\n"
    "add;LABO;Renamed cohort;New description;1\n"
    "del;LABX;;;\n",
}


def test_updates_groups_and_cohorts_are_logged_as_moodle_logs_them(
    site: Site, lab_twin: Site, tmp_path: Path
) -> None:
    """An enrolment suspended (disable) and one given dates, a group and a grouping
    created, a group renamed (updateid), a cohort created, one renamed with a
    description and moved into the first category, one with a member deleted: after
    postsync and moodle_events, the log rows (the fields above) equal those Moodle's
    update_user_enrol, groups_create_group, groups_create_grouping,
    groups_update_group, cohort_add_cohort, cohort_update_cohort and
    cohort_delete_cohort write on a twin (no cohort_member_removed for the deleted
    cohort's member, as Moodle), the cohort_deleted row's objectid the deleted id."""
    for each in (site, lab_twin):
        each.php("moodle_events_twin.php", "cohorts")
    gone = _ids(site.url, "SELECT idnumber, id FROM mdl_cohort WHERE idnumber = 'LABX'")
    since = int(site.php("event_rows.php", "max")["max"] or 0)
    twin_since = int(lab_twin.php("event_rows.php", "max")["max"] or 0)
    steps = (
        "  - command: enrolments\n    file: enrols.csv\n"
        "  - command: groups\n    file: groups.csv\n"
        "  - command: cohorts\n    file: cohorts.csv\n"
    )
    book = playbook(site, tmp_path, UPDATES, steps, events_step(site))
    done = postsync_process("run", book)
    assert done.returncode == 0, done.stdout + done.stderr
    lab_twin.php("moodle_events_twin.php", "updates")
    ours = site.php("event_rows.php", str(since))
    theirs = lab_twin.php("event_rows.php", str(twin_since))
    same_rows(ours, theirs)
    names = Counter(row["eventname"].rsplit("\\", 1)[-1] for row in ours)
    assert names == {
        "user_enrolment_updated": 2,
        "group_created": 1,
        "grouping_created": 1,
        "group_updated": 1,
        "cohort_created": 1,
        "cohort_updated": 1,
        "cohort_deleted": 1,
    }, names
    logged = _ids(
        site.url,
        "SELECT eventname, objectid FROM mdl_logstore_standard_log"
        f" WHERE id > {since} AND target = 'cohort' AND action = 'deleted'",
    )
    assert logged == {"\\core\\event\\cohort_deleted": gone["LABX"]}


DELETIONS = {
    "users.csv": "username;firstname;lastname;deleted\nlab3;Lab;Three;1\n",
    "cohorts.csv": "cmd;cidnumber;cname;cdescription;ccatcontext\ndel;LABG;;;\n",
}


def test_what_a_deletion_takes_with_it_is_logged_as_moodle_logs_it(
    site: Site, lab_twin: Site, tmp_path: Path
) -> None:
    """A user enrolled in MATH101 (manual, student) with a membership of its group G1, a
    manager role in a category and a cohort membership, deleted by a users file, and a
    cohort with a member deleted by a cohorts file (both made through Moodle's API on
    both sites): after postsync and moodle_events, the log rows (the fields above) equal
    those Moodle's delete_user and cohort_delete_cohort write on a twin, in the same
    order: role_unassigned, group_member_removed and user_enrolment_deleted (lastenrol)
    of the unenrolment, the category's role_unassigned, user_deleted, cohort_deleted;
    no cohort_member_removed (Moodle deletes cohort memberships without an event)."""
    for each in (site, lab_twin):
        each.php("moodle_events_twin.php", "doomed")
    since = int(site.php("event_rows.php", "max")["max"] or 0)
    twin_since = int(lab_twin.php("event_rows.php", "max")["max"] or 0)
    steps = "  - command: users\n    file: users.csv\n  - command: cohorts\n    file: cohorts.csv\n"
    book = playbook(site, tmp_path, DELETIONS, steps, events_step(site))
    preview = postsync_process("run", book, "--check")
    assert preview.returncode == 0, preview.stdout + preview.stderr
    done = postsync_process("run", book)
    assert done.returncode == 0, done.stdout + done.stderr
    lab_twin.php("moodle_events_twin.php", "delete")
    ours = site.php("event_rows.php", str(since))
    theirs = lab_twin.php("event_rows.php", str(twin_since))
    for row in theirs:
        known_difference(row)
    same_rows(ours, theirs)
    names = [row["eventname"].rsplit("\\", 1)[-1] for row in ours]
    assert names == [row["eventname"].rsplit("\\", 1)[-1] for row in theirs]
    assert names == [
        "role_unassigned",
        "group_member_removed",
        "user_enrolment_deleted",
        "role_unassigned",
        "user_deleted",
        "cohort_deleted",
    ], names
    ue = ours[2]["other"]["userenrolment"]
    assert ue["lastenrol"] is True
    assert events_lines(preview.stdout) == events_lines(done.stdout)


def events_lines(out: str) -> list[str]:
    """The step's `trigger \\core\\event\\NAME  (N events)` lines."""
    return [" ".join(t.split()) for t in out.splitlines() if "\\core\\event\\" in t]


def _ids(url: str, query: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {str(k): int(v) for k, v in conn.execute(text(query))}
    finally:
        engine.dispose()


def _progress(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            value = conn.execute(
                text("SELECT value FROM mdl_config_plugins WHERE plugin = 'postsync_events'")
            ).scalar()
    finally:
        engine.dispose()
    return sum(json.loads(value).values()) if value else 0


@pytest.mark.parametrize("how", ["script_killed", "postsync_terminated"])
def test_a_replay_stopped_half_way_logs_each_change_once(
    site: Site, tmp_path: Path, how: str
) -> None:
    """200 users created, replayed one journal line per batch, stopped after some
    batches committed: the PHP script killed (SIGKILL: the step fails and keeps its
    progress), or postsync itself terminated (SIGTERM, as systemd stops it: it stops
    the script and exits 143, no PHP process left). `postsync post RECORD` goes on
    after the last committed batch: no user's user_created row twice in Moodle's log,
    and every user's but at most the batch's the stop fell on between its commit and
    Moodle's writing of its log rows (the stop is timed on the committed progress, so
    it often falls there: Moodle writes the log after the transaction, the step's
    documented window)."""
    body = "username;firstname;lastname;idnumber;email\n" + "".join(
        f"k{i:03d};K;{i};K{i:03d};k{i}@example.com\n" for i in range(200)
    )
    since = int(site.php("event_rows.php", "max")["max"] or 0)
    book = playbook(
        site, tmp_path, {"users.csv": body}, "  - command: users\n    file: users.csv\n", ""
    )
    assert postsync_process("run", book).returncode == 0
    book.write_text(book.read_text() + events_step(site, batch_size=1))
    record = next((tmp_path / "area" / ".postsync" / "runs").glob("*.json"))
    env = {**os.environ, "NO_COLOR": "1"}
    first = subprocess.Popen(
        [sys.executable, "-c", MAIN, "post", str(record), "--playbook", str(book)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    stopped: list[int] = []  # the script's processes when it was stopped
    deadline = time.monotonic() + 120
    while not stopped and time.monotonic() < deadline and first.poll() is None:
        if _progress(site.url) >= 20:
            children = subprocess.run(
                ["ps", "--ppid", str(first.pid), "-o", "pid="], capture_output=True, text=True
            ).stdout.split()
            stopped = [int(pid) for pid in children]
            if stopped and how == "script_killed":
                for pid in stopped:
                    os.kill(pid, signal.SIGKILL)
            elif stopped:
                first.send_signal(signal.SIGTERM)
        time.sleep(0.01)
    said, _ = first.communicate(timeout=60)
    assert stopped, said
    if how == "script_killed":
        assert first.returncode != 0, said
        assert "progress kept" in said, said
    else:
        assert first.returncode == 143, said
        assert [pid for pid in stopped if not gone(pid)] == [], "the script outlived postsync"
    halfway = _progress(site.url)
    assert 20 <= halfway < 200, said
    again = postsync_process("post", record, "--playbook", book)
    assert again.returncode == 0, again.stdout + again.stderr
    rows = [
        r for r in site.php("event_rows.php", str(since)) if r["eventname"].endswith("user_created")
    ]
    assert len({r["objectid"] for r in rows}) == len(rows), "a change logged twice"
    assert len(rows) >= 199, f"{len(rows)} user_created rows after {halfway} lines before the stop"
