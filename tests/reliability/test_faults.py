"""Faults: database unreachable or stopped mid-run, disk full, permission denied, a
read-only area. Each ends with exit 3, a clear message and no traceback; nothing is
lost, and the next run recovers. These run the real CLI in subprocesses."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import POSTSYNC, snapshot
from tests.pgserver import PostgresServer, ServerUnavailable, start_server

HEADER = "cmd;cid;uid;rolename;gcmd;g1\n"
CONTROL = HEADER + "".join(
    f"add;MATH101;U{i:04d};student;gaddcreate;G{i % 3}\n" for i in range(1, 31)
)
PLAYBOOK = """\
name: Faults
area: area
database: "{{ env.FAULTS_DB }}"
sync:
  - command: enrolments
    file: enrols.csv
post_treatments:
  - save_report: {dest: "reports/report_{{ file.name }}"}
  - archive_control_files: {dest: "archives/{{ file.name }}"}
  - write_retry_file: {}
  - delete_control_files: {}
"""


def postsync(
    root: Path, *args: str, db: str, faults: str = "", prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "POSTSYNC_FAULTS"}
    env.update(FAULTS_DB=db, XDG_STATE_HOME=str(root / "state"))
    if faults:
        env["POSTSYNC_FAULTS"] = faults
    return subprocess.run(
        [*prefix, *POSTSYNC, *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def workspace(root: Path, db: str) -> Path:
    (root / "area").mkdir(parents=True)
    (root / "area" / "enrols.csv").write_text(CONTROL)
    (root / "playbook.yml").write_text(PLAYBOOK)
    if db.startswith("sqlite"):
        init = postsync(root, "db", "init", db, "--demo", db=db)
        assert init.returncode == 0, init.stderr
    return root


def enrolled(root: Path, db: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(db)
    try:
        with engine.connect() as conn:
            count = conn.execute(
                text(
                    "SELECT COUNT(*) FROM mdl_user_enrolments ue JOIN mdl_enrol e"
                    " ON e.id = ue.enrolid JOIN mdl_course c ON c.id = e.courseid"
                    " WHERE c.idnumber = 'MATH101'"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    return int(count)


def assert_failed_cleanly(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 3, result.stdout + result.stderr
    assert message in result.stdout + result.stderr, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def assert_recovers(root: Path, db: str, *args: str) -> None:
    again = postsync(root, "run", "playbook.yml", *args, db=db)
    assert again.returncode == 0, again.stdout + again.stderr
    assert enrolled(root, db) == 30
    assert (root / "area" / "archives" / "enrols.csv").read_text() == CONTROL
    assert not (root / "area" / "enrols.csv").exists()


@pytest.fixture
def sqlite_space(tmp_path: Path) -> tuple[Path, str]:
    db = f"sqlite:///{tmp_path / 'moodle.db'}"
    return workspace(tmp_path, db), db


def test_database_unreachable(sqlite_space: tuple[Path, str]) -> None:
    root, db = sqlite_space
    before = snapshot(root / "area", own_state=False)
    down = "postgresql+psycopg://postsync:secret@127.0.0.1:1/moodle"
    result = postsync(root, "run", "playbook.yml", db=down)
    assert_failed_cleanly(result, 'connection to server at "127.0.0.1", port 1 failed')
    assert "secret" not in result.stdout + result.stderr
    assert snapshot(root / "area", own_state=False) == before
    assert_recovers(root, db)


@pytest.fixture
def own_server(postgresql_server: PostgresServer) -> Iterator[PostgresServer]:
    """A server of this test's own, to crash (the session's server stays up)."""
    try:
        server = start_server(durable=True)  # a crash keeps what was committed
    except ServerUnavailable as exc:  # pragma: no cover - the session server started
        pytest.fail(str(exc))
    try:
        yield server
    finally:
        server.stop()


def test_database_stopped_mid_run(tmp_path: Path, own_server: PostgresServer) -> None:
    db = own_server.create_database("faults")
    root = workspace(tmp_path, db)
    assert postsync(root, "db", "init", db, "--demo", db=db).returncode == 0
    trace = tmp_path / "trace.txt"
    run = subprocess.Popen(
        [*POSTSYNC, "run", "playbook.yml"],
        cwd=root,
        env={
            **os.environ,
            "FAULTS_DB": db,
            "POSTSYNC_FAULTS": f"trace={trace},sleep=sync.batch:4",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while "sync.batch" not in (trace.read_text() if trace.exists() else ""):
        assert time.monotonic() < deadline and run.poll() is None, run.communicate()
        time.sleep(0.05)
    own_server.crash()  # while the sync's transaction is open
    out, err = run.communicate(timeout=120)
    assert_failed_cleanly(
        subprocess.CompletedProcess(run.args, run.returncode, out, err),
        "database error while applying enrols.csv (nothing of it was applied)",
    )
    assert (root / "area" / "enrols.csv").read_text() == CONTROL
    own_server.resume()
    assert enrolled(root, db) == 0  # the open transaction died with the server
    assert_recovers(root, db)


def nth_point(root: Path, db: str, name: str, nth: int) -> int:
    """The index of the nth point named `name` in a traced run of a copy of `root`."""
    probe = Path(tempfile.mkdtemp(prefix=f"probe-{name}-", dir=root.parent)) / "root"
    shutil.copytree(root, probe)
    trace = probe / "trace.txt"
    copy_db = db.replace(str(root), str(probe))
    postsync(probe, "run", "playbook.yml", db=copy_db, faults=f"trace={trace}")
    hits = [int(line.split()[0]) for line in trace.read_text().splitlines() if line.endswith(name)]
    return hits[nth - 1]


def test_disk_full_while_archiving(sqlite_space: tuple[Path, str]) -> None:
    root, db = sqlite_space
    # atomic writes: 1 the sync's per-line report, 2 its change journal, 3 the record
    # after the sync, 4 the saved report, 5 the archive
    at = nth_point(root, db, "atomic.written", 5)
    result = postsync(root, "run", "playbook.yml", db=db, faults=f"enospc={at}")
    assert_failed_cleanly(result, "No space left on device")
    assert "FAILED   archive_control_files" in result.stdout
    area = root / "area"
    assert (area / "enrols.csv").read_text() == CONTROL  # not deleted
    assert not (area / "archives" / "enrols.csv").exists()
    assert not list((area / "archives").iterdir())  # no partial or temporary file
    assert_recovers(root, db)


@pytest.mark.parametrize(
    ("point", "written"),
    [("sync.report", "001_enrols.csv.report"), ("journal.publish", "001_enrols.csv.journal")],
    ids=["report", "journal"],
)
def test_disk_full_while_writing_what_a_file_leaves_beside_it(
    sqlite_space: tuple[Path, str], point: str, written: str
) -> None:
    """A control file's report, and its change journal's part (published before its
    changes commit): the message names it, nothing is left under its final name, and
    the file's changes are rolled back with it."""
    root, db = sqlite_space
    result = postsync(root, "run", "playbook.yml", db=db, faults=f"enospc={point}")
    assert_failed_cleanly(result, "No space left on device")
    assert f"{written}: No space left on device" in result.stdout
    assert "nothing of enrols.csv was applied" in result.stdout
    assert (root / "area" / "enrols.csv").read_text() == CONTROL
    assert enrolled(root, db) == 0
    runs = root / "area" / ".postsync" / "runs"
    assert not [p for p in runs.rglob("*") if p.is_file() and p.suffix != ".json"]
    assert_recovers(root, db)


def test_disk_full_while_saving_the_record(sqlite_space: tuple[Path, str]) -> None:
    root, db = sqlite_space
    # the first is the per-line report, the second the change journal
    at = nth_point(root, db, "atomic.written", 3)
    result = postsync(root, "run", "playbook.yml", db=db, faults=f"enospc={at}")
    assert_failed_cleanly(result, "cannot save the run record: No space left on device")
    assert (root / "area" / "enrols.csv").read_text() == CONTROL
    assert enrolled(root, db) == 30  # the sync itself had committed
    assert_recovers(root, db)


def _userns_available() -> bool:
    probe = subprocess.run(
        ["unshare", "--user", "--map-user=1000", "--map-group=1000", "true"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare (util-linux)")
def test_permission_denied(sqlite_space: tuple[Path, str]) -> None:
    """The archives directory belongs to another user: writing there is refused."""
    if not _userns_available():
        pytest.skip("user namespaces are not available here")
    root, db = sqlite_space
    archives = root / "area" / "archives"
    archives.mkdir()
    os.chown(archives, 12345, 12345)  # seen as someone else's inside the namespace
    archives.chmod(0o755)
    result = postsync(
        root,
        "run",
        "playbook.yml",
        db=db,
        prefix=("unshare", "--user", "--map-user=1000", "--map-group=1000"),
    )
    # the directory that refused the archive is named, not the hidden temporary file
    assert_failed_cleanly(result, f"{archives}: Permission denied")
    assert ".postsync-" not in result.stdout + result.stderr
    assert (root / "area" / "enrols.csv").read_text() == CONTROL
    os.chown(archives, os.getuid(), os.getgid())
    assert_recovers(root, db)


@pytest.mark.skipif(os.geteuid() != 0, reason="a read-only bind mount needs root")
def test_read_only_area(sqlite_space: tuple[Path, str]) -> None:
    root, db = sqlite_space
    area = root / "area"
    before = snapshot(area)
    mount = f'mount --bind "{area}" "{area}" && mount -o remount,ro,bind "{area}" && exec "$@"'
    result = postsync(
        root, "run", "playbook.yml", db=db, prefix=("unshare", "-m", "sh", "-c", mount, "sh")
    )
    assert_failed_cleanly(result, "Read-only file system")
    assert "nothing was changed" in result.stderr
    assert snapshot(area) == before
    assert enrolled(root, db) == 0
    assert_recovers(root, db)
