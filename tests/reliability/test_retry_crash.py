"""`postsync retry` killed at every fault point, then run again: the site and the files
end as an uninterrupted retry's, no line is applied twice, no marker is left; and a
second run of the area at the same time is refused by its lock (exit 6).

The nightly's users file has a line that fails until the site enables its auth plugin
(a password in it, which the run record keeps masked: the retry reads it back from the
archive), and the enrolment files lines naming that user, so the retry must apply the
users step's line before the enrolments'.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from tests.conftest import POSTSYNC
from tests.reliability import workspace as ws

WORKERS = 2
PLAYBOOK = """\
name: Retry harness
area: area
database: sqlite:///moodle.db
vars:
  stamp: "{{ now | strftime('%Y%m%d-%H%M') }}"
sync:
  - command: users
    file: userimport*.csv
  - command: enrolments
    file: enrols_*.csv
post_treatments:
  - clean_empty_groups: {}
  - archive_control_files: {dest: "archives/{{ stamp }}_{{ file.name }}"}
  - write_retry_file: {dest: "{{ file.feed_stem }}_tryback_{{ stamp }}{{ file.suffix }}"}
  - delete_control_files: {}
"""
FILES = {
    "userimport.csv": (
        b"username;idnumber;firstname;lastname;auth;password\r\n"
        b"ann;A0001;Ann;One;manual;Manual-Pass-1\r\n"
        b"bob;U9999;Bob;Two;email;Em@il-Pass-42\r\n"  # email: not enabled yet
        b"cy;A0003;Cy;Three;manuel;\r\n"  # a misspelt auth: still fails
    ),
    "enrols_1.csv": (
        b"cmd;cid;uid;rolename\n"
        b"add;MATH101;U0001;student\n"
        b"add;MATH101;U9999;student\n"
        b"add;MATH101;U0002;wizard\n"  # no such role: still fails
    ),
    "enrols_2.csv": (
        b"cmd;cid;uid;rolename;gcmd;g1\n"
        b"add;PHYS101;U9999;student;gaddcreate;Retried\n"
        b"add;NOCOURSE;U0003;student;;\n"  # no such course: still fails
    ),
}
NIGHTLY, RETRY = "20261204-0230", "20261204-1000"


def prepared(root: Path) -> tuple[Path, Path]:
    """A workspace after the nightly, its site fixed: the record to retry."""
    space = root
    (space / "area").mkdir(parents=True)
    init = ws.postsync(space, "db", "init", "sqlite:///moodle.db", "--demo")
    assert init.returncode == 0, init.stderr
    for name, content in FILES.items():
        (space / "area" / name).write_bytes(content)
        os.utime(space / "area" / name, (1_700_000_000, 1_700_000_000))
    (space / "playbook.yml").write_text(PLAYBOOK)
    night = ws.postsync(space, "run", "playbook.yml", "-e", f"stamp={NIGHTLY}")
    assert night.returncode == 2, night.stdout + night.stderr
    (record,) = (space / "area" / ".postsync" / "runs").glob("*.json")
    engine = create_engine(f"sqlite:///{space / 'moodle.db'}")
    try:
        with engine.begin() as conn:  # the site fixed: email auth enabled
            conn.execute(text("INSERT INTO mdl_config (name, value) VALUES ('auth', 'email')"))
    finally:
        engine.dispose()
    return space, record


def nightly_record(space: Path) -> Path:
    (record,) = (space / "area" / ".postsync" / "runs").glob("*.json")
    return record


def retry(space: Path, record: Path, faults: str = "") -> subprocess.CompletedProcess[str]:
    return ws.postsync(space, "retry", str(record), "-e", f"stamp={RETRY}", faults=faults)


def site(space: Path) -> dict[str, Any]:
    engine = create_engine(f"sqlite:///{space / 'moodle.db'}")
    try:
        with engine.connect() as conn:
            users = sorted(
                tuple(r)
                for r in conn.execute(
                    text("SELECT username, idnumber, auth, deleted FROM mdl_user WHERE id > 2")
                )
            )
            markers = list(conn.execute(text("SELECT path FROM postsync_applied")))
    finally:
        engine.dispose()
    return {
        "courses": ws.course_states(space),
        "groups": ws.groups(space),
        "users": users,
        "markers": markers,
    }


def test_a_killed_retry_run_again_converges(tmp_path: Path) -> None:
    # each worker's workspace is prepared where its trials run (the record names its
    # paths), kept aside, and copied back there for each trial
    slots: queue.Queue[Path] = queue.Queue()
    for worker in range(WORKERS):
        space, _record = prepared(tmp_path / f"worker{worker}" / "space")
        space.rename(space.with_name("template"))
        slots.put(space)
    reference = tmp_path / "worker0" / "space"
    shutil.copytree(reference.with_name("template"), reference)
    trace = tmp_path / "trace.txt"
    done = retry(reference, nightly_record(reference), faults=f"trace={trace}")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "FAILED" not in done.stdout, done.stdout
    expected = site(reference)
    assert ("bob", "U9999", "email", 0) in expected["users"]
    assert expected["markers"] == []
    assert ("PHYS101", "Retried", "") in expected["groups"]
    files = ws.files(reference / "area", skip=(".postsync", "reports"))
    assert files["enrols_1_tryback_20261204-1000.csv"] == (
        b"cmd;cid;uid;rolename\nadd;MATH101;U0002;wizard\n"
    )
    points = [line.split()[1] for line in trace.read_text().splitlines()]
    assert {"sync.commit", "sync.committed", "record.saved", "atomic.published"} <= set(points)
    shutil.rmtree(reference)

    def trial(kill_at: int) -> None:
        space = slots.get()
        try:
            shutil.copytree(space.with_name("template"), space)
            record = nightly_record(space)
            killed = retry(space, record, faults=f"kill={kill_at}")
            assert killed.returncode == -signal.SIGKILL, (kill_at, killed.stdout, killed.stderr)
            again = retry(space, record)
            assert again.returncode == 2, (kill_at, again.stdout, again.stderr)
            assert "FAILED" not in again.stdout, (kill_at, again.stdout)
            if kill_at == points.index("sync.committed") + 1:
                # the users file's lines committed, the run killed: taken from their
                # marker, not applied a second time
                assert "sync userimport.csv  (failed lines of run" in again.stdout
                assert "applied by run" in again.stdout, (kill_at, again.stdout)
            assert site(space) == expected, (kill_at, again.stdout)
            assert ws.files(space / "area", skip=(".postsync", "reports")) == files, kill_at
        finally:
            shutil.rmtree(space, ignore_errors=True)
            slots.put(space)

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(trial, range(1, len(points) + 1)))


def start(space: Path, go: Path, *args: str) -> subprocess.Popen[str]:
    """postsync, holding the area's lock after its first step until `go` exists."""
    env = {**os.environ, "POSTSYNC_FAULTS": f"wait=step.done:{go}"}
    return subprocess.Popen(
        [*POSTSYNC, *args],
        cwd=space,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_second_run_of_the_area_during_a_retry_is_refused(tmp_path: Path) -> None:
    space, record = prepared(tmp_path / "space")
    go = tmp_path / "go"
    first = start(space, go, "retry", str(record), "-e", f"stamp={RETRY}")
    lock = space / "area" / ".postsync" / "lock"
    try:
        holder = f"pid {first.pid},"
        while not (lock.exists() and lock.read_text().startswith(holder)):
            assert first.poll() is None, first.communicate()  # the retry takes the lock
        for args in (["retry", str(record)], ["run", "playbook.yml"]):
            other = ws.postsync(space, *args)
            assert other.returncode == 6, other.stdout + other.stderr
            assert "another run holds the lock" in other.stderr
            assert other.stdout == ""
    finally:
        go.touch()
        out, err = first.communicate(timeout=300)
    assert first.returncode == 2, out + err
    assert site(space)["markers"] == []
    # the refused runs saved no record; the retry's names the run it retried
    # (run ids sort by second only: two runs of the same second by their random part)
    records = set((space / "area" / ".postsync" / "runs").glob("*.json"))
    (retried,) = records - {record}
    assert json.loads(retried.read_text())["retries"] == record.stem
