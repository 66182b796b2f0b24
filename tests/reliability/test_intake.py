"""Control files as they arrive: a file still being written is never applied, archived
or deleted (settle_seconds, uploader_lock, a change while read), and a file without
line ends is refused in bounded memory. Through the real CLI, in a process of its own,
with the default settle time unless a test sets one."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

HEADER = b"cmd;cid;uid;rolename;gcmd;g1\n"
PLAYBOOK = """\
name: Intake
area: area
database: sqlite:///moodle.db
sync:
  - command: enrolments
    file: enrols*.csv
{options}post_treatments:
  - save_report: {{}}
  - archive_control_files: {{}}
  - write_retry_file: {{}}
  - delete_control_files: {{}}
"""
HOUR_AGO = time.time() - 3600


def lines(first: int, count: int) -> bytes:
    return b"".join(b"add;MATH101;U%04d;student;;\n" % i for i in range(first, first + count))


def workspace(root: Path, options: str = "") -> Path:
    (root / "area").mkdir()
    (root / "playbook.yml").write_text(PLAYBOOK.format(options=options))
    assert postsync(root, "db", "init", "sqlite:///moodle.db", "--demo").returncode == 0
    return root


def postsync(
    root: Path,
    *args: str,
    env: dict[str, str] | None = None,
    preexec: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner", *args],
        cwd=root,
        env={**os.environ, "NO_COLOR": "1", "XDG_STATE_HOME": str(root / "state"), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=preexec,
    )


def enrolments(root: Path) -> int:
    engine = create_engine(f"sqlite:///{root / 'moodle.db'}")
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT COUNT(*) FROM mdl_user_enrolments")).scalar_one())
    finally:
        engine.dispose()


def stored(root: Path) -> list[str]:
    """What post-treatments stored: archives, reports, retry files."""
    area = root / "area"
    return sorted(
        str(p.relative_to(area))
        for p in area.rglob("*")
        if p.is_file() and (p.parent.name in ("archives", "reports") or "_tryback_" in p.name)
    )


def items(result: subprocess.CompletedProcess[str]) -> list[dict[str, str]]:
    document = json.loads(result.stdout)
    return [item for step in document["steps"] for item in step["items"]]


WRITER = """\
import sys, time
from pathlib import Path
path, go = Path(sys.argv[1]), Path(sys.argv[2])
chunks = [bytes.fromhex(c) for c in sys.argv[3:]]
for number, chunk in enumerate(chunks):
    if number == 2:  # halfway: wait until the test has run postsync
        while not go.exists():
            time.sleep(0.05)
    with path.open("ab") as out:
        out.write(chunk)
    time.sleep(0.3)
"""


def test_a_file_being_written_in_chunks_is_left_until_it_settles(tmp_path: Path) -> None:
    root = workspace(tmp_path)
    before = enrolments(root)
    path, go = root / "area" / "enrols.csv", tmp_path / "go"
    chunks = [HEADER + lines(1, 50), lines(51, 50), lines(101, 50), lines(151, 50)]
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(go), *(c.hex() for c in chunks)]
    )
    try:
        deadline = time.monotonic() + 30
        while (path.stat().st_size if path.exists() else 0) < len(chunks[0] + chunks[1]):
            assert time.monotonic() < deadline, "the writer did not start"
            time.sleep(0.05)
        # the writer pauses halfway (100 of 200 lines written): preview, then run
        preview = postsync(root, "run", "playbook.yml", "--check", "--output", "json")
        result = postsync(root, "run", "playbook.yml", "--output", "json")
        text_run = postsync(root, "run", "playbook.yml")
    finally:
        go.touch()
        writer.wait(timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(result.stdout)
    assert document["steps"][0]["status"] == "skipped"
    assert "1 file not ready, left for the next run" in document["steps"][0]["detail"]
    [left] = items(result)
    assert left["action"] == "leave" and left["target"] == "enrols.csv"
    assert "modified less than settle_seconds 60 ago: still being written?" in left["detail"]
    assert items(preview) == items(result)
    assert "leave enrols.csv  (modified less than settle_seconds 60 ago" in text_run.stdout
    assert all(s["status"] == "skipped" for s in document["steps"][1:])  # nothing processed
    # nothing applied, archived, reported nor deleted: the file is whole, where it was
    assert enrolments(root) == before
    assert path.read_bytes() == b"".join(chunks)
    assert stored(root) == []
    # once settled (no change for settle_seconds), the whole file is applied and archived
    os.utime(path, (HOUR_AGO, HOUR_AGO))
    done = postsync(root, "run", "playbook.yml")
    assert done.returncode == 0, done.stdout
    assert "sync enrols.csv  (200 lines: 200 changed" in done.stdout
    assert enrolments(root) == before + 200
    assert not path.exists()
    [archive] = (root / "area" / "archives").iterdir()
    assert archive.read_bytes() == b"".join(chunks)


def test_settle_seconds_counts_from_the_last_modification(tmp_path: Path) -> None:
    root = workspace(tmp_path, "    settle_seconds: 30\n    min_files: 1\n")
    path = root / "area" / "enrols.csv"
    path.write_bytes(HEADER + lines(1, 3))
    before = enrolments(root)
    result = postsync(root, "run", "playbook.yml")
    # min_files counts the ready files: a feed still arriving fails it, applying nothing
    assert result.returncode == 3, result.stdout
    assert "0 ready control files match enrols*.csv, fewer than min_files 1;" in result.stdout
    assert "1 more file not ready yet" in result.stdout
    assert enrolments(root) == before and path.exists() and stored(root) == []
    (root / "playbook.yml").write_text(PLAYBOOK.format(options="    settle_seconds: 30\n"))
    result = postsync(root, "run", "playbook.yml")
    assert result.returncode == 0, result.stdout
    assert "modified less than settle_seconds 30 ago" in result.stdout
    os.utime(path, (time.time() - 31, time.time() - 31))  # 31 s old: ready at once
    result = postsync(root, "run", "playbook.yml")
    assert result.returncode == 0, result.stdout
    assert "sync enrols.csv  (3 lines: 3 changed" in result.stdout
    assert enrolments(root) == before + 3 and not path.exists()


def test_a_file_rewritten_under_an_old_mtime_while_applied_is_left(tmp_path: Path) -> None:
    """cp -p and rsync -a set an old mtime: the file looks settled while it changes. The
    sync checks it again (size, mtime, ctime) once read, before committing it."""
    root = workspace(tmp_path)
    path = root / "area" / "enrols.csv"
    path.write_bytes(HEADER + lines(1, 150))
    os.utime(path, (HOUR_AGO, HOUR_AGO))
    before = enrolments(root)
    trace = tmp_path / "trace"
    env = {"POSTSYNC_FAULTS": f"trace={trace},sleep=sync.loaded:3"}
    run = subprocess.Popen(
        [sys.executable, "-m", "runner", "run", "playbook.yml"],
        cwd=root,
        env={**os.environ, "NO_COLOR": "1", **env},
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (trace.exists() and "sync.loaded" in trace.read_text()):
        assert time.monotonic() < deadline and run.poll() is None, "no sync.loaded"
        time.sleep(0.02)
    # the file was read whole; while it is applied, the rest of it comes
    with path.open("ab") as out:
        out.write(lines(151, 50))
    os.utime(path, (HOUR_AGO, HOUR_AGO))
    out, _ = run.communicate(timeout=60)
    assert run.returncode == 0, out
    size, grown = len(HEADER + lines(1, 150)), len(HEADER + lines(1, 200))
    assert f"leave enrols.csv  (not ready: went from {size:,} to {grown:,} bytes" in out
    assert "while it was applied: still being written? Nothing of it applied" in out
    assert enrolments(root) == before
    assert path.read_bytes() == HEADER + lines(1, 200)
    assert stored(root) == []
    done = postsync(root, "run", "playbook.yml")
    assert "sync enrols.csv  (200 lines: 200 changed" in done.stdout, done.stdout
    assert enrolments(root) == before + 200 and not path.exists()


def test_the_uploader_lock_file_leaves_every_file_of_the_step(tmp_path: Path) -> None:
    # a glob matching the lock file too: it is never taken for a control file
    root = workspace(tmp_path, "    uploader_lock: alock.txt\n")
    playbook = root / "playbook.yml"
    playbook.write_text(playbook.read_text().replace("file: enrols*.csv", "file: '*'"))
    area = root / "area"
    for name, first in (("enrols_a.csv", 1), ("enrols_b.csv", 10)):
        (area / name).write_bytes(HEADER + lines(first, 3))
        os.utime(area / name, (HOUR_AGO, HOUR_AGO))
    lock = area / "alock.txt"
    lock.write_text("")
    os.utime(lock, (HOUR_AGO, HOUR_AGO))
    before = enrolments(root)
    preview = postsync(root, "run", "playbook.yml", "--check")
    result = postsync(root, "run", "playbook.yml")
    assert result.returncode == 0, result.stdout
    for name in ("enrols_a.csv", "enrols_b.csv"):
        assert f"leave {name}  (alock.txt is in the area (uploader_lock)" in result.stdout
        assert f"leave {name}  (alock.txt is in the area" in preview.stdout
    assert "leave alock.txt" not in result.stdout  # the lock file is no control file
    assert enrolments(root) == before and stored(root) == []
    lock.unlink()
    result = postsync(root, "run", "playbook.yml")
    assert result.returncode == 0, result.stdout
    assert enrolments(root) == before + 6
    assert sorted(p.name for p in area.iterdir() if p.is_file()) == []
    assert len(stored(root)) == 4  # two archives, two reports


def limit_memory(megabytes: int) -> Callable[[], None]:
    def apply() -> None:
        size = megabytes << 20
        resource.setrlimit(resource.RLIMIT_AS, (size, size))

    return apply


def test_a_line_without_end_fails_its_file_in_bounded_memory(tmp_path: Path) -> None:
    """A 700 MB line (a sparse file: a header, then NUL bytes without a line end) under a
    600 MB address-space limit: read whole, it could not fit."""
    root = workspace(tmp_path)
    area = root / "area"
    huge = area / "enrols_1.csv"
    with huge.open("wb") as out:
        out.write(HEADER + b"add;MATH101;U0001;student;;")
        out.truncate(700 << 20)
    good = area / "enrols_2.csv"
    good.write_bytes(HEADER + lines(2, 2))
    for path in (huge, good):
        os.utime(path, (HOUR_AGO, HOUR_AGO))
    before = enrolments(root)
    result = postsync(root, "run", "playbook.yml", preexec=limit_memory(600))
    assert result.returncode == 3, result.stdout + result.stderr[-2000:]
    assert "Traceback" not in result.stdout + result.stderr
    assert (
        "enrols_1.csv: line 2: line longer than 1048576 bytes (max_line_bytes): nothing of"
        " the file applied." in result.stdout
    )
    assert "raise max_line_bytes on the sync step" in result.stdout
    # only that file fails: the other is applied, archived and deleted
    assert enrolments(root) == before + 2 and not good.exists()
    assert huge.stat().st_size == 700 << 20


def test_max_line_bytes_is_a_step_option(tmp_path: Path) -> None:
    root = workspace(tmp_path, "    max_line_bytes: 1024\n")
    path = root / "area" / "enrols.csv"
    path.write_bytes(
        HEADER + lines(1, 1) + b"add;MATH101;U0002;student;gaddcreate;" + b"G" * 1000 + b"\n"
    )
    os.utime(path, (HOUR_AGO, HOUR_AGO))
    result = postsync(root, "run", "playbook.yml")
    assert result.returncode == 3, result.stdout
    assert "line 3: line longer than 1024 bytes (max_line_bytes)" in result.stdout
    assert path.exists()


@pytest.mark.parametrize("where", ["header", "value"])
def test_a_huge_name_or_value_is_echoed_in_part(tmp_path: Path, where: str) -> None:
    """A 900 KB unknown column name, or a 500 KB user id (under max_line_bytes): each
    message shows its first 200 characters and its size, in the output, the report and
    the record."""
    root = workspace(tmp_path)
    path = root / "area" / "enrols.csv"
    if where == "header":
        big = b"c" * 900_000
        path.write_bytes(b"cmd;cid;uid;rolename;" + big + b"\n" + lines(1, 1))
        shown = "unknown column '" + "c" * 200 + "'… (900,000 bytes)"
    else:
        big = b"U" * 500_000
        path.write_bytes(HEADER + b"add;MATH101;" + big + b";student;;\n")
        shown = "U" * 200 + "… (500,000 bytes)"
    os.utime(path, (HOUR_AGO, HOUR_AGO))
    result = postsync(root, "run", "playbook.yml", "-v")
    as_json = postsync(root, "run", "playbook.yml", "--output", "json")
    assert shown in result.stdout
    assert len(result.stdout) < 20_000 and len(as_json.stdout) < 20_000
    runs = root / "area" / ".postsync" / "runs"
    for report in runs.rglob("*.report"):
        assert shown in report.read_text() and len(report.read_text()) < 2000
    for record in runs.glob("*.json"):
        [entry] = json.loads(record.read_text())["control_files"]
        messages = [entry["error"] or ""] + [f["message"] for f in entry["failed_lines"]]
        assert any(shown in m for m in messages)
        assert all(len(m) < 1000 for m in messages)
