"""A preview needs only read access and writes nothing: the nightly example previewed by
an unprivileged user who can read, not write, the area and the database (a SELECT-only
database user), with every file, directory and database row hashed before and after.

The user is made here (the tests run as root under CI); it runs postsync with the
interpreter it can reach (this one, or the system's Python of the same version) and
this environment's packages on its PYTHONPATH.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import site
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text

from runner.cli.demo import _enrolments, _group_members
from runner.db.tables import moodle_tables
from tests.conftest import MAIN, missing, postsync_process

ROOT = Path(__file__).resolve().parents[2]
NIGHTLY = ROOT / "playbooks" / "nightly.yml"
READER = "postsync-reader"


def first_night() -> str:
    """The demo's enrolments, into groups the feed makes (gaddcreate)."""
    return _enrolments().replace(";gaddcreate;G", ";gaddcreate;Night G")


def second_night() -> str:
    """The first night's enrolments, its first students and those of MATH101
    unenrolled: groups left empty, among them MATH101's "Night G2", which the feed
    made (clean_empty_groups deletes it)."""
    lines = first_night().splitlines(keepends=True)
    for i in range(2, 32):
        _cmd, course, user, role, plugin, *_ = lines[i].split(";")
        if i < 12 or course == "MATH101":
            lines[i] = f"del;{course};{user};{role};{plugin};;;;\n"
    return "".join(lines)


@dataclass(frozen=True)
class Reader:
    name: str
    python: str
    pythonpath: str

    def postsync(self, *args: object, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        command = [
            "runuser",
            "-u",
            self.name,
            "--",
            "env",
            f"PYTHONPATH={self.pythonpath}",
            "PYTHONDONTWRITEBYTECODE=1",
            "NO_COLOR=1",
            *(f"{k}={v}" for k, v in env.items()),
            self.python,
            "-c",
            MAIN,
            *map(str, args),
        ]
        return subprocess.run(command, capture_output=True, text=True, check=False, cwd="/")


def _runs_as(user: str, python: str, pythonpath: str) -> bool:
    probe = subprocess.run(
        [
            "runuser",
            "-u",
            user,
            "--",
            "env",
            f"PYTHONPATH={pythonpath}",
            python,
            "-c",
            "import runner.cli.main, sqlalchemy",
        ],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def _traversable(paths: list[str]) -> list[tuple[Path, int]]:
    """The directories of the project's checkout on the way to these paths made
    traversable by others (o+x, not listable: tox makes .tox private); returns them
    with their modes, to restore."""
    opened = []
    for path in map(Path, paths):
        if not path.is_relative_to(ROOT):
            continue
        for directory in [*reversed(path.relative_to(ROOT).parents), path.relative_to(ROOT)]:
            here = ROOT / directory
            mode = here.stat().st_mode & 0o7777
            if not mode & 0o001:
                here.chmod(mode | 0o001)
                opened.append((here, mode))
    return opened


@pytest.fixture(scope="module")
def reader() -> Iterator[Reader]:
    if os.geteuid() != 0:
        missing("root (to create an unprivileged user)", "needs root to create a user")
    if shutil.which("runuser") is None or shutil.which("useradd") is None:
        missing("runuser and useradd", "runuser/useradd not found")
    made = False
    try:
        pwd.getpwnam(READER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", READER],
            check=True,
        )
        made = True
    pythonpath = os.pathsep.join([str(ROOT), *site.getsitepackages()])
    opened = _traversable(site.getsitepackages())
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [sys.executable, f"/usr/bin/{version}", f"/usr/local/bin/{version}"]
    python = next((p for p in candidates if _runs_as(READER, p, pythonpath)), None)
    try:
        if python is None:
            missing("an interpreter the unprivileged user can run", f"none of {candidates}")
        yield Reader(READER, python, pythonpath)
    finally:
        for path, mode in opened:
            path.chmod(mode)
        if made:
            subprocess.run(["userdel", READER], check=False)


def tree(root: Path) -> dict[str, tuple[int, int, int, str]]:
    """Every entry under root (root included): mode, owner, mtime, content digest."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in ["", *dirnames, *filenames]:
            path = Path(dirpath) / name if name else Path(dirpath)
            st = path.lstat()
            digest = ""
            if path.is_file() and not path.is_symlink():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            state[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_mtime_ns, digest)
    return state


def database_state(url: str) -> dict[str, Any]:
    """Every row of every table postsync knows, and the sequences / auto-increments."""
    engine = create_engine(url)
    tables = moodle_tables("mdl_")
    try:
        with engine.connect() as conn:
            state: dict[str, Any] = {
                t.name: [tuple(r) for r in conn.execute(select(t).order_by(t.c.id))]
                for t in tables.all
            }
            if conn.dialect.name == "postgresql":
                for (seq,) in conn.execute(
                    text("SELECT sequencename FROM pg_sequences ORDER BY 1")
                ).all():
                    state[f"seq {seq}"] = tuple(
                        conn.execute(text(f'SELECT last_value, is_called FROM "{seq}"')).one()
                    )
            elif conn.dialect.name in ("mysql", "mariadb"):
                state["auto_increment"] = conn.execute(
                    text(
                        "SELECT table_name, auto_increment FROM information_schema.tables"
                        " WHERE table_schema = DATABASE() ORDER BY 1"
                    )
                ).all()
            return state
    finally:
        engine.dispose()


@pytest.fixture
def workspace() -> Iterator[Path]:
    """Not under pytest's tmp_path, which only root may enter."""
    path = Path(tempfile.mkdtemp(prefix="postsync-ro-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _read_only_url(backend: str, request: pytest.FixtureRequest, root: Path) -> tuple[str, str]:
    """(owner's URL, SELECT-only user's URL) of a fresh database."""
    if backend == "sqlite":
        url = f"sqlite:///{root / 'moodle.db'}"
        return url, url
    server = request.getfixturevalue(f"{backend}_server")
    url = str(server.create_database(f"readonly_{os.getpid()}"))
    assert postsync_process("db", "init", url, "--demo").returncode == 0
    engine = create_engine(url)
    name = url.rsplit("/", 1)[1].split("?")[0]
    try:
        with engine.begin() as conn:
            if backend == "postgresql":
                conn.execute(text("DROP ROLE IF EXISTS postsync_reader"))
                conn.execute(text("CREATE ROLE postsync_reader LOGIN"))
                conn.execute(text("GRANT SELECT ON ALL TABLES IN SCHEMA public TO postsync_reader"))
                # and on the tables postsync makes at its first run (postsync_groups...)
                conn.execute(
                    text(
                        "ALTER DEFAULT PRIVILEGES IN SCHEMA public"
                        " GRANT SELECT ON TABLES TO postsync_reader"
                    )
                )
                reader_url = url.replace("://postgres@", "://postsync_reader@", 1)
            else:
                conn.execute(text("DROP USER IF EXISTS 'postsync_reader'@'%'"))
                conn.execute(text("CREATE USER 'postsync_reader'@'%'"))
                conn.execute(text(f"GRANT SELECT ON `{name}`.* TO 'postsync_reader'@'%'"))
                reader_url = url.replace("://root@", "://postsync_reader@", 1)
    finally:
        engine.dispose()
    assert reader_url != url
    return url, reader_url


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mariadb"])
def test_a_read_only_user_previews_the_nightly_example_and_nothing_changes(
    backend: str, reader: Reader, workspace: Path, request: pytest.FixtureRequest
) -> None:
    area = workspace / "area"
    area.mkdir()
    url, reader_url = _read_only_url(backend, request, workspace)
    if backend == "sqlite":
        assert postsync_process("db", "init", url, "--demo").returncode == 0
    (area / "enrols.csv").write_text(first_night())
    (area / "groupmembers.csv").write_text(_group_members())
    # an earlier night's run: its state directory, lock, record and reports are there
    env = {"POSTSYNC_AREA": str(area), "POSTSYNC_DB": url}
    playbook = workspace / "nightly.yml"
    shutil.copy(NIGHTLY, playbook)
    first = postsync_process("run", playbook, env=env)
    assert first.returncode == 2, first.stdout + first.stderr
    (area / "enrols.csv").write_text(second_night())
    (area / "groupmembers.csv").write_text(_group_members())
    for dirpath, dirnames, filenames in os.walk(workspace):  # readable, not writable
        for name in dirnames:
            os.chmod(Path(dirpath) / name, 0o755)
        for name in filenames:
            os.chmod(Path(dirpath) / name, 0o644)

    if time.localtime().tm_sec > 45:  # the archive names carry the minute
        time.sleep(61 - time.localtime().tm_sec)
    # a SQLite database is a file of the tree (opening it here would touch the tree)
    rows = (dict) if backend == "sqlite" else (lambda: database_state(url))
    before = tree(workspace), rows()
    preview = reader.postsync("run", playbook, "--check", env={**env, "POSTSYNC_DB": reader_url})
    (record,) = (area / ".postsync" / "runs").glob("*.json")  # the first night's
    post = reader.postsync("post", record, "--check", env={**env, "POSTSYNC_DB": reader_url})
    after = tree(workspace), rows()
    # the first night's files were replaced by tonight's: post says so, as it would for real
    assert post.returncode == 3, post.stdout + post.stderr
    assert "enrols.csv changed since the sync read it" in post.stdout
    assert preview.returncode == 2, preview.stdout + preview.stderr
    assert "database error" not in preview.stdout
    assert after[0] == before[0]
    assert after[1] == before[1]

    # the run, by the area's owner, does exactly what the preview said
    real = postsync_process("run", playbook, env=env)
    assert real.returncode == preview.returncode, real.stdout
    items = [line for line in preview.stdout.splitlines() if line.startswith("    ")]
    assert items == [line for line in real.stdout.splitlines() if line.startswith("    ")]
    assert '    delete group "Night G2" in course MATH101' in items, preview.stdout
