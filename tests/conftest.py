from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from runner.cli.main import main
from runner.core.interpreter import released
from tests.mariadbserver import MariaDBServer
from tests.pgserver import PostgresServer, ServerUnavailable, start_server


@dataclass
class Result:
    code: int
    out: str
    err: str


CLI = Callable[..., Result]
# the tests read plain text: a FORCE_COLOR of the caller's environment (a CI runner's)
# would colour it (tests/test_progress.py sets it where it tests it)
os.environ.pop("FORCE_COLOR", None)


@pytest.fixture(autouse=True)
def settled_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A control file a test writes is complete once written: in-process runs read it at
    once instead of waiting settle_seconds (60 s by default) after its last change. The
    tests of the settle time (tests/reliability/test_intake.py) run postsync in a process
    of its own, where the default holds, or set settle_seconds in their playbooks."""
    monkeypatch.setattr("runner.sync.step.SETTLE_SECONDS", 0.0)


@pytest.fixture(autouse=True)
def collector_given_back() -> Iterator[None]:
    """What a test's bulk work set aside from the cycle collector is given back after the
    test, as `main` does at the end of a command (runner.core.interpreter.released): a
    test that calls the sync or a step's functions directly does not end a command."""
    yield
    released()


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> CLI:
    """Run `postsync ARGS...` in-process, as a user would from a shell."""

    def run(*args: object) -> Result:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


#: runs postsync's CLI in a process of its own (the tests' `cli` runs it in this one),
#: reading the control files the tests write at once, as `settled_at_once` does here
MAIN = (
    "import sys; import runner.sync.step as step; step.SETTLE_SECONDS = 0.0;"
    " from runner.cli.main import main; sys.exit(main())"
)
#: the command line of such a process
POSTSYNC = (sys.executable, "-c", MAIN)
ROOT = Path(__file__).resolve().parent.parent


def postsync_process(
    *args: object, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """postsync run as a separate process from the project's root, colours off."""
    return subprocess.run(
        [sys.executable, "-c", MAIN, *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        cwd=ROOT,
    )


def paused(
    *args: object, point: str, where: Path, cwd: Path = ROOT
) -> tuple[subprocess.Popen[str], Path]:
    """postsync ARGS in a process of its own, paused at the first fault point named
    `point` until the file returned exists (it is there when this returns). Its trace
    and that file are in `where`."""
    trace, go = where / f"trace-{point}", where / f"go-{point}"
    trace.unlink(missing_ok=True)
    go.unlink(missing_ok=True)
    faults = f"trace={trace},wait={point}:{go}"
    run = subprocess.Popen(
        [*POSTSYNC, *map(str, args)],
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1", "POSTSYNC_FAULTS": faults},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while point not in (trace.read_text() if trace.exists() else ""):
        assert time.monotonic() < deadline and run.poll() is None, run.communicate()
        time.sleep(0.02)
    return run, go


def age(path: Path, days: float) -> Path:
    """Set `path`'s mtime to `days` days ago (without following symlinks)."""
    when = time.time() - days * 86400
    os.utime(path, (when, when), follow_symlinks=False)
    return path


def make_file(path: Path, days: float = 0, content: str = "x\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return age(path, days)


def snapshot(root: Path, *, own_state: bool = True) -> dict[str, tuple[str, str, int]]:
    """Every entry under root: kind, content digest or link target, mtime.

    With own_state=False, postsync's lock and records under `.postsync/` are left out.
    """
    state: dict[str, tuple[str, str, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if not own_state and ".postsync" in dirnames:
            dirnames.remove(".postsync")
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            rel = str(path.relative_to(root))
            if path.is_symlink():
                state[rel] = ("link", str(path.readlink()), st.st_mtime_ns)
            elif path.is_dir():
                state[rel] = ("dir", "", 0)
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                state[rel] = ("file", digest, st.st_mtime_ns)
    return state


def write_playbook(directory: Path, body: str, name: str = "playbook.yml") -> Path:
    path = directory / name
    path.write_text(body)
    return path


HOUSEKEEPING = """\
name: Housekeeping
area: area
post_treatments:
  - name: purge archives
    purge_old_files:
      paths: [archives]
      older_than_days: 90
    tags: [housekeeping]
"""


@pytest.fixture
def area(tmp_path: Path) -> Path:
    path = tmp_path / "area"
    path.mkdir()
    return path


def missing(what: str, reason: object) -> NoReturn:
    """A server or tool the tests need is missing: skipped with the reason, except
    under CI (environment variable CI set), where it is a failure."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required under CI: {reason}")
    pytest.skip(str(reason))


@pytest.fixture(scope="session")
def postgresql_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the whole session, in a temporary directory."""
    try:
        server = start_server()
    except ServerUnavailable as exc:
        missing("PostgreSQL", exc)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariaDBServer]:
    """A real MariaDB server for the whole session, in a temporary directory."""
    from tests.mariadbserver import ServerUnavailable as MariaDBUnavailable
    from tests.mariadbserver import start_server as start_mariadb

    try:
        server = start_mariadb()
    except MariaDBUnavailable as exc:
        missing("MariaDB", exc)
    try:
        yield server
    finally:
        server.stop()
